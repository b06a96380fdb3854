"""Attention kinds in the supernet (issue 12): taylor and sparse against explicit formulas,
shared weights, softmax unchanged, export of a mixed architecture, and the commands end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from nas.cli import main as cli_main
from nas.core.arch import Arch, SearchSpace
from nas.core.attention import sparse_pattern
from supernet.checkpoint import load_checkpoint, load_subnet, model_from_checkpoint
from supernet.model import GPT, ElasticGPT, ModelConfig, attention, decode_states, taylor_attention
from supernet.sample import generate

SPACE = SearchSpace(name="kinds-test", layers=(1, 2), d=(16, 32), heads=(1, 2), ffn=(32, 64),
                    head_dim=8, attention=("softmax", "taylor", "sparse25", "sparse50"))
VOCAB, BLOCK = 11, 24
KINDS = SPACE.attention
MIXED = Arch(d=32, heads=(2, 1), ffn=(64, 32), head_dim=8, attention=("taylor", "sparse25"))


def make_model(space: SearchSpace = SPACE, seed: int = 0) -> ElasticGPT:
    torch.manual_seed(seed)
    model = ElasticGPT(ModelConfig(VOCAB, BLOCK), space)
    with torch.no_grad():                 # larger weights than GPT-2's init: peaked attention
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(10)
    return model.eval()


def tokens(b: int = 2, t: int = BLOCK, seed: int = 0) -> torch.Tensor:
    return torch.randint(VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


def qkv(T: int, D: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 3, T, D, generator=g) for _ in range(3))


# -- taylor -----------------------------------------------------------------------------------

def taylor_reference(q, k, v) -> torch.Tensor:
    """O(T^2) causal Taylor attention in float64: query i weighs value j <= i by
    1 + q_i.(k_j - mean_{l<=i} k_l) / sqrt(D), divided by the sum of the weights."""
    q, k, v = q.double(), k.double(), v.double()
    T, D = q.shape[-2:]
    out = torch.empty_like(v)
    for i in range(T):
        keys = k[..., :i + 1, :]
        w = 1 + (keys - keys.mean(-2, keepdim=True)) @ q[..., i, :, None] / math.sqrt(D)
        out[..., i, :] = (w * v[..., :i + 1, :]).sum(-2) / w.sum(-2)
    return out


@pytest.mark.parametrize("T, chunk", [(1, 64), (7, 64), (24, 8), (29, 8), (30, 4)])
def test_taylor_equals_the_quadratic_reference(T, chunk):
    q, k, v = qkv(T)
    y = taylor_attention(q, k, v, chunk=chunk)
    assert y.dtype == torch.float32 and y.shape == v.shape
    assert torch.allclose(y.double(), taylor_reference(q, k, v), atol=1e-5)


def test_taylor_weights_sum_to_the_token_count_so_the_denominator_is_never_small():
    q, k, v = qkv(12)
    q = q * 100                                     # large scores: exp would overflow here
    ones = torch.ones_like(v[..., :1])
    y = taylor_attention(q, k, ones)                # the normalised weights of each query
    assert torch.allclose(y, ones, atol=1e-4)


def test_taylor_runs_in_float32_under_autocast():
    q, k, v = qkv(20)
    exact = taylor_attention(q, k, v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = taylor_attention(q, k, v)
        low = taylor_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert torch.equal(auto, exact)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()


# -- sparse -----------------------------------------------------------------------------------

def weights(d: int = 16, attn: int = 16, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(attn, d), (attn,), (attn, d), (attn,), (attn, d), (attn,), (d, attn), (d,)]
    return [torch.randn(*s, generator=g) / math.sqrt(s[-1]) for s in shapes]


def explicit_attention(x, w, head_dim, allowed) -> torch.Tensor:
    """Softmax attention where query i sees key j iff allowed(i, j), score by score."""
    wq, bq, wk, bk, wv, bv, wo, bo = w
    B, T, _ = x.shape
    H = wq.shape[0] // head_dim
    q, k, v = ((x @ a.T + b).view(B, T, H, head_dim).transpose(1, 2)
               for a, b in ((wq, bq), (wk, bk), (wv, bv)))
    mask = torch.tensor([[allowed(i, j) for j in range(T)] for i in range(T)])
    scores = (q @ k.transpose(-1, -2) / math.sqrt(head_dim)).masked_fill(~mask, -math.inf)
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * head_dim)
    return y @ wo.T + bo


@pytest.mark.parametrize("kind", ["sparse25", "sparse50", "sparse10"])
def test_sparse_equals_softmax_with_the_mask_of_its_pattern(kind):
    x = torch.randn(2, BLOCK, 16, generator=torch.Generator().manual_seed(0))
    w = weights()
    p = sparse_pattern(kind, BLOCK, causal=True)
    assert 1 <= p.window < BLOCK                    # a real pattern, not dense attention
    expected = explicit_attention(x, w, 8, lambda i, j: j <= i and (i - j < p.window
                                                                    or j < p.globals))
    got = attention(x, *w, head_dim=8, dropout=0.0, kind=kind, context=BLOCK)
    assert torch.allclose(got, expected, atol=1e-5)
    dense = explicit_attention(x, w, 8, lambda i, j: j <= i)
    assert not torch.allclose(got, dense, atol=1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_causal_and_a_prefix_does_not_depend_on_the_length(kind):
    """Position i sees the same keys in a short sequence as in a full context (sparse kinds use
    the pattern of the block size), so generation matches training."""
    model = make_model()
    arch = SPACE.largest().with_attention(kind)
    x = tokens()
    full, _ = model(x, arch)
    for t in (1, 5, BLOCK - 1):
        prefix, _ = model(x[:, :t], arch)
        assert torch.allclose(prefix, full[:, :t], atol=1e-4), t
    changed = x.clone()
    changed[:, -1] = (changed[:, -1] + 1) % VOCAB
    assert torch.allclose(model(changed, arch)[0][:, :-1], full[:, :-1], atol=1e-4)


# -- shared weights, softmax unchanged ----------------------------------------------------------

def test_kinds_share_every_weight():
    plain = make_model(SearchSpace(name="plain", layers=SPACE.layers, d=SPACE.d,
                                   heads=SPACE.heads, ffn=SPACE.ffn, head_dim=SPACE.head_dim))
    kinds = make_model()
    assert {k: v.shape for k, v in plain.state_dict().items()} == \
        {k: v.shape for k, v in kinds.state_dict().items()}
    kinds.load_state_dict(plain.state_dict())       # an old checkpoint's weights load as is
    x = tokens()
    outs = [kinds(x, SPACE.largest().with_attention(k))[0] for k in KINDS]
    assert all(not torch.allclose(outs[0], o, atol=1e-3) for o in outs[1:])


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_q_k_v_and_o_for_every_kind(kind):
    model = make_model().train()
    arch = SPACE.largest().with_attention(kind)
    _, loss = model(tokens(), arch, tokens(seed=1))
    loss.backward()
    for block in model.blocks:
        for name in ("wq", "wk", "wv", "wo", "bq", "bv", "bo"):   # (bk shifts every score
            grad = getattr(block, name).grad                      # of a query alike: no grad)
            assert grad is not None and grad.abs().max() > 1e-6, (kind, name)


def reference_logits(model: ElasticGPT, idx: torch.Tensor, arch: Arch) -> torch.Tensor:
    """The decoder as it was before attention kinds: F.scaled_dot_product_attention, causal."""
    d, B, T = arch.d, *idx.shape
    x = F.embedding(idx, model.wte.weight[:, :d]) + model.wpe.weight[:T, :d]
    for i in range(arch.layers):
        w = model.blocks[i].sliced(d, arch.attn_width(i), arch.ffn[i])
        h = F.layer_norm(x, (d,), w["ln1_w"], w["ln1_b"])
        H = arch.heads[i]
        q, k, v = (F.linear(h, w[f"w{c}"], w[f"b{c}"]).view(B, T, H, arch.head_dim)
                   .transpose(1, 2) for c in "qkv")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + F.linear(y.transpose(1, 2).reshape(B, T, -1), w["wo"], w["bo"])
        h = F.layer_norm(x, (d,), w["ln2_w"], w["ln2_b"])
        x = x + F.linear(F.gelu(F.linear(h, w["w1"], w["b1"])), w["w2"], w["b2"])
    x = F.layer_norm(x, (d,), model.ln_f.weight[:d], model.ln_f.bias[:d])
    return F.linear(x, model.wte.weight[:, :d])


@pytest.mark.parametrize("which", ["largest", "smallest", "mixed-d"])
def test_softmax_subnets_compute_exactly_what_they_did_before_kinds(which):
    model = make_model()
    arch = {"largest": SPACE.largest(), "smallest": SPACE.smallest(),
            "mixed-d": Arch(d=16, heads=(1, 2), ffn=(64, 32), head_dim=8)}[which]
    assert arch.softmax_only
    x = tokens()
    assert torch.equal(model(x, arch)[0], reference_logits(model, x, arch))


def test_exported_gpt_of_a_mixed_arch_gives_the_supernet_subnet_logits():
    model = make_model()
    static = model.export(MIXED)
    assert isinstance(static, GPT) and static.arch == MIXED
    assert static.arch.attention == ("taylor", "sparse25")
    x = tokens()
    assert torch.allclose(static(x)[0], model(x, MIXED)[0], atol=1e-5)


def test_a_space_with_kinds_rejects_a_kind_it_does_not_hold():
    model = make_model(SearchSpace(name="two", layers=(1,), d=(16,), heads=(1,), ffn=(32,),
                                   head_dim=8, attention=("softmax", "taylor")))
    with pytest.raises(Exception, match="attention"):
        model(tokens(), Arch(d=16, heads=(1,), ffn=(32,), head_dim=8, attention="sparse25"))


# -- decoding one token at a time ----------------------------------------------------------------

@pytest.mark.parametrize("kinds", [("softmax", "softmax"), ("taylor", "taylor"),
                                   ("sparse25", "sparse25"), ("sparse50", "taylor")])
def test_decode_steps_give_the_full_forward_logits(kinds):
    model = make_model()
    arch = SPACE.largest().with_attention(kinds)
    x = tokens()
    full, _ = model(x, arch)
    states = decode_states(arch)
    steps = torch.cat([model(x[:, t:t + 1], arch, states=states)[0] for t in range(BLOCK)], 1)
    assert torch.allclose(steps, full, atol=1e-4)
    static = model.export(arch)
    states = decode_states(arch)
    steps = torch.cat([static(x[:, t:t + 1], states=states)[0] for t in range(BLOCK)], 1)
    assert torch.allclose(steps, full, atol=1e-4)


def test_taylor_keeps_a_constant_state_and_sparse_only_its_window_and_globals():
    model = make_model()
    arch = SPACE.largest().with_attention(("taylor", "sparse25"))
    states, x, shapes = decode_states(arch), tokens(), []
    for t in range(BLOCK):
        model(x[:, t:t + 1], arch, states=states)
        shapes.append(states[0].kv_sum.shape)
    assert states[0].k is None and len(set(shapes)) == 1          # [B, H, D, D] every step
    p = sparse_pattern("sparse25", BLOCK, causal=True)
    assert states[1].k.shape[2] == p.window - 1 + p.globals < BLOCK


def test_generate_picks_the_tokens_of_the_full_recomputation_also_past_the_context():
    model = make_model()
    start = tokens(t=5)
    new = BLOCK + 6                                  # past the block size: cropped contexts
    got = generate(model, MIXED, start, new, top_k=1)
    idx = start
    for _ in range(new):
        logits, _ = model(idx[:, -BLOCK:], MIXED)
        idx = torch.cat((idx, logits[:, -1].argmax(-1, keepdim=True)), 1)
    assert torch.equal(got, idx)


# -- the commands end to end --------------------------------------------------------------------

TINY = ["--dataset", "builtin", "--threads", "1", "--batch-size", "2", "--block-size", "16",
        "--warmup", "1", "--eval-interval", "3", "--eval-tokens", "256", "--log-interval", "1",
        "--no-progress"]
KEY = "L3-d96-h2.3.4-f128.256.512-hd32-at.sp25.s"      # a mix in the tiny-kinds space


def nas(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def kinds_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kinds") / "run"
    assert cli_main(["train-supernet", "--space", "tiny-kinds", "--steps", "3",
                     "--eval-random", "1", "--out", str(out), *TINY]) == 0
    return out


def test_train_eval_export_sample_with_kinds(kinds_run, tmp_path, capsys):
    data = load_checkpoint(kinds_run)
    assert data["space"]["attention"] == ["softmax", "taylor", "sparse25", "sparse50"]
    code, out, err = nas(capsys, "eval", "--ckpt", str(kinds_run), "--arch", KEY, "--largest",
                         "--random", "2", "--max-tokens", "400", "--json", "--threads", "1",
                         "--no-progress")
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results[0]["key"] == KEY and results[0]["arch"]["attention"] == [
        "taylor", "sparse25", "softmax"]
    assert all(math.isfinite(r["loss"]) for r in results)

    code, out, err = nas(capsys, "export-subnet", "--ckpt", str(kinds_run), "--arch", KEY,
                         "--out", str(tmp_path / "mixed.pt"))
    assert code == 0, err
    assert json.loads(out)["key"] == KEY
    static, info = load_subnet(tmp_path / "mixed.pt")
    arch = Arch.from_key(KEY)
    assert static.arch == arch and info["key"] == KEY
    x = tokens(t=16) % static.config.vocab_size
    supernet = model_from_checkpoint(data).eval()
    assert torch.allclose(static.eval()(x)[0], supernet(x, arch)[0], atol=1e-5)

    code, out, err = nas(capsys, "sample", "--ckpt", str(kinds_run), "--arch", KEY, "--tokens",
                         "20", "--prompt", "def ", "--threads", "1")
    assert code == 0, err
    assert out.startswith("def ") and len(out[:-1]) == len("def ") + 20   # past the context

    code, _, err = nas(capsys, "eval", "--ckpt", str(kinds_run), "--arch",
                       "L2-d64-h2.2-f128.128-hd32-asp10.s", "--max-tokens", "400")
    assert code == 2 and "attention[0]=sparse10" in err


def test_train_subnet_of_a_mixed_key_then_eval_and_sample(tmp_path, capsys):
    key = "L2-d64-h2.2-f128.128-hd32-at.sp50"
    out = tmp_path / "sub"
    code, _, err = nas(capsys, "train-subnet", "--arch", key, "--steps", "3", "--out", str(out),
                       *TINY)
    assert code == 0, err
    code, text, err = nas(capsys, "eval", "--ckpt", str(out), "--largest", "--json",
                          "--max-tokens", "400", "--no-progress")
    assert code == 0, err
    assert [r["key"] for r in json.loads(text)["results"]] == [key]
    code, text, err = nas(capsys, "sample", "--ckpt", str(out), "--tokens", "5")
    assert code == 0 and len(text[:-1]) == 1 + 5, err
