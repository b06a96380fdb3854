"""The operators of one transformer forward pass, as plain data (the simulator's input).

`model_ops(arch, workload)` lists every operator in execution order. Each operator carries a
`group` key (`GroupKey`) naming the only widths it depends on, so lookup tables can simulate
each distinct group once: `attn_group(d, heads, head_dim, attention)` for LayerNorm 1 +
attention + residual (attention: the layer's attention kind, nas.core.attention),
`ffn_group(d, ffn)` for LayerNorm 2 + feed-forward + residual, `head_group(d)` for the final
LayerNorm and LM head. `model_ops` is exactly the concatenation of `group_ops` over
`arch_groups(arch)`, which is what makes a table's sum equal to the full simulation.

Attention kinds (`attention_ops`):
- softmax: Q.K^T, softmax, scores.V (a decode step reads the whole KV cache).
- sparseNN: the same operators over the kept scores of the kind's fixed pattern
  (`nas.core.attention.sparse_pattern`, built for `workload.seq` tokens; its window and global
  tokens ride on the ops as `pattern`), so a decode step sees min(window, t+1) local + up to
  `globals` global keys: constant work per step once the window is full.
- taylor: ViTALiTy's first-order Taylor attention (Dass et al., HPCA 2023; seed 003):
  exp(q.k) ~ 1 + q.k with row-mean-centred keys, per head
      Z = diag(1 / (n + Q ksum)) (1 vsum^T + Q G),   G = K^T V,   K centred: K - mean(K)
  as operators (each linear in the sequence length T): column sums of K and V (`colsum`), the
  centring (`centre`), G = K^T V (`kv`: d_h x T x d_h), the numerator Q G (`qg`: T x d_h x d_h,
  1 vsum^T its bias), the normaliser n + Q ksum (`norm`: T x d_h multiply-adds), its reciprocals
  (`recip`) and the diagonal scaling (`scale`: T x d_h multiplies). Causal (decoder prefill):
  no centring (the mean would see the future); prefix sums of K and V (`cumsum`) and, in chunks
  of C = d_h tokens, the state before the chunk (`kv` per chunk, accumulated) and the causal
  products inside the chunk (`cqk`: C x d_h x C, `cav`: C x C x d_h), so the work is
  2 T d_h^2 + 2 T C d_h per head: linear in T. A decode step updates a constant-size state
  (G += k^T v, the sums) and reads it once: no cache that grows with t.

GEMM convention (as SCALE-Sim): OUT[m, n] = A[m, k] @ B[k, n], repeated `batch` times
(independent heads/sequences) and `repeat` times (identical decode steps). For element-wise and
row-wise operators, `m` is the number of rows and `n` the row width (`k` = 0).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nas.core.arch import Arch
from nas.core.atomic import existing_file
from nas.core.attention import SPARSE, TAYLOR, base_kind, sparse_pattern
from nas.core.attention import SOFTMAX as SOFTMAX_ATTENTION
from nas.core.errors import UserError

GEMM, SOFTMAX, LAYERNORM, GELU, ADD = "gemm", "softmax", "layernorm", "gelu", "add"
NONLINEAR_KINDS = (SOFTMAX, LAYERNORM, GELU, ADD)
# Taylor attention's vector operators (reads/writes state their element counts per instance):
# column sums, prefix sums, centring, normaliser (row dot products + n), reciprocals, diagonal
# scaling. Work = m x n elements per instance.
COLSUM, CUMSUM, CENTRE, NORM, RECIP, SCALE = "colsum", "cumsum", "centre", "norm", "recip", "scale"
TAYLOR_VECTOR_KINDS = (COLSUM, CUMSUM, CENTRE, NORM, RECIP, SCALE)
# Attention products: softmax/sparse scores and their use, Taylor's state and numerator, and the
# causal chunk-local products of a Taylor prefill.
QK, AV, KV, QG, CQK, CAV = "qk", "av", "kv", "qg", "cqk", "cav"
# Operator classes of the survey's Sec. 2.2 breakdown, and GEMMs given by hand (no model).
PROJECTION, ACT_MATMUL, NONLINEAR = "projection", "act-to-act matmul", "non-linear"
USER_GEMM = "gemm"


# tokens per sequence beyond any transformer's context (1M): a longer one is likely a typo, and
# `nas simulate` / `profile` / `build-lut` say so
MAX_CONTEXT = 2**20


@dataclass(frozen=True)
class Workload:
    """How the model is run: sequence length, batch, and encoder or decoder (KV-cache) mode."""

    seq: int = 128          # encoder: tokens per sequence; decoder: prompt (prefill) length
    batch: int = 1
    mode: str = "encoder"   # "encoder" | "decoder"
    gen: int = 0            # decoder only: tokens generated one at a time after the prefill
    vocab: int = 0          # width of the LM head; 0 = no LM head

    def __post_init__(self) -> None:
        if self.mode not in ("encoder", "decoder"):
            raise UserError(f"workload: mode must be 'encoder' or 'decoder', got {self.mode!r}")
        for name in ("seq", "batch"):
            if getattr(self, name) <= 0:
                raise UserError(f"workload: {name} must be positive, got {getattr(self, name)}")
        for name in ("gen", "vocab"):
            if getattr(self, name) < 0:
                raise UserError(f"workload: {name} must be >= 0, got {getattr(self, name)}")
        if self.mode == "encoder" and self.gen:
            raise UserError("workload: --gen needs decoder mode")

    @property
    def key(self) -> str:
        return f"{self.mode}-seq{self.seq}-b{self.batch}-gen{self.gen}-v{self.vocab}"


# Kinds of operator groups (GroupKey.kind).
ATTN, FFN, HEAD = "attn", "ffn", "head"


@dataclass(frozen=True, slots=True)
class GroupKey:
    """The widths a group of operators depends on, and nothing else: one lookup-table row.
    Build one with `attn_group`, `ffn_group` or `head_group`; the fields a kind does not use are
    0 (or "" for `attention`), which is how a table stores them."""

    kind: str               # ATTN, FFN or HEAD
    d: int
    heads: int = 0          # ATTN: heads of the layer
    head_dim: int = 0       # ATTN
    attention: str = ""     # ATTN: the layer's attention kind
    ffn: int = 0            # FFN: hidden width

    def __str__(self) -> str:
        if self.kind == ATTN:
            return (f"attention d={self.d} heads={self.heads} head_dim={self.head_dim} "
                    f"{self.attention}")
        return f"ffn d={self.d} ffn={self.ffn}" if self.kind == FFN else f"head d={self.d}"


# The constructors are cached: a search builds the keys of many architectures from a few widths.
@lru_cache(maxsize=4096)
def attn_group(d: int, heads: int, head_dim: int, attention: str) -> GroupKey:
    """LayerNorm 1, attention of kind `attention`, residual."""
    return GroupKey(ATTN, d, heads=heads, head_dim=head_dim, attention=attention)


@lru_cache(maxsize=4096)
def ffn_group(d: int, ffn: int) -> GroupKey:
    """LayerNorm 2, feed-forward of hidden width `ffn`, residual."""
    return GroupKey(FFN, d, ffn=ffn)


@lru_cache(maxsize=4096)
def head_group(d: int) -> GroupKey:
    """Final LayerNorm and LM head."""
    return GroupKey(HEAD, d)


@dataclass(frozen=True, kw_only=True)
class Op:
    """One operator (see the module docstring for the GEMM convention); built by keyword."""

    name: str               # e.g. "L0.q_proj", "lm_head"; decode steps end in "@t<step>"
    kind: str               # GEMM or one of NONLINEAR_KINDS
    cls: str                # PROJECTION, ACT_MATMUL or NONLINEAR
    group: GroupKey | None = None   # lookup-table key (None: a GEMM given by hand)
    layer: int | None = None
    phase: str              # "encoder", "prefill" or "decode"
    m: int
    k: int = 0              # 0 for element-wise and row-wise operators
    n: int
    batch: int = 1
    repeat: int = 1
    heads: int = 0          # attention products: heads per sequence (the sparse engine's unit)
    product: str = ""       # attention products: "qk" (Q.K^T: k = head_dim, n = context) or
                            # "av" (scores.V: k = context, n = head_dim); Taylor's "kv", "qg",
                            # "cqk", "cav" (see the module docstring); "" for other ops
    attention: str = ""     # attention kind of the op's layer on its attention-specific ops
                            # when not softmax ("taylor", "sparse25"); "" otherwise
    pattern: tuple = ()     # sparseNN ops: (window, globals) of the kind's pattern
    reads: int = 0          # Taylor vector ops: elements read per instance
    writes: int = 0         # Taylor vector ops: elements written per instance

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n * self.batch * self.repeat if self.kind == GEMM else 0

    @property
    def queries(self) -> int:
        """Query rows of each attention map an attention op works on: m for Q.K^T and A.V; for
        a softmax, 1 in a decode step, else its context n (the map is square)."""
        if self.kind == GEMM:
            return self.m
        return 1 if self.phase == "decode" else self.n

    @property
    def context(self) -> int:
        """Keys of each attention map an attention op works on."""
        return self.k if self.product == AV else self.n

    @property
    def elements(self) -> int:
        """Output elements over all batches and repeats."""
        return self.m * self.n * self.batch * self.repeat

    @property
    def shape(self) -> str:
        dims = f"{self.m}x{self.k}x{self.n}" if self.kind == GEMM else f"{self.m}x{self.n}"
        extra = (f" x{self.batch}" if self.batch > 1 else "") + (
            f" x{self.repeat}rep" if self.repeat > 1 else "")
        return dims + extra


def _block_phases(workload: Workload):
    """(phase, query tokens per sequence, context length, repeat) for each pass over the layers.

    Encoder: one pass over `seq` tokens. Decoder: a prefill pass over the prompt, then one pass per
    generated token (1 query token attending to a context that grows by one each step).
    """
    if workload.mode == "encoder":
        return [("encoder", workload.seq, workload.seq, None)]
    passes = [("prefill", workload.seq, workload.seq, None)]
    passes += [("decode", 1, workload.seq + t + 1, t) for t in range(workload.gen)]
    return passes


def attention_ops(d: int, heads: int, head_dim: int, workload: Workload,
                  layer: int | None = None, kind: str = SOFTMAX_ATTENTION) -> list[Op]:
    """LayerNorm 1, Q/K/V projections, the attention of `kind` (see the module docstring),
    output projection, residual.

    In decoder mode the K/V projections of each new token are appended to the KV cache, so the
    attention products of decode step t run over a context of seq + t + 1 tokens. Operators whose
    shape does not change between decode steps are listed once with `repeat` = gen.
    """
    a, b = heads * head_dim, workload.batch
    group = attn_group(d, heads, head_dim, kind)
    pre = f"L{layer}." if layer is not None else ""
    base = base_kind(kind)
    tag_kind = "" if base == SOFTMAX_ATTENTION else kind
    pattern = ()
    if base == SPARSE:
        p = sparse_pattern(kind, workload.seq, causal=workload.mode == "decoder")
        pattern = (p.window, p.globals)
    ops: list[Op] = []

    def op(name, kind_, cls, phase, m, k, n, own=True, **shape):
        """An operator of this layer; `own`: specific to the attention kind."""
        ops.append(Op(name=pre + name, kind=kind_, cls=cls, group=group, layer=layer,
                      phase=phase, m=m, k=k, n=n, attention=tag_kind if own else "",
                      pattern=pattern if own else (), **shape))

    for phase, q, ctx, step in _block_phases(workload):
        rows = b * q
        if step is None or step == 0:               # shape-invariant operators
            repeat = workload.gen if phase == "decode" else 1
            tag = "@decode" if phase == "decode" else ""
            op("ln1" + tag, LAYERNORM, NONLINEAR, phase, rows, 0, d, repeat=repeat, own=False)
            for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
                k_in, n_out = (a, d) if proj == "o_proj" else (d, a)
                op(proj + tag, GEMM, PROJECTION, phase, rows, k_in, n_out, repeat=repeat,
                   own=False)
            op("add1" + tag, ADD, NONLINEAR, phase, rows, 0, d, repeat=repeat, own=False)
            if base == TAYLOR:
                _taylor_ops(op, phase, q, head_dim, b * heads, heads, repeat, tag)
        if base == TAYLOR:
            continue
        tag = "" if step is None else f"@t{step}"
        op("qk" + tag, GEMM, ACT_MATMUL, phase, q, head_dim, ctx, batch=b * heads, heads=heads,
           product=QK)
        op("softmax" + tag, SOFTMAX, NONLINEAR, phase, b * heads * q, 0, ctx)
        op("av" + tag, GEMM, ACT_MATMUL, phase, q, ctx, head_dim, batch=b * heads, heads=heads,
           product=AV)
    return ops


def taylor_chunk(head_dim: int) -> int:
    """Tokens per chunk of a causal Taylor prefill: C = d_h, so the chunk-local products
    (C x d_h x C) are as large as the state products (C x d_h x d_h). This project's choice."""
    return head_dim


