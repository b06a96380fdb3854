"""Attention sparsity for the ViTCoD-like sparse engine: masks, and how they split between engines.

ViTCoD (You et al., HPCA 2023) prunes attention maps to fixed masks, then reorders the key
columns so the densest ("global token") columns form one dense block, run on the dense engine,
while the remaining scattered non-zeros go to the sparse engine. A column is dense when MORE than
50 of DeiT's 197 query rows keep it (ViTCoD's `Hardware/Simulator/reorder.py`: out-degree > 50,
the rule behind the global-token counts of the seed log 000); `dense_threshold` keeps that share,
50/197, for other sequence lengths. What the simulator needs from a mask is, per head: how many
columns are dense and how many non-zeros are left outside them. `AttentionSparsity.split(q, ctx,
layer)` answers that (the mean head), `head_splits` head by head, from

- a generated pattern: "global-local" (a few fully kept global columns + a local window around the
  diagonal, the pattern of sparse-attention ViTs) or "random" (every score kept with 1 - s), or
- a real mask file (numpy bool array [layers, heads, n, n] or [heads, n, n], True = pruned, as in
  ViTCoD's released DeiT masks); its column statistics (mean over layers and heads, or per layer
  and head with `per_layer=True`) are shares of the map, applied to the op's shape. A mask
  describes one sequence length n: `check_seq` refuses a workload of another length unless asked
  to rescale.

A sparseNN attention kind's fixed pattern (`nas.core.attention.sparse_pattern`: a local window
plus global tokens) answers the same questions as `PatternSparsity`, counted exactly from the
pattern for every op shape: its global columns go to the dense engine, the window's non-zeros
to the sparse engine (unless the window columns are dense by ViTCoD's rule themselves).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from nas.core.atomic import existing_file
from nas.core.attention import SparsePattern
from nas.core.errors import UserError

if TYPE_CHECKING:
    from costmodel.workload import Op

PATTERNS = ("global-local", "random", "mask")
# ViTCoD's split rule (Hardware/Simulator/reorder.py, threshold=50 on DeiT's 197 tokens): a key
# column is dense when more than 50 of the 197 query rows keep it.
VITCOD_DENSE_THRESHOLD = 50 / 197


@dataclass(frozen=True)
class AttentionSparsity:
    sparsity: float                 # fraction of attention scores pruned (0 <= s < 1)
    pattern: str = "global-local"
    global_share: float = 0.5       # global-local: share of each row's kept scores in global columns
    dense_threshold: float = VITCOD_DENSE_THRESHOLD  # a column is "dense" when MORE than this
                                                     # share of its rows is kept (ViTCoD's rule)
    mask_path: str = ""             # pattern "mask": the .npy file
    # pattern "mask": use each layer's (and head's) own statistics (ops need their layer index)
    # instead of the mean over layers and heads. Off by default: lookup tables simulate operator
    # groups without a layer index, and their sums must equal the full simulation.
    per_layer: bool = False

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise UserError(f"sparsity: unknown pattern {self.pattern!r} (choose {', '.join(PATTERNS)})")
        if not 0.0 <= self.sparsity < 1.0:
            raise UserError(f"sparsity: must be in [0, 1), got {self.sparsity}")
        if not 0.0 <= self.global_share <= 1.0 or not 0.0 <= self.dense_threshold < 1.0:
            raise UserError("sparsity: global_share must be in [0, 1] and dense_threshold in [0, 1)")
        if self.pattern == "mask" and not self.mask_path:
            raise UserError("sparsity: pattern 'mask' needs a mask file")

    @classmethod
    def from_mask(cls, path: str | Path, dense_threshold: float = VITCOD_DENSE_THRESHOLD,
                  per_layer: bool = False) -> AttentionSparsity:
        """A real mask file; its sparsity is measured from the file."""
        stats = _mask_file_stats(str(path), dense_threshold)
        return cls(sparsity=stats.sparsity, pattern="mask", mask_path=str(path),
                   dense_threshold=dense_threshold, per_layer=per_layer)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def mask_seq(self) -> int | None:
        """Sequence length n of the mask file's n x n attention maps; None when generated."""
        if self.pattern != "mask":
            return None
        return _mask_file_stats(self.mask_path, self.dense_threshold).seq

    def check_seq(self, seq: int, rescale: bool = False) -> None:
        """Raise UserError when a mask file was made for another sequence length than `seq`,
        unless `rescale`: then its column statistics are rescaled to the op's shape (what
        `split` does anyway). Generated patterns fit every length."""
        n = self.mask_seq
        if n is not None and n != seq and not rescale:
            raise UserError(f"mask file {self.mask_path} holds {n}x{n} attention maps but the "
                            f"sequence length is {seq}; give masks for {seq} tokens, or "
                            f"--rescale-mask to rescale the mask's column statistics to {seq}")

    def _layer(self, layer: int | None) -> int | None:
        return layer if self.per_layer else None

    def kept_fraction(self, layer: int | None = None) -> float:
        """Share of attention scores kept (what a sparse softmax has to process)."""
        if self.pattern == "mask":
            per_layer = _mask_file_stats(self.mask_path, self.dense_threshold).per_layer
            return float(_pick_layer(per_layer, self._layer(layer))[2])
        return 1.0 - self.sparsity

    def kept_share(self, q: int, ctx: int, layer: int | None = None) -> float:
        """Share of a q x ctx map's scores kept: the same for every shape (`kept_fraction`)."""
        return self.kept_fraction(layer)

    def split(self, q: int, ctx: int, layer: int | None = None) -> tuple[int, float]:
        """(dense columns, non-zeros outside them) of one head's q x ctx attention map."""
        if self.pattern == "mask":
            per_layer = _mask_file_stats(self.mask_path, self.dense_threshold).per_layer
            col_frac, sparse_frac, _ = _pick_layer(per_layer, self._layer(layer))
            return int(round(col_frac * ctx)), _count(sparse_frac * q * ctx)
        keep = max(1, int(round((1.0 - self.sparsity) * ctx)))      # scores kept per query row
        if self.pattern == "random":
            if 1.0 - self.sparsity > self.dense_threshold:           # every column is dense
                return ctx, 0.0
            return 0, float(keep * q)
        glob = int(round(self.global_share * keep))                   # global (dense) columns
        local = keep - glob                                            # window scores per row
        if local > self.dense_threshold * max(ctx - glob, 1):         # window columns are dense:
            return ctx, 0.0                                            # all on the dense engine
        return glob, float(local * q)

    def head_splits(self, q: int, ctx: int, layer: int | None = None,
                    heads: int = 1) -> tuple[tuple[int, float], ...]:
        """`split` for each of `heads` heads: a mask file's own heads when `per_layer`, the layer
        is known and the file has `heads` heads; otherwise every head gets the mean split."""
        layer = self._layer(layer)
        if self.pattern == "mask" and layer is not None:
            per_head = _mask_file_stats(self.mask_path, self.dense_threshold).per_head
            if 0 <= layer < len(per_head) and per_head.shape[1] == heads:
                return tuple((int(round(col * ctx)), _count(sparse * q * ctx))
                             for col, sparse, _ in per_head[layer])
        return (self.split(q, ctx, layer),) * heads


