"""Attention kinds: what a layer's attention computes (plain data, shared by every layer above).

A kind is a name:
    softmax     dense softmax attention (the default; today's models)
    taylor      ViTALiTy's linear Taylor attention (Dass et al., HPCA 2023): exp(q.k) ~ 1 + q.k
                with row-mean-centred keys, so attention is linear in the sequence length
                (a global context G = K^T V; causal decoders use prefix sums of k_j v_j^T)
    sparseNN    a fixed sparse pattern that keeps about NN% of the attention scores (1 <= NN
                <= 99): a local window of the previous `window` tokens plus `globals` leading
                tokens every query sees (and that see every token in an encoder), in the style
                of ViTCoD's dense + sparse patterns and of Sanger

`sparse_pattern(kind, seq, causal)` is the one rule that turns a keep ratio into a window and a
number of global tokens: the supernet masks with it and the cost model counts with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nas.core.errors import UserError

SOFTMAX, TAYLOR, SPARSE = "softmax", "taylor", "sparse"
BASE_KINDS = (SOFTMAX, TAYLOR, SPARSE)
# Short codes used in architecture keys ("L2-d64-h2.2-f128.128-hd32-as.sp25").
_CODES = {SOFTMAX: "s", TAYLOR: "t"}


def check_kind(kind: str) -> str:
    """`kind` if it names an attention kind, else a UserError listing the kinds."""
    if kind in (SOFTMAX, TAYLOR):
        return kind
    m = re.fullmatch(r"sparse(\d+)", str(kind))
    if m and 1 <= int(m[1]) <= 99:
        return kind
    raise UserError(f"unknown attention kind {kind!r}: softmax, taylor, or sparseNN "
                    f"(NN = percent of attention scores kept, 1-99, e.g. sparse25)")


def base_kind(kind: str) -> str:
    """'softmax', 'taylor' or 'sparse'."""
    return SPARSE if check_kind(kind).startswith(SPARSE) else kind


def keep_ratio(kind: str) -> float:
    """Share of the attention scores a kind computes: NN/100 for sparseNN, else 1."""
    return int(kind[len(SPARSE):]) / 100 if base_kind(kind) == SPARSE else 1.0


def kind_code(kind: str) -> str:
    check_kind(kind)
    return _CODES.get(kind) or "sp" + kind[len(SPARSE):]


def kind_from_code(code: str) -> str:
    for kind, c in _CODES.items():
        if code == c:
            return kind
    if re.fullmatch(r"sp\d+", code):
        return check_kind(SPARSE + code[2:])
    raise UserError(f"unknown attention code {code!r} in an architecture key "
                    f"(s: softmax, t: taylor, spNN: sparseNN)")


# -- the sparse pattern -----------------------------------------------------------------------

@dataclass(frozen=True)
class SparsePattern:
    """Local window + global tokens over `seq` tokens: query i sees key j when |i - j| < window
    (j <= i when causal) or j < globals (or, in an encoder, i < globals)."""

    seq: int
    window: int
    globals: int
    causal: bool

    def row_kept(self, i: int) -> int:
        """Keys that query i sees."""
        T, w, g = self.seq, self.window, self.globals
        if self.causal:
            local = min(w, i + 1)                          # j in (i - w, i]
            return local + max(0, min(g, i - w + 1))       # global j < g with j <= i - w
        if i < g:
            return T                                       # a global token sees every token
        lo, hi = max(0, i - w + 1), min(T - 1, i + w - 1)  # |i - j| < w
        return (hi - lo + 1) + max(0, min(g, lo))          # global j < g left of the window

    def kept(self) -> int:
        """Attention scores computed (entries of the mask)."""
        return sum(self.row_kept(i) for i in range(self.seq))

    def dense(self) -> int:
        """Scores of the dense (causal or full) attention over the same tokens."""
        return self.seq * (self.seq + 1) // 2 if self.causal else self.seq * self.seq

    @property
    def density(self) -> float:
        return self.kept() / self.dense()


def sparse_pattern(kind: str, seq: int, causal: bool) -> SparsePattern:
    """The pattern of a sparseNN kind over `seq` tokens: globals = max(1, round(NN% x seq / 8))
    leading tokens, and the smallest window that keeps at least NN% of the dense scores."""
    keep = keep_ratio(kind)
    if base_kind(kind) != SPARSE:
        raise UserError(f"attention kind {kind!r} has no sparse pattern")
    if seq <= 0:
        raise UserError(f"sparse attention needs a positive sequence length, got {seq}")
    g = min(seq, max(1, round(keep * seq / 8)))
    target = math.ceil(keep * SparsePattern(seq, 1, 0, causal).dense())
    lo, hi = 1, seq                       # kept() grows with the window: bisect the smallest
    while lo < hi:
        mid = (lo + hi) // 2
        if SparsePattern(seq, mid, g, causal).kept() >= target:
            hi = mid
        else:
            lo = mid + 1
    return SparsePattern(seq, lo, g, causal)


__all__ = ["SOFTMAX", "TAYLOR", "SPARSE", "BASE_KINDS", "check_kind", "base_kind", "keep_ratio",
           "kind_code", "kind_from_code", "SparsePattern", "sparse_pattern"]
