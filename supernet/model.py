"""A GPT-style decoder, static (`GPT`) and elastic (`ElasticGPT`), in the style of nanoGPT.

Both are pre-LayerNorm decoders with learned positions, tied input/output embeddings and causal
attention. Layer i has `heads[i]` heads of width `head_dim` (attention width heads[i] * head_dim,
decoupled from the embedding width d), an FFN of width `ffn[i]` and the attention kind
`attention[i]`, as in `nas.core.arch.Arch`. The kinds (nas.core.attention) share the layer's
Q/K/V/O weights and differ only in how the heads mix the values:
    softmax   `F.scaled_dot_product_attention(is_causal=True)`, exactly as before kinds existed
    taylor    ViTALiTy's linear Taylor attention in causal form (`taylor_attention`)
    sparseNN  softmax restricted to the local-window + global-token mask of
              `nas.core.attention.sparse_pattern` (`sparse_mask`)

`ElasticGPT` holds the weights of the largest architecture of a `SearchSpace`. A subnet uses the
first k rows and columns of every weight (HAT, AttentiveNAS, BigNAS): the first d embedding
channels, the first heads[i] heads, the first ffn[i] hidden units, the first L layers. Slicing
makes views, so choosing a subnet copies nothing, and the largest subnet does exactly the work of
a `GPT` of the same architecture. `ElasticGPT.export(arch)` copies a subnet's weights into a `GPT`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nas.core.arch import Arch, SearchSpace
from nas.core.attention import SOFTMAX, TAYLOR, SparsePattern, sparse_pattern

# Tokens per chunk of the causal Taylor attention (a speed/memory trade-off, not a result).
TAYLOR_CHUNK = 64


@dataclass
class ModelConfig:
    vocab_size: int
    block_size: int          # longest context (number of learned positions)
    dropout: float = 0.0     # used only when forward(..., dropout=True) in training mode


# -- the computation, shared by the static and the elastic model --------------------------------

def taylor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     chunk: int = TAYLOR_CHUNK, context: int | None = None) -> torch.Tensor:
    """Causal linear Taylor attention (ViTALiTy, Dass et al., HPCA 2023) of q, k, v [B, H, T, D].

    exp(q.k / sqrt(D)) ~ 1 + q.k / sqrt(D) with the keys centred on their mean. Causally, query
    i sees keys j <= i and centres them on their prefix mean m_i = mean_{j<=i} k_j, so the
    weights 1 + q_i.(k_j - m_i) / sqrt(D) sum to exactly i + 1 (the centred keys sum to zero)
    and the denominator n + q.(sum of centred keys) of the paper is the token count i + 1,
    never zero or negative (no normalisation of q or k is needed). At the last position this is
    the paper's non-causal formula. With V_i = sum_{j<=i} v_j and S_i = sum_{j<=i} k_j v_j^T:
        y_i = (V_i + (q_i S_i - (q_i . m_i) V_i) / sqrt(D)) / (i + 1).
    q_i S_i is computed by chunks of `chunk` tokens (the running state S of the previous chunks,
    plus the masked products inside a chunk), so memory is O(T) per head; the result is the
    same as prefix sums token by token. The sequence is padded to the chunks of `context`
    tokens (at least T; default T), a number fixed by the model, so a graph exported for every
    length has a fixed number of chunks. Computed in float32, also under autocast.
    """
    dtype = q.dtype
    with torch.autocast(q.device.type, enabled=False):
        q, k, v = q.float(), k.float(), v.float()
        T, D = q.shape[-2], q.shape[-1]
        count = torch.arange(1, T + 1, device=q.device, dtype=torch.float32).unsqueeze(-1)
        v_sum = v.cumsum(-2)                                            # V_i
        mean = k.cumsum(-2) / count                                     # m_i
        qs = _causal_products(q, k, v, chunk, context or T)             # q_i S_i
        y = (v_sum + (qs - (q * mean).sum(-1, keepdim=True) * v_sum) / math.sqrt(D)) / count
    return y.to(dtype)


def _causal_products(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int,
                     length: int) -> torch.Tensor:
    """sum_{j<=i} (q_i . k_j) v_j for every i, by chunks: the state sum k_j v_j^T of earlier
    chunks (an exclusive prefix sum over chunks) plus the causal products inside the chunk.
    The T tokens are padded to the n chunks that hold `length` >= T tokens."""
    B, H, T, _ = q.shape
    n = -(-length // chunk)
    qc, kc, vc = (F.pad(t, (0, 0, 0, n * chunk - T)).view(B, H, n, chunk, -1)  # zeros add
                  for t in (q, k, v))                                          # nothing
    states = kc.transpose(-1, -2) @ vc                                  # [B, H, n, D, Dv]
    before = states.cumsum(2) - states                                  # earlier chunks only
    scores = (qc @ kc.transpose(-1, -2)).tril()                        # causal inside
    out = scores @ vc + qc @ before
    # the first T rows (index_select, not a slice: exports for T = n * chunk too)
    return out.view(B, H, n * chunk, -1).index_select(2, torch.arange(T, device=q.device))


@functools.lru_cache(maxsize=64)
def causal_pattern(kind: str, seq: int) -> SparsePattern:
    """`nas.core.attention.sparse_pattern` of a decoder (causal), computed once per length."""
    return sparse_pattern(kind, seq, causal=True)


def sparse_mask(pattern: SparsePattern, seq: int, device: torch.device) -> torch.Tensor:
    """The causal boolean mask [seq, seq] (True: query i sees key j) of the first `seq` tokens
    under a `causal_pattern`: j in (i - window, i], or j < globals (and j <= i). Built from
    ranges (no stored table), so an exported model computes it for any length."""
    i = torch.arange(seq, device=device).unsqueeze(1)
    j = torch.arange(seq, device=device).unsqueeze(0)
    return (j <= i) & ((j > i - pattern.window) | (j < pattern.globals))


@dataclass
class DecodeState:
    """What one layer keeps between decode steps (one new token per step), by kind:
    softmax  the keys and values of every earlier token (a KV cache)
    sparse   only those a later query still sees: the last window - 1 tokens and the globals
    taylor   a constant-size state: sum k_j v_j^T [B, H, D, D], sum v_j, sum k_j (float32)."""

    tokens: int = 0                          # tokens seen so far = position of the next one
    k: torch.Tensor | None = None            # [B, H, kept, D]
    v: torch.Tensor | None = None
    positions: torch.Tensor | None = None    # [kept], the position of each kept key (sparse)
    kv_sum: torch.Tensor | None = None
    v_sum: torch.Tensor | None = None
    k_sum: torch.Tensor | None = None


def attention_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str,
                   state: DecodeState, context: int) -> torch.Tensor:
    """The attention of one new token (q, k, v [B, H, 1, D]) at position state.tokens, given
    the layer's `state` of the earlier tokens, which it updates. Equal to the last row of the
    full causal attention over all tokens so far (`attention`)."""
    t = state.tokens
    state.tokens += 1
    if kind == TAYLOR:
        dtype = q.dtype
        with torch.autocast(q.device.type, enabled=False):
            q, k, v = q.float(), k.float(), v.float()
            kv, first = k.transpose(-1, -2) @ v, state.kv_sum is None
            state.kv_sum = kv if first else state.kv_sum + kv
            state.v_sum = v if first else state.v_sum + v
            state.k_sum = k if first else state.k_sum + k
            n = t + 1
            qm = (q * state.k_sum).sum(-1, keepdim=True) / n            # q_t . m_t
            y = (state.v_sum + (q @ state.kv_sum - qm * state.v_sum) / math.sqrt(q.shape[-1]))
            return (y / n).to(dtype)
    pos = torch.tensor([t], device=q.device)
    if state.k is None:
        state.k, state.v, state.positions = k, v, pos
    else:
        state.k, state.v = torch.cat((state.k, k), 2), torch.cat((state.v, v), 2)
        state.positions = torch.cat((state.positions, pos))
    y = F.scaled_dot_product_attention(q, state.k, state.v)   # every kept key is visible
    if kind != SOFTMAX:                    # keep what the next query (t + 1) sees
        p = causal_pattern(kind, context)
        keep = (state.positions > t + 1 - p.window) | (state.positions < p.globals)
        state.k, state.v, state.positions = state.k[:, :, keep], state.v[:, :, keep], \
            state.positions[keep]
    return y


def attention(x: torch.Tensor, wq, bq, wk, bk, wv, bv, wo, bo, head_dim: int,
              dropout: float, kind: str = SOFTMAX, context: int | None = None,
              state: DecodeState | None = None) -> torch.Tensor:
    """Causal multi-head self-attention of kind `kind`; the number of heads is
    wq.shape[0] // head_dim. A sparse kind uses the pattern of `context` tokens (the model's
    block size; default: this sequence's length) over the first T, so a position sees the same
    keys whatever the sequence length. Dropout on the attention weights: softmax and sparse.
    With a decode `state`, x is one new token after those the state holds (`attention_step`)."""
    B, T, _ = x.shape
    q, k, v = (F.linear(x, w, b).view(B, T, -1, head_dim).transpose(1, 2)
               for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    if state is not None:
        if T != 1:
            raise ValueError(f"a decode step takes one token, got {T}")
        y = attention_step(q, k, v, kind, state, context or state.tokens + 1)
    elif kind == SOFTMAX:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
    elif kind == TAYLOR:
        y = taylor_attention(q, k, v, context=context)
    else:
        mask = sparse_mask(causal_pattern(kind, context or T), T, x.device)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    y = y.transpose(1, 2).reshape(B, T, -1)
    return F.dropout(F.linear(y, wo, bo), dropout, training=dropout > 0)


def feed_forward(x: torch.Tensor, w1, b1, w2, b2, dropout: float) -> torch.Tensor:
    return F.dropout(F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2), dropout, training=dropout > 0)


def init_weights(module: nn.Module, n_layers: int) -> None:
    """GPT-2 initialisation: N(0, 0.02), output projections scaled by 1/sqrt(2 * layers)."""
    for name, p in module.named_parameters():
        if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            nn.init.ones_(p)
        elif p.dim() == 1:
            nn.init.zeros_(p)
        elif name.endswith(("wo", "w2")):
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layers))
        else:
            nn.init.normal_(p, std=0.02)


# The dimensions of each weight of a layer (rows, columns): the embedding width d, the attention
# width heads * head_dim, the FFN width. A subnet takes the first entries of each (`sliced`).
BLOCK_DIMS = {"ln1_w": ("d",), "ln1_b": ("d",), "ln2_w": ("d",), "ln2_b": ("d",),
              "wq": ("attn", "d"), "wk": ("attn", "d"), "wv": ("attn", "d"),
              "bq": ("attn",), "bk": ("attn",), "bv": ("attn",),
              "wo": ("d", "attn"), "bo": ("d",),
              "w1": ("ffn", "d"), "b1": ("ffn",), "w2": ("d", "ffn"), "b2": ("d",)}


class Block(nn.Module):
    """Weights of one pre-LN decoder layer, stored as [out, in] like nn.Linear."""

    def __init__(self, d: int, attn: int, ffn: int) -> None:
        super().__init__()
        P = lambda *shape: nn.Parameter(torch.empty(*shape))  # noqa: E731
        self.ln1 = nn.LayerNorm(d)
        self.wq, self.wk, self.wv = P(attn, d), P(attn, d), P(attn, d)
        self.bq, self.bk, self.bv = P(attn), P(attn), P(attn)
        self.wo, self.bo = P(d, attn), P(d)
        self.ln2 = nn.LayerNorm(d)
        self.w1, self.b1 = P(ffn, d), P(ffn)
        self.w2, self.b2 = P(d, ffn), P(d)

    def weights(self) -> dict[str, torch.Tensor]:
        """Every weight of the layer by name (what `run` takes)."""
        return {"ln1_w": self.ln1.weight, "ln1_b": self.ln1.bias,
                "wq": self.wq, "bq": self.bq, "wk": self.wk, "bk": self.bk,
                "wv": self.wv, "bv": self.bv, "wo": self.wo, "bo": self.bo,
                "ln2_w": self.ln2.weight, "ln2_b": self.ln2.bias,
                "w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def sliced(self, d: int, attn: int, ffn: int) -> dict[str, torch.Tensor]:
        """Views of the first rows/columns: d embedding channels, `attn` attention, `ffn` hidden."""
        size = {"d": d, "attn": attn, "ffn": ffn}
        return {name: w[tuple(slice(size[dim]) for dim in BLOCK_DIMS[name])]
                for name, w in self.weights().items()}

    def run(self, x: torch.Tensor, w: dict[str, torch.Tensor], head_dim: int,
            dropout: float, kind: str = SOFTMAX, context: int | None = None,
            state: DecodeState | None = None) -> torch.Tensor:
        """The layer with attention kind `kind` (sparse patterns over `context` tokens); with a
        decode `state`, one new token."""
        d = w["ln1_w"].shape                    # static, also when traced for export
        h = F.layer_norm(x, d, w["ln1_w"], w["ln1_b"])
        x = x + attention(h, w["wq"], w["bq"], w["wk"], w["bk"], w["wv"], w["bv"], w["wo"],
                          w["bo"], head_dim, dropout, kind, context, state)
        h = F.layer_norm(x, d, w["ln2_w"], w["ln2_b"])
        return x + feed_forward(h, w["w1"], w["b1"], w["w2"], w["b2"], dropout)


class _Decoder(nn.Module):
    """Embeddings, a stack of `Block`s sized for `arch`, final LayerNorm, tied LM head."""

    def __init__(self, config: ModelConfig, arch: Arch) -> None:
        super().__init__()
        self.config = config
        d = arch.d
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe = nn.Embedding(config.block_size, d)
        self.blocks = nn.ModuleList(Block(d, arch.attn_width(i), arch.ffn[i])
                                    for i in range(arch.layers))
        self.ln_f = nn.LayerNorm(d)
        init_weights(self, arch.layers)

    def weights(self, arch: Arch) -> dict:
        """The weights `arch` runs on: wte, wpe, ln_f_w, ln_f_b, and `blocks` (one
        `Block.weights` dict per layer)."""
        raise NotImplementedError

    def _forward(self, idx: torch.Tensor, arch: Arch, targets: torch.Tensor | None,
                 dropout: bool, states: list[DecodeState] | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        start = states[0].tokens if states else 0          # position of idx's first token
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than the context "
                             f"({self.config.block_size})")
        p = self.config.dropout if (dropout and self.training) else 0.0
        w = self.weights(arch)
        positions = torch.arange(start, start + T, device=idx.device)
        x = F.embedding(idx, w["wte"]) + F.embedding(positions, w["wpe"])
        x = F.dropout(x, p, training=p > 0)
        for i, layer in enumerate(w["blocks"]):
            x = self.blocks[i].run(x, layer, arch.head_dim, p, arch.attention[i],
                                   self.config.block_size, states[i] if states else None)
        x = F.layer_norm(x, (arch.d,), w["ln_f_w"], w["ln_f_b"])
        logits = F.linear(x, w["wte"])                          # tied embedding
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def decode_states(arch: Arch) -> list[DecodeState]:
    """Empty decode states, one per layer: pass them to forward(..., states=) with one new
    token per call (at most block_size tokens in all)."""
    return [DecodeState() for _ in range(arch.layers)]


class GPT(_Decoder):
    """A static model of one architecture, any mix of attention kinds (what `nas export-subnet`
    writes)."""

    def __init__(self, config: ModelConfig, arch: Arch) -> None:
        super().__init__(config, arch)
        self.arch = arch

    def weights(self, arch: Arch) -> dict:
        """Its own weights, whole: no slicing (an exported graph holds each once)."""
        return {"wte": self.wte.weight, "wpe": self.wpe.weight, "ln_f_w": self.ln_f.weight,
                "ln_f_b": self.ln_f.bias, "blocks": [b.weights() for b in self.blocks]}

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                dropout: bool = False, states: list[DecodeState] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (and loss) of idx; with decode `states` (`decode_states`), idx [B, 1] is the
        next token after those the states hold."""
        return self._forward(idx, self.arch, targets, dropout, states)