def _taylor_ops(op, phase: str, q: int, dh: int, inst: int, heads: int, repeat: int,
                tag: str) -> None:
    """Taylor attention's operators of one pass (see the module docstring); `inst` = batch x
    heads instances, each over `q` tokens (1 in a decode step, repeated `repeat` times)."""
    kw = dict(batch=inst, repeat=repeat)
    if phase == "encoder":
        op("colsum" + tag, COLSUM, NONLINEAR, phase, q, 0, 2 * dh, reads=2 * q * dh,
           writes=2 * dh, **kw)                                  # ksum, vsum (and the mean)
        op("centre" + tag, CENTRE, NONLINEAR, phase, q, 0, dh, reads=q * dh + dh,
           writes=q * dh, **kw)                                  # K - mean(K)
        op("kv" + tag, GEMM, ACT_MATMUL, phase, dh, q, dh, heads=heads, product=KV, **kw)
        op("qg" + tag, GEMM, ACT_MATMUL, phase, q, dh, dh, heads=heads, product=QG, **kw)
        norm_reads = q * dh + dh                                 # Q and one ksum
    elif phase == "prefill":
        op("cumsum" + tag, CUMSUM, NONLINEAR, phase, q, 0, 2 * dh, reads=2 * q * dh,
           writes=2 * q * dh, **kw)                              # prefix sums of K and V
        chunks = math.ceil(q / taylor_chunk(dh))
        c = math.ceil(q / chunks)
        kc = dict(batch=inst * chunks, repeat=repeat, heads=heads)
        op("kv" + tag, GEMM, ACT_MATMUL, phase, dh, c, dh, product=KV, **kc)   # chunk states
        op("qg" + tag, GEMM, ACT_MATMUL, phase, c, dh, dh, product=QG, **kc)   # Q_c S_{c-1}
        op("cqk" + tag, GEMM, ACT_MATMUL, phase, c, dh, c, product=CQK, **kc)  # in the chunk
        op("cav" + tag, GEMM, ACT_MATMUL, phase, c, c, dh, product=CAV, **kc)
        norm_reads = 2 * q * dh                                  # Q and the prefix ksums
    else:                                                        # one token: update the state
        op("colsum" + tag, COLSUM, NONLINEAR, phase, 1, 0, 2 * dh, reads=4 * dh,
           writes=2 * dh, **kw)                                  # ksum += k, vsum += v
        op("kv" + tag, GEMM, ACT_MATMUL, phase, dh, 1, dh, heads=heads, product=KV, **kw)
        op("qg" + tag, GEMM, ACT_MATMUL, phase, 1, dh, dh, heads=heads, product=QG, **kw)
        norm_reads = 2 * dh
    op("norm" + tag, NORM, NONLINEAR, phase, q, 0, dh, reads=norm_reads, writes=q, **kw)
    op("recip" + tag, RECIP, NONLINEAR, phase, q, 0, 1, reads=q, writes=q, **kw)
    op("scale" + tag, SCALE, NONLINEAR, phase, q, 0, dh, reads=q * dh + q, writes=q * dh, **kw)


