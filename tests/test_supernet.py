"""The elastic supernet: slicing, training step, checkpoints and resume, evaluation, CLI."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys

import pytest
import torch

import supernet.train as train_mod
from nas.core.arch import Arch, SearchSpace
from nas.cli import main as cli_main
from nas.core.errors import UserError
from supernet.checkpoint import load_checkpoint, load_subnet, save_checkpoint
from supernet.data import UNK, Tokenizer, eval_windows, load_corpus, split_text
from supernet.evaluate import SupernetEvaluator
from supernet.model import GPT, ElasticGPT, num_params
from supernet.sample import prompt_ids
from supernet.train import TrainConfig, lr_factor, plan_run, sandwich_step, train, train_run

@pytest.fixture(scope="module")
def run_dir(tiny, tiny_files, tmp_path_factory):
    return train(tiny.cfg(tiny_files, tmp_path_factory.mktemp("run") / "sn"))


# -- model --------------------------------------------------------------------------------------

def test_forward_shapes_for_every_kind_of_subnet(tiny):
    model = tiny.model()
    x, y = tiny.batch()
    rng = random.Random(0)
    space = tiny.space
    for arch in [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(5)]:
        logits, loss = model(x, arch, y)
        assert logits.shape == (3, tiny.block, tiny.vocab)
        assert loss.ndim == 0 and torch.isfinite(loss)


def test_slicing_shares_storage_and_copies_nothing(tiny):
    model = tiny.model()
    block = model.blocks[0]
    views = block.sliced(d=16, attn=8, ffn=32)
    for name, param in [("wq", block.wq), ("wo", block.wo), ("w1", block.w1), ("b2", block.b2),
                        ("ln1_w", block.ln1.weight)]:
        assert views[name].untyped_storage().data_ptr() == param.untyped_storage().data_ptr()
    assert views["wq"].shape == (8, 16) and views["wo"].shape == (16, 8)
    params_before = num_params(model)
    model(tiny.batch()[0], tiny.space.smallest())
    assert num_params(model) == params_before


def test_subnet_ignores_weights_outside_its_slice(tiny):
    model = tiny.model()
    small = Arch(d=16, heads=(1,), ffn=(32,), head_dim=8)
    x, _ = tiny.batch()
    before, _ = model(x, small)
    with torch.no_grad():
        model.blocks[0].w1[32:] += 1.0            # hidden units beyond ffn=32
        model.blocks[0].wq[8:] += 1.0             # heads beyond the first
        model.wte.weight[:, 16:] += 1.0           # embedding channels beyond d=16
        model.blocks[1].wo += 1.0                 # a layer beyond depth 1
    after, _ = model(x, small)
    assert torch.equal(before, after)


def test_largest_subnet_equals_static_model_with_same_weights(tiny):
    model = tiny.model()
    x, y = tiny.batch()
    for arch in [tiny.space.largest(), Arch(d=16, heads=(2, 1), ffn=(32, 64), head_dim=8)]:
        static = model.export(arch)
        assert isinstance(static, GPT)
        assert num_params(static) == arch.params(tiny.vocab, tiny.block)
        a, la = model(x, arch, y)
        b, lb = static(x, y)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert num_params(model.export(tiny.space.largest())) == num_params(model)


def test_arch_outside_space_is_a_user_error(tiny):
    with pytest.raises(UserError, match="outside search space"):
        tiny.model()(tiny.batch()[0], Arch(d=24, heads=(1,), ffn=(32,), head_dim=8))


def test_dropout_only_when_asked(tiny):
    model = tiny.model(dropout=0.5).train()
    x, _ = tiny.batch()
    a1, _ = model(x, tiny.space.smallest())
    a2, _ = model(x, tiny.space.smallest())
    assert torch.equal(a1, a2)
    b1, _ = model(x, tiny.space.largest(), dropout=True)
    b2, _ = model(x, tiny.space.largest(), dropout=True)
    assert not torch.equal(b1, b2)


# -- training step ------------------------------------------------------------------------------

def test_sandwich_step_updates_all_sampled_widths_and_only_them(tiny):
    model = tiny.model()
    x, y = tiny.batch()
    sandwich_step(model, x, y, [tiny.space.smallest()])
    w1 = model.blocks[0].w1.grad
    assert w1[:32, :16].abs().sum() > 0
    assert w1[32:].abs().sum() == 0 and w1[:, 16:].abs().sum() == 0
    assert model.blocks[1].wq.grad is None            # second layer unused by depth 1
    model.zero_grad(set_to_none=True)
    losses = sandwich_step(model, x, y, [tiny.space.largest(), tiny.space.smallest(),
                                         Arch(d=32, heads=(1, 2), ffn=(64, 32), head_dim=8)])
    assert len(losses) == 3
    for p in model.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert model.blocks[1].w1.grad[32:].abs().sum() > 0  # only the largest uses these units


def kl_teacher_student(model: ElasticGPT, x: torch.Tensor, space: SearchSpace) -> float:
    with torch.no_grad():
        teacher = torch.log_softmax(model(x, space.largest())[0], -1)
        student = torch.log_softmax(model(x, space.smallest())[0], -1)
        return torch.nn.functional.kl_div(student, teacher, log_target=True,
                                          reduction="batchmean").item()


def test_distillation_moves_the_student_toward_the_teacher(tiny):
    """Steps along the student's gradient alone (the sandwich step's gradient minus the
    teacher's) shrink KL(teacher || student) when distilling; learning other labels does not."""
    x, y = tiny.batch(seed=1)
    _, other_labels = tiny.batch(seed=2)
    final = {}
    for distill in (True, False):
        model = tiny.model()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        for _ in range(20):                      # a teacher unlike the student: fit y alone
            opt.zero_grad()
            sandwich_step(model, x, y, [tiny.space.largest()])
            opt.step()
        start = kl_teacher_student(model, x, tiny.space)
        for _ in range(20):
            opt.zero_grad()
            sandwich_step(model, x, other_labels, [tiny.space.largest()])
            teacher_grad = [p.grad.clone() for p in model.parameters()]
            opt.zero_grad()
            sandwich_step(model, x, other_labels, [tiny.space.largest(), tiny.space.smallest()],
                          distill)
            for p, g in zip(model.parameters(), teacher_grad):
                p.grad -= g
            opt.step()
        final[distill] = kl_teacher_student(model, x, tiny.space) / start
    assert final[True] < 0.3 and final[False] > 1.0


