"""The elastic supernet: slicing, training step, checkpoints and resume, evaluation, CLI."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import pytest
import torch
import yaml

import supernet.train as train_mod
from nas.core.arch import Arch, SearchSpace
from nas.cli import main as cli_main
from nas.core.errors import UserError
from supernet.checkpoint import load_checkpoint, load_subnet, save_checkpoint
from supernet.data import Tokenizer, eval_windows, load_corpus, split_text
from supernet.evaluate import SupernetEvaluator
from supernet.model import GPT, ElasticGPT, ModelConfig, num_params
from supernet.sample import prompt_ids
from supernet.train import TrainConfig, lr_factor, sandwich_step, train

SPACE = SearchSpace(name="test", layers=(1, 2), d=(16, 32), heads=(1, 2), ffn=(32, 64),
                    head_dim=8)
VOCAB, BLOCK = 11, 16


def make_model(dropout: float = 0.0, seed: int = 0) -> ElasticGPT:
    torch.manual_seed(seed)
    return ElasticGPT(ModelConfig(VOCAB, BLOCK, dropout), SPACE)


def batch(seed: int = 0, b: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(VOCAB, (b, BLOCK + 1), generator=g)
    return x[:, :-1], x[:, 1:]


def corpus_text(n_lines: int = 600) -> str:
    rng = random.Random(0)
    words = "the a cat dog sat ran on under mat log and then quickly slowly".split()
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + " .\n"
                   for _ in range(n_lines))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "corpus.txt").write_text(corpus_text())
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE.to_dict()))
    return root


def tiny_cfg(files, out, **kw) -> TrainConfig:
    base = dict(out=str(out), space=str(files / "space.yaml"), dataset=str(files / "corpus.txt"),
                steps=6, batch_size=4, block_size=BLOCK, warmup=2, eval_interval=3,
                eval_tokens=512, eval_random=1, log_interval=1, progress=False, seed=3,
                threads=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run_dir(files, tmp_path_factory):
    return train(tiny_cfg(files, tmp_path_factory.mktemp("run") / "sn"))


# -- model --------------------------------------------------------------------------------------

def test_forward_shapes_for_every_kind_of_subnet():
    model = make_model()
    x, y = batch()
    rng = random.Random(0)
    for arch in [SPACE.largest(), SPACE.smallest()] + [SPACE.sample(rng) for _ in range(5)]:
        logits, loss = model(x, arch, y)
        assert logits.shape == (3, BLOCK, VOCAB)
        assert loss.ndim == 0 and torch.isfinite(loss)


def test_slicing_shares_storage_and_copies_nothing():
    model = make_model()
    block = model.blocks[0]
    views = block.sliced(d=16, attn=8, ffn=32)
    for name, param in [("wq", block.wq), ("wo", block.wo), ("w1", block.w1), ("b2", block.b2),
                        ("ln1_w", block.ln1.weight)]:
        assert views[name].untyped_storage().data_ptr() == param.untyped_storage().data_ptr()
    assert views["wq"].shape == (8, 16) and views["wo"].shape == (16, 8)
    params_before = num_params(model)
    model(batch()[0], SPACE.smallest())
    assert num_params(model) == params_before


def test_subnet_ignores_weights_outside_its_slice():
    model = make_model()
    small = Arch(d=16, heads=(1,), ffn=(32,), head_dim=8)
    x, _ = batch()
    before, _ = model(x, small)
    with torch.no_grad():
        model.blocks[0].w1[32:] += 1.0            # hidden units beyond ffn=32
        model.blocks[0].wq[8:] += 1.0             # heads beyond the first
        model.wte.weight[:, 16:] += 1.0           # embedding channels beyond d=16
        model.blocks[1].wo += 1.0                 # a layer beyond depth 1
    after, _ = model(x, small)
    assert torch.equal(before, after)


def test_largest_subnet_equals_static_model_with_same_weights():
    model = make_model()
    x, y = batch()
    for arch in [SPACE.largest(), Arch(d=16, heads=(2, 1), ffn=(32, 64), head_dim=8)]:
        static = model.export(arch)
        assert isinstance(static, GPT)
        assert num_params(static) == arch.params(VOCAB, BLOCK)
        a, la = model(x, arch, y)
        b, lb = static(x, y)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert num_params(model.export(SPACE.largest())) == num_params(model)


def test_arch_outside_space_is_a_user_error():
    with pytest.raises(UserError, match="outside search space"):
        make_model()(batch()[0], Arch(d=24, heads=(1,), ffn=(32,), head_dim=8))


def test_dropout_only_when_asked():
    model = make_model(dropout=0.5).train()
    x, _ = batch()
    a1, _ = model(x, SPACE.smallest())
    a2, _ = model(x, SPACE.smallest())
    assert torch.equal(a1, a2)
    b1, _ = model(x, SPACE.largest(), dropout=True)
    b2, _ = model(x, SPACE.largest(), dropout=True)
    assert not torch.equal(b1, b2)


# -- training step ------------------------------------------------------------------------------

def test_sandwich_step_updates_all_sampled_widths_and_only_them():
    model = make_model()
    x, y = batch()
    sandwich_step(model, x, y, [SPACE.smallest()])
    w1 = model.blocks[0].w1.grad
    assert w1[:32, :16].abs().sum() > 0
    assert w1[32:].abs().sum() == 0 and w1[:, 16:].abs().sum() == 0
    assert model.blocks[1].wq.grad is None            # second layer unused by depth 1
    model.zero_grad(set_to_none=True)
    losses = sandwich_step(model, x, y, [SPACE.largest(), SPACE.smallest(),
                                         Arch(d=32, heads=(1, 2), ffn=(64, 32), head_dim=8)])
    assert len(losses) == 3
    for p in model.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert model.blocks[1].w1.grad[32:].abs().sum() > 0  # only the largest uses these units


def kl_teacher_student(model: ElasticGPT, x: torch.Tensor) -> float:
    with torch.no_grad():
        teacher = torch.log_softmax(model(x, SPACE.largest())[0], -1)
        student = torch.log_softmax(model(x, SPACE.smallest())[0], -1)
        return torch.nn.functional.kl_div(student, teacher, log_target=True,
                                          reduction="batchmean").item()


def test_distillation_moves_the_student_toward_the_teacher():
    """Steps along the student's gradient alone (the sandwich step's gradient minus the
    teacher's) shrink KL(teacher || student) when distilling; learning other labels does not."""
    x, y = batch(seed=1)
    _, other_labels = batch(seed=2)
    final = {}
    for distill in (True, False):
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        for _ in range(20):                      # a teacher unlike the student: fit y alone
            opt.zero_grad()
            sandwich_step(model, x, y, [SPACE.largest()])
            opt.step()
        start = kl_teacher_student(model, x)
        for _ in range(20):
            opt.zero_grad()
            sandwich_step(model, x, other_labels, [SPACE.largest()])
            teacher_grad = [p.grad.clone() for p in model.parameters()]
            opt.zero_grad()
            sandwich_step(model, x, other_labels, [SPACE.largest(), SPACE.smallest()], distill)
            for p, g in zip(model.parameters(), teacher_grad):
                p.grad -= g
            opt.step()
        final[distill] = kl_teacher_student(model, x) / start
    assert final[True] < 0.3 and final[False] > 1.0


