"""Helpers shared by the study scripts: class sums, tables, the studies' command line.

Each study lives in its own folder (experiments/studies/<study>/: script, results, figure). A
study script keeps its configuration in a dataclass at its top, computes everything through the
public APIs (`costmodel.simulate`, `costmodel.profile`, the hardware presets,
`nas.core.arch.NAMED_MODELS`) and writes `<study>.json` (figures + provenance:
`nas.core.provenance`) and `<study>.png` next to itself. A study script finds this module with
`sys.path.insert(0, <experiments/studies>)` at its top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from nas.core.plotting import pyplot, save_figure  # noqa: F401 - the studies' figure helpers
from nas.core.provenance import provenance, write_result
from costmodel.simulate import SIMULATOR_VERSION, OpCost, Report
from costmodel.workload import ACT_MATMUL, GEMM, NONLINEAR, PROJECTION

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
VITCOD_MASK = SHARED_DATA / "vitcod" / "deit_tiny_attention_masks_0.95.npy"
CLASSES = (PROJECTION, ACT_MATMUL, NONLINEAR)


def total(costs: Iterable[OpCost], attr: str = "cycles") -> float:
    return float(sum(getattr(c, attr) for c in costs))


def matmuls(report: Report) -> list[OpCost]:
    """Every GEMM (projections and act-to-act matmuls)."""
    return [c for c in report.ops if c.op.kind == GEMM]


def class_shares(report: Report, key: str = "cycles") -> dict[str, float]:
    """Share of the model's cycles (or energy_pj) per operator class."""
    by = report.by_class()
    whole = sum(v[key] for v in by.values()) or 1.0
    return {cls: by.get(cls, {key: 0.0})[key] / whole for cls in CLASSES}


def fmt_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (what the scripts print and the README sections quote)."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def study_main(name: str, doc: str, run: Callable[[], dict[str, Any]],
               plot: Callable[[dict[str, Any], Path], None],
               report: Callable[[dict[str, Any]], str], argv: list[str] | None = None,
               *, folder: Path) -> int:
    """The command line every study shares: run it, write NAME.json (with its provenance) and
    NAME.png, atomically, into `--out` (default: `folder`, the study's own), print its tables."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, default=folder, help="folder for the JSON and PNG")
    args = ap.parse_args(argv)
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    result = run()
    write_result(args.out / f"{name}.json", result, prov)
    plot(result, args.out / f"{name}.png")
    print(report(result))
    for note in result.get("notes", []):
        print("note:", note)
    print(f"wrote {args.out / f'{name}.json'} and {name}.png")
    return 0