def ffn_ops(d: int, ffn: int, workload: Workload, layer: int | None = None) -> list[Op]:
    """LayerNorm 2, FFN1, GELU, FFN2, residual. Decode steps share one shape: one op, repeated."""
    group = ffn_group(d, ffn)
    ops: list[Op] = []
    pre = f"L{layer}." if layer is not None else ""
    for phase, q, _ctx, step in _block_phases(workload):
        if step is not None and step > 0:
            continue                            # decode steps folded into the step-0 op below
        repeat = workload.gen if phase == "decode" else 1
        tag = "@decode" if phase == "decode" else ""
        rows = workload.batch * q

        def op(name, kind, cls, m, k, n):
            ops.append(Op(name=pre + name + tag, kind=kind, cls=cls, group=group, layer=layer,
                          phase=phase, m=m, k=k, n=n, repeat=repeat))

        op("ln2", LAYERNORM, NONLINEAR, rows, 0, d)
        op("ffn1", GEMM, PROJECTION, rows, d, ffn)
        op("gelu", GELU, NONLINEAR, rows, 0, ffn)
        op("ffn2", GEMM, PROJECTION, rows, ffn, d)
        op("add2", ADD, NONLINEAR, rows, 0, d)
    return ops


def head_ops(d: int, workload: Workload) -> list[Op]:
    """Final LayerNorm and, when `workload.vocab` > 0, the LM head (logits for every position
    in encoder mode and prefill, for the new token in each decode step)."""
    group = head_group(d)
    ops: list[Op] = []
    for phase, q, _ctx, step in _block_phases(workload):
        if step is not None and step > 0:
            continue
        repeat = workload.gen if phase == "decode" else 1
        tag = "@decode" if phase == "decode" else ""
        rows = workload.batch * q
        ops.append(Op(name="final_ln" + tag, kind=LAYERNORM, cls=NONLINEAR, group=group,
                      phase=phase, m=rows, n=d, repeat=repeat))
        if workload.vocab:
            ops.append(Op(name="lm_head" + tag, kind=GEMM, cls=PROJECTION, group=group,
                          phase=phase, m=rows, k=d, n=workload.vocab, repeat=repeat))
    return ops


