"""A search folder read back for its report: the front and every candidate, the settings, the
picks with their operator-by-operator costs, the supernet's training log, and what could not be
found (said on the page, never a crash).

    run = read_run("runs/search", hw=None)      # hw: the accelerator, when the report cannot
                                                # find the one the search used
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core.errors import UserError
from nas.search.candidate import Candidate
from nas.search.outputs import FrontFile, default_picks, picks_of, read_front

TRAINING_POINTS = 2000          # at most this many training-loss records are drawn (evenly spaced)


@dataclass(frozen=True)
class OperatorCosts:
    """One pick simulated on its accelerator: latency and energy per operator (summed over
    layers and decode steps: costmodel.report.op_rows) and the totals."""

    key: str
    hardware: str
    operators: dict[str, tuple[float, float]]       # name -> (latency ms, energy mJ)
    latency_ms: float
    energy_mj: float


@dataclass
class RunData:
    """Everything the report shows, read from a search folder (and its supernet's folder)."""

    folder: Path
    front: FrontFile
    rows: list[dict[str, Any]]                  # front.json's rows (extra columns kept)
    history: list[Candidate]
    search: dict[str, Any]                      # search.json
    picks: dict[str, Candidate]                 # nas export's default picks that matched
    costs: list[OperatorCosts]                  # the picks, operator by operator
    training: list[dict[str, Any]]              # the supernet's log.jsonl records
    host_latency: list[dict[str, Any]]          # FOLDER/export/host_latency.csv, when measured
    notes: list[str] = field(default_factory=list)

    @property
    def front_sorted(self) -> list[Candidate]:
        return sorted(self.front.front, key=lambda c: c.perplexity)

    @property
    def joint(self) -> bool:
        """Whether the search chose the hardware too (a hardware per candidate)."""
        return any(c.hardware is not None and c.hardware.searched for c in self.front.front)


def read_run(folder: str | Path, hw: str | None = None) -> RunData:
    """Read a search folder (or its front.json); `hw` (preset or YAML) is the accelerator the
    picks' operator costs are simulated on when the search's own cannot be found."""
    from costmodel.hardware import load_hardware
    doc = read_front(folder)
    given = load_hardware(hw) if hw else None           # a bad --hw fails here, at once
    notes: list[str] = []
    search = _read_json(doc.folder / "search.json", notes)
    rows = json.loads(doc.path.read_text())["front"]
    history = doc.history()
    if history is None:
        notes.append("history.csv is missing: only the front is drawn")
    picks = {expr: cands[0] for expr, cands in picks_of(
        doc.front, doc.largest, default_picks(doc.objective), doc.objective,
        skip_unmatched=True).items()} if doc.front else {}
    return RunData(doc.folder, doc, rows, history or list(doc.front), search, picks,
                   operator_costs(doc, list(picks.values()), given, notes),
                   training_log(search, notes), _host_latency(doc.folder / "export"), notes)


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        notes.append(f"{path.name} could not be read ({type(exc).__name__}): no settings, "
                     f"hypervolume or training curves")
        return {}


# -- operator costs --------------------------------------------------------------------------

def operator_costs(doc: FrontFile, picks: list[Candidate], hw, notes: list[str]
                   ) -> list[OperatorCosts]:
    """Each pick (once per key) simulated on its accelerator with the search's workload
    (`hw`: a HardwareConfig to try first, or None)."""
    from costmodel.workload import Workload
    try:
        workload = Workload(**doc.workload)
    except (TypeError, UserError):
        notes.append("front.json records no workload: no operator costs")
        return []
    out, seen = [], set()
    for cand in picks:
        if cand.key in seen:
            continue
        seen.add(cand.key)
        config = pick_hardware(doc, cand, hw, notes)
        if config is not None:
            out.append(simulate_pick(cand, config, workload, notes))
    return out


def pick_hardware(doc: FrontFile, cand: Candidate, hw, notes: list[str]):
    """The HardwareConfig a pick was costed on: the searched point (a joint search), else
    `hw` (--hw), the preset of the front's name, or the search folder's own lookup table,
    whichever has the front's hardware hash; None (with a note) when none has."""
    from costmodel.hardware import derive, load_hardware
    point = cand.hardware
    want = point.hash if point is not None else doc.hw_hash
    if point is not None and point.searched and point.config:
        config = dict(point.config)
        found = [derive(str(config.pop("base")), str(config.pop("name", point.name)),
                        str(config.pop("description", "")), **config)]
    else:
        found = [hw] if hw is not None else []
        try:
            found.append(load_hardware(point.name if point is not None else doc.hw))
        except UserError:
            pass
        table = doc.folder / "lut.parquet"
        if table.is_file():
            from lut.table import CostTable
            found.append(CostTable.load(table).hardware)
    match = next((h for h in found if h.hash() == want), None)
    if match is None:
        notes.append(f"{cand.key}: the accelerator it was costed on ({want}) was not found; "
                     f"pass --hw with its preset or YAML for its operator costs")
    return match


def simulate_pick(cand: Candidate, hw, workload, notes: list[str]) -> OperatorCosts:
    """`cand` simulated operator by operator (dense attention: the note says when the front's
    latency differs, as it does for a search with --sparsity)."""
    from costmodel.cost import MJ, MS, PJ
    from costmodel.report import op_rows
    from costmodel.simulate import simulate
    report = simulate(cand.arch, hw, workload)
    seconds = 1.0 / hw.clock_hz
    operators = {name: (r["cycles"] * seconds * MS, r["energy_pj"] * PJ * MJ)
                 for name, r in op_rows(report.ops, summary=True).items()}
    if abs(report.latency_ms - cand.latency_ms) > 1e-6 * max(cand.latency_ms, 1e-12):
        notes.append(f"{cand.key}: simulated with dense attention, {report.latency_ms:.4g} ms; "
                     f"the front says {cand.latency_ms:.4g} ms (a sparse search's table)")
    return OperatorCosts(cand.key, hw.name, operators, report.latency_ms, report.energy_mj)


# -- the supernet's training and the host latency ------------------------------------------

def training_log(search: dict[str, Any], notes: list[str]) -> list[dict[str, Any]]:
    """The supernet run's log.jsonl (search.json's perplexity_source.ckpt: the run folder or a
    checkpoint in it), training records thinned to TRAINING_POINTS."""
    ckpt = (search.get("perplexity_source") or {}).get("ckpt")
    if not ckpt:
        notes.append("search.json names no supernet: no training curves")
        return []
    run = Path(ckpt) if Path(ckpt).is_dir() else Path(ckpt).parent
    path = run / "log.jsonl"
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        notes.append(f"the supernet's {path} could not be read ({type(exc).__name__}): no "
                     f"training curves")
        return []
    train = [r for r in records if r.get("kind") == "train"]
    stride = max(1, -(-len(train) // TRAINING_POINTS))
    return train[::stride] + [r for r in records if r.get("kind") == "eval"]


def _host_latency(export: Path) -> list[dict[str, Any]]:
    """`nas export --measure`'s rows (export/host_latency.csv), [] when not measured."""
    path = export / "host_latency.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: (v if k in ("key", "hardware", "file") else float(v)) for k, v in r.items()}
                for r in csv.DictReader(f)]


__all__ = ["OperatorCosts", "RunData", "read_run", "operator_costs", "pick_hardware",
           "simulate_pick", "training_log", "TRAINING_POINTS"]