class ElasticGPT(_Decoder):
    """The supernet: weights of the space's largest architecture, any subnet by slicing."""

    def __init__(self, config: ModelConfig, space: SearchSpace) -> None:
        super().__init__(config, space.largest())
        self.space = space

    def weights(self, arch: Arch) -> dict:
        """Views of the first rows and columns of every weight, as `arch` uses them."""
        d = arch.d
        return {"wte": self.wte.weight[:, :d], "wpe": self.wpe.weight[:, :d],
                "ln_f_w": self.ln_f.weight[:d], "ln_f_b": self.ln_f.bias[:d],
                "blocks": [self.blocks[i].sliced(d, arch.attn_width(i), arch.ffn[i])
                           for i in range(arch.layers)]}

    def forward(self, idx: torch.Tensor, arch: Arch | None = None,
                targets: torch.Tensor | None = None, dropout: bool = False,
                states: list[DecodeState] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run subnet `arch` (the largest when None); dropout only when asked (the largest);
        with decode `states`, one new token as `GPT.forward`."""
        arch = self.space.largest() if arch is None else self.space.check(arch)
        return self._forward(idx, arch, targets, dropout, states)

    @torch.no_grad()
    def export(self, arch: Arch) -> GPT:
        """A standalone `GPT` holding copies of the subnet's weights (and nothing else)."""
        self.space.check(arch)
        model = GPT(self.config, arch).to(self.wte.weight.device)
        _copy_weights(model.weights(arch), self.weights(arch))
        return model

    @torch.no_grad()
    def load_subnet(self, model: GPT) -> None:
        """Copy a standalone model's weights into the slices its architecture uses here (the
        inverse of `export`)."""
        arch = self.space.check(model.arch)
        _copy_weights(self.weights(arch), model.weights(arch))


def _copy_weights(dst: dict, src: dict) -> None:
    """Copy every tensor of one `weights` dict into the same place of another."""
    pairs = [(dst[k], src[k]) for k in ("wte", "wpe", "ln_f_w", "ln_f_b")]
    pairs += [(mine[k], theirs[k]) for mine, theirs in zip(dst["blocks"], src["blocks"])
              for k in mine]
    for tensor, source in pairs:
        tensor.copy_(source)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