def arch_groups(arch: Arch) -> list[tuple[GroupKey, int | None]]:
    """(group key, layer) of every block of `arch`, in execution order: per layer one attention
    and one FFN group, then the head group (layer None)."""
    blocks: list[tuple[GroupKey, int | None]] = []
    for i, (h, f, kind) in enumerate(zip(arch.heads, arch.ffn, arch.attention)):
        blocks += [(attn_group(arch.d, h, arch.head_dim, kind), i), (ffn_group(arch.d, f), i)]
    return blocks + [(head_group(arch.d), None)]


def group_ops(key: GroupKey, workload: Workload, layer: int | None = None) -> list[Op]:
    """The operators of one group (see the module docstring)."""
    if key.kind == ATTN:
        return attention_ops(key.d, key.heads, key.head_dim, workload, layer=layer,
                             kind=key.attention)
    if key.kind == FFN:
        return ffn_ops(key.d, key.ffn, workload, layer=layer)
    if key.kind == HEAD:
        return head_ops(key.d, workload)
    raise ValueError(f"unknown operator group {key!r}")


def model_ops(arch: Arch, workload: Workload) -> list[Op]:
    """All operators of one forward pass (encoder) or prefill + generation (decoder): the
    operators of every group of `arch_groups(arch)`, which is what makes a lookup table's sum
    over groups equal to the full simulation.

    Operators are listed by layer and block (the order of a layer-by-layer schedule, not the
    exact order of execution inside an attention block). Costs are additive, so the order does
    not change any total.
    """
    return [op for key, layer in arch_groups(arch) for op in group_ops(key, workload, layer)]


