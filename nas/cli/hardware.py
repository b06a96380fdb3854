"""`nas hw list|show`, `nas profile`, `nas simulate`: the accelerator cost model from the shell.

Only numpy/PyYAML-level imports (the cost model never imports torch).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from costmodel.hardware import MAPPING_MODES, MAPPING_OBJECTIVES
from nas.core.atomic import atomic_write_text, writable_target
from nas.core.errors import UserError
from nas.core.plotting import check_figure_path, pyplot, save_figure

EXAMPLES_HW = """examples:
  nas hw list
  nas hw show gemmini-transformer
  nas hw show my_accelerator.yaml      # a YAML file; `base: gemmini` starts from a preset"""

EXAMPLES_PROFILE = """examples:
  nas profile --model bert-base --seq 512
  nas profile --model gpt2 --mode decoder --seq 128 --gen 32 --bits 16 --json gpt2.json
  nas profile --model runs/archs/front-0.yaml --seq 1024 --summary"""

EXAMPLES_SIMULATE = """examples:
  nas simulate --model bert-base --hw gemmini --seq 512
  nas simulate --model bert-base --hw gemmini-transformer --seq 512 --summary --json bert.json
  nas simulate --model gpt2 --hw gemmini-transformer --mode decoder --seq 128 --gen 32
  nas simulate --model deit-tiny --hw vitcod --sparsity 0.9
  nas simulate --model deit-tiny --hw vitality --attention taylor
  nas simulate --model deit-tiny --hw vitcod --attention sparse10
  nas simulate --model L2-d64-h2.2-f128.128-hd32-at.sp25 --hw vitality --seq 1024
  nas simulate --model deit-tiny --hw vitcod \\
      --mask ../shared/data/vitcod/deit_tiny_attention_masks_0.95.npy --plot deit.png
  nas simulate --model bert-base --hw vitcod --seq 512 --rescale-mask \\
      --mask ../shared/data/vitcod/deit_tiny_attention_masks_0.95.npy
  nas simulate --model arch.yaml --hw my_hw.yaml --seq 256 --csv ops.csv
  nas simulate --model bert-base --hw gemmini --mapping gemmini --json bert.json
  nas simulate --gemm 512,768,3072 --gemm 512,3072,768 --hw edge-32x32 --mapping search
  nas simulate --topology gpt2_gemms.csv --hw gemmini --json gemms.json"""


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    hw = sub.add_parser("hw", formatter_class=fmt, epilog=EXAMPLES_HW,
                        help="list or show accelerator hardware presets",
                        description="Built-in accelerator configurations (costmodel/presets) "
                                    "and YAML files describing your own.")
    hw_sub = hw.add_subparsers(dest="hw_command", metavar="{list,show}")
    p = hw_sub.add_parser("list", help="one line per preset")
    p.set_defaults(func=cmd_hw_list)
    p = hw_sub.add_parser("show", help="print a preset or YAML file with every field and its hash")
    p.add_argument("name", help="preset name or hardware YAML file")
    p.set_defaults(func=cmd_hw_show)
    hw.set_defaults(func=lambda args: (hw.print_help(), 2)[1])

    p = sub.add_parser(
        "profile", formatter_class=fmt, epilog=EXAMPLES_PROFILE,
        help="analytic FLOPs, memory operations and arithmetic intensity per operator",
        description="Hardware-independent profile (Kim et al. 2023, Sec. 2.2): FLOPs (a MAC is 2 "
                    "FLOPs; softmax 5, LayerNorm 7, GELU 8, add 1 per element), ideal memory "
                    "operations (each operand and the output moved once, at --bits) and "
                    "arithmetic intensity, per operator, per class and in total.")
    _model_args(p)
    p.add_argument("--bits", type=int, default=8,
                   help="bits per element for memory operations (default: 8)")
    _output_args(p)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser(
        "simulate", formatter_class=fmt, epilog=EXAMPLES_SIMULATE,
        help="cycles, energy and EDP of every operator on an accelerator",
        description="Simulate a model on a Gemmini-like accelerator: per-operator cycles, share, "
                    "energy, bound and utilisation, then totals (cycles, seconds, energy, EDP). "
                    "Decode steps are aggregated per operator. With --sparsity/--mask, attention "
                    "products run on the sparse engine of hardware that has one (e.g. vitcod). "
                    "Instead of a model, --gemm and --topology simulate GEMMs given by hand.")
    _model_args(p, required=False)
    p.add_argument("--gemm", action="append", metavar="M,K,N",
                   help="instead of --model: one GEMM OUT[M,N] = A[M,K] @ B[K,N] (repeatable)")
    p.add_argument("--topology", metavar="CSV",
                   help="instead of --model: GEMMs from a SCALE-Sim GEMM topology file "
                        "(header 'Layer, M, N, K,', one GEMM per row)")
    p.add_argument("--hw", default="gemmini-transformer",
                   help="hardware preset or YAML file (default: gemmini-transformer)")
    p.add_argument("--mapping", choices=MAPPING_MODES,
                   help="how GEMMs are mapped (default: the hardware's `mapping`, scalesim for "
                        "every preset): scalesim = SCALE-Sim's schedule, gemmini = Gemmini's "
                        "tiled_matmul_auto, search = a per-GEMM mapping search")
    p.add_argument("--objective", choices=MAPPING_OBJECTIVES,
                   help="what --mapping search minimises per GEMM (default: the hardware's "
                        "`mapping_objective`, latency)")
    p.add_argument("--sparsity", type=float,
                   help="attention sparsity s in [0, 1): generated masks (see --pattern)")
    p.add_argument("--pattern", default="global-local", choices=("global-local", "random"),
                   help="generated mask pattern for --sparsity (default: global-local)")
    p.add_argument("--mask", help="attention masks .npy saved with numpy.save (bool "
                                  "[layers, heads, n, n], True = pruned), made for --seq tokens")
    p.add_argument("--per-layer-mask", action="store_true",
                   help="with --mask: layer i uses the mask's layer i (default: the mean over "
                        "layers, which is what lookup tables use)")
    p.add_argument("--rescale-mask", action="store_true",
                   help="with --mask: accept masks made for another sequence length; the "
                        "mask's column statistics (dense-column share, non-zeros outside them) "
                        "are rescaled to --seq (default: an error)")
    _output_args(p, simulate=True)
    p.set_defaults(func=cmd_simulate)


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required,
                   help="named model (bert-base, bert-large, gpt2, deit-tiny, survey-6l), "
                        "architecture key, or architecture YAML/JSON file")
    p.add_argument("--seq", type=int, help="sequence (decoder: prompt) length "
                                           "(default: the named model's, else 128)")
    p.add_argument("--batch", type=int, default=1, help="sequences per batch (default: 1)")
    p.add_argument("--mode", choices=("encoder", "decoder"),
                   help="encoder (one pass) or decoder (prefill + --gen KV-cached steps); "
                        "default: the named model's, else encoder")
    p.add_argument("--gen", type=int, default=0, help="decoder: tokens generated (default: 0)")
    p.add_argument("--vocab", type=int,
                   help="LM-head width (vocabulary), 0 for none (default: the named model's, "
                        "e.g. 30522 for bert-base, else 0); the output says when one is included")
    p.add_argument("--attention", metavar="KIND",
                   help="attention kind of every layer: softmax, taylor (ViTALiTy's linear "
                        "Taylor attention) or sparseNN (a fixed local + global pattern keeping "
                        "NN%% of the scores, e.g. sparse10); default: the model's (softmax, or "
                        "the kinds in an architecture key or file)")


