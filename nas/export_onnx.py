"""Exported subnets with their model cards, from a checkpoint or from a search's front.

    export_subnet_file   one subnet of a supernet checkpoint (`nas export-subnet`): the file
                         (.pt, .onnx or .pt2, `supernet.export`), checked against PyTorch,
                         and its card, with the perplexity measured on the checkpoint's data
                         and, given a hardware or a lookup table, the simulated costs
    export_picks_onnx    the picks of a front (`nas export --onnx`): one file and card per
                         architecture, the card's numbers the front's (perplexity as the search
                         scored it, latency, energy, EDP, area)
    subnet_costs         one architecture's simulated costs on a hardware, or from a table

torch, onnx and the cost model are imported inside the functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from nas.core.arch import Arch
from nas.core.errors import UserError


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
                      ckpt: str | Path | None = None) -> list[Exported]:
    """Export every pick of a front to `out`/KEY`suffix` (.onnx, .pt2 or .pt) with its card.

    `doc` is the front (`nas.search.outputs.read_front`), `picks` its chosen candidates
    (`picks_of`'s values, flattened; an architecture picked twice is exported once). The
    subnets come from the supernet the search scored (search.json's perplexity_source, or
    `ckpt`); each card carries the candidate's numbers as the front records them."""
    from supernet.checkpoint import load_checkpoint
    from nas.verify import search_source
    source = search_source(doc) if ckpt is None else {"ckpt": str(ckpt)}
    data = load_checkpoint(source["ckpt"], "best")
    unique = {c.arch.key: c for c in picks}
    if not unique:
        raise UserError(f"nothing to export: no pick of {doc.path}")
    out = Path(out)
    area_of_search = _search_area(doc)
    exported = []
    for key, cand in unique.items():
        perplexity, costs = front_numbers(cand, doc, source, data, area_of_search)
        exported.append(export_subnet_file(data, cand.arch, out / f"{key}{suffix}",
                                           perplexity, costs))
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


__all__ = ["Exported", "subnet_costs", "checkpoint_perplexity", "export_subnet_file",
           "export_picks_onnx", "front_numbers"]
