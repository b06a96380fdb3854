"""Exported subnets with their model cards, from a checkpoint or from a search's front.

    export_subnet_file   one subnet of a supernet checkpoint (`nas export-subnet`): the file
                         (.pt, .onnx or .pt2, `supernet.export`), checked against PyTorch,
                         and its card, with the perplexity measured on the checkpoint's data
                         and, given a hardware or a lookup table, the simulated costs
    export_picks_onnx    the picks of a front (`nas export --onnx`): one file and card per
                         architecture, the card's numbers the front's (perplexity as the search
                         scored it, latency, energy, EDP, area)
    ModelExport          what `nas export --onnx/--format [--measure]` adds to the YAML files:
                         checked before anything is written, then the files, cards and, with
                         --measure, each pick timed on this CPU (`measure_picks`)
    measure_picks        the exported picks timed with onnxruntime (supernet.host_latency),
                         the measured latency beside the simulated one in the cards and in
                         host_latency.csv/.json, with Kendall's tau between the two
    subnet_costs         one architecture's simulated costs on a hardware, or from a table

torch, onnx, onnxruntime and the cost model are imported inside the functions (the command
line reads MODEL_FORMATS when it builds its parser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from nas.core.arch import Arch
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError

if TYPE_CHECKING:
    from supernet.host_latency import HostTiming

MODEL_FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "pt": ".pt"}      # --format -> file suffix
HOST_LATENCY = "host_latency"           # --measure's files in the export folder: .csv, .json


@dataclass(frozen=True)
class Exported:
    """One exported file: its architecture's key, the export's check, its card and where the
    card was written."""

    key: str
    check: Any                  # supernet.export.ExportCheck
    model_card: Any             # supernet.export.ModelCard
    card: Path


def subnet_costs(arch: Arch, workload, hw: str | None = None, lut: str | None = None,
                 space=None):
    """`arch`'s simulated cost of one `workload` inference as a card's `CardCosts`: simulated
    on the hardware `hw` (preset or YAML), or summed from the lookup table `lut` (checked
    against `space` and `workload`); None without either."""
    from costmodel.area import area
    from supernet.export import CardCosts
    if lut is not None:
        from lut.table import CostTable
        table = CostTable.load(lut)
        table.check(space, workload)
        cost, hardware, source = table.cost(arch), table.hardware, f"lookup table {lut}"
    elif hw is not None:
        from costmodel.hardware import load_hardware
        from costmodel.simulate import simulate
        hardware = load_hardware(hw)
        cost, source = simulate(arch, hardware, workload), "simulated"
    else:
        return None
    return CardCosts(hardware.name, cost.latency_ms, cost.energy_mj, cost.edp,
                     area(hardware).total_mm2, workload.key, source)


def checkpoint_perplexity(ckpt: str | Path, arch: Arch, max_tokens: int | None,
                          threads: int | None = None):
    """`arch`'s perplexity with the checkpoint's weights on its validation split, as a card's
    `CardPerplexity`, calibrated too when the run has a calibration of this checkpoint
    (nas.core.calibration)."""
    from nas.core.calibration import load_calibration
    from supernet.evaluate import SupernetEvaluator
    from supernet.export import CardPerplexity
    ev = SupernetEvaluator(ckpt, max_tokens=max_tokens, threads=threads)
    raw = ev.perplexity([arch])[0]
    calibration, _ = load_calibration(ev.checkpoint, ev.step)
    return CardPerplexity(raw=raw, calibrated=calibration.perplexity(arch, raw)
                          if calibration and calibration.covers(arch) else None,
                          split=ev.split, tokens=ev.tokens, dataset=ev.dataset)


def export_subnet_file(data: dict[str, Any], arch: Arch, out: str | Path, perplexity=None,
                       costs=None) -> Exported:
    """Export `arch` from the loaded checkpoint `data` to `out` (format from the suffix) and
    write its card with `perplexity` and `costs` (either may be None)."""
    from supernet.export import export_subnet, model_card, write_card
    model, check = export_subnet(data, arch, out)
    card = model_card(check, model, data["tokenizer"], perplexity, costs,
                      {"checkpoint": str(Path(data["path"]).resolve()), "step": data["step"]})
    return Exported(arch.key, check, card, write_card(card, out))


def export_picks_onnx(doc, picks: Iterable, out: str | Path, suffix: str = ".onnx",
                      ckpt: str | Path | None = None,
                      data: dict[str, Any] | None = None) -> list[Exported]:
    """Export every pick of a front to `out`/KEY`suffix` (.onnx, .pt2 or .pt) with its card.

    `doc` is the front (`nas.search.outputs.read_front`), `picks` its chosen candidates
    (`picks_of`'s values, flattened; an architecture picked twice is exported once). The
    subnets come from the supernet the search scored (search.json's perplexity_source, or
    `ckpt`; `data`: that checkpoint, already loaded); each card carries the candidate's numbers
    as the front records them."""
    from supernet.checkpoint import load_checkpoint
    from nas.verify import search_source
    source = search_source(doc) if ckpt is None else {"ckpt": str(ckpt)}
    data = data if data is not None else load_checkpoint(source["ckpt"], "best")
    unique = {c.arch.key: c for c in picks}
    if not unique:
        raise UserError(f"nothing to export: no pick of {doc.path}")
    out = Path(out)
    area_of_search = _search_area(doc)
    exported = []
    for i, (key, cand) in enumerate(unique.items()):
        perplexity, costs = front_numbers(cand, doc, source, data, area_of_search)
        done = export_subnet_file(data, cand.arch, out / f"{key}{suffix}", perplexity, costs)
        check = done.check
        print(f"[{i + 1}/{len(unique)}] {check.path}: max abs diff from PyTorch "
              f"{check.max_abs_diff:.1e}, {check.size_ratio:.3f} x the parameters' bytes; "
              f"card {done.card.name}", flush=True)
        exported.append(done)
    return exported


def front_numbers(cand, doc, source: dict[str, Any], data: dict[str, Any],
                  area_mm2: float | None = None):
    """A front candidate's card numbers: its perplexity as the search scored it (split and
    tokens of the search; raw and, on a calibrated search, calibrated), and its costs on the
    search's hardware (or its own, in a joint search)."""
    from supernet.export import CardCosts, CardPerplexity
    perplexity = CardPerplexity(
        raw=cand.raw_perplexity, calibrated=cand.calibrated_perplexity,
        split=source.get("split", "valid"), tokens=source.get("max_tokens"),
        dataset=data["config"].get("dataset"))
    hardware = cand.hardware.name if cand.hardware is not None else doc.hw
    area_mm2 = cand.area_mm2 or area_mm2
    costs = CardCosts(hardware, cand.latency_ms, cand.energy_mj, cand.edp,
                      area_mm2 if area_mm2 and math.isfinite(area_mm2) else None,
                      _workload_key(doc), f"search {doc.path} (table {doc.table_id})")
    return perplexity, costs


