"""Attention kinds in architectures, spaces and genomes (nas.core.attention, issue 12)."""

import random

import pytest

from nas.core.arch import Arch, SearchSpace
from nas.core.attention import SparsePattern, keep_ratio, sparse_pattern
from nas.core.errors import UserError
from nas.search.genome import GenomeCodec


def test_softmax_only_arch_keeps_its_key_and_file_form():
    a = Arch(d=64, heads=(2, 3), ffn=(128, 256), head_dim=32)
    assert a.attention == ("softmax", "softmax")
    assert a.key == "L2-d64-h2.3-f128.256-hd32"
    assert "attention" not in a.to_dict()
    assert Arch.from_key(a.key) == a == Arch.from_dict(a.to_dict())


def test_mixed_kinds_round_trip_through_key_and_dict():
    a = Arch(d=64, heads=(2, 3, 4), ffn=(128, 256, 128), head_dim=32,
             attention=("taylor", "softmax", "sparse25"))
    assert a.key == "L3-d64-h2.3.4-f128.256.128-hd32-at.s.sp25"
    assert Arch.from_key(a.key) == a
    assert Arch.from_dict(a.to_dict()) == a
    assert a != a.with_attention("softmax")
    assert a.with_attention("taylor").attention == ("taylor",) * 3
    assert Arch.from_dict({"d": 64, "heads": 2, "ffn": 128, "layers": 2, "head_dim": 32,
                           "attention": "sparse50"}).attention == ("sparse50", "sparse50")


@pytest.mark.parametrize("bad", ["relu", "sparse0", "sparse100", "sparse", "Taylor"])
def test_unknown_kinds_are_one_line_errors(bad):
    with pytest.raises(UserError, match="attention kind"):
        Arch(d=64, heads=(2,), ffn=(128,), attention=(bad,))


def test_attention_length_must_match_layers():
    with pytest.raises(UserError, match="attention has 1"):
        Arch(d=64, heads=(2, 2), ffn=(128, 128), attention=("taylor",))


def test_softmax_space_is_unchanged_and_kinds_space_samples_every_kind():
    tiny, kinds = SearchSpace.load("tiny"), SearchSpace.load("tiny-kinds")
    assert "attention" not in tiny.to_dict()
    assert kinds.size() == tiny.size() // sum(12 ** n for n in (2, 3, 4)) * sum(
        48 ** n for n in (2, 3, 4))
    # a softmax-only space draws exactly the architectures it drew before kinds existed
    r1, r2 = random.Random(3), random.Random(3)
    drawn = [tiny.sample(r1) for _ in range(20)]
    legacy = []
    for _ in range(20):
        n = r2.choice(tiny.layers)
        legacy.append(Arch(d=r2.choice(tiny.d), heads=tuple(r2.choice(tiny.heads) for _ in range(n)),
                           ffn=tuple(r2.choice(tiny.ffn) for _ in range(n)), head_dim=32))
    assert drawn == legacy
    seen = {k for _ in range(50) for k in kinds.sample(random.Random(_)).attention}
    assert seen == set(kinds.attention)
    assert kinds.largest().attention[0] == "softmax" == kinds.smallest().attention[-1]
    with pytest.raises(UserError, match=r"attention\[0\]=taylor"):
        tiny.check(Arch(d=64, heads=(2, 2), ffn=(128, 128), head_dim=32, attention="taylor"))
    assert SearchSpace.from_dict(kinds.to_dict()) == kinds


def test_genome_encodes_kinds_only_when_the_space_has_several():
    tiny, kinds = SearchSpace.load("tiny"), SearchSpace.load("tiny-kinds")
    assert GenomeCodec(tiny).arch_genes == 2 + 2 * 4
    codec = GenomeCodec(kinds)
    assert codec.arch_genes == 2 + 3 * 4
    rng = random.Random(0)
    for _ in range(30):
        genes = codec.random(rng)
        arch = codec.decode(genes)
        assert codec.encode(arch) == genes
        assert arch in kinds


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("seq", [16, 64, 197, 1024])
@pytest.mark.parametrize("kind", ["sparse10", "sparse25", "sparse50"])
def test_sparse_pattern_keeps_about_its_ratio(kind, seq, causal):
    p = sparse_pattern(kind, seq, causal)
    assert p.density >= keep_ratio(kind)
    # the smallest window that keeps the ratio: one token less falls short (unless the window
    # is already one token)
    if p.window > 1:
        assert SparsePattern(seq, p.window - 1, p.globals, causal).density < keep_ratio(kind)
    if seq >= 197:
        assert p.density < keep_ratio(kind) + 0.02


def test_sparse_pattern_counts_match_an_explicit_mask():
    for causal in (True, False):
        p = SparsePattern(seq=20, window=3, globals=2, causal=causal)
        mask = [[(abs(i - j) < 3 or j < 2 or (not causal and i < 2)) and (j <= i or not causal)
                 for j in range(20)] for i in range(20)]
        assert [sum(r) for r in mask] == [p.row_kept(i) for i in range(20)]