def _output_args(p: argparse.ArgumentParser, simulate: bool = False) -> None:
    p.add_argument("--summary", action="store_true",
                   help="aggregate the table over layers (one row per operator type)")
    p.add_argument("--json", metavar="PATH", help="also write everything as JSON")
    if simulate:
        p.add_argument("--plot", metavar="PNG",
                       help="also plot latency per operator type (coloured by its bound), energy "
                            "per component and, with a sparse engine, the attention products' "
                            "dense- and sparse-engine time")
    p.add_argument("--csv", metavar="PATH", help="also write the per-operator rows as CSV")


def _workload(args):
    from costmodel.workload import Workload
    from nas.core.arch import resolve_model

    arch, named = resolve_model(args.model)
    if getattr(args, "attention", None):
        arch = arch.with_attention(args.attention)          # Arch checks the kind
    mode = args.mode or (named.mode if named else "encoder")
    seq = args.seq if args.seq is not None else (named.seq if named else 128)
    vocab = args.vocab if args.vocab is not None else (named.vocab if named else 0)
    return arch, Workload(seq=seq, batch=args.batch, mode=mode, gen=args.gen, vocab=vocab)


def _check_writable(path: Path, what: str) -> None:
    """UserError unless a file can be created in `path`'s folder (probed with a temporary file,
    which is removed at once)."""
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def _check_outputs(args) -> None:
    """Check every output path before any work, so a bad one costs nothing and writes nothing."""
    if getattr(args, "plot", None):
        _check_writable(check_figure_path(args.plot), "figure")
    for flag, what in (("json", "--json file"), ("csv", "--csv file")):
        if getattr(args, flag):
            _check_writable(writable_target(getattr(args, flag), what), what)


