"""What `nas hw`, `nas profile` and `nas simulate` show and write: text tables of a simulation's
`Report` or a `Profile`, the presets, and their JSON and CSV files.

The command line (nas/cli/hardware.py) parses and calls these; every function here returns text
or writes a file, and never reads the command line. Figures: `costmodel.plots`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from costmodel.area import area
from costmodel.cost import PJ, Cost, OpCost
from costmodel.hardware import PRESETS, HardwareConfig
from costmodel.hwspace import HW_SPACE_PRESETS, HardwareSpace
from costmodel.profile import Profile
from costmodel.simulate import Report
from costmodel.sparsity import AttentionSparsity
from costmodel.workload import Op, Workload
from nas.core.arch import Arch
from nas.core.atomic import atomic_write_text
from nas.core.paths import check_output_file
from nas.core.plotting import check_figure_path

# -- text ------------------------------------------------------------------------------------


def si(x: float, small: bool = False) -> str:
    """Compact SI notation: 1234567 -> '1.23M'; with `small`, 0.000237 -> '237u'."""
    units = [("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0)]
    if small:
        units = [("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12)]
    for unit, scale in units:
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [header, ["-" * w for w in widths]] + rows)


def row_name(name: str, summary: bool) -> str:
    """Table row of an op: decode steps folded ('@t3' -> '@decode'); `summary` drops 'L<i>.'."""
    name = re.sub(r"@t\d+$", "@decode", name)
    return re.sub(r"^L\d+\.", "", name) if summary else name


def is_lm_head(op: Op) -> bool:
    return op.name.split("@")[0] == "lm_head"


def lm_head(wl: Workload, part: float, whole: float, unit: str) -> dict | None:
    """The LM head's part of the total (`unit`: 'FLOPs' or 'cycles') and a line saying it is
    included; None without one."""
    if not wl.vocab:
        return None
    share = part / whole if whole else 0.0
    note = (f"includes an LM head of {wl.vocab:,} words: {100 * share:.1f}% of the {unit}, "
            f"+{100 * part / (whole - part):.1f}% over the model without it "
            "(--vocab 0 leaves it out)")
    return {"vocab": wl.vocab, unit.lower(): part, "share": share, "note": note}


def energy_text(energy_pj: float) -> str:
    return si(energy_pj * PJ, small=True) + "J"


# -- nas hw ----------------------------------------------------------------------------------

def _attention_units(h: HardwareConfig) -> str:
    if h.diag_pes or h.preproc_lanes:                 # ViTALiTy's Taylor attention units
        return f"SA-Diag {h.diag_pes}, pre {h.preproc_lanes}"
    if not h.sparse_engine:
        return "-"
    if h.sparse_allocation == "dynamic":
        return "per head"
    return f"{1 - h.sparse_pe_fraction:.2g}:{h.sparse_pe_fraction:.2g}"


def presets_text() -> str:
    """`nas hw list`: a row per preset, their descriptions, the built-in hardware spaces."""
    def lines(h: HardwareConfig) -> bool:           # MAC lines: no dataflow or mapping
        return h.pe_array == "lines"

    rows = [[n, f"{h.rows}x{h.cols}" + (" lines" if lines(h) else ""),
             "-" if lines(h) else h.dataflow, "-" if lines(h) else h.mapping,
             f"{h.scratchpad_kib:g}K", f"{h.accumulator_kib:g}K",
             f"{h.dram_bytes_per_cycle * h.clock_hz / 1e9:.3g} GB/s", h.sfu,
             _attention_units(h), f"{area(h).total_mm2:.2f}", h.hash()]
            for n, h in PRESETS.items()]
    out = [text_table(["preset", "array", "flow", "mapping", "scratchpad", "accumulator", "DRAM",
                       "sfu", "attention units", "mm2", "hash"], rows), ""]
    out += [f"{n}: {h.description}" for n, h in PRESETS.items()]
    out.append("\narea: costmodel/area.py (40 nm; PE array, SRAMs, non-linear units, control)")
    for name in HW_SPACE_PRESETS:
        space = HardwareSpace.load(name)
        out.append(f"hardware space {name}: {space.size():,} points around {space.base} "
                   f"({', '.join(f for f, _ in space.genes())}); costmodel/spaces/{name}.yaml")
    return "\n".join(out)


def hardware_text(hw: HardwareConfig) -> str:
    """`nas hw show`: the hash, the area and every field as YAML."""
    a = area(hw)
    return (f"# hash: {hw.hash()}\n"
            f"# area: {a.total_mm2:.3f} mm2 at 40 nm (PE array {a.pe_array_mm2:.3f}, scratchpad "
            f"{a.scratchpad_mm2:.3f}, accumulator {a.accumulator_mm2:.3f}, non-linear units "
            f"{a.sfu_mm2:.3f}, other {a.other_mm2:.3f}), leakage {a.leakage_mw:.1f} mW "
            "(costmodel/area.py)\n" + hw.to_yaml())


# -- nas profile -------------------------------------------------------------------------------

def profile_text(prof: Profile, title: str, head: dict | None, summary: bool) -> str:
    """The operator table (rows summed over decode steps, and over layers with `summary`) and
    the class table."""
    agg: dict[str, dict] = {}
    for p in prof.ops:
        row = agg.setdefault(row_name(p.op.name, summary),
                             {"shape": p.op.shape, "class": p.op.cls, "flops": 0, "mops": 0.0})
        row["flops"] += p.flops
        row["mops"] += p.mops
    total = prof.flops or 1
    ops = text_table(["operator", "shape", "class", "FLOPs", "share", "MOPs (B)", "FLOP/B"],
                     [[n, r["shape"], r["class"], si(r["flops"]),
                       f"{100 * r['flops'] / total:.1f}%", si(r["mops"]),
                       f"{r['flops'] / r['mops']:.3g}"] for n, r in agg.items()])
    classes = text_table(["class", "FLOPs", "share", "MOPs (B)", "FLOP/B"],
                         [[c, si(r["flops"]), f"{100 * r['flops_share']:.1f}%", si(r["mops"]),
                           f"{r['intensity']:.3g}"] for c, r in prof.by_class().items()]
                         + [["total", si(prof.flops), "100%", si(prof.mops),
                             f"{prof.intensity:.3g}"]])
    return "\n".join([title] + ([head["note"]] if head else []) + [ops, "", classes])


# -- nas simulate ------------------------------------------------------------------------------

def op_rows(costs: list[OpCost], summary: bool) -> dict[str, dict]:
    """Table rows: costs summed per operator (decode steps folded; layers too with `summary`).
    A row's bound is the one that holds for most of its cycles; utilisation is cycle-weighted."""
    rows: dict[str, dict] = {}
    for c in costs:
        row = rows.setdefault(row_name(c.op.name, summary),
                              {"shape": c.op.shape, "cycles": 0.0, "energy_pj": 0.0, "dense": 0.0,
                               "sparse": 0.0, "bounds": defaultdict(float), "busy": 0.0})
        if row["shape"] != c.op.shape:
            row["shape"] = "(varies)"
        row["cycles"] += c.cycles
        row["energy_pj"] += c.energy_pj
        row["dense"] += c.dense_engine_cycles
        row["sparse"] += c.sparse_engine_cycles
        row["bounds"][c.bound] += c.cycles
        row["busy"] += c.utilization * c.cycles
    for row in rows.values():
        row["bound"] = max(row["bounds"], key=row["bounds"].get)
        row["util"] = row["busy"] / row["cycles"] if row["cycles"] else 0.0
    return rows