@dataclass
class ModelExport:
    """What `nas export --onnx` (or `--format`) writes beside the architecture YAML files: one
    checked model file and card per picked architecture, and with `measure`, each file timed
    on this machine's CPU. `check` loads the supernet, `write` exports from it."""

    format: str = "onnx"                    # a key of MODEL_FORMATS
    measure: HostTiming | None = None       # None: no timing
    ckpt: str | None = None                 # the supernet; None: the one the search scored
    supernet: dict[str, Any] | None = field(default=None, repr=False)    # loaded by `check`

    @property
    def suffix(self) -> str:
        return MODEL_FORMATS[self.format]

    def check(self, doc) -> None:
        """Refuse, before anything is written: an unknown format, --measure of anything but
        ONNX or with counts below 1, a supernet that is not there or not a supernet (it is
        loaded here)."""
        from nas.verify import search_source
        from supernet.checkpoint import load_checkpoint
        if self.format not in MODEL_FORMATS:
            raise UserError(f"--format {self.format}: use one of {', '.join(MODEL_FORMATS)}")
        timing = self.measure
        if timing is not None:
            if self.format != "onnx":
                raise UserError(f"--measure times ONNX files with onnxruntime; it does not "
                                f"take --format {self.format}")
            if timing.repeats < 1 or timing.threads < 1 or timing.warmup < 0:
                raise UserError(f"--repeats and --threads must be >= 1 and --warmup >= 0, got "
                                f"{timing.repeats}, {timing.threads}, {timing.warmup}")
        ckpt = self.ckpt or search_source(doc)["ckpt"]
        if not Path(ckpt).exists():
            raise UserError(f"the supernet {ckpt} is not there (give --ckpt: the supernet the "
                            f"search {doc.folder} ran on)")
        self.supernet = load_checkpoint(ckpt, "best")

    def write(self, doc, picks: Iterable, out: str | Path) -> list[Exported]:
        """The model files and cards of `picks` in `out`, then, with `measure`, their timing."""
        if self.supernet is None:
            self.check(doc)
        picks = list(picks)
        exported = export_picks_onnx(doc, picks, out, self.suffix, self.ckpt, self.supernet)
        if self.measure is not None:
            measure_picks(doc, picks, exported, out, self.measure)
        for stale in stale_model_files(Path(out), exported, self.measure is not None):
            stale.unlink()
            print(f"removed {stale} (an earlier export's, not written now)")
        return exported


