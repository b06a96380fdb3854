import random

import pytest

from nas.core.arch import NAMED_MODELS, Arch, SearchSpace, resolve_model
from nas.core.errors import UserError


def test_key_round_trip():
    a = Arch(d=384, heads=(4, 6), ffn=(768, 1024))
    assert a.key == "L2-d384-h4.6-f768.1024-hd64"
    assert Arch.from_key(a.key) == a


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_round_trip(tmp_path, suffix):
    a = Arch(d=672, heads=(10, 12, 4), ffn=(3072, 768, 1280))
    path = tmp_path / f"a{suffix}"
    a.save(path)
    assert Arch.load(path) == a


def test_bad_arch_names_field():
    with pytest.raises(UserError, match="ffn"):
        Arch(d=64, heads=(2, 2), ffn=(128,))
    with pytest.raises(UserError, match="d must be positive"):
        Arch(d=0, heads=(2,), ffn=(128,))
    with pytest.raises(UserError, match="unknown field"):
        Arch.from_dict({"d": 64, "heads": [2], "ffn": [128], "width": 3})


def test_malformed_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("d: [1, 2\nheads: 3")
    with pytest.raises(UserError, match="malformed YAML"):
        Arch.load(p)


def test_survey_space_matches_table8():
    s = SearchSpace.load("survey")
    assert s.layers == (3, 4, 5, 6)
    assert s.d == (384, 480, 576, 672, 768)
    assert s.heads == (4, 6, 8, 10, 12)
    assert s.ffn[0] == 768 and s.ffn[-1] == 3072 and len(s.ffn) == 19
    assert s.largest() == Arch.uniform(6, 768, 12, 3072)
    assert s.smallest() == Arch.uniform(3, 384, 4, 768)


def test_sample_in_space_and_check_names_field():
    s = SearchSpace.load("tiny")
    rng = random.Random(0)
    for _ in range(50):
        assert s.sample(rng) in s
    out = Arch(d=s.d[0], heads=(s.heads[0], 99), ffn=(s.ffn[0], s.ffn[0]), head_dim=s.head_dim)
    with pytest.raises(UserError, match=r"heads\[1\]=99"):
        s.check(out)


def test_unknown_space_and_model():
    with pytest.raises(UserError, match="unknown search space"):
        SearchSpace.load("nope")
    with pytest.raises(UserError, match="unknown model"):
        resolve_model("nope")


def test_resolve_model_names_what_is_wrong(tmp_path):
    assert resolve_model("L2-d128-h4.4-f512.512-hd32") == (
        Arch(d=128, heads=(4, 4), ffn=(512, 512), head_dim=32), None)
    # the issue: a key without its head width was taken for a file name ("file not found")
    with pytest.raises(UserError, match=r"needs its -hdN suffix .*e\.g\. "
                                        r"L2-d128-h4\.4-f512\.512-hd64$"):
        resolve_model("L2-d128-h4.4-f512.512")
    for folder in (tmp_path / "archs", tmp_path / "arch.yaml"):
        folder.mkdir()
        with pytest.raises(UserError, match=f"architecture file {folder} is a folder, not a file"):
            resolve_model(str(folder))
    with pytest.raises(UserError, match="architecture file not found"):
        resolve_model(str(tmp_path / "absent.yaml"))


def test_named_model_params():
    # BERT-Base encoder stack without embeddings: 85.0M (12 x 7.08M)
    assert NAMED_MODELS["bert-base"].arch.params() == 12 * 7_087_872 + 2 * 768
    gpt2 = NAMED_MODELS["gpt2"]
    # GPT-2 small: 124.4M with tied embeddings and 1024 positions
    assert gpt2.arch.params(gpt2.vocab, 1024) == 124_439_808