# -- GEMMs given by hand -----------------------------------------------------------------------

def gemm_ops(gemms: list[tuple[str, int, int, int]]) -> list[Op]:
    """One operator per (name, M, K, N): OUT[M, N] = A[M, K] @ B[K, N], no bias, phase "gemm"."""
    return [Op(name=name, kind=GEMM, cls=USER_GEMM, phase="gemm", m=m, k=k, n=n)
            for name, m, k, n in gemms]


def parse_gemm(text: str) -> tuple[int, int, int]:
    """'M,K,N' -> (M, K, N), three positive integers."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--gemm {text!r}: give M,K,N as three positive integers "
                        "(OUT[M,N] = A[M,K] @ B[K,N]), e.g. --gemm 512,768,3072")
    m, k, n = (int(p) for p in parts)
    return m, k, n


def load_topology(path: str | Path) -> list[tuple[str, int, int, int]]:
    """(name, M, K, N) of each row of a SCALE-Sim GEMM topology CSV: a header row
    `Layer, M, N, K,` (note: N before K; a trailing comma is allowed, extra columns such as
    SCALE-Sim 3's sparsity are ignored), then one GEMM per row, OUT[M,N] = A[M,K] @ B[K,N].
    Repeated layer names get a '#2', '#3' ... suffix."""
    path = existing_file(path, "topology file")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"topology file {path}: cannot read it as text ({exc})") from None
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(lines)) if any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"topology file {path} is empty; expected a header 'Layer, M, N, K,'")
    line, header = rows[0]
    header = [c.strip().lower() for c in header]
    missing = [c for c in ("m", "n", "k") if c not in header]
    if missing or not header[0]:
        raise UserError(f"topology file {path} line {line}: expected the SCALE-Sim GEMM header "
                        f"'Layer, M, N, K,', got {', '.join(header)!r}")
    cols = {c: header.index(c) for c in ("m", "n", "k")}
    gemms: list[tuple[str, int, int, int]] = []
    seen: dict[str, int] = {}
    for line, row in rows[1:]:
        cells = [c.strip() for c in row]
        try:
            m, n, k = (int(cells[cols[c]]) for c in ("m", "n", "k"))
        except (IndexError, ValueError):
            raise UserError(f"topology file {path} line {line}: expected a layer name and "
                            f"integers M, N, K, got {','.join(row)!r}") from None
        if min(m, n, k) <= 0 or not cells[0]:
            raise UserError(f"topology file {path} line {line}: a layer needs a name and "
                            f"positive M, N, K, got {','.join(row)!r}")
        seen[cells[0]] = seen.get(cells[0], 0) + 1
        name = cells[0] if seen[cells[0]] == 1 else f"{cells[0]}#{seen[cells[0]]}"
        gemms.append((name, m, k, n))
    if not gemms:
        raise UserError(f"topology file {path} has a header but no GEMM rows")
    return gemms
