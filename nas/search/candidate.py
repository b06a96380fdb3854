"""The record every evaluated architecture becomes, and the one definition of what is compared.

- `Candidate`: an architecture with its perplexity, hardware cost and parameter count, as the
  search produces it and as front.json / history.csv store it (`to_row` / `from_row`).
- `OBJECTIVES`: the hardware objectives (name -> candidate field, axis label).
- `PPL_DELTAS`: the survey's "+0.1 and +1 perplexity of the largest subnet" thresholds.
- `lowest_within`: the candidate with the lowest objective within a perplexity limit (the rule
  behind the survey's "EDP reduction at +x perplexity", `nas export --pick +X` and the studies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable, Mapping

from nas.core.arch import Arch
from nas.core.errors import UserError


@dataclass(frozen=True)
class Objective:
    name: str       # --objective value
    field: str      # Candidate attribute
    label: str      # axis label


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("edp", "edp", "EDP (J s)"),
    Objective("latency", "latency_ms", "latency (ms)"),
    Objective("energy", "energy_mj", "energy (mJ)"),
    Objective("params", "params", "parameters"),
)}

# The survey's Fig. 26 (Kim et al. 2023, Sec. 6.4): EDP reduction at <= +0.1 and <= +1
# perplexity of the largest subnet.
PPL_DELTAS = (0.1, 1.0)


@dataclass(frozen=True)
class HardwarePoint:
    """The accelerator a candidate's costs were simulated on, as plain data: its name, hash and
    area, and, when the search chose it from a hardware space, the fields it chose."""

    name: str
    hash: str
    area_mm2: float = 0.0
    fields: tuple[tuple[str, Any], ...] = ()     # (HardwareConfig field, value); () = fixed
    # the hardware file that rebuilds it (`base:` + fields), for `nas export`; JSON only
    config: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    @property
    def searched(self) -> bool:
        return bool(self.fields)


def _scalar(text: str) -> Any:
    """A hardware field's value back from CSV text: int, float, bool or string."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


@dataclass(frozen=True)
class Candidate:
    """One evaluated design: an architecture and, in a joint search, the hardware it runs on.
    Costs are those of the lookup table's workload on that hardware."""

    arch: Arch
    perplexity: float
    latency_ms: float
    energy_mj: float
    edp: float              # J s
    cycles: float
    params: int
    violation: float = 0.0  # total relative violation of the constraints (0 = feasible)
    generation: int = 0     # generation that first evaluated it
    eval_index: int = 0     # position in evaluation order
    hardware: HardwarePoint | None = None
    # the supernet's own perplexity when `perplexity` is calibrated (nas.core.calibration);
    # None on an uncalibrated run, whose rows then have no `ppl_raw` column
    ppl_raw: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.perplexity):
            object.__setattr__(self, "perplexity", math.inf)

    @property
    def key(self) -> str:
        """The architecture's key, with '@' and the hardware hash when the hardware was
        searched too (the same architecture on two accelerators is two candidates)."""
        hw = self.hardware
        return f"{self.arch.key}@{hw.hash}" if hw is not None and hw.searched else self.arch.key

    @property
    def area_mm2(self) -> float:
        return self.hardware.area_mm2 if self.hardware is not None else 0.0

    @property
    def raw_perplexity(self) -> float:
        """The perplexity with the supernet's weights, calibrated or not."""
        return self.perplexity if self.ppl_raw is None else self.ppl_raw

    @property
    def calibrated_perplexity(self) -> float | None:
        """The calibrated perplexity (None on an uncalibrated run)."""
        return None if self.ppl_raw is None else self.perplexity

    @property
    def feasible(self) -> bool:
        return self.violation == 0.0

    def value(self, objective: str) -> float:
        """The candidate's value of a hardware objective (see OBJECTIVES)."""
        return float(getattr(self, OBJECTIVES[objective].field))

    def with_(self, **changes: Any) -> Candidate:
        return replace(self, **changes)

    # -- rows (CSV and JSON) -----------------------------------------------------------------
    def to_row(self) -> dict[str, Any]:
        a = self.arch
        row = {"key": self.key, "layers": a.layers, "d": a.d,
               "heads": ".".join(map(str, a.heads)), "ffn": ".".join(map(str, a.ffn)),
               "head_dim": a.head_dim}
        row.update({f.name: getattr(self, f.name) for f in fields(self)
                    if f.name not in ("arch", "hardware", "ppl_raw")})
        if self.ppl_raw is not None:
            row["ppl_raw"] = self.ppl_raw
        row["feasible"] = self.feasible
        hw = self.hardware
        if hw is not None:
            row.update({"hw": hw.name, "hw_hash": hw.hash, "area_mm2": hw.area_mm2})
            row.update({f"hw.{k}": v for k, v in hw.fields})
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Candidate:
        """Inverse of `to_row` (values may be the strings of a CSV file); a row may carry the
        architecture as an `arch` mapping instead of its key."""
        try:
            arch = (Arch.from_dict(row["arch"]) if "arch" in row
                    else Arch.from_key(row["key"].split("@")[0]))
            kw = {f.name: f.type for f in fields(cls) if f.name not in ("arch", "hardware")}
            values = {name: (int(float(row[name])) if typ == "int" else float(row[name]))
                      for name, typ in kw.items() if name in row}
            hardware = None
            if row.get("hw_hash") and "area_mm2" in row:
                hw_fields = tuple((k[3:], _scalar(v) if isinstance(v, str) else v)
                                  for k, v in row.items() if k.startswith("hw."))
                hardware = HardwarePoint(str(row["hw"]), str(row["hw_hash"]),
                                         float(row["area_mm2"]), hw_fields,
                                         tuple(dict(row.get("hw_config") or {}).items()))
            return cls(arch=arch, hardware=hardware, **values)
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"not a candidate row ({type(exc).__name__}: {exc})") from None

    def to_dict(self) -> dict[str, Any]:
        """A row plus the architecture (and a searched hardware's file) as mappings
        (front.json)."""
        out = {**self.to_row(), "arch": self.arch.to_dict()}
        if self.hardware is not None and self.hardware.config:
            out["hw_config"] = dict(self.hardware.config)
        return out


