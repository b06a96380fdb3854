"""What a search leaves on disk, how it is read back, and how architectures are picked from it.

A search folder holds front.csv and front.json (the feasible Pareto front), history.csv (every
evaluated candidate), search.json (settings, table, hypervolume per generation, timings, the
survey's reductions) and pareto.png. `read_front` reads a folder back into `Candidate`s;
`pick` selects front architectures by the expressions `nas export --pick` takes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.core.paths import existing_file
from nas.search.candidate import (CSV_FIELDS, OBJECTIVES, PPL_DELTAS, Candidate, lowest_within,
                                  reductions)

if TYPE_CHECKING:
    from nas.search.engine import SearchResult

FILES = ("front.csv", "front.json", "history.csv", "search.json", "pareto.png")

PICK_HELP = ("'all'; 'best-ppl'; 'min-edp', 'min-latency', 'min-energy', 'min-params'; '+X' "
             "(lowest value of the search's objective within X perplexity of the largest "
             "subnet); 'ppl<=X' (lowest objective with perplexity <= X); an index into "
             "front.csv (0 = lowest perplexity); or an architecture key")


def default_picks(objective: str = "edp") -> list[str]:
    """What `nas export` and quickstart export: best perplexity, lowest objective, and the
    lowest objective within each of the survey's perplexity deltas."""
    return ["best-ppl", f"min-{objective}"] + [f"+{d:g}" for d in PPL_DELTAS]


def pick(front: list[Candidate], largest: Candidate, expr: str,
         objective: str = "edp") -> list[Candidate]:
    """Front candidates selected by one pick expression (PICK_HELP)."""
    front = sorted(front, key=lambda c: c.perplexity)
    if not front:
        raise UserError("the front is empty (no feasible candidate)")

    def lowest(limit: float, what: str) -> list[Candidate]:
        best = lowest_within(front, limit, objective)
        if best is None:
            raise UserError(f"--pick {expr}: no front architecture with perplexity <= "
                            f"{limit:.4g} ({what})")
        return [best]

    if expr == "all":
        return front
    if expr == "best-ppl":
        return [front[0]]
    if expr.startswith("min-") and expr[4:] in OBJECTIVES:
        return [min(front, key=lambda c: (c.value(expr[4:]), c.perplexity))]
    prefix = "+" if expr.startswith("+") else "ppl<=" if expr.startswith("ppl<=") else ""
    if prefix:
        try:
            value = float(expr[len(prefix):])
        except ValueError:
            raise UserError(f"--pick {expr}: expected a number after '{prefix}'") from None
        if prefix == "+":
            return lowest(largest.perplexity + value,
                          f"largest subnet's {largest.perplexity:.4g} {expr}")
        return lowest(value, "given limit")
    if expr.isdigit():
        if int(expr) >= len(front):
            raise UserError(f"--pick {expr}: the front has {len(front)} architectures "
                            f"(indices 0..{len(front) - 1})")
        return [front[int(expr)]]
    for c in front:
        if c.key == expr:
            return [c]
    raise UserError(f"--pick {expr}: not 'all', 'best-ppl', 'min-edp|latency|energy|params', "
                    f"'+X', 'ppl<=X', an index, or a key on the front")


def picks_of(front: list[Candidate], largest: Candidate, exprs: list[str], objective: str,
             skip_unmatched: bool = False) -> dict[str, list[Candidate]]:
    """{expression: candidates} for several pick expressions; with `skip_unmatched`, an
    expression nothing matches is left out instead of raising."""
    out: dict[str, list[Candidate]] = {}
    for expr in exprs:
        try:
            out[expr] = pick(front, largest, expr, objective)
        except UserError:
            if not skip_unmatched:
                raise
    return out


# -- writing ---------------------------------------------------------------------------------