def test_students_losses_are_kl_when_distilling_and_cross_entropy_otherwise(tiny):
    model = tiny.model()
    x, y = tiny.batch()
    teacher_ce, self_kl, other_kl = sandwich_step(
        model, x, y, [tiny.space.largest(), tiny.space.largest(), tiny.space.smallest()])
    assert abs(self_kl) < 1e-6 and other_kl > 0       # KL(teacher || itself) = 0
    label_losses = sandwich_step(model, x, y, [tiny.space.largest(), tiny.space.largest()],
                                 distill=False)
    assert label_losses[1] == pytest.approx(teacher_ce, rel=1e-5)


def test_student_weight_scales_only_the_students_gradients(tiny):
    x, y = tiny.batch()
    archs = [tiny.space.largest(), tiny.space.smallest()]
    grads = {}
    for name, run_archs, weight in (("teacher", archs[:1], 1.0), ("both", archs, 1.0),
                                    ("half", archs, 0.5)):
        model = tiny.model()
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

def test_training_writes_checkpoints_logs_and_plot(tiny, run_dir):
    for name in ("best.pt", "last.pt", "log.jsonl", "eval.csv", "loss.png", "config.json"):
        assert (run_dir / name).is_file(), name
    data = load_checkpoint(run_dir, "last")
    assert data["step"] == 6
    assert SearchSpace.from_dict(data["space"]) == tiny.space
    evals = [r for r in train_mod.read_log(run_dir) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    assert set(evals[0]) >= {"largest", "smallest", "random0", "mean"}
    assert load_checkpoint(run_dir, "best")["best_loss"] == min(r["mean"] for r in evals)


@pytest.mark.figures
def test_the_loss_plot_is_drawn(run_dir, tmp_path, drawn):
    train_mod.plot_losses(train_mod.read_log(run_dir), tmp_path / "loss.png", "a run")
    drawn(tmp_path / "loss.png", (1210, 495))              # 11 x 4.5 in at 110 dpi


def crash_in_step(monkeypatch, step: int, calls_per_step: int = 1) -> None:
    """Make training die (KeyboardInterrupt) in its `step`-th optimizer step (1-based), at
    its first `sandwich_step` call (a step makes one per micro-batch and sandwich)."""
    calls = {"n": 0}
    real_step = train_mod.sandwich_step

    def crashing_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > (step - 1) * calls_per_step:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "sandwich_step", crashing_step)


def same_weights(a, b) -> bool:
    """Whether two runs' last checkpoints hold identical weights and optimizer moments."""
    ca, cb = load_checkpoint(a, "last"), load_checkpoint(b, "last")
    moments = [(sa["exp_avg"], sb["exp_avg"]) for sa, sb in
               zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values())]
    return ca["model"].keys() == cb["model"].keys() and all(
        torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"]) and all(
        torch.equal(x, y) for x, y in moments)