def report_text(rep: Report, title: str, notes: list[str], summary: bool,
                engines: bool) -> str:
    """The operator table (with the engines' busy cycles when `engines`) and the class table."""
    total = rep.cycles or 1.0
    ops = text_table(["operator", "shape", "cycles", "share", "energy", "bound", "util"]
                     + (["dense eng", "sparse eng"] if engines else []),
                     [[n, r["shape"], si(r["cycles"]), f"{100 * r['cycles'] / total:.1f}%",
                       energy_text(r["energy_pj"]), r["bound"], f"{100 * r['util']:.0f}%"]
                      + ([si(r["dense"]) if r["dense"] or r["sparse"] else "",
                          si(r["sparse"]) if r["dense"] or r["sparse"] else ""]
                         if engines else [])
                      for n, r in op_rows(rep.ops, summary).items()])
    classes = text_table(["class", "cycles", "share", "energy", "share"],
                         [[c, si(r["cycles"]), f"{100 * r['cycles'] / total:.1f}%",
                           energy_text(r["energy_pj"]),
                           f"{100 * r['energy_pj'] * PJ / (rep.energy_j or 1.0):.1f}%"]
                          for c, r in rep.by_class().items()])
    return "\n".join([title] + notes + [ops, "", classes])


def total_text(rep: Report) -> str:
    return (f"\ntotal: {rep.cycles:,.0f} cycles = {rep.latency_ms:.4g} ms at "
            f"{rep.hw.clock_hz / 1e6:g} MHz, energy {rep.energy_mj:.4g} mJ, EDP "
            f"{rep.edp:.4g} J*s")


def phases_text(rep: Report) -> str:
    """A decoder's prefill, and its decode steps per generated token."""
    wl, clock = rep.workload, rep.hw.clock_hz
    phases = {name: Cost(cycles=p["cycles"], energy_pj=p["energy_pj"], clock_hz=clock)
              for name, p in rep.by_phase().items()}
    none = Cost(cycles=0.0, energy_pj=0.0, clock_hz=clock)
    pre = phases.get("prefill", none)
    out = [f"\nprefill ({wl.seq} tokens): {pre.latency_ms:.4g} ms, {pre.energy_mj:.4g} mJ"]
    if wl.gen:
        dec = phases.get("decode", none)
        out.append(f"decode ({wl.gen} tokens): {dec.latency_ms / wl.gen:.4g} ms and "
                   f"{dec.energy_mj / wl.gen:.4g} mJ per generated token")
    return "\n".join(out)


