"""Exported subnets: ONNX and torch.export files of every attention kind, checked against
PyTorch; their size and weights; the model card; the .pt file in `nas eval` and `nas sample`;
the command's errors; the export of a front's picks."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from nas.cli import main as cli_main  # noqa: E402
from nas.core.arch import Arch  # noqa: E402
from nas.core.errors import UserError  # noqa: E402
from supernet.export import (TOLERANCE, card_path, export, export_format,  # noqa: E402
                             onnx_weight_name)
from supernet.model import GPT, ModelConfig, num_params  # noqa: E402

# The smallest subnet of the `tiny` space (the worst case of the file-size ratio), with a context
# of 80 tokens: more than one chunk of the Taylor attention.
VOCAB, BLOCK = 65, 80
KINDS = ["softmax", "taylor", "sparse25", "sparse50"]


def static_model(kinds: list[str], block: int = BLOCK) -> GPT:
    """A two-layer d64 GPT with the given kind per layer and distinct weights in every tensor
    (an untrained model's equal LayerNorm weights would let the exporter store them once)."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(VOCAB, block), Arch(d=64, heads=(2, 2), ffn=(128, 128),
                                                head_dim=32, attention=tuple(kinds)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def onnx_logits(path, x: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort               # here, not at collection (in every test process)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"idx": x.numpy()})[0])


@pytest.mark.parametrize("kind", KINDS)
def test_every_attention_kind_exports_to_onnx_and_matches_pytorch(kind, tmp_path):
    model = static_model([kind, kind])
    check = export(model, tmp_path / "m.onnx")
    assert check.max_abs_diff <= TOLERANCE
    assert {b for b, _ in check.shapes} == {1, 3} and {t for _, t in check.shapes} == {80, 26}
    # dynamic axes, at a shape the export neither traced nor checked
    x = torch.randint(VOCAB, (2, 67), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)[0]
    assert (onnx_logits(tmp_path / "m.onnx", x) - expected).abs().max() <= TOLERANCE


def test_onnx_file_holds_each_weight_once_and_no_slicing_of_weights(tmp_path):
    model = static_model(["taylor", "sparse25"])
    check = export(model, tmp_path / "m.onnx")
    import onnx
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    weights = {t.name: t for t in graph.initializer}
    names = {onnx_weight_name(n) for n, _ in model.named_parameters()}
    assert set(weights) == names                                 # the subnet's own, no more
    assert sum(len(t.raw_data) for t in weights.values()) == 4 * num_params(model)
    assert [tuple(t.dims) for t in weights.values()].count((VOCAB, 64)) == 1   # tied: once
    assert not [n for n in graph.node if n.op_type == "Slice" and weights.keys() & set(n.input)]
    assert check.param_bytes == 4 * num_params(model)
    assert check.size_ratio <= 1.02 and check.file_bytes == (tmp_path / "m.onnx").stat().st_size


def test_a_mixed_subnet_exports_as_a_torch_export_program(tmp_path):
    model = static_model(["taylor", "sparse25"], block=64)   # checked at T = one whole chunk
    check = export(model, tmp_path / "m.pt2")
    assert check.format == "torch.export" and check.max_abs_diff <= TOLERANCE
    loaded = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = torch.randint(VOCAB, (2, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x)[0], rtol=0, atol=TOLERANCE)


def test_a_file_unlike_pytorch_is_refused_and_not_written(tmp_path, monkeypatch):
    import supernet.export as export_mod
    model = static_model(["softmax", "softmax"])
    write, _ = export_mod._FORMATS["onnx"]
    monkeypatch.setitem(export_mod._FORMATS, "onnx", (write, lambda m, p, t: (1e-3, "test")))
    with pytest.raises(UserError, match="differ from PyTorch's by up to 0.001"):
        export(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_format_comes_from_the_suffix():
    assert [export_format(f"a{s}") for s in (".pt", ".onnx", ".PT2")] == \
        ["pytorch", "onnx", "torch.export"]
    with pytest.raises(UserError, match="unknown format '.bin'; use .pt, .onnx, .pt2"):
        export_format("a.bin")


# -- the command ---------------------------------------------------------------------------------

def nas(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_subnet_writes_a_checked_onnx_file_and_its_card(tiny_supernet, tmp_path, capsys):
    smallest = "L2-d64-h2.2-f128.128-hd32"
    code, out, err = nas(capsys, "export-subnet", "--ckpt", tiny_supernet, "--smallest",
                         "--out", tmp_path / "s.onnx", "--hw", "gemmini-transformer",
                         "--max-tokens", "256")
    assert code == 0, err
    printed = json.loads(out)
    card = json.loads(card_path(tmp_path / "s.onnx").read_text())
    assert printed == {**{k: v for k, v in card.items() if k != "tokenizer"},
                       "path": str(tmp_path / "s.onnx"), "card": str(card_path(tmp_path /
                                                                               "s.onnx"))}
    assert card["key"] == smallest and card["format"] == "onnx"
    assert card["check"]["max_abs_diff"] <= TOLERANCE and "max abs difference" in err
    assert len(card["tokenizer"]["vocab"]) == card["vocab_size"]
    assert card["costs"]["hardware"] == "gemmini-transformer"
    assert card["costs"]["edp"] == pytest.approx(card["costs"]["latency_ms"] * 1e-3
                                                 * card["costs"]["energy_mj"] * 1e-3)
    assert card["costs"]["area_mm2"] > 0
    code, out, _ = nas(capsys, "eval", "--ckpt", tiny_supernet, "--smallest", "--max-tokens",
                       "256", "--json", "--no-progress")
    assert card["perplexity"]["raw"] == pytest.approx(json.loads(out)["results"][0]["perplexity"])


def test_an_exported_pt_subnet_works_with_eval_and_sample(tiny_supernet, tmp_path, capsys):
    assert nas(capsys, "export-subnet", "--ckpt", tiny_supernet, "--smallest", "--out",
               tmp_path / "s.pt", "--no-perplexity")[0] == 0
    assert json.loads(card_path(tmp_path / "s.pt").read_text())["perplexity"] is None
    evals = []
    for ckpt, which in ((tiny_supernet, "--smallest"), (tmp_path / "s.pt", "--largest")):
        code, out, err = nas(capsys, "eval", "--ckpt", ckpt, which, "--max-tokens", "256",
                             "--json", "--no-progress")
        assert code == 0, err
        evals.append(json.loads(out)["results"][0])
    assert evals[1]["key"] == evals[0]["key"]
    assert evals[1]["loss"] == pytest.approx(evals[0]["loss"], rel=1e-6)
    code, out, err = nas(capsys, "sample", "--ckpt", tmp_path / "s.pt", "--tokens", "20",
                         "--seed", "3")
    assert code == 0 and out.strip(), err
    assert nas(capsys, "sample", "--ckpt", tiny_supernet, "--smallest", "--tokens", "20",
               "--seed", "3")[1] == out


@pytest.mark.parametrize("out, msg", [
    ("s.bin", "unknown format '.bin'"),
    ("file.txt/s.onnx", "is a file, not a folder"),
    ("folder", "is a folder; give a file name"),
])
def test_export_subnet_bad_output_is_one_line_exit_2_and_writes_nothing(
        tiny_supernet, tmp_path, capsys, out, msg):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder.onnx").mkdir()
    out = "folder.onnx" if out == "folder" else out
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, _, err = nas(capsys, "export-subnet", "--ckpt", tiny_supernet, "--smallest",
                       "--out", tmp_path / out)
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


# -- a front's picks -------------------------------------------------------------------------------

def test_export_picks_onnx_writes_each_pick_once_with_the_front_numbers(tiny_supernet,
                                                                        tmp_path):
    from nas.export_onnx import export_picks_onnx
    from nas.search.outputs import picks_of, read_front
    search = tmp_path / "search"
    assert cli_main(["search", "--ckpt", str(tiny_supernet), "--out", str(search),
                     "--population", "4", "--generations", "1", "--max-tokens", "256",
                     "--no-progress"]) == 0
    doc = read_front(search)
    chosen = picks_of(doc.front, doc.largest, ["best-ppl", "min-edp", "0"], doc.objective)
    picks = [c for cands in chosen.values() for c in cands]
    exported = export_picks_onnx(doc, picks, tmp_path / "onnx")
    assert sorted(e.key for e in exported) == sorted({c.arch.key for c in picks})
    for e in exported:
        cand = next(c for c in picks if c.arch.key == e.key)
        card = json.loads(e.card.read_text())
        assert (tmp_path / "onnx" / f"{e.key}.onnx").is_file()
        assert card["check"]["max_abs_diff"] <= TOLERANCE
        assert card["perplexity"]["raw"] == pytest.approx(cand.perplexity)
        assert card["perplexity"]["tokens"] == 256
        assert card["costs"]["edp"] == pytest.approx(cand.edp)
        assert card["costs"]["latency_ms"] == pytest.approx(cand.latency_ms)
        assert card["costs"]["area_mm2"] > 0 and math.isfinite(card["costs"]["area_mm2"])


def test_help_imports_neither_torch_nor_onnx_nor_plotly():
    import subprocess
    import sys
    code = ("import sys\nfrom nas.cli import main\n"
            "for argv in (['--help'], ['export-subnet', '--help'], ['export', '--help'], "
            "['report', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'onnx', "
            "'onnxruntime', 'plotly', 'numpy'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