def train_losses(run) -> list[tuple]:
    return [(r["step"], r["loss"], r.get("student_loss")) for r in train_mod.read_log(run)
            if r["kind"] == "train"]


def test_a_run_killed_and_resumed_equals_one_trained_in_one_go(tiny, tiny_files, tmp_path,
                                                               monkeypatch):
    kw = dict(steps=5, dropout=0.2, grad_accum=2)
    full = train(tiny.cfg(tiny_files, tmp_path / "full", **kw))
    crash_in_step(monkeypatch, 4, calls_per_step=2)        # 2 micro-batches a step
    with pytest.raises(KeyboardInterrupt):
        train(tiny.cfg(tiny_files, tmp_path / "resumed", **kw))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "resumed", "last")["step"] == 3
    with pytest.raises(UserError, match="--resume"):
        train(tiny.cfg(tiny_files, tmp_path / "resumed", **kw))
    train(tiny.cfg(tiny_files, tmp_path / "resumed", resume=True, **kw))
    assert same_weights(tmp_path / "resumed", full)
    assert train_losses(tmp_path / "resumed") == train_losses(full)
    assert [r["step"] for r in train_mod.read_log(full)] == \
        [r["step"] for r in train_mod.read_log(tmp_path / "resumed")]


def test_train_run_trains_resumes_or_skips_with_one_meaning_of_finished(tiny, tiny_files,
                                                                        tmp_path, monkeypatch):
    one_go = train(tiny.cfg(tiny_files, tmp_path / "one-go", steps=5))
    out = tmp_path / "run"
    crash_in_step(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny.cfg(tiny_files, out, steps=5))
    monkeypatch.undo()
    assert plan_run(tiny.cfg(tiny_files, out, steps=3)).action == "skip"   # step 3 >= 3
    # resumed with the run's own settings: a new --lr is not taken, --progress is
    plan = train_run(tiny.cfg(tiny_files, out, steps=5, lr=0.5, progress=True))
    assert (plan.action, plan.done, plan.describe()) == ("resume", 3, "resumed from step 3")
    assert plan.config.lr == 1e-3 and plan.config.progress
    assert same_weights(out, one_go)
    plan = train_run(tiny.cfg(tiny_files, out, steps=5))
    assert (plan.action, plan.describe()) == ("skip", "reused (5 steps)")
    assert load_checkpoint(out, "last")["step"] == 5
    with pytest.raises(UserError, match=r"holds another run \(--arch differs"):
        plan_run(tiny.cfg(tiny_files, out, arch=tiny.space.smallest().key))
    fresh = train_run(tiny.cfg(tiny_files, tmp_path / "new", steps=1, eval_interval=1))
    assert (fresh.action, fresh.done, fresh.describe()) == ("train", None, "trained")


def test_a_run_killed_before_its_first_checkpoint_starts_over_cleanly(tiny, tiny_files,
                                                                     tmp_path, monkeypatch):
    crash_in_step(monkeypatch, 3)          # after 2 logged steps, before step 3 and its eval
    with pytest.raises(KeyboardInterrupt):
        train(tiny.cfg(tiny_files, tmp_path / "r", steps=3, n_random=0, eval_random=0))
    assert [r["step"] for r in train_mod.read_log(tmp_path / "r")] == [1, 2]
    monkeypatch.undo()
    train(tiny.cfg(tiny_files, tmp_path / "r", steps=3, n_random=0, eval_random=0))
    assert [r["step"] for r in train_mod.read_log(tmp_path / "r")] == [1, 2, 3, 3]


def test_students_learn_from_labels_until_distill_after(tiny, tiny_files, tmp_path):
    out = train(tiny.cfg(tiny_files, tmp_path / "da", steps=3, eval_interval=3, distill_after=2))
    records = [r for r in train_mod.read_log(out) if r["kind"] == "train"]
    assert [r["student_loss_kind"] for r in records] == ["ce", "ce", "kl"]
    assert records[0]["student_loss"] > 1.0 > records[2]["student_loss"]   # CE vs small KL


def test_resume_with_a_different_setup_is_refused(tiny, tiny_files, run_dir):
    cfg = tiny.cfg(tiny_files, run_dir, resume=True, steps=8, block_size=8, lr=0.01)
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


