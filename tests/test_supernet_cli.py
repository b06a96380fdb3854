"""The supernet commands end to end: resume, dataset paths, eval output, sample, TensorBoard."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch

from nas.cli import build_parser, main as cli_main
from nas.cli.supernet import train_config
from supernet.checkpoint import load_checkpoint
from supernet.evaluate import SupernetEvaluator
from supernet.train import read_log

# the tiny setting's context of 16 tokens (conftest.TinySupernet)
COMMON = ["--steps", "4", "--batch-size", "4", "--block-size", "16", "--warmup", "2",
          "--eval-interval", "2", "--eval-tokens", "512", "--log-interval", "1", "--no-progress"]
TRAIN = ["--space", "space.yaml", "--eval-random", "1", *COMMON]     # train-supernet's


@pytest.fixture
def workdir(tiny, tmp_path, monkeypatch):
    """A folder holding corpus.txt and space.yaml, made the current directory."""
    tiny.write_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def nas(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """A trained supernet run (relative paths, trained from its own folder)."""
    root = tiny.write_files(tmp_path_factory.mktemp("cli-run"))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert cli_main(["train-supernet", "--out", "run", "--dataset", "corpus.txt"]
                        + TRAIN) == 0
    return root / "run"


# -- resume and dataset paths ---------------------------------------------------------------------

def test_resume_with_only_steps_works_from_another_directory(workdir, capsys, monkeypatch):
    assert nas(capsys, "train-supernet", "--out", "run", "--dataset", "corpus.txt",
               *TRAIN)[0] == 0
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = nas(capsys, "train-supernet", "--out", "../run", "--steps", "6",
                         "--resume")
    assert code == 0, err
    assert "resuming ../run from step 4 of 6" in out
    data = load_checkpoint(workdir / "run", "last")
    assert data["step"] == 6
    assert data["config"]["batch_size"] == 4 and data["config"]["eval_interval"] == 2
    assert data["config"]["dataset"] == str((workdir / "corpus.txt").resolve())
    assert [r["step"] for r in read_log(workdir / "run") if r["kind"] == "eval"] == [2, 4, 6]
    code, out, err = nas(capsys, "eval", "--ckpt", "../run", "--largest", "--json")
    assert code == 0, err
    assert json.loads(out)["step"] == 6


def test_resume_refuses_a_typed_option_that_differs(workdir, capsys):
    assert nas(capsys, "train-supernet", "--out", "run", "--dataset", "corpus.txt",
               *TRAIN)[0] == 0
    code, _, err = nas(capsys, "train-supernet", "--out", "run", "--steps", "6", "--resume",
                       "--block-size", "8")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--block-size differs (checkpoint 16, given 8)" in err
    assert load_checkpoint(workdir / "run", "last")["step"] == 4
    # the same values typed again are no difference; a run already at --steps has nothing to do
    code, out, err = nas(capsys, "train-supernet", "--out", "run", "--resume", "--batch-size",
                         "4", "--dataset", str(workdir / "corpus.txt"))
    assert code == 0, err
    assert "already at step 4 of 4" in out


def test_resume_of_the_other_kind_of_run_is_refused(workdir, capsys):
    assert nas(capsys, "train-supernet", "--out", "run", "--dataset", "corpus.txt",
               *TRAIN)[0] == 0
    code, _, err = nas(capsys, "train-subnet", "--out", "run", "--steps", "6", "--resume")
    assert code == 2 and "is a supernet run" in err


def test_a_moved_dataset_is_an_error_naming_the_recorded_path(workdir, capsys):
    (workdir / "data").mkdir()
    shutil.move(workdir / "corpus.txt", workdir / "data" / "corpus.txt")
    assert nas(capsys, "train-supernet", "--out", "run", "--dataset", "data/corpus.txt",
               *TRAIN)[0] == 0
    assert nas(capsys, "eval", "--ckpt", "run", "--largest")[0] == 0
    shutil.move(workdir / "data", workdir / "moved")
    recorded = str((workdir / "data" / "corpus.txt").resolve())
    for argv in (["eval", "--ckpt", "run", "--largest"],
                 ["train-supernet", "--out", "run", "--steps", "6", "--resume"]):
        code, _, err = nas(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"dataset {recorded} recorded in" in err and "no longer exists" in err


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 40,                                    # every byte value
    b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" * 200,        # a PNG's header
    b"text\x00with NUL bytes\n" * 200,                         # decodes, but binary
])
def test_a_binary_dataset_file_is_a_one_line_error(workdir, capsys, content):
    (workdir / "data.bin").write_bytes(content)
    code, _, err = nas(capsys, "train-supernet", "--out", "run", "--dataset", "data.bin", *TRAIN)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "data.bin is not UTF-8 text" in err
    assert not (workdir / "run").exists()


# -- progress, logs, defaults ---------------------------------------------------------------------

def test_no_progress_hides_the_bar_but_not_the_validation_lines(workdir, capsys):
    code, out, err = nas(capsys, "train-supernet", "--out", "quiet", "--dataset", "corpus.txt",
                         *TRAIN)
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()
            if line.startswith("step ") and ": val " in line] == ["step 2", "step 4"]
    assert "val largest" in out and err == ""
    # with the bar, but stderr not a terminal: plain lines, no carriage-return updates
    code, out, err = nas(capsys, "train-supernet", "--out", "bar", "--dataset", "corpus.txt",
                         *TRAIN, "--progress")
    assert code == 0 and "step 4: val largest" in out
    assert "supernet: 4/4 step" in err and "\r" not in err


def test_train_subnet_defaults_to_its_own_run_directory(capsys):
    parser = build_parser()
    assert train_config(parser.parse_args(["train-subnet", "--arch", "L1-d16-h1-f32-hd8"])).out \
        == "runs/subnet"
    assert train_config(parser.parse_args(["train-supernet"])).out == "runs/supernet"
    with pytest.raises(SystemExit):
        parser.parse_args(["train-subnet", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: runs/subnet)" in text
    assert "default: None" not in text and text.count("(default: cuda if available)") == 1


# -- eval -----------------------------------------------------------------------------------------

def test_eval_prints_a_table_or_json_and_writes_json_atomically(run, tmp_path, capsys):
    argv = ["eval", "--ckpt", str(run), "--largest", "--smallest", "--max-tokens", "300"]
    code, table, err = nas(capsys, *argv)
    assert code == 0
    code, text, _ = nas(capsys, *argv, "--json", "--out", str(tmp_path / "e.json"))
    assert code == 0
    result = json.loads(text)
    assert json.loads((tmp_path / "e.json").read_text()) == result
    assert [p.name for p in tmp_path.iterdir()] == ["e.json"]
    ev = SupernetEvaluator(run, max_tokens=300, batch_size=7)
    assert [r["loss"] for r in result["results"]] == pytest.approx(
        ev.losses([ev.space.largest(), ev.space.smallest()]), rel=1e-5)
    header, columns, *rows = table.splitlines()
    assert header == (f"checkpoint {result['checkpoint']} (step {result['step']}), split valid, "
                      f"{result['tokens']:,} tokens")
    assert columns.split() == ["key", "params", "loss", "perplexity"]
    for row, r in zip(rows, result["results"]):
        assert row.split() == [r["key"], f"{r['params']:,}", f"{r['loss']:.4f}",
                               f"{r['perplexity']:.3f}"]
    assert len(rows) == 2
    # the bar counts architectures x batches: 2 x ceil(18 windows / 16)
    assert "eval valid: 4/4 batch" in err and "\r" not in err


def test_eval_out_into_a_folder_is_refused_before_evaluating(run, tmp_path, capsys):
    code, out, err = nas(capsys, "eval", "--ckpt", str(run), "--largest", "--out",
                         str(tmp_path))
    assert code == 2 and "is a folder" in err and out == ""


# -- sample ---------------------------------------------------------------------------------------

def test_sample_is_deterministic_given_a_seed_and_generates_n_tokens(run, capsys):
    base = ["sample", "--ckpt", str(run), "--prompt", "the cat ", "--tokens", "40"]
    code, first, err = nas(capsys, *base, "--seed", "3")
    assert code == 0, err
    text = first[:-1]                                       # the CLI ends the output with \n
    assert text.startswith("the cat ") and len(text) == len("the cat ") + 40   # > context 16
    assert nas(capsys, *base, "--seed", "3")[1] == first
    assert nas(capsys, *base, "--seed", "4")[1] != first
    code, two, _ = nas(capsys, *base, "--seed", "3", "--num-samples", "2", "--smallest",
                       "--top-k", "3", "--temperature", "0.7")
    samples = two[:-1].split("\n---------------\n")
    assert code == 0 and len(samples) == 2 and samples[0] != samples[1]
    assert all(len(s) == len("the cat ") + 40 for s in samples)


def test_sample_works_on_a_train_subnet_run(workdir, capsys):
    key = "L2-d16-h2.1-f64.32-hd8"
    assert nas(capsys, "train-subnet", "--arch", key, "--out", "sub", "--dataset", "corpus.txt",
               *COMMON)[0] == 0
    code, out, err = nas(capsys, "sample", "--ckpt", "sub", "--tokens", "5")
    assert code == 0, err
    assert len(out[:-1]) == 1 + 5                             # the start-of-text newline + 5
    code, _, err = nas(capsys, "sample", "--ckpt", "sub", "--prompt", "Zebra!")
    assert code == 2 and "not in the vocabulary" in err


# -- TensorBoard ----------------------------------------------------------------------------------

def test_tensorboard_logs_training_and_eval(workdir, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert nas(capsys, "train-supernet", "--out", "run", "--dataset", "corpus.txt", *TRAIN,
               "--tensorboard")[0] == 0
    events = EventAccumulator(str(workdir / "run" / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/student_loss", "valid/largest",
            "valid/smallest", "valid/random0", "valid/mean"} <= tags
    assert [e.step for e in events.Scalars("valid/largest")] == [2, 4]
    logged = [r["largest"] for r in read_log(workdir / "run") if r["kind"] == "eval"]
    assert [e.value for e in events.Scalars("valid/largest")] == pytest.approx(logged)

    code, out, _ = nas(capsys, "eval", "--ckpt", "run", "--smallest", "--json",
                       "--tensorboard", "tb-eval")
    assert code == 0
    r = json.loads(out)["results"][0]
    events = EventAccumulator(str(workdir / "tb-eval")).Reload()
    (point,) = events.Scalars(f"valid_loss/{r['key']}")
    assert point.step == 4 and point.value == pytest.approx(r["loss"])


def test_tensorboard_missing_is_a_one_line_error_and_writes_nothing(workdir, capsys,
                                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)    # import fails
    code, _, err = nas(capsys, "train-supernet", "--out", "run", "--dataset", "corpus.txt",
                       *TRAIN, "--tensorboard")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pip install tensorboard" in err
    assert not (workdir / "run").exists()


def test_cli_bad_inputs(workdir, capsys):
    """Each bad input is exit 2 with one line that names the problem."""
    assert torch.get_num_threads() == 1
    cases = [
        (["train-supernet", "--out", "r", "--threads", "0"], "threads must be positive"),
        (["train-supernet", "--out", "r", "--device", "tpu"], "unknown device 'tpu'"),
        (["train-subnet", "--out", "r"], "needs --arch"),
        (["train-supernet", "--out", "nothing", "--resume"], "holds no last.pt"),
        (["sample", "--ckpt", "nothing"], "checkpoint not found"),
    ]
    for argv, msg in cases:
        code, _, err = nas(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, argv
        assert msg in err, (argv, err)
    assert not (workdir / "r").exists()