def stale_model_files(out: Path, exported: list[Exported], measured: bool) -> list[Path]:
    """What an earlier `nas export --onnx/--format` into `out` wrote that this one did not:
    model files with their cards (a card whose costs came from a search), and the host
    latency files when this export did not measure."""
    import json
    stale, current = [], {e.card for e in exported}
    for card in sorted(out.glob("*.card.json")):
        try:
            doc = json.loads(card.read_text())
            ours = str(doc["costs"]["source"]).startswith("search ")   # front_numbers' mark
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ours and card not in current:
            stale += [p for p in (out / str(doc.get("file")), card) if p.is_file()]
    if not measured:
        stale += [p for p in (out / f"{HOST_LATENCY}.csv", out / f"{HOST_LATENCY}.json")
                  if p.is_file()]
    return stale


@dataclass(frozen=True)
class LatencyComparison:
    """Measured host latency against simulated accelerator latency, one row per exported
    architecture, and Kendall's tau between the two rankings (None below two picks or
    when either side is constant)."""

    rows: list[dict[str, Any]]
    kendall_tau: float | None
    pvalue: float | None

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> LatencyComparison:
        from scipy.stats import kendalltau
        tau = pvalue = None
        if len(rows) >= 2:
            result = kendalltau([r["simulated_ms"] for r in rows],
                                [r["measured_ms"] for r in rows])
            if math.isfinite(result.statistic):
                tau, pvalue = float(result.statistic), float(result.pvalue)
        return cls(rows, tau, pvalue)


def measure_picks(doc, picks: Iterable, exported: list[Exported], out: str | Path,
                  timing: HostTiming) -> LatencyComparison:
    """Time the exported ONNX files on this CPU (supernet.host_latency: one forward pass of
    the front's workload, batch x seq tokens), add the measurement to each card, write
    OUT/host_latency.csv and .json beside the simulated latency, print Kendall's tau. An
    architecture picked on several accelerators (a joint search) is compared with the
    simulated latency of its first pick."""
    from nas.core.provenance import provenance, write_result
    from nas.search.outputs import csv_text
    from supernet.export import write_card
    from supernet.host_latency import measure_onnx
    prov = provenance()
    simulated = {}
    for c in picks:
        simulated.setdefault(c.arch.key, c)
    card = exported[0].model_card
    batch, seq = doc.workload.get("batch", 1), min(doc.workload.get("seq", card.block_size),
                                                   card.block_size)
    measured = measure_onnx([e.check.path for e in exported], batch, seq, card.vocab_size,
                            timing)
    rows = []
    for e, lat in zip(exported, measured):
        write_card(replace(e.model_card, host_latency=lat), e.check.path)
        cand = simulated[e.key]
        rows.append({"key": e.key, "params": e.model_card.params,
                     "hardware": cand.hardware.name if cand.hardware else doc.hw,
                     "simulated_ms": cand.latency_ms, "measured_ms": lat.median_ms,
                     "measured_q1_ms": lat.q1_ms, "measured_q3_ms": lat.q3_ms,
                     "file": Path(e.check.path).name})
    comparison = LatencyComparison.of(rows)
    out = Path(out)
    atomic_write_text(out / f"{HOST_LATENCY}.csv", csv_text(rows), "--measure table")
    write_result(out / f"{HOST_LATENCY}.json", {
        "front": str(doc.path), "workload": _workload_key(doc), "timed": measured[0].conditions(),
        "picks": len(rows), "kendall_tau": comparison.kendall_tau,
        "kendall_pvalue": comparison.pvalue, "rows": rows}, prov)
    print(host_latency_summary(comparison, measured[0]) + f"; {out / HOST_LATENCY}.csv, .json")
    return comparison


def host_latency_summary(comparison: LatencyComparison, timed) -> str:
    """The line `nas export --measure` prints."""
    tau = ("n/a" if comparison.kendall_tau is None else
           f"{comparison.kendall_tau:.2f} (p = {comparison.pvalue:.2g})")
    return (f"host latency: median of {timed.repeats} runs after {timed.warmup} warm-up, "
            f"{timed.threads} onnxruntime thread(s), batch {timed.batch} x {timed.seq} tokens, "
            f"{timed.cpu}, load {timed.load_average}; measured vs simulated Kendall tau "
            f"{tau} over {len(comparison.rows)} picks")


def _search_area(doc) -> float | None:
    """The area of a fixed-hardware search's accelerator, when its name is a preset of the
    same hash (None otherwise: a joint search's candidates carry their own)."""
    from costmodel.area import area
    from costmodel.hardware import load_hardware
    try:
        hw = load_hardware(doc.hw)
    except UserError:
        return None
    return area(hw).total_mm2 if hw.hash() == doc.hw_hash else None


def _workload_key(doc) -> str | None:
    from costmodel.workload import Workload
    try:
        return Workload(**doc.workload).key
    except TypeError:
        return None


__all__ = ["MODEL_FORMATS", "HOST_LATENCY", "Exported", "subnet_costs",
           "checkpoint_perplexity", "export_subnet_file", "export_picks_onnx", "front_numbers",
           "ModelExport", "stale_model_files", "LatencyComparison", "measure_picks",
           "host_latency_summary"]
