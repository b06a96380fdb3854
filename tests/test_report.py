"""Taking a front home: `nas export --onnx [--measure]` and `nas report`, the page opened in
headless Chromium.

The browser tests need Debian's `chromium` (install.sh, run by .ci/run, installs it when it
is missing); without it they fail, saying how to install it, rather than skip.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from nas.cli import main
from nas.report import MAX_BYTES, write_report
from nas.report.chromium import Chromium
from nas.report.figures import FRONT_TRACE
from nas.report.run import read_run

SEARCH = ["--population", "4", "--generations", "2", "--max-tokens", "256", "--no-progress"]
# the number of points plotly drew for the front's trace in the Pareto plot
FRONT_POINTS = f"""(() => {{
  const plot = document.getElementById("pareto");
  const i = plot.data.findIndex(t => t.name.startsWith("{FRONT_TRACE}"));
  return plot.querySelectorAll(".scatterlayer .trace")[i].querySelectorAll("path.point").length;
}})()"""


def nas(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def search(tiny_supernet, tmp_path_factory):
    """An architecture-only search on the shared tiny supernet, its front exported with
    --onnx --measure into FRONT/export."""
    out = tmp_path_factory.mktemp("search") / "run"
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out), *SEARCH]) == 0
    assert main(["export", "--front", str(out), "--pick", "best-ppl", "min-edp", "--onnx",
                 "--measure", "--repeats", "5", "--warmup", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def joint(tiny_supernet, tmp_path_factory):
    """A joint architecture x hardware search (a hardware per front point; the flat joint
    genome: the bilevel default would first cost every edge-hw point)."""
    out = tmp_path_factory.mktemp("joint") / "run"
    assert main(["search", "--ckpt", str(tiny_supernet), "--out", str(out), "--hw-space",
                 "edge-hw", "--hw-search", "joint", "--max-area-mm2", "2", "--seed", "1",
                 *SEARCH]) == 0
    return out


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


def front_rows(run: Path) -> int:
    with (run / "front.csv").open(newline="") as f:
        return len(list(csv.DictReader(f)))


# -- nas export --onnx --measure -----------------------------------------------------------------

def test_export_measure_writes_host_latency_beside_the_simulated_one(search):
    export = search / "export"
    front = json.loads((search / "front.json").read_text())["front"]
    keys = {min(front, key=lambda r: r["perplexity"])["key"],
            min(front, key=lambda r: (r["edp"], r["perplexity"]))["key"]}
    with (export / "host_latency.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["key"] for r in rows} == keys and len(rows) == len(keys)
    simulated = {r["key"]: r["latency_ms"] for r in front}
    for row in rows:
        assert float(row["simulated_ms"]) == pytest.approx(simulated[row["key"]])
        assert 0 < float(row["measured_q1_ms"]) <= float(row["measured_ms"]) <= \
            float(row["measured_q3_ms"])
        card = json.loads((export / f"{row['key']}.onnx.card.json").read_text())
        assert card["host_latency"]["median_ms"] == pytest.approx(float(row["measured_ms"]))
        assert card["host_latency"]["threads"] == 1 and card["host_latency"]["repeats"] == 5
        assert card["costs"]["latency_ms"] == pytest.approx(simulated[row["key"]])
    summary = json.loads((export / "host_latency.json").read_text())
    assert summary["picks"] == len(rows) and summary["provenance"]["command"]
    if len(rows) >= 2 and len({r["simulated_ms"] for r in rows}) > 1:
        assert -1 <= summary["kendall_tau"] <= 1


def test_export_format_pt_writes_subnets_and_measure_refuses_them(search, tmp_path, capsys):
    code, _, err = nas(capsys, "export", "--front", search, "--pick", "best-ppl", "--format",
                       "pt2", "--measure", "--out", tmp_path / "x")
    assert code == 2 and "--measure" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()                  # refused before any file
    code, out, _ = nas(capsys, "export", "--front", search, "--pick", "best-ppl", "--format",
                       "pt", "--out", tmp_path / "y")
    assert code == 0 and "max abs diff" in out
    assert len(list((tmp_path / "y").glob("*.pt"))) == 1
    assert len(list((tmp_path / "y").glob("*.pt.card.json"))) == 1
    assert not (tmp_path / "y" / "host_latency.csv").exists()


def test_export_onnx_without_the_supernet_is_refused_before_writing(search, tmp_path, capsys):
    code, _, err = nas(capsys, "export", "--front", search, "--onnx", "--ckpt",
                       tmp_path / "missing", "--out", tmp_path / "x")
    assert code == 2 and "is not there" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_a_later_export_replaces_the_model_files_of_an_earlier_one(search, tmp_path, capsys):
    out = tmp_path / "x"
    code, _, _ = nas(capsys, "export", "--front", search, "--pick", "best-ppl", "min-edp",
                     "--onnx", "--measure", "--repeats", "1", "--out", out)
    assert code == 0 and (out / "host_latency.csv").is_file()
    before = {p.name for p in out.glob("*.onnx")}
    (out / "notes.card.json").write_text('{"a card": "not of an export"}')
    code, printed, _ = nas(capsys, "export", "--front", search, "--pick", "min-edp", "--onnx",
                           "--out", out)
    assert code == 0 and "removed" in printed
    after = {p.name for p in out.glob("*.onnx")}
    assert len(after) == 1 and after <= before
    assert {p.name for p in out.glob("*.onnx.card.json")} == {f"{n}.card.json" for n in after}
    assert not (out / "host_latency.csv").exists() and (out / "notes.card.json").exists()


# -- the report's data ---------------------------------------------------------------------------

def test_operator_costs_add_up_to_the_fronts_costs(search, joint):
    for folder in (search, joint):
        run = read_run(folder)
        assert run.notes == [] and run.costs
        by_key = {c.key: c for c in run.front.front}
        for pick in run.costs:
            cand = by_key[pick.key]
            assert sum(ms for ms, _ in pick.operators.values()) == pytest.approx(cand.latency_ms)
            assert sum(mj for _, mj in pick.operators.values()) == pytest.approx(cand.energy_mj)
            assert pick.latency_ms == pytest.approx(cand.latency_ms)


def test_a_run_missing_files_is_drawn_with_notes(search, tmp_path):
    import shutil
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(search / "front.json", run / "front.json")
    data = read_run(run)
    assert data.history and len(data.history) == len(data.front.front)
    assert any("history.csv" in n for n in data.notes)
    assert any("search.json" in n for n in data.notes)
    assert data.training == [] and data.host_latency == []
    summary = write_report(run, tmp_path / "bare.html", hw="gemmini")
    assert "pareto" in summary.figures and "training" not in summary.figures


def test_a_calibrated_front_shows_its_raw_perplexity_too(search, tmp_path):
    """A front whose rows carry `ppl_raw` (nas calibrate): hover and picks table show it."""
    import shutil

    from nas.report.figures import pareto
    from nas.report.page import render
    run = tmp_path / "calibrated"
    shutil.copytree(search, run, ignore=shutil.ignore_patterns("export"))
    doc = json.loads((run / "front.json").read_text())
    for row in doc["front"]:
        row["ppl_raw"] = row["perplexity"] + 1.0
    (run / "front.json").write_text(json.dumps(doc))
    data = read_run(run)
    front = next(t for t in pareto(data).data if t.name.startswith(FRONT_TRACE))
    assert all(point[1].startswith(" (raw ") for point in front.customdata)
    assert "raw perplexity" in render(data, {})


# -- nas report in the browser -------------------------------------------------------------------

@pytest.mark.parametrize("which", ["search", "joint"])
def test_report_renders_in_chromium_offline_with_every_front_point(which, request, browser,
                                                                    tmp_path, capsys):
    run = request.getfixturevalue(which)
    page_file = tmp_path / "report.html"
    code, out, _ = nas(capsys, "report", run, "--out", page_file)
    assert code == 0 and "wrote" in out
    size = page_file.stat().st_size
    assert size <= MAX_BYTES
    page = browser.open(page_file, ready="document.body.dataset.rendered")
    assert page.errors == []
    assert page.requests == [page_file.resolve().as_uri()]          # nothing from the network
    drawn = browser.evaluate("document.body.dataset.rendered")
    assert int(drawn) == browser.evaluate("document.querySelectorAll('.plot').length") >= 5
    assert browser.evaluate(FRONT_POINTS) == front_rows(run)
    if which == "search":
        assert browser.evaluate("document.getElementById('host-latency') !== null")


def test_the_browser_test_sees_a_broken_page(browser, tmp_path):
    """The checks above can fail: a script error and a request are reported."""
    page_file = tmp_path / "broken.html"
    page_file.write_text("<html><body><img src='http://127.0.0.1:9/x.png'><script>"
                         "document.body.dataset.rendered = 1; undefinedFunction();"
                         "</script></body></html>")
    page = browser.open(page_file, ready="document.body.dataset.rendered")
    assert any("undefinedFunction" in e for e in page.errors)
    assert "http://127.0.0.1:9/x.png" in page.requests


# -- command line --------------------------------------------------------------------------------

@pytest.mark.parametrize("out, message", [("folder", "is a folder"),
                                          ("file/report.html", "is a file")])
def test_report_bad_out_is_one_line_exit_2_before_work(search, tmp_path, capsys, out, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, _, err = nas(capsys, "report", search, "--out", tmp_path / out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_report_of_a_folder_without_a_front_is_one_line_exit_2(tmp_path, capsys):
    code, _, err = nas(capsys, "report", tmp_path)
    assert code == 2 and "front.json" in err and len(err.strip().splitlines()) == 1