@dataclass(frozen=True)
class PatternSparsity:
    """The fixed pattern of a sparseNN attention kind (window, global tokens; causal in a
    decoder) as the cost model sees a q x ctx map of it: the last q query rows of the pattern
    over ctx tokens (q = ctx: the whole map; q = 1: a decode step's row)."""

    window: int
    globals: int
    causal: bool
    dense_threshold: float = VITCOD_DENSE_THRESHOLD
    per_layer: bool = False          # one pattern for every layer (the interface of masks)

    def kept(self, q: int, ctx: int) -> int:
        """Scores computed in the map."""
        return _pattern_counts(self.window, self.globals, self.causal, q, ctx)[0]

    def kept_share(self, q: int, ctx: int, layer: int | None = None) -> float:
        return self.kept(q, ctx) / (q * ctx)

    def split(self, q: int, ctx: int, layer: int | None = None) -> tuple[int, float]:
        """(dense columns, non-zeros outside them): the global columns are dense, the window's
        scores sparse; every column is dense when a window column is kept by more than
        `dense_threshold` of the pattern's rows (ViTCoD's rule, as for generated masks)."""
        kept, in_globals = _pattern_counts(self.window, self.globals, self.causal, q, ctx)
        window_rows = min(ctx, self.window if self.causal else 2 * self.window - 1)
        if window_rows > self.dense_threshold * ctx:
            return ctx, 0.0
        return min(self.globals, ctx), float(kept - in_globals)

    def head_splits(self, q: int, ctx: int, layer: int | None = None,
                    heads: int = 1) -> tuple[tuple[int, float], ...]:
        return (self.split(q, ctx, layer),) * heads


@lru_cache(maxsize=65536)
def _pattern_counts(window: int, globals_: int, causal: bool, q: int, ctx: int) -> tuple[int, int]:
    """(kept scores, kept scores in the global columns) of the last q rows of the pattern over
    ctx tokens (nas.core.attention.SparsePattern, the rule the supernet masks with)."""
    p = SparsePattern(ctx, min(window, ctx), min(globals_, ctx), causal)
    lo = max(0, ctx - q)
    kept = p.kept() if lo == 0 else sum(p.row_kept(i) for i in range(lo, ctx))
    # global column j is kept by every row in an encoder, by rows i >= j when causal
    in_globals = sum(ctx - max(lo, j) if causal else ctx - lo for j in range(p.globals))
    return kept, in_globals


def op_sparsity(op: Op, sparsity: AttentionSparsity | None = None
                ) -> AttentionSparsity | PatternSparsity | None:
    """The sparsity an op sees: a sparse kind's own pattern on its ops (causal outside an
    encoder), `sparsity` (pruned softmax attention, or None) on the others."""
    if op.pattern:
        return PatternSparsity(op.pattern[0], op.pattern[1], causal=op.phase != "encoder")
    return sparsity