CSV_FIELDS = list(Candidate(Arch.uniform(1, 1, 1, 1), 0, 0, 0, 0, 0, 0).to_row())


def lowest_within(candidates: Iterable[Candidate], max_ppl: float,
                  objective: str = "edp") -> Candidate | None:
    """The candidate with the lowest objective among those with perplexity <= max_ppl (ties:
    lower perplexity), or None when none is that good."""
    within = [c for c in candidates if c.perplexity <= max_ppl]
    if not within:
        return None
    return min(within, key=lambda c: (c.value(objective), c.perplexity))


@dataclass(frozen=True)
class Reduction:
    """How much lower the objective gets within `delta` perplexity of a baseline."""

    delta: float
    baseline: Candidate
    pick: Candidate | None
    objective: str = "edp"

    @property
    def factor(self) -> float | None:
        """baseline / pick (e.g. 3.5 means 3.5x lower EDP), None when nothing is close enough."""
        if self.pick is None:
            return None
        return self.baseline.value(self.objective) / self.pick.value(self.objective)

    def to_dict(self) -> dict[str, Any]:
        return {"delta": self.delta, "objective": self.objective, "reduction": self.factor,
                "key": self.pick.key if self.pick else None,
                "perplexity": self.pick.perplexity if self.pick else None,
                self.objective: self.pick.value(self.objective) if self.pick else None}


def reductions(candidates: Iterable[Candidate], baseline: Candidate, objective: str = "edp",
               deltas: Iterable[float] = PPL_DELTAS) -> list[Reduction]:
    """The survey's summary: at each delta, the lowest objective within baseline + delta."""
    feasible = [c for c in candidates if c.feasible]
    return [Reduction(d, baseline, lowest_within(feasible, baseline.perplexity + d, objective),
                      objective) for d in deltas]


__all__ = ["Candidate", "HardwarePoint", "Objective", "OBJECTIVES", "PPL_DELTAS", "CSV_FIELDS", "Reduction",
           "lowest_within", "reductions"]