def test_students_losses_are_kl_when_distilling_and_cross_entropy_otherwise():
    model = make_model()
    x, y = batch()
    teacher_ce, self_kl, other_kl = sandwich_step(
        model, x, y, [SPACE.largest(), SPACE.largest(), SPACE.smallest()])
    assert abs(self_kl) < 1e-6 and other_kl > 0       # KL(teacher || itself) = 0
    label_losses = sandwich_step(model, x, y, [SPACE.largest(), SPACE.largest()], distill=False)
    assert label_losses[1] == pytest.approx(teacher_ce, rel=1e-5)


def test_student_weight_scales_only_the_students_gradients():
    x, y = batch()
    archs = [SPACE.largest(), SPACE.smallest()]
    grads = {}
    for name, run_archs, weight in (("teacher", archs[:1], 1.0), ("both", archs, 1.0),
                                    ("half", archs, 0.5)):
        model = make_model()
        sandwich_step(model, x, y, run_archs, student_weight=weight)
        grads[name] = model.blocks[0].w1.grad.clone()
    student = grads["both"] - grads["teacher"]
    assert student.abs().sum() > 0
    torch.testing.assert_close(grads["half"], grads["teacher"] + 0.5 * student)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    f = [lr_factor(s, cfg) for s in range(101)]
    assert f[0] < f[5] < f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[100] == pytest.approx(0.1)