def test_train_subnet_trains_one_fixed_architecture(tiny, tiny_files, tmp_path):
    arch = Arch(d=16, heads=(2, 1), ffn=(64, 32), head_dim=8)
    out = train(tiny.cfg(tiny_files, tmp_path / "sub", arch=arch.key, steps=3))
    ev = SupernetEvaluator(out, max_tokens=256)
    assert ev.fixed_arch == arch
    assert math.isfinite(ev.perplexity([arch])[0])
    evals = [r for r in train_mod.read_log(out) if r["kind"] == "eval"]
    assert set(evals[-1]) == {"kind", "step", "subnet", "mean", "time"}


# -- evaluation and export ----------------------------------------------------------------------

def test_evaluator_is_deterministic_and_batch_independent(tiny, run_dir):
    archs = [tiny.space.largest(), tiny.space.smallest(), tiny.space.sample(random.Random(1))]
    ev = SupernetEvaluator(run_dir, max_tokens=600, batch_size=16)
    assert ev.space == SearchSpace.from_dict(tiny.space.to_dict())
    assert ev.block_size == tiny.block and ev.vocab_size == len(set(tiny.corpus_text()))
    first = ev.perplexity(archs)
    assert ev.perplexity(archs) == first
    other = SupernetEvaluator(run_dir, max_tokens=600, batch_size=5).perplexity(archs)
    assert other == pytest.approx(first, rel=1e-5)
    assert all(1 < p < ev.vocab_size * 2 for p in first)
    with pytest.raises(UserError, match="test"):
        SupernetEvaluator(run_dir, split="test")          # a single file has no test split


def test_export_writes_a_standalone_model(tiny, run_dir, tmp_path, capsys):
    arch = tiny.space.smallest()
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


def test_char_encoding_is_the_lookup_of_each_character():
    """Characters beyond the basic plane and above the vocabulary's highest code point too;
    a vocabulary with <unk> maps unknown characters to it."""
    text = "za\u00e9\U0001f600\n" * 3
    tok = Tokenizer.build("char", {"train": text, "valid": "a"})
    assert tok.encode(text).tolist() == [tok.index[c] for c in text]
    assert tok.encode(text).dtype == torch.long and tok.encode("").tolist() == []
    with pytest.raises(UserError, match="'\U0001f680' is not in the vocabulary"):
        tok.encode("a\U0001f680")
    with_unk = Tokenizer("char", ["a", UNK, "b"])
    assert with_unk.encode("abc\u00e9").tolist() == [0, 2, 1, 1]


def test_corpus_specs(tiny_files, tmp_path):
    text = (tiny_files / "corpus.txt").read_text()
    single = load_corpus(str(tiny_files / "corpus.txt"))
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


def test_builtin_corpus_is_cached_checked_and_rebuilt(tmp_path, monkeypatch):
    from supernet import data
    parses = []

    def parse(stdlib):                      # the library's docstrings, as if parsed
        parses.append(stdlib)
        return "A docstring of the standard library, longer than forty characters.\n"
    monkeypatch.setattr(data, "_stdlib_docstrings", parse)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    text = parse(None)
    for expect_parses in (2, 2):            # first call: parsed and kept; then read
        data.builtin_text.cache_clear()
        assert data.builtin_text() == text and len(parses) == expect_parses
    (cached,) = (tmp_path / "cache").glob("builtin-corpus-py*.txt")
    cached.write_text(cached.read_text().replace("longer", "shorter"))
    data.builtin_text.cache_clear()
    assert data.builtin_text() == text and len(parses) == 3     # failed its hash: parsed again
    assert cached.read_text().partition("\n")[2] == text        # ... and rewritten
    monkeypatch.setenv("NAS_CACHE_DIR", str(cached))             # a cache folder that is a file
    data.builtin_text.cache_clear()
    assert data.builtin_text() == text and len(parses) == 4
    data.builtin_text.cache_clear()


def test_stdlib_docstrings_are_module_class_and_function_docstrings_in_file_order(tmp_path):
    from supernet.data import _stdlib_docstrings
    long = "x" * 41
    (tmp_path / "b.py").write_text(f'"""B {long}"""\nclass C:\n    """C {long}"""\n'
                                   f'    def f(self):\n        """short"""\n')
    (tmp_path / "a.py").write_text(f'def g():\n    """G {long}"""\n')
    (tmp_path / "bad.py").write_text("def (:\n")
    assert _stdlib_docstrings(tmp_path) == f"G {long}\n\nB {long}\n\nC {long}\n"


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


def test_cli_eval_prints_json(tiny, run_dir, capsys):
    assert cli_main(["eval", "--ckpt", str(run_dir), "--largest", "--random", "2",
                     "--max-tokens", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == 288 and len(out["results"]) == 3
    assert out["results"][0]["key"] == tiny.space.largest().key
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
