"""The cost model's outputs, pinned to the last digit (tests/data/costmodel_pinned.json).

Refactoring the simulator, the lookup tables, the hardware spaces or the `nas hw|profile|simulate`
commands must not change a single number or line they produce. This test recomputes, for a grid
that reaches every code path (every preset, the three mappers and the search objectives,
dataflows and buffering, SFUs on chip and on the host, ViTCoD's engines fused or not, MAC lines,
ViTALiTy's Taylor units pipelined or not, the three attention kinds, encoder and decoder with
generated tokens, generated and real ViTCoD masks, GEMMs given by hand and a SCALE-Sim
topology), the sha256 of `json.dumps(report.to_dict(), sort_keys=True)` with a few readable
totals; lookup tables (rows and id) on three presets; hardware-space points (hash, area) and
repairs; the analytic profile; and the CLI's stdout, JSON, CSV and figures.

A formula that changes on purpose bumps `SIMULATOR_VERSION` (costmodel/simulate.py) and
regenerates the file: `python tests/test_costmodel_pinned.py --write ../shared/data/vitcod/
deit_tiny_attention_masks_0.95.npy` (the mask's path is left out of what is pinned).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from costmodel.area import area  # noqa: E402
from costmodel.hardware import (PRESETS, derive, load_hardware,  # noqa: E402
                                scalesim_equivalent)
from costmodel.hwspace import HardwareSpace  # noqa: E402
from costmodel.mapping import with_mapping  # noqa: E402
from costmodel.profile import profile  # noqa: E402
from costmodel.simulate import Report, simulate, simulate_ops  # noqa: E402
from costmodel.sparsity import AttentionSparsity  # noqa: E402
from costmodel.workload import Workload, gemm_ops, load_topology, model_ops  # noqa: E402
from lut.table import CostTable  # noqa: E402
from nas.core.arch import NAMED_MODELS, Arch, SearchSpace  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "costmodel_pinned.json"

TINY = Arch.from_key("L2-d64-h2.3-f128.256-hd32")
KINDS = Arch.from_key("L3-d64-h2.2.3-f128.128.256-hd32-as.t.sp25")
ENCODER = Workload(seq=64)
DECODER = Workload(seq=32, batch=2, mode="decoder", gen=3, vocab=100)
TOPOLOGY = "Layer, M, N, K,\nQKT, 197, 197, 64,\nFF2, 197, 192, 768,\nQKT, 197, 197, 64,\n"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _pin_report(rep: Report, mask: Path) -> dict:
    blob = json.dumps(rep.to_dict(), sort_keys=True).replace(str(mask), "<mask>")
    return {"sha256": _sha(blob), "cycles": rep.cycles, "energy_j": rep.energy_j,
            "edp_js": rep.edp}


def _variants() -> dict[str, object]:
    """Hardware beyond the presets: every mapper and objective, dataflow, buffering, SFU
    place, engine option and Taylor unit the presets leave out."""
    g = "gemmini-transformer"
    out = {f"{g}/{m}": with_mapping(PRESETS[g], m) for m in ("gemmini", "search")}
    out.update({f"edge-32x32/search-{o}": with_mapping(PRESETS["edge-32x32"], "search", o)
                for o in ("latency", "energy", "edp")})
    out.update({
        "os": derive(g, "os", dataflow="os"),
        "both-search": derive(g, "both", dataflow="both", mapping="search"),
        "both-gemmini": derive(g, "bothg", dataflow="both", mapping="gemmini"),
        "os-gemmini": derive(g, "osg", dataflow="os", mapping="gemmini"),
        "single-buffer": derive(g, "sb", double_buffer=False),
        "single-buffer-search": derive(g, "sbs", double_buffer=False, mapping="search",
                                       weight_double_buffer=False),
        "host": derive(g, "host", sfu="host"),
        "systolic-engines": derive(g, "se", sparse_engine=True, sparse_pe_fraction=0.25),
        "systolic-engines-fused": derive(g, "sef", sparse_engine=True, attention_fusion=True,
                                         sparse_allocation="dynamic"),
        "vitcod-fixed-unfused": derive("vitcod", "vfu", sparse_allocation="fixed",
                                       attention_fusion=False, qk_compression=1.0),
        "vitcod-first": derive("vitcod", "vf", head_timing="first", attention_lanes=2048),
        "lines-single-buffer": derive("vitcod", "lsb", double_buffer=False),
        "vitality-unpipelined": derive("vitality", "vu", taylor_pipeline=False),
        "vitality-host": derive("vitality", "vh", diag_pes=0, preproc_lanes=0, sfu="host"),
        "vitality-diag-only": derive("vitality", "vd", preproc_lanes=0, double_buffer=False),
        "tall-gemmini": derive(g, "tall", rows=32, cols=8, mapping="gemmini"),
        "wide-gemmini": derive(g, "wide", rows=8, cols=32, mapping="gemmini",
                               scratchpad_kib=16, accumulator_kib=16),
    })
    return out


# A hardware space with every kind of gene: engines, MAC lines, mappers, buffers too small for
# some arrays (repaired), fusion with host SFUs (repaired), genes irrelevant at some points.
WIDE_SPACE = {"base": "gemmini-transformer", "rows": [8, 16, 64], "cols": [8, 16],
              "pe_array": ["systolic", "lines"], "mapping": ["scalesim", "search"],
              "mapping_objective": ["latency", "edp"], "scratchpad_kib": [4, 16, 256],
              "accumulator_kib": [2, 8, 64], "double_buffer": [True, False],
              "sfu": ["onchip", "host"], "sparse_engine": [False, True],
              "sparse_pe_fraction": [0.25, 0.5], "sparse_allocation": ["fixed", "dynamic"],
              "attention_fusion": [False, True], "qk_compression": [1.0, 0.5],
              "tie": {"sfu_lanes": "cols"}}


def simulations(mask: Path) -> dict[str, dict]:
    def pin(rep: Report) -> dict:
        return _pin_report(rep, mask)

    out: dict[str, dict] = {}
    hws = {**PRESETS, **_variants()}
    sparse = AttentionSparsity(0.9)
    for hname, hw in hws.items():
        for aname, arch in (("tiny", TINY), ("kinds", KINDS)):
            for wname, wl in (("enc", ENCODER), ("dec", DECODER)):
                out[f"{hname}/{aname}/{wname}"] = pin(simulate(arch, hw, wl))
            out[f"{hname}/{aname}/enc/s0.9"] = pin(simulate(arch, hw, ENCODER, sparse))
        out[f"{hname}/tiny/dec/s0.9"] = pin(simulate(TINY, hw, DECODER, sparse))
    for sp in (AttentionSparsity(0.8, pattern="random"), AttentionSparsity(0.5, pattern="random"),
               AttentionSparsity(0.3)):
        for hname in ("vitcod", "vitcod-sim", "gemmini", "systolic-engines"):
            out[f"{hname}/tiny/enc/{sp.pattern}{sp.sparsity}"] = pin(
                simulate(TINY, hws[hname], ENCODER, sp))
    dense_window = Arch.from_key("L1-d64-h2-f128-hd32-asp90")
    for hname in ("vitcod", "gemmini-transformer"):
        for wname, wl in (("enc", ENCODER), ("dec", DECODER)):
            out[f"{hname}/sp90/{wname}"] = pin(simulate(dense_window, hws[hname], wl))
    space = HardwareSpace.from_dict(WIDE_SPACE, name="wide")
    rng = random.Random(2)
    for i in range(30):
        hw = space.decode([rng.randrange(len(v)) for _, v in space.genes()])
        for wname, wl in (("enc", ENCODER), ("dec", DECODER)):
            out[f"wide-space-{i}/kinds/{wname}/s0.9"] = pin(
                simulate(KINDS, hw, wl, AttentionSparsity(0.9)))
    deit = NAMED_MODELS["deit-tiny"]
    for hname in ("vitcod", "vitcod-sim", "vitcod-fixed-unfused", "gemmini-transformer"):
        for per_layer in (False, True):
            sp = AttentionSparsity.from_mask(str(mask), per_layer=per_layer)
            out[f"{hname}/deit-tiny/mask/per_layer={per_layer}"] = pin(
                simulate(deit.arch, hws[hname], Workload(seq=197), sp))
        sp = AttentionSparsity.from_mask(str(mask))
        out[f"{hname}/tiny/mask-rescaled"] = pin(
            simulate(TINY, hws[hname], ENCODER, sp, rescale_mask=True))
    named = {"bert-base": ("gemmini", Workload(seq=128, vocab=30522)),
             "gpt2": ("gemmini-transformer", Workload(seq=64, mode="decoder", gen=4,
                                                      vocab=50257)),
             "survey-6l": ("edge-32x32", Workload(seq=64, mode="decoder", gen=2)),
             "bert-large": ("vitality", Workload(seq=32))}
    for model, (hname, wl) in named.items():
        out[f"{hname}/{model}"] = pin(simulate(NAMED_MODELS[model].arch, hws[hname], wl))
    return out


def gemms(tmp: Path) -> dict[str, dict]:
    topo = tmp / "topology.csv"
    topo.write_text(TOPOLOGY)
    gemm_list = [("g0", 512, 768, 3072), ("g1", 7, 5, 3)] + load_topology(topo)
    out = {}
    for hname, hw in {**PRESETS, **_variants()}.items():
        rep = Report(simulate_ops(gemm_ops(gemm_list), hw), hw, Workload())
        out[f"{hname}/gemms"] = _pin_report(rep, tmp)
    return out


def tables(tmp: Path, mask: Path) -> dict[str, dict]:
    out = {}
    spaces = {"tiny": (SearchSpace.load("tiny"), ENCODER),
              "tiny-kinds": (SearchSpace.load("tiny-kinds"), DECODER),
              "survey-kinds": (SearchSpace.load("survey-kinds"), Workload(seq=128))}
    for hname in ("gemmini-transformer", "vitcod", "vitality"):
        for sname, (space, wl) in spaces.items():
            t = CostTable.build(space, PRESETS[hname], wl)
            out[f"{hname}/{sname}"] = {"id": t.id, "rows": _sha(json.dumps(t.rows)),
                                       "groups": len(t), "first": t.rows[0]}
        t = CostTable.build(spaces["tiny"][0], PRESETS[hname], ENCODER, AttentionSparsity(0.9))
        out[f"{hname}/tiny/s0.9"] = {"id": t.id, "rows": _sha(json.dumps(t.rows))}
        arch = KINDS
        cost = CostTable.build(spaces["tiny-kinds"][0], PRESETS[hname], DECODER).cost(arch)
        out[f"{hname}/cost"] = {"cycles": cost.cycles, "latency_ms": cost.latency_ms,
                                "energy_mj": cost.energy_mj, "edp": cost.edp}
    out["files"] = _table_files(tmp, mask)
    return out


def _table_files(tmp: Path, mask: Path) -> dict:
    """A table saved and loaded, its description and refusals, and a format-2 file."""
    import pyarrow.parquet as pq

    from lut.table import META_KEY
    from nas.core.errors import UserError
    space = SearchSpace.load("tiny")
    sp = AttentionSparsity.from_mask(str(mask))
    t = CostTable.build(space, PRESETS["vitcod"], ENCODER, sp)
    back = CostTable.load(t.save(tmp / "t.parquet"))
    try:
        back.check(SearchSpace.load("tiny-kinds"), DECODER, None, PRESETS["gemmini"])
        refusal = ""
    except UserError as exc:
        refusal = str(exc).replace(str(tmp), "<tmp>").replace(str(mask), "<mask>")
    old = pq.read_table(tmp / "t.parquet").drop_columns(["attention"])
    meta = {**back.meta, "format_version": 2}
    pq.write_table(old.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}),
                   tmp / "v2.parquet")
    v2 = CostTable.load(tmp / "v2.parquet")
    for p in ("t.parquet", "v2.parquet"):
        (tmp / p).unlink()
    # (the id of a table built with a mask file depends on the file's path: not pinned)
    return {"same_id": back.id == t.id, "rows": _sha(json.dumps(back.rows)),
            "same": back.rows == t.rows, "refusal": refusal,
            "describe": back.describe().replace(str(mask), "<mask>").replace(t.id, "<id>"),
            "v2": [[c.cycles, c.energy_j] for c in v2.costs([TINY, Arch.uniform(3, 128, 4, 512,
                                                                                 32)])],
            "hardware": back.hardware.hash(), "workload": back.workload.key,
            "space": back.space.to_dict()}


def hardware_spaces(tmp: Path) -> dict[str, dict]:
    out = {}
    spaces = {n: HardwareSpace.load(n) for n in ("edge-hw", "edge-hw-wide")}
    spaces["wide"] = HardwareSpace.from_dict(WIDE_SPACE, name="wide")
    for name, space in spaces.items():
        rng = random.Random(0)
        points = []
        for _ in range(120):
            genome = [rng.randrange(len(v)) for _, v in space.genes()]
            hw = space.decode(genome)
            points.append([genome, hw.name, hw.hash(), area(hw).to_dict(), space.encode(hw),
                           space.hardware_dict(hw)])
        rng = random.Random(1)
        shrunk = [space.within_area([rng.randrange(len(v)) for _, v in space.genes()], 1.2, rng)
                  for _ in range(8)]
        out[name] = {"size": space.size(), "points": _sha(json.dumps(points)),
                     "shrunk": _sha(json.dumps(shrunk)), "yaml": _sha(space.to_yaml())}
    small = HardwareSpace.from_dict({"base": "vitcod", "rows": [16, 64], "sparse_engine":
                                     [True, False], "sfu": ["onchip", "host"],
                                     "attention_fusion": [True, False]}, name="small")
    out["small"] = [[hw.name, hw.hash(), hw.attention_fusion] for hw in small.points()]
    out["presets"] = {n: [h.hash(), area(h).to_dict()] for n, h in PRESETS.items()}
    (tmp / "based.yaml").write_text("base: vitcod\nrows: 32\nscratchpad_kib: 64\n")
    whole = {k: v for k, v in PRESETS["vitality"].to_dict().items()
             if k not in ("scratchpad_pj_per_byte", "rf_pj_per_mac", "clock_hz", "name")}
    (tmp / "whole.yaml").write_text(yaml.safe_dump({**whole, "rows": 8}) + "clock_hz: 1e9\n")
    out["files"] = {p: [load_hardware(tmp / p).to_dict(), load_hardware(tmp / p).hash()]
                    for p in ("based.yaml", "whole.yaml")}
    out["scalesim"] = [scalesim_equivalent(r, c, df).hash() for r, c, df in
                       ((16, 16, "ws"), (32, 8, "os"))]
    return out


def profiles() -> dict[str, str]:
    return {f"{name}/{bits}": _sha(json.dumps(profile(model_ops(arch, wl), bits).to_dict(),
                                              sort_keys=True))
            for name, arch, wl in (("tiny-dec", TINY, DECODER), ("kinds-dec", KINDS, DECODER),
                                   ("kinds-enc", KINDS, ENCODER))
            for bits in (1.0, 2.0)}


def _figure_fingerprint(fig) -> list:
    """What a figure shows: every bar, text, tick label and legend entry of every panel."""
    def r(x: float) -> float:
        return round(float(x), 9)
    axes = []
    for ax in fig.axes:
        axes.append({"title": ax.get_title(), "xlabel": ax.get_xlabel(),
                     "xlim": [r(x) for x in ax.get_xlim()],
                     "yticks": [t.get_text() for t in ax.get_yticklabels()],
                     "bars": [[r(p.get_x()), r(p.get_y()), r(p.get_width()), r(p.get_height()),
                               [r(c) for c in p.get_facecolor()]] for p in ax.patches],
                     "texts": [t.get_text() for t in ax.texts]})
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    return [fig.get_suptitle(), axes, legend]


CLI_RUNS = {
    "hw-list": ["hw", "list"],
    "hw-show": ["hw", "show", "vitcod"],
    "profile": ["profile", "--model", "gpt2", "--mode", "decoder", "--seq", "64", "--gen", "3",
                "--bits", "16", "--json", "{tmp}/p.json", "--csv", "{tmp}/p.csv"],
    "profile-summary": ["profile", "--model", "L3-d64-h2.2.3-f128.128.256-hd32-as.t.sp25",
                        "--seq", "64", "--summary"],
    "simulate-decoder": ["simulate", "--model", "gpt2", "--hw", "gemmini", "--mode", "decoder",
                         "--seq", "64", "--gen", "3", "--json", "{tmp}/s.json", "--csv",
                         "{tmp}/s.csv", "--plot", "{tmp}/s.png"],
    "simulate-engines": ["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--sparsity",
                         "0.9", "--summary", "--plot", "{tmp}/e.png", "--json", "{tmp}/e.json"],
    "simulate-mask": ["simulate", "--model", "deit-tiny", "--hw", "vitcod-sim", "--mask",
                      "{mask}", "--per-layer-mask"],
    "simulate-rescaled": ["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--seq", "64",
                          "--mask", "{mask}", "--rescale-mask", "--summary"],
    "simulate-kinds": ["simulate", "--model", "deit-tiny", "--hw", "vitality", "--attention",
                       "taylor", "--seq", "64", "--mapping", "search", "--plot", "{tmp}/k.png"],
    "simulate-lines-mapping": ["simulate", "--model", "deit-tiny", "--hw", "vitcod", "--seq",
                               "32", "--mapping", "gemmini"],
    "simulate-dense-note": ["simulate", "--model", "deit-tiny", "--hw", "gemmini", "--seq", "32",
                            "--sparsity", "0.5", "--objective", "edp", "--mapping", "search"],
    "simulate-gemms": ["simulate", "--gemm", "512,768,3072", "--topology", "{tmp}/t.csv", "--hw",
                       "edge-32x32", "--mapping", "search", "--json", "{tmp}/g.json", "--csv",
                       "{tmp}/g.csv"],
    "simulate-topology": ["simulate", "--topology", "{tmp}/t.csv", "--hw", "gemmini"],
}


def cli(tmp: Path, mask: Path) -> dict[str, dict]:
    """stdout, stderr and every file each command writes (figures as fingerprints)."""
    import matplotlib.figure

    from nas.cli import main
    (tmp / "t.csv").write_text(TOPOLOGY)
    figures: list = []
    save = matplotlib.figure.Figure.savefig

    def keep(fig, path, **kwargs):            # a small picture: what it shows is pinned
        figures.append(_figure_fingerprint(fig))
        return save(fig, path, dpi=10)

    matplotlib.figure.Figure.savefig = keep
    out = {}
    try:
        for name, argv in CLI_RUNS.items():
            argv = [a.format(tmp=tmp, mask=mask) for a in argv]
            figures.clear()
            stdout, stderr = io.StringIO(), io.StringIO()
            with redirect_stdout(stdout), redirect_stderr(stderr):
                code = main(argv)
            files = {p.name: p.read_text().replace(str(mask), "<mask>")
                     for p in sorted(tmp.iterdir()) if p.suffix in (".json", ".csv")
                     and p.name != "t.csv"}
            for p in tmp.iterdir():
                if p.name != "t.csv":
                    p.unlink()
            norm = lambda s: s.replace(str(tmp), "<tmp>").replace(str(mask), "<mask>")  # noqa
            out[name] = {"code": code, "stdout": _sha(norm(stdout.getvalue())),
                         "stderr": norm(stderr.getvalue()),
                         "lines": len(stdout.getvalue().splitlines()),
                         "files": {k: _sha(norm(v)) for k, v in files.items()},
                         "figures": _sha(json.dumps(figures))}
    finally:
        matplotlib.figure.Figure.savefig = save
    return out


def compute(tmp: Path, mask: Path) -> dict[str, dict]:
    def own(name: str) -> Path:             # a folder of its own for each part
        (tmp / name).mkdir()
        return tmp / name
    return {"simulations": simulations(mask), "gemms": gemms(own("gemms")),
            "tables": tables(own("tables"), mask), "hardware_spaces": hardware_spaces(own("hw")),
            "profiles": profiles(), "cli": cli(own("cli"), mask)}


@pytest.fixture(scope="module")
def pinned(tmp_path_factory, vitcod_mask) -> tuple[dict, dict]:
    assert GOLDEN.is_file(), f"pinned outputs not found at {GOLDEN}"
    return json.loads(GOLDEN.read_text()), compute(tmp_path_factory.mktemp("pinned"), vitcod_mask)


@pytest.mark.parametrize("part", ["simulations", "gemms", "tables", "hardware_spaces",
                                  "profiles", "cli"])
def test_outputs_match_the_pinned_ones_to_the_last_digit(pinned, part):
    golden, now = pinned
    assert now[part].keys() == golden[part].keys()
    differ = [k for k in golden[part] if now[part][k] != golden[part][k]]
    assert not differ, f"{len(differ)} {part} changed, first {differ[0]}: " \
                       f"{now[part][differ[0]]} != {golden[part][differ[0]]}"


if __name__ == "__main__":
    import tempfile
    if len(sys.argv) != 3 or sys.argv[1] != "--write" or not Path(sys.argv[2]).is_file():
        sys.exit("usage: python tests/test_costmodel_pinned.py --write MASK.npy (ViTCoD's "
                 "deit_tiny_attention_masks_0.95.npy)")
    with tempfile.TemporaryDirectory() as tmp:
        data = compute(Path(tmp), Path(sys.argv[2]).resolve())
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    parts = [json.dumps(part) + ": {\n" + ",\n".join(             # one line per pinned case
        f" {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(cases.items()))
        + "\n}" for part, cases in sorted(data.items())]
    GOLDEN.write_text("{\n" + ",\n".join(parts) + "\n}\n")
    print(f"wrote {GOLDEN}: " + ", ".join(f"{len(v)} {k}" for k, v in data.items()))