def from_options(sparsity: float | None = None, mask: str | None = None,
                 pattern: str = "global-local", per_layer: bool = False,
                 rescale_mask: bool = False, seq: int | None = None) -> AttentionSparsity | None:
    """What the command line's --sparsity / --mask / --pattern / --per-layer-mask /
    --rescale-mask ask for (None: dense attention), the mask checked against `seq` when given."""
    if sparsity is not None and mask:
        raise UserError("give either --sparsity or --mask, not both")
    for flag, given in (("--per-layer-mask", per_layer), ("--rescale-mask", rescale_mask)):
        if given and not mask:
            raise UserError(f"{flag} needs --mask")
    if mask:
        out = AttentionSparsity.from_mask(mask, per_layer=per_layer)
        if seq is not None:
            out.check_seq(seq, rescale_mask)
        return out
    return None if sparsity is None else AttentionSparsity(sparsity, pattern=pattern)


def _count(x: float) -> float:
    """A count computed from shares: float noise removed (391.99999999999994 -> 392.0)."""
    return float(round(x, 6))


def _pick_layer(per_layer: np.ndarray, layer: int | None) -> np.ndarray:
    """Row `layer` of the per-layer statistics, or their mean when the layer is unknown."""
    if layer is not None and 0 <= layer < len(per_layer):
        return per_layer[layer]
    return per_layer.mean(axis=0)


def mask_stats(pruned: np.ndarray, dense_threshold: float = VITCOD_DENSE_THRESHOLD
               ) -> tuple[float, float, float]:
    """For one head's mask [q, k] (True = pruned): (dense column share, share of scores that are
    non-zeros outside dense columns, kept share). Dense: more than `dense_threshold` of the
    column's rows kept (ViTCoD's reorder.py: more than 50 of 197)."""
    kept = ~np.asarray(pruned, dtype=bool)
    col_density = kept.mean(axis=0)
    dense = col_density > dense_threshold
    return float(dense.mean()), float(kept[:, ~dense].sum() / kept.size), float(kept.mean())


class _MaskStats(NamedTuple):
    per_layer: np.ndarray   # [layers, 3]: dense column share, sparse share, kept share (head mean)
    per_head: np.ndarray    # [layers, heads, 3]: the same, head by head
    sparsity: float         # share of all scores pruned
    seq: int                # n of the n x n attention maps


@lru_cache(maxsize=8)
def _mask_file_stats(path: str, dense_threshold: float) -> _MaskStats:
    """Statistics of a mask file, with one-line errors for anything but a numpy bool array."""
    p = existing_file(path, "mask file")
    not_masks = (f"mask file {p} is not a numpy boolean array file (one saved with numpy.save, "
                 "True = pruned)")
    try:
        masks = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise UserError(not_masks) from None
    if not isinstance(masks, np.ndarray):               # an .npz archive
        masks.close()
        raise UserError(not_masks)
    if masks.dtype != bool and not (masks.dtype.kind in "iu" and np.isin(masks, (0, 1)).all()):
        raise UserError(f"{not_masks}; it holds {masks.dtype} values")
    if masks.ndim == 3:
        masks = masks[None]
    if masks.ndim != 4 or masks.shape[-1] != masks.shape[-2] or not masks.size:
        raise UserError(f"mask file {p}: expected [layers, heads, n, n] or [heads, n, n], "
                        f"got shape {masks.shape}")
    masks = masks.astype(bool)
    per_head = np.array([[mask_stats(h, dense_threshold) for h in layer] for layer in masks])
    return _MaskStats(per_head.mean(axis=1), per_head, float(masks.mean()), masks.shape[-1])


def generate_mask(n: int, sparsity: float, pattern: str = "global-local",
                  global_share: float = 0.5, seed: int = 0) -> np.ndarray:
    """An n x n mask (True = pruned) with about `sparsity` of the scores pruned.

    global-local: the first `glob` columns are global tokens (kept in every row); each row also
    keeps a window of `local` columns around its diagonal (wrapping at the edges). random: independent Bernoulli(1 - s).
    """
    if pattern == "random":
        return np.random.default_rng(seed).random((n, n)) >= 1.0 - sparsity
    if pattern != "global-local":
        raise UserError(f"generate_mask: unknown pattern {pattern!r}")
    keep = max(1, int(round((1.0 - sparsity) * n)))
    glob = int(round(global_share * keep))
    local = keep - glob
    kept = np.zeros((n, n), dtype=bool)
    kept[:, :glob] = True
    rest = n - glob
    if local and rest:
        # row i keeps the `local` non-global columns centred on its diagonal, wrapping around
        # at the edges so every row keeps the same number and every window column has the
        # same density local / (n - glob)
        rows = np.arange(n)[:, None]
        cols = glob + (rows - glob - local // 2 + np.arange(min(local, rest))[None, :]) % rest
        kept[rows, cols] = True
    return ~kept


__all__ = ["AttentionSparsity", "PatternSparsity", "op_sparsity", "from_options", "generate_mask", "mask_stats", "PATTERNS", "VITCOD_DENSE_THRESHOLD"]