def on_hw(hw: HardwareConfig) -> str:
    return f"on {hw.name} [{hw.hash()}], mapping {hw.mapping}" + (
        f" ({hw.mapping_objective})" if hw.mapping == "search" else "")


def model_text(rep: Report, model: str, arch: Arch, sparsity: AttentionSparsity | None,
               summary: bool) -> str:
    """Everything `nas simulate --model` prints: the tables, a decoder's phases, the totals."""
    wl, hw = rep.workload, rep.hw
    head = model_lm_head(rep)
    extra = f", sparsity {sparsity.sparsity:.3g} ({sparsity.pattern})" if sparsity else ""
    if sparsity is not None and sparsity.mask_seq not in (None, wl.seq):
        extra += f", {sparsity.mask_seq}-token mask rescaled to {wl.seq}"
    engines = sparsity is not None and hw.sparse_engine   # show both engines' busy cycles
    out = [report_text(rep, f"{model} ({arch.key}) {on_hw(hw)}, {wl.key}{extra}",
                       [head["note"]] if head else [], summary, engines)]
    if wl.mode == "decoder":
        out.append(phases_text(rep))
    return "\n".join(out + [total_text(rep)])


def model_lm_head(rep: Report) -> dict | None:
    return lm_head(rep.workload, sum(c.cycles for c in rep.ops if is_lm_head(c.op)),
                   rep.cycles, "cycles")


def model_data(rep: Report, model: str, arch: Arch) -> dict[str, Any]:
    """What `nas simulate --model --json` writes."""
    return {"model": model, "arch": arch.to_dict(), "lm_head": model_lm_head(rep),
            **rep.to_dict()}


def gemms_text(rep: Report, source: str, summary: bool) -> str:
    """Everything `nas simulate --gemm/--topology` prints."""
    return "\n".join([report_text(rep, f"{len(rep.ops)} {source} {on_hw(rep.hw)}", [], summary,
                                  False), total_text(rep)])


def gemms_data(rep: Report, gemms: list[tuple[str, int, int, int]],
               topology: str | None) -> dict[str, Any]:
    """What `nas simulate --gemm/--topology --json` writes."""
    return {"model": None, "gemms": [{"name": n, "M": m, "K": k, "N": nn}
                                     for n, m, k, nn in gemms],
            "topology": topology, **rep.to_dict(), "workload": None}


def profile_data(prof: Profile, model: str, arch: Arch, wl: Workload, bits: int,
                 head: dict | None) -> dict[str, Any]:
    """What `nas profile --json` writes."""
    return {"model": model, "arch": arch.to_dict(), "workload": vars(wl).copy(), "bits": bits,
            "lm_head": head, **prof.to_dict()}


# -- files -------------------------------------------------------------------------------------

def check_outputs(json_path: str | None = None, csv_path: str | None = None,
                  plot_path: str | None = None) -> None:
    """Check every output path before any work, so a bad one costs nothing and writes nothing
    (nas.core.paths.check_output_file: creates nothing)."""
    if plot_path:
        check_figure_path(plot_path, "--plot figure")
    for path, what in ((json_path, "--json file"), (csv_path, "--csv file")):
        if path:
            check_output_file(path, what)


def _cells(key: str, value: Any) -> dict[str, Any]:
    """One CSV cell per value: a nested dict becomes a column per key (`KEY.SUB`), a list of
    sizes one cell `AxBxC`; no JSON in a cell."""
    if isinstance(value, dict):
        return {k: v for sub, inner in value.items() for k, v in _cells(f"{key}.{sub}",
                                                                          inner).items()}
    if isinstance(value, (list, tuple)):
        return {key: "x".join(map(str, value))}
    return {key: value}


def csv_text(rows: list[dict]) -> str:
    """Rows as CSV, with every key any row has (a nested dict's keys as columns of their own:
    `energy_breakdown_pj.mac`, `mapping.dataflow` ...)."""
    buf = io.StringIO()
    if rows:
        rows = [{k: v for key, value in r.items() for k, v in _cells(key, value).items()}
                for r in rows]
        fields = list(dict.fromkeys(k for r in rows for k in r))   # some rows have more keys
        w = csv.DictWriter(buf, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def write_outputs(data: dict[str, Any], json_path: str | None = None,
                  csv_path: str | None = None) -> list[str]:
    """`data` as JSON and its per-operator rows (`data["ops"]`) as CSV, atomically, where asked;
    the paths written."""
    written = []
    if json_path:
        atomic_write_text(json_path, json.dumps(data, indent=1) + "\n")
        written.append(json_path)
    if csv_path:
        atomic_write_text(csv_path, csv_text(data["ops"]))
        written.append(csv_path)
    return written


__all__ = ["si", "text_table", "row_name", "is_lm_head", "lm_head", "presets_text",
           "hardware_text", "profile_text", "profile_data", "op_rows", "report_text",
           "total_text", "phases_text", "on_hw", "model_text", "model_data", "gemms_text",
           "gemms_data", "check_outputs", "csv_text", "write_outputs"]