def csv_text(rows: list[dict[str, Any]]) -> str:
    """CSV text of rows (their keys as the header; no rows: the candidate columns)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else CSV_FIELDS,
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def table_source(table) -> dict[str, Any]:
    """Where an architecture-only search's costs came from: one lookup table (`ids` go into
    every front row; `table` describes it; `workload` is what it was built for)."""
    return {"ids": {"hw": table.hw_name, "hw_hash": table.hw_hash, "table_id": table.id},
            "table": table.describe(), "workload": table.meta["workload"]}


def write_outputs(result: SearchResult, out: str | Path, source: dict[str, Any],
                  info: dict[str, Any], plot: bool = True) -> dict[str, Path]:
    """front.csv, front.json, history.csv, search.json and pareto.png in `out`; `source` says
    where the costs came from (`table_source`, or the joint search's hardware space)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = source["ids"]
    objective = result.config.objective
    paths = {name: out / name for name in FILES}
    atomic_write_text(paths["front.csv"], csv_text([{**c.to_row(), **ids} for c in result.front]))
    atomic_write_text(paths["history.csv"], csv_text([c.to_row() for c in result.history]))
    front_doc = {"objective": objective, **ids, "workload": source["workload"],
                 "hw_space": source.get("hw_space"),
                 "largest": result.largest.to_dict(),
                 "front": [{**c.to_dict(), **ids} for c in result.front]}
    atomic_write_text(paths["front.json"], json.dumps(front_doc, indent=1))
    search_doc = {
        "settings": asdict(result.config), **info, **ids, "table": source["table"],
        "generations_done": result.generations_done, "evaluations": len(result.history),
        "front_size": len(result.front),
        "hypervolume": result.hypervolume, "hypervolume_normaliser": result.normaliser,
        "largest": result.largest.to_row(), "smallest": result.smallest.to_row(),
        "reductions_vs_largest": [r.to_dict() for r in
                                  reductions(result.history, result.largest, objective)],
        "seconds": result.seconds,
        "racing": result.racing,
    }
    atomic_write_text(paths["search.json"], json.dumps(search_doc, indent=1))
    if plot and result.front:
        from nas.search.pareto import plot_pareto
        picks = {expr: cands[0] for expr, cands in picks_of(
            result.front, result.largest, default_picks(objective), objective,
            skip_unmatched=True).items()}
        plot_pareto(result.history, result.front, result.largest, paths["pareto.png"],
                    objective=objective, picks=picks,
                    title=f"{result.config.algorithm}, objective {objective}, "
                          f"{ids.get('hw') or 'hardware space ' + str(ids.get('hw_space'))}, "
                          f"{len(result.history)} candidates; circled: nas export's defaults")
    else:
        paths.pop("pareto.png")
    return paths


def summary_lines(result: SearchResult) -> list[str]:
    """What `nas search` prints at the end."""
    L, objective = result.largest, result.config.objective
    label = OBJECTIVES[objective].label
    lines = [f"evaluated {len(result.history)} architectures in {result.generations_done} "
             f"generations; front: {len(result.front)} feasible non-dominated candidates; "
             f"hypervolume {result.hypervolume[-1]:.4f}",
             f"largest subnet {L.key}: perplexity {L.perplexity:.3f}, "
             f"EDP {L.edp:.3e} J s, latency {L.latency_ms:.3f} ms, "
             f"energy {L.energy_mj:.4f} mJ"]
    if result.racing:
        r = result.racing
        lines.append(f"racing: {r['windows_scored']:,} of the exact evaluator's "
                     f"{r['windows_exact']:,} validation windows scored "
                     f"({100 * r['share_of_exact']:.0f}%); {r['fully_scored']} architectures, "
                     f"the front among them, on all {r['windows_per_perplexity']}")
    if not result.front:
        closest = min(result.history, key=lambda c: c.violation)
        lines.append(f"the front is empty: no candidate meets the constraints; the closest, "
                     f"{closest.key}, breaks {', '.join(result.config.violated(closest))}")
    for r in reductions(result.history, L, objective):
        name = label.split(" (")[0]
        if r.pick is None:
            lines.append(f"{name} reduction at <= +{r.delta:g} perplexity: no feasible "
                         f"candidate")
        else:
            lines.append(f"{name} reduction at <= +{r.delta:g} perplexity: {r.factor:.2f}x "
                         f"({r.pick.key}, perplexity {r.pick.perplexity:.3f})")
    if objective == "edp":
        lines.append("(survey's case study, 6-layer GPT-2-sized model on WikiText-2 and "
                     "Gemmini: 2.2x at +0.1 and 10.6x at +1)")
    return lines


# -- reading ---------------------------------------------------------------------------------

@dataclass
class FrontFile:
    """A search folder's front.json, read back."""

    path: Path
    objective: str
    largest: Candidate
    front: list[Candidate]
    hw: str
    hw_hash: str
    table_id: str
    workload: dict[str, Any]
    hw_space: dict[str, Any] | None = None      # a joint search's hardware space

    @property
    def folder(self) -> Path:
        return self.path.parent

    def history(self) -> list[Candidate] | None:
        """Every evaluated candidate (history.csv beside front.json), None when it is missing."""
        path = self.folder / "history.csv"
        if not path.is_file():
            return None
        with path.open(newline="") as f:
            return [Candidate.from_row(r) for r in csv.DictReader(f)]


def read_front(front: str | Path) -> FrontFile:
    """A search folder (or its front.json)."""
    src = Path(front)
    path = src / "front.json" if src.is_dir() else src
    if not path.exists():
        raise UserError(f"no front.json at {path} (run `nas search --out DIR` first)")
    existing_file(path, "front.json")          # a pipe, a device ...: one line
    try:
        doc = json.loads(path.read_text())
        return FrontFile(path=path, objective=doc.get("objective", "edp"),
                         largest=Candidate.from_row(doc["largest"]),
                         front=[Candidate.from_row(r) for r in doc["front"]],
                         hw=doc.get("hw", "?"), hw_hash=doc.get("hw_hash", "?"),
                         table_id=doc.get("table_id", "?"), workload=doc.get("workload", {}),
                         hw_space=doc.get("hw_space"))
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError, UserError):
        raise UserError(f"{path}: not a front.json written by `nas search`") from None