# -- training runs, checkpoints, resume ---------------------------------------------------------

def test_training_writes_checkpoints_logs_and_plot(run_dir):
    for name in ("best.pt", "last.pt", "log.jsonl", "eval.csv", "loss.png", "config.json"):
        assert (run_dir / name).is_file(), name
    data = load_checkpoint(run_dir, "last")
    assert data["step"] == 6
    assert SearchSpace.from_dict(data["space"]) == SPACE
    evals = [r for r in train_mod.read_log(run_dir) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    assert set(evals[0]) >= {"largest", "smallest", "random0", "mean"}
    assert load_checkpoint(run_dir, "best")["best_loss"] == min(r["mean"] for r in evals)


def test_resume_after_a_crash_gives_identical_losses(files, tmp_path, monkeypatch):
    kw = dict(steps=5, dropout=0.2, grad_accum=2)
    full = train(tiny_cfg(files, tmp_path / "full", **kw))
    calls = {"n": 0}
    real_step = train_mod.sandwich_step

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 7:                         # 2 micro-batches a step: dies in step 4
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "sandwich_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(files, tmp_path / "resumed", **kw))
    monkeypatch.setattr(train_mod, "sandwich_step", real_step)
    with pytest.raises(UserError, match="--resume"):
        train(tiny_cfg(files, tmp_path / "resumed", **kw))
    train(tiny_cfg(files, tmp_path / "resumed", resume=True, **kw))

    def losses(d):
        return [(r["step"], r["loss"], r.get("student_loss")) for r in train_mod.read_log(d)
                if r["kind"] == "train"]
    assert losses(tmp_path / "resumed") == losses(full)
    assert [r["step"] for r in train_mod.read_log(full)] == \
        [r["step"] for r in train_mod.read_log(tmp_path / "resumed")]


def test_a_run_killed_before_its_first_checkpoint_starts_over_cleanly(files, tmp_path,
                                                                     monkeypatch):
    real_step = train_mod.sandwich_step
    calls = {"n": 0}

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:                         # after 2 logged steps, before step 3's eval
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "sandwich_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(files, tmp_path / "r", steps=3, n_random=0, eval_random=0))
    assert [r["step"] for r in train_mod.read_log(tmp_path / "r")] == [1, 2]
    monkeypatch.setattr(train_mod, "sandwich_step", real_step)
    train(tiny_cfg(files, tmp_path / "r", steps=3, n_random=0, eval_random=0))
    assert [r["step"] for r in train_mod.read_log(tmp_path / "r")] == [1, 2, 3, 3]


def test_students_learn_from_labels_until_distill_after(files, tmp_path):
    out = train(tiny_cfg(files, tmp_path / "da", steps=3, eval_interval=3, distill_after=2))
    records = [r for r in train_mod.read_log(out) if r["kind"] == "train"]
    assert [r["student_loss_kind"] for r in records] == ["ce", "ce", "kl"]
    assert records[0]["student_loss"] > 1.0 > records[2]["student_loss"]   # CE vs small KL


def test_resume_with_a_different_setup_is_refused(files, run_dir):
    cfg = tiny_cfg(files, run_dir, resume=True, steps=8, block_size=8, lr=0.01)
    with pytest.raises(UserError, match=r"--block-size differs \(checkpoint 16, given 8\); "
                                        r"--lr differs \(checkpoint 0.001, given 0.01\)"):
        train(cfg)
    assert load_checkpoint(run_dir, "last")["step"] == 6


def test_corrupt_or_foreign_checkpoints_are_user_errors(run_dir, tmp_path):
    good = (run_dir / "best.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    for name, msg in [("trunc.pt", "corrupt"), ("junk.pt", "corrupt"),
                      ("foreign.pt", "not a supernet checkpoint"), ("missing.pt", "not found")]:
        with pytest.raises(UserError, match=msg):
            load_checkpoint(tmp_path / name)
    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(tmp_path)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "c.pt", {"step": 1})

    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "c.pt", {"step": 2})
    assert torch.load(tmp_path / "c.pt", weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_train_subnet_trains_one_fixed_architecture(files, tmp_path):
    arch = Arch(d=16, heads=(2, 1), ffn=(64, 32), head_dim=8)
    out = train(tiny_cfg(files, tmp_path / "sub", arch=arch.key, steps=3))
    ev = SupernetEvaluator(out, max_tokens=256)
    assert ev.fixed_arch == arch
    assert math.isfinite(ev.perplexity([arch])[0])
    evals = [r for r in train_mod.read_log(out) if r["kind"] == "eval"]
    assert set(evals[-1]) == {"kind", "step", "subnet", "mean", "time"}


# -- evaluation and export ----------------------------------------------------------------------

def test_evaluator_is_deterministic_and_batch_independent(run_dir):
    archs = [SPACE.largest(), SPACE.smallest(), SPACE.sample(random.Random(1))]
    ev = SupernetEvaluator(run_dir, max_tokens=600, batch_size=16)
    assert ev.space == SearchSpace.from_dict(SPACE.to_dict())
    assert ev.block_size == BLOCK and ev.vocab_size == len(set(corpus_text()))
    first = ev.perplexity(archs)
    assert ev.perplexity(archs) == first
    other = SupernetEvaluator(run_dir, max_tokens=600, batch_size=5).perplexity(archs)
    assert other == pytest.approx(first, rel=1e-5)
    assert all(1 < p < ev.vocab_size * 2 for p in first)
    with pytest.raises(UserError, match="test"):
        SupernetEvaluator(run_dir, split="test")          # a single file has no test split


def test_export_writes_a_standalone_model(run_dir, tmp_path, capsys):
    arch = SPACE.smallest()
    assert cli_main(["export-subnet", "--ckpt", str(run_dir), "--smallest",
                     "--out", str(tmp_path / "s.pt")]) == 0
    info = json.loads(capsys.readouterr().out)
    model, meta = load_subnet(tmp_path / "s.pt")
    assert meta["key"] == arch.key
    ev = SupernetEvaluator(run_dir, max_tokens=200)
    assert info["params"] == arch.params(ev.vocab_size, ev.block_size) == num_params(model)
    x = ev.x[:4]
    torch.testing.assert_close(model.eval()(x)[0], ev.model(x, arch)[0], rtol=0, atol=1e-6)
    with pytest.raises(UserError, match="exported subnet"):
        load_checkpoint(tmp_path / "s.pt")


# -- data ---------------------------------------------------------------------------------------

def test_word_tokenizer_follows_wikitext_conventions():
    corpus = {"train": "a b\n\nc a\n", "valid": "a z\n"}
    tok = Tokenizer.build("word", corpus)
    assert tok.split(corpus["train"]) == ["a", "b", "<eos>", "<eos>", "c", "a", "<eos>"]
    ids = tok.encode(corpus["valid"]).tolist()
    assert [tok.vocab[i] for i in ids] == ["a", "<unk>", "<eos>"]
    assert Tokenizer.from_dict(tok.to_dict()).vocab == tok.vocab
    assert tok.decode(tok.encode(corpus["train"]).tolist()) == corpus["train"]
    assert tok.decode(ids) == "a <unk>\n"
    assert [tok.vocab[i] for i in prompt_ids(tok, "c z")] == ["c", "<unk>"]   # continued
    assert [tok.vocab[i] for i in prompt_ids(tok, "")] == ["<eos>"]


def test_char_tokenizer_round_trip_and_unknown_characters():
    tok = Tokenizer.build("char", {"train": "ab\nc", "valid": "ca"})
    assert tok.decode(tok.encode("cab\n").tolist()) == "cab\n"
    assert prompt_ids(tok, "") == [tok.index["\n"]]
    with pytest.raises(UserError, match="'z' is not in the vocabulary"):
        prompt_ids(tok, "az")


def test_corpus_specs(files, tmp_path):
    text = (files / "corpus.txt").read_text()
    single = load_corpus(str(files / "corpus.txt"))
    assert single["train"] + single["valid"] == text and "test" not in single
    assert len(single["train"]) == int(0.9 * len(text))
    folder = tmp_path / "wt"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text(f"{split} words\n")
    assert load_corpus(str(folder)) == {s: f"{s} words\n" for s in ("train", "valid", "test")}
    assert split_text("abcdefghij", (0.8, 0.1, 0.1)) == {"train": "abcdefgh", "valid": "i",
                                                         "test": "j"}
    with pytest.raises(UserError, match="valid"):
        (tmp_path / "only").mkdir()
        (tmp_path / "only" / "train.txt").write_text("x\n")
        load_corpus(str(tmp_path / "only"))
    with pytest.raises(UserError, match="not a file"):
        load_corpus(str(tmp_path / "nope.txt"))
    x, y = eval_windows(torch.arange(50), 16, max_tokens=40)
    assert x.shape == (2, 16) and torch.equal(y, x + 1)


def test_builtin_corpus_is_offline_text_from_the_standard_library():
    corpus = load_corpus("builtin")
    assert set(corpus) == {"train", "valid", "test"}
    assert len(corpus["train"]) > 200_000 and "Return" in corpus["train"]
    assert load_corpus("builtin") == corpus


# -- command line -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, msg", [
    (["eval", "--ckpt", "{run}"], "choose architectures"),
    (["eval", "--ckpt", "{run}", "--arch", "L1-d24-h1-f32-hd8"], "outside search space"),
    (["eval", "--ckpt", "{run}/none.pt", "--largest"], "not found"),
    (["eval", "--ckpt", "{run}", "--largest", "--split", "test"], "no 'test' split"),
    (["eval", "--ckpt", "{run}", "--largest", "--random", "-1"], "--random must be >= 0"),
    (["eval", "--ckpt", "{run}", "--largest", "--batch-size", "0"], "batch size must be positive"),
    (["export-subnet", "--ckpt", "{run}", "--largest", "--smallest", "--out", "x.pt"],
     "not several"),
    (["export-subnet", "--ckpt", "{run}", "--out", "x.pt"], "choose the architecture"),
    (["sample", "--ckpt", "{run}", "--temperature", "0"], "temperature must be positive"),
    (["sample", "--ckpt", "{run}", "--top-k", "0"], "top-k must be >= 1"),
    (["sample", "--ckpt", "{run}", "--tokens", "-1"], "need tokens >= 0"),
    (["sample", "--ckpt", "{run}", "--prompt", "Zebra"], "token 'Z' is not in the vocabulary"),
    (["sample", "--ckpt", "{run}", "--largest", "--arch", "L1-d16-h1-f32-hd8"], "not several"),
    (["train-supernet", "--dataset", "{run}/missing.txt", "--out", "{run}/x"], "not a file"),
    (["train-supernet", "--tokenizer", "bpe", "--out", "{run}/x"], "tokenizer"),
    (["train-supernet", "--space", "huge", "--out", "{run}/x"], "unknown search space"),
    (["train-supernet", "--out", "{run}"], "already holds a run"),
    (["train-subnet", "--arch", "L1-d16-h1-f32", "--out", "{run}/y"], "unknown model"),
])
def test_cli_bad_input_exits_2_with_one_line(run_dir, capsys, argv, msg):
    argv = [a.replace("{run}", str(run_dir)) for a in argv]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1 and err.startswith(f"nas {argv[0]}: error")


def test_cli_eval_prints_json(run_dir, capsys):
    assert cli_main(["eval", "--ckpt", str(run_dir), "--largest", "--random", "2",
                     "--max-tokens", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == 288 and len(out["results"]) == 3
    assert out["results"][0]["key"] == SPACE.largest().key
    r = out["results"][0]
    assert r["perplexity"] == pytest.approx(math.exp(r["loss"]))


def test_unreachable_hub_is_a_one_line_error(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "train-supernet", "--dataset",
                           "hf:no-such-user/no-such-dataset", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("nas train-supernet: error: could not load Hugging")
    assert len(proc.stderr.strip().splitlines()) == 1
