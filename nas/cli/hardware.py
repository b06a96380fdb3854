"""`nas hw list|show`, `nas profile`, `nas simulate`: the accelerator cost model from the shell.

This module parses the command line and calls the cost model; what is printed, written and
plotted comes from `costmodel.report` and `costmodel.plots`. Only numpy/PyYAML-level imports
(the cost model never imports torch).
"""

from __future__ import annotations

import argparse
import sys

from costmodel.hardware import DEFAULT_HARDWARE, MAPPING_MODES, MAPPING_OBJECTIVES
from nas.core.errors import UserError

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
    p.add_argument("--hw", default=DEFAULT_HARDWARE,
                   help=f"hardware preset or YAML file (default: {DEFAULT_HARDWARE})")
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


def _context(model: str) -> int | None:
    """The context (tokens) of a named model, None for an architecture."""
    from nas.core.arch import NAMED_MODELS
    return NAMED_MODELS[model].seq if model in NAMED_MODELS else None


def workload_notes(command: str, hw, wl, sparsity=None, context: int | None = None) -> None:
    """Notes on standard error for what is allowed but likely not meant: attention sparsity on
    `hw` without a sparse engine (it runs dense), and sequences longer than the model's
    `context` (a named model's) or than any model's (costmodel.workload.MAX_CONTEXT)."""
    from costmodel.workload import MAX_CONTEXT
    if sparsity is not None and hw is not None and not hw.sparse_engine:
        print(f"nas {command}: note: hardware '{hw.name}' has no sparse attention engine; "
              "attention runs dense", file=sys.stderr)
    tokens, limit = wl.seq + wl.gen, min(context or MAX_CONTEXT, MAX_CONTEXT)
    if tokens > limit:
        whose = f"the model's context of {limit:,}" if limit < MAX_CONTEXT else \
            f"{MAX_CONTEXT:,}, longer than any model's context"
        print(f"nas {command}: note: {tokens:,} tokens per sequence (--seq + --gen) is more "
              f"than {whose}: the costs are extrapolated (attention grows with the square of "
              f"the length)", file=sys.stderr)


def _write(args, data: dict, rep=None, title: str = "") -> None:
    """--json, --csv and --plot, as asked."""
    from costmodel.report import write_outputs

    for path in write_outputs(data, args.json, args.csv):
        print(f"wrote {path}")
    if getattr(args, "plot", None):
        from costmodel.plots import plot_report
        plot_report(rep, title, args.plot)
        print(f"wrote {args.plot}")


def _check_outputs(args) -> None:
    from costmodel.report import check_outputs
    check_outputs(args.json, args.csv, getattr(args, "plot", None))


# -- nas hw ------------------------------------------------------------------------------------

def cmd_hw_list(args) -> int:
    from costmodel.report import presets_text
    print(presets_text())
    return 0


def cmd_hw_show(args) -> int:
    from costmodel.hardware import load_hardware
    from costmodel.report import hardware_text
    print(hardware_text(load_hardware(args.name)), end="")
    return 0


# -- nas profile -------------------------------------------------------------------------------

def cmd_profile(args) -> int:
    from costmodel.profile import profile
    from costmodel.report import is_lm_head, lm_head, profile_data, profile_text
    from costmodel.workload import model_ops

    if args.bits <= 0 or args.bits % 8:
        raise UserError(f"--bits must be a positive multiple of 8, got {args.bits}")
    arch, wl = _workload(args)
    _check_outputs(args)
    workload_notes("profile", None, wl, None, _context(args.model))
    prof = profile(model_ops(arch, wl), args.bits / 8)
    head = lm_head(wl, sum(p.flops for p in prof.ops if is_lm_head(p.op)), prof.flops, "FLOPs")
    print(profile_text(prof, f"{args.model} ({arch.key}), {wl.key}, {args.bits}-bit memory "
                             "operations", head, args.summary))
    _write(args, profile_data(prof, args.model, arch, wl, args.bits, head))
    return 0


# -- nas simulate ------------------------------------------------------------------------------

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


def _simulate_gemms(args, hw, gemms: list[tuple[str, int, int, int]]) -> int:
    """`nas simulate --gemm/--topology`: the same table, JSON and CSV as for a model."""
    from costmodel.report import gemms_data, gemms_text
    from costmodel.simulate import Report, simulate_ops
    from costmodel.workload import Workload, gemm_ops

    _check_outputs(args)
    rep = Report(simulate_ops(gemm_ops(gemms), hw), hw, Workload())
    source = f"topology {args.topology}" if args.topology and not args.gemm else "GEMMs"
    print(gemms_text(rep, source, args.summary))
    _write(args, gemms_data(rep, gemms, args.topology), rep, f"{len(gemms)} GEMMs on {hw.name}")
    return 0


def cmd_simulate(args) -> int:
    from costmodel.report import model_data, model_text
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
    workload_notes("simulate", hw, wl, sparsity, _context(args.model))
    rep = simulate(arch, hw, wl, sparsity, rescale_mask=args.rescale_mask)
    print(model_text(rep, args.model, arch, sparsity, args.summary))
    _write(args, model_data(rep, args.model, arch), rep, f"{args.model} on {hw.name}, {wl.key}")
    return 0