def _lm_head(wl, part: float, whole: float, unit: str) -> dict | None:
    """The LM head's part of the total (`unit`: 'FLOPs' or 'cycles') and a line saying it is
    included; None without one."""
    if not wl.vocab:
        return None
    share = part / whole if whole else 0.0
    note = (f"includes an LM head of {wl.vocab:,} words: {100 * share:.1f}% of the {unit}, "
            f"+{100 * part / (whole - part):.1f}% over the model without it "
            "(--vocab 0 leaves it out)")
    return {"vocab": wl.vocab, unit.lower(): part, "share": share, "note": note}


def _is_lm_head(op) -> bool:
    return op.name.split("@")[0] == "lm_head"


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        fields = list(dict.fromkeys(k for r in rows for k in r))   # some rows have more keys
        w = csv.DictWriter(buf, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def _row_key(name: str, summary: bool) -> str:
    """Table row of an op: decode steps folded ('@t3' -> '@decode'); --summary drops 'L<i>.'."""
    name = re.sub(r"@t\d+$", "@decode", name)
    return re.sub(r"^L\d+\.", "", name) if summary else name


def _fmt(x: float, small: bool = False) -> str:
    """Compact SI notation: 1234567 -> '1.23M'; with `small`, 0.000237 -> '237u'."""
    units = [("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0)]
    if small:
        units = [("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12)]
    for unit, scale in units:
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))))


# -- nas hw ------------------------------------------------------------------------------------

def cmd_hw_list(args) -> int:
    from costmodel.area import area
    from costmodel.hardware import PRESETS
    from costmodel.hwspace import HW_SPACE_PRESETS, HardwareSpace

    def engines(h) -> str:
        if h.diag_pes or h.preproc_lanes:                 # ViTALiTy's Taylor attention units
            return f"SA-Diag {h.diag_pes}, pre {h.preproc_lanes}"
        if not h.sparse_engine:
            return "-"
        if h.sparse_allocation == "dynamic":
            return "per head"
        return f"{1 - h.sparse_pe_fraction:.2g}:{h.sparse_pe_fraction:.2g}"

    lines = lambda h: h.pe_array == "lines"  # noqa: E731 - MAC lines: no dataflow or mapping
    rows = [[n, f"{h.rows}x{h.cols}" + (" lines" if lines(h) else ""),
             "-" if lines(h) else h.dataflow, "-" if lines(h) else h.mapping,
             f"{h.scratchpad_kib:g}K", f"{h.accumulator_kib:g}K",
             f"{h.dram_bytes_per_cycle * h.clock_hz / 1e9:.3g} GB/s", h.sfu, engines(h),
             f"{area(h).total_mm2:.2f}", h.hash()] for n, h in PRESETS.items()]
    _print_table(["preset", "array", "flow", "mapping", "scratchpad", "accumulator", "DRAM",
                  "sfu", "attention units", "mm2", "hash"], rows)
    print()
    for n, h in PRESETS.items():
        print(f"{n}: {h.description}")
    print("\narea: costmodel/area.py (40 nm; PE array, SRAMs, non-linear units, control)")
    for name in HW_SPACE_PRESETS:
        space = HardwareSpace.load(name)
        print(f"hardware space {name}: {space.size():,} points around {space.base} "
              f"({', '.join(f for f, _ in space.genes())}); costmodel/spaces/{name}.yaml")
    return 0


def _area_lines(hw) -> list[str]:
    from costmodel.area import area

    a = area(hw)
    return [f"# area: {a.total_mm2:.3f} mm2 at 40 nm (PE array {a.pe_array_mm2:.3f}, scratchpad "
            f"{a.scratchpad_mm2:.3f}, accumulator {a.accumulator_mm2:.3f}, non-linear units "
            f"{a.sfu_mm2:.3f}, other {a.other_mm2:.3f}), leakage {a.leakage_mw:.1f} mW "
            "(costmodel/area.py)"]


def cmd_hw_show(args) -> int:
    from costmodel.hardware import load_hardware

    hw = load_hardware(args.name)
    print(f"# hash: {hw.hash()}")
    for line in _area_lines(hw):
        print(line)
    print(hw.to_yaml(), end="")
    return 0


# -- nas profile -------------------------------------------------------------------------------

def cmd_profile(args) -> int:
    from costmodel.profile import profile
    from costmodel.workload import model_ops

    if args.bits <= 0 or args.bits % 8:
        raise UserError(f"--bits must be a positive multiple of 8, got {args.bits}")
    arch, wl = _workload(args)
    _check_outputs(args)
    prof = profile(model_ops(arch, wl), args.bits / 8)
    head = _lm_head(wl, sum(p.flops for p in prof.ops if _is_lm_head(p.op)), prof.flops, "FLOPs")
    agg: dict[str, dict] = {}
    for p in prof.ops:
        row = agg.setdefault(_row_key(p.op.name, args.summary),
                             {"shape": p.op.shape, "class": p.op.cls, "flops": 0, "mops": 0.0})
        row["flops"] += p.flops
        row["mops"] += p.mops
    print(f"{args.model} ({arch.key}), {wl.key}, {args.bits}-bit memory operations")
    if head:
        print(head["note"])
    total = prof.flops or 1
    _print_table(["operator", "shape", "class", "FLOPs", "share", "MOPs (B)", "FLOP/B"],
                 [[n, r["shape"], r["class"], _fmt(r["flops"]), f"{100 * r['flops'] / total:.1f}%",
                   _fmt(r["mops"]), f"{r['flops'] / r['mops']:.3g}"] for n, r in agg.items()])
    print()
    _print_table(["class", "FLOPs", "share", "MOPs (B)", "FLOP/B"],
                 [[c, _fmt(r["flops"]), f"{100 * r['flops_share']:.1f}%", _fmt(r["mops"]),
                   f"{r['intensity']:.3g}"] for c, r in prof.by_class().items()]
                 + [["total", _fmt(prof.flops), "100%", _fmt(prof.mops), f"{prof.intensity:.3g}"]])
    data = {"model": args.model, "arch": arch.to_dict(), "workload": vars(wl).copy(),
            "bits": args.bits, "lm_head": head, **prof.to_dict()}
    _write_outputs(args, data, data["ops"])
    return 0


# -- nas simulate ------------------------------------------------------------------------------

def _aggregate(costs, summary: bool) -> dict[str, dict]:
    """Table rows: costs summed per operator (decode steps folded; layers too with `summary`).
    A row's bound is the one that holds for most of its cycles; utilisation is cycle-weighted."""
    rows: dict[str, dict] = {}
    for c in costs:
        row = rows.setdefault(_row_key(c.op.name, summary),
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


def _hardware(args):
    """--hw, with --mapping / --objective applied."""
    from costmodel.hardware import load_hardware
    from costmodel.mapping import with_mapping

    hw = load_hardware(args.hw)
    if args.mapping or args.objective:
        hw = with_mapping(hw, args.mapping, args.objective)
        if hw.pe_array == "lines":
            print(f"nas simulate: note: hardware '{hw.name}' has MAC lines, not a systolic "
                  "array: the GEMM mapping does not apply to it", file=sys.stderr)
    return hw


def _gemm_list(args) -> list[tuple[str, int, int, int]]:
    """(name, M, K, N) of --gemm and --topology, checked; [] with --model."""
    from costmodel.workload import load_topology, parse_gemm

    if not (args.gemm or args.topology):
        if not args.model:
            raise UserError("give --model, or GEMMs with --gemm M,K,N / --topology FILE.csv")
        return []
    if args.model:
        raise UserError("give either --model or --gemm/--topology, not both")
    model_only = [flag for flag, given in (
        ("--seq", args.seq is not None), ("--mode", args.mode), ("--gen", args.gen),
        ("--vocab", args.vocab is not None), ("--batch", args.batch != 1),
        ("--attention", args.attention),
        ("--sparsity", args.sparsity is not None), ("--mask", args.mask),
        ("--per-layer-mask", args.per_layer_mask), ("--rescale-mask", args.rescale_mask))
        if given]
    if model_only:
        raise UserError(f"{', '.join(model_only)} apply to --model only, not to --gemm/--topology")
    gemms = [(f"gemm{i}", *parse_gemm(text)) for i, text in enumerate(args.gemm or [])]
    return gemms + (load_topology(args.topology) if args.topology else [])


def _print_report(rep, title: str, notes: list[str], summary: bool, engines: bool) -> None:
    """The operator table, the class table, then (after the caller's notes) nothing else."""
    agg = _aggregate(rep.ops, summary)
    total = rep.cycles or 1.0
    print(title)
    for note in notes:
        print(note)
    _print_table(["operator", "shape", "cycles", "share", "energy", "bound", "util"]
                 + (["dense eng", "sparse eng"] if engines else []),
                 [[n, r["shape"], _fmt(r["cycles"]), f"{100 * r['cycles'] / total:.1f}%",
                   _fmt(r["energy_pj"] * 1e-12, small=True) + "J",
                   r["bound"], f"{100 * r['util']:.0f}%"]
                  + ([_fmt(r["dense"]) if r["dense"] or r["sparse"] else "",
                      _fmt(r["sparse"]) if r["dense"] or r["sparse"] else ""] if engines else [])
                  for n, r in agg.items()])
    print()
    _print_table(["class", "cycles", "share", "energy", "share"],
                 [[c, _fmt(r["cycles"]), f"{100 * r['cycles'] / total:.1f}%",
                   _fmt(r["energy_pj"] * 1e-12, small=True) + "J",
                   f"{100 * r['energy_pj'] * 1e-12 / (rep.energy_j or 1.0):.1f}%"]
                  for c, r in rep.by_class().items()])


def _print_total(rep) -> None:
    print(f"\ntotal: {rep.cycles:,.0f} cycles = {rep.latency_ms:.4g} ms at "
          f"{rep.hw.clock_hz / 1e6:g} MHz, energy {rep.energy_mj:.4g} mJ, EDP {rep.edp:.4g} J*s")


def _on_hw(hw) -> str:
    return f"on {hw.name} [{hw.hash()}], mapping {hw.mapping}" + (
        f" ({hw.mapping_objective})" if hw.mapping == "search" else "")


def _simulate_gemms(args, hw, gemms: list[tuple[str, int, int, int]]) -> int:
    """`nas simulate --gemm/--topology`: the same table, JSON and CSV as for a model."""
    from costmodel.simulate import Report, simulate_ops
    from costmodel.workload import Workload, gemm_ops

    _check_outputs(args)
    rep = Report(simulate_ops(gemm_ops(gemms), hw), hw, Workload())
    source = f"topology {args.topology}" if args.topology and not args.gemm else "GEMMs"
    _print_report(rep, f"{len(gemms)} {source} {_on_hw(hw)}", [], args.summary, False)
    _print_total(rep)
    data = {"model": None, "gemms": [{"name": n, "M": m, "K": k, "N": nn} for n, m, k, nn in gemms],
            "topology": args.topology, **rep.to_dict(), "workload": None}
    _write_outputs(args, data, data["ops"])
    if args.plot:
        _plot(rep, f"{len(gemms)} GEMMs on {hw.name}", args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_simulate(args) -> int:
    from costmodel.simulate import simulate
    from costmodel.sparsity import from_options

    gemms = _gemm_list(args)
    hw = _hardware(args)
    if gemms:
        return _simulate_gemms(args, hw, gemms)
    arch, wl = _workload(args)
    # checked against the sequence here (simulate checks too), before any output is touched
    sparsity = from_options(args.sparsity, args.mask, args.pattern, args.per_layer_mask,
                            args.rescale_mask, seq=wl.seq)
    _check_outputs(args)
    if sparsity is not None and not hw.sparse_engine:
        print(f"nas simulate: note: hardware '{hw.name}' has no sparse attention engine; "
              "attention runs dense", file=sys.stderr)
    rep = simulate(arch, hw, wl, sparsity, rescale_mask=args.rescale_mask)
    head = _lm_head(wl, sum(c.cycles for c in rep.ops if _is_lm_head(c.op)), rep.cycles,
                    "cycles")

    extra = f", sparsity {sparsity.sparsity:.3g} ({sparsity.pattern})" if sparsity else ""
    if sparsity is not None and sparsity.mask_seq not in (None, wl.seq):
        extra += f", {sparsity.mask_seq}-token mask rescaled to {wl.seq}"
    engines = sparsity is not None and hw.sparse_engine   # show both engines' busy cycles
    _print_report(rep, f"{args.model} ({arch.key}) {_on_hw(hw)}, {wl.key}{extra}",
                  [head["note"]] if head else [], args.summary, engines)
    if wl.mode == "decoder":
        phases = rep.by_phase()
        pre = phases.get("prefill", {"cycles": 0.0, "energy_pj": 0.0})
        print(f"\nprefill ({wl.seq} tokens): {pre['cycles'] / hw.clock_hz * 1e3:.4g} ms, "
              f"{pre['energy_pj'] * 1e-9:.4g} mJ")
        if wl.gen:
            dec = phases.get("decode", {"cycles": 0.0, "energy_pj": 0.0})
            print(f"decode ({wl.gen} tokens): {dec['cycles'] / hw.clock_hz * 1e3 / wl.gen:.4g} "
                  f"ms and {dec['energy_pj'] * 1e-9 / wl.gen:.4g} mJ per generated token")
    _print_total(rep)
    data = {"model": args.model, "arch": arch.to_dict(), "lm_head": head, **rep.to_dict()}
    _write_outputs(args, data, data["ops"])
    if args.plot:
        _plot(rep, f"{args.model} on {hw.name}, {wl.key}", args.plot)
        print(f"wrote {args.plot}")
    return 0


# One colour per hardware unit, the same in every panel: in the latency panel it is the unit
# that bounds an operator's time, in the energy panel the unit that spends the energy.
UNIT_COLOURS = {"PE array": "tab:blue", "sparse engine": "tab:cyan", "DRAM": "tab:orange",
                "SFUs": "tab:green", "host CPU": "tab:purple", "SRAM buffers": "tab:brown",
                "pre/post-processors": "tab:olive", "SA-Diag": "tab:pink", "leakage": "tab:gray"}
BOUND_UNITS = {"compute": "PE array", "sparse": "sparse engine", "memory": "DRAM",
               "sfu": "SFUs", "host": "host CPU", "preproc": "pre/post-processors",
               "sa-diag": "SA-Diag"}
# energy component (OpCost.energy key) -> (bar label, unit)
ENERGY_PARTS = {"mac": ("MACs", "PE array"), "rf": ("PE registers", "PE array"),
                "scratchpad": ("scratchpad", "SRAM buffers"),
                "accumulator": ("accumulator", "SRAM buffers"), "dram": ("DRAM", "DRAM"),
                "sfu": ("SFUs", "SFUs"), "host": ("host CPU", "host CPU"),
                "static": ("static (leakage)", "leakage")}


def _label_bars(ax, ends: list[float], ys: list[float]) -> None:
    """Write each bar's value at its end (small bars stay readable next to large ones)."""
    for x, y in zip(ends, ys):
        ax.text(x, y, f" {x:.3g}" if x < 1000 else f" {x:,.0f}", va="center", fontsize=7)
    ax.set_xlim(0, 1.18 * max(ends, default=0) or 1)   # room for the labels


def _plot(rep, title: str, path: str) -> None:
    """Latency per operator type (summed over layers and decode steps, split by the unit that
    bounds it), energy per component and, when attention products ran on a sparse engine, their
    dense-engine, sparse-engine and DRAM busy time against their latency."""
    plt = pyplot()
    ms = 1e3 / rep.hw.clock_hz
    by_type: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    busy: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for c in rep.ops:
        name = _row_key(c.op.name, summary=True)
        by_type[name][BOUND_UNITS[c.bound]] += c.cycles * ms
        if c.sparse_engine_cycles:
            for i, v in enumerate((c.dense_engine_cycles, c.sparse_engine_cycles,
                                   c.memory_cycles, c.cycles)):
                busy[name][i] += v * ms
    names = sorted(by_type, key=lambda n: sum(by_type[n].values()))
    panels = 3 if busy else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.4 * panels, max(3.6, 0.3 * len(names) + 1.8)),
                             gridspec_kw={"width_ratios": [1.3, 1, 1][:panels]})
    used: set[str] = set()

    ax = axes[0]
    left = [0.0] * len(names)
    for unit, colour in UNIT_COLOURS.items():
        vals = [by_type[n].get(unit, 0.0) for n in names]
        if any(vals):
            ax.barh(names, vals, left=left, color=colour)
            left = [x + v for x, v in zip(left, vals)]
            used.add(unit)
    _label_bars(ax, left, list(range(len(names))))
    ax.set_title("latency per operator type, coloured by its bound", fontsize=10)
    ax.set_xlabel("latency (ms)")

    ax = axes[1]
    breakdown = rep.energy_breakdown()
    energy = [(label, unit, breakdown[key] * 1e-9) for key, (label, unit) in ENERGY_PARTS.items()
              if breakdown.get(key, 0.0) > 0]
    ax.barh([e[0] for e in energy], [e[2] for e in energy],
            color=[UNIT_COLOURS[e[1]] for e in energy])
    _label_bars(ax, [e[2] for e in energy], list(range(len(energy))))
    ax.invert_yaxis()                                   # the legend's order, top down
    used.update(e[1] for e in energy)
    ax.set_title("energy per component", fontsize=10)
    ax.set_xlabel("energy (mJ)")

    if busy:
        ax = axes[2]
        ops = sorted(busy)
        h = 0.27
        for j, unit in enumerate(("PE array", "sparse engine", "DRAM")):
            ys = [i + (j - 1) * h for i in range(len(ops))]   # legend order, top down
            vals = [busy[n][j] for n in ops]
            ax.barh(ys, vals, height=h, color=UNIT_COLOURS[unit])
            _label_bars(ax, vals, ys)
            used.add(unit)
        ax.scatter([busy[n][3] for n in ops], range(len(ops)), marker="|", s=1500,
                   color="black", linewidths=2, zorder=3)
        ax.set_yticks(range(len(ops)), ops)
        ax.invert_yaxis()
        ax.set_title("attention products: busy time per unit\n"
                     "(dense engine = PE array; black tick = latency)", fontsize=10)
        ax.set_xlabel("busy time (ms)")

    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for u, c in UNIT_COLOURS.items() if u in used]
    fig.legend(handles, [u for u in UNIT_COLOURS if u in used], loc="lower center",
               ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle(f"{title}: {rep.latency_ms:.4g} ms, {rep.energy_mj:.4g} mJ", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_figure(fig, path)


def _write_outputs(args, data: dict, rows: list[dict]) -> None:
    if args.json:
        atomic_write_text(args.json, json.dumps(data, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.csv:
        flat = [{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()}
                for r in rows]
        atomic_write_text(args.csv, _csv_text(flat))
        print(f"wrote {args.csv}")
