"""`nas build-lut`, `nas search`, `nas export`, `nas quickstart`: argument parsing only; the
work is done by `nas.pipeline`.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from nas.core.distributed import add_executor_options
from nas.core.errors import UserError
from nas.core.options import add_options, add_progress_option, given

EXAMPLES_LUT = """examples:
  nas build-lut --space tiny --hw gemmini-transformer --seq 64 --mode decoder --vocab 96 \\
      --out runs/lut-tiny.parquet
  nas build-lut --space survey --hw gemmini-transformer --seq 1024 --mode decoder \\
      --vocab 33278 --out runs/lut-survey.parquet"""

EXAMPLES_SEARCH = """examples:
  nas search --ckpt runs/supernet --out runs/search          # builds OUT/lut.parquet
  nas search --ckpt runs/supernet --lut runs/lut-tiny.parquet --out runs/search
  nas search --ckpt runs/supernet --hw gemmini --objective latency --max-ppl 12 \\
      --out runs/search-lat
  nas search --out runs/search --generations 60 --resume    # with the search's own options
  nas search --ckpt runs/supernet --out runs/exact --no-racing     # every candidate on all tokens
  nas search --ckpt runs/supernet --hw-space edge-hw --max-area-mm2 2 --out runs/cosearch
  nas search --ckpt runs/supernet --hw-space edge-hw --hw-search joint --max-area-mm2 2 \\
      --out runs/joint
  nas search --ckpt runs/supernet --out runs/search --executor ray --ray-address HEAD:6379 \\
      --workers 16                          # perplexity in 16 Ray actors on a cluster
writes: OUT/front.csv, front.json, history.csv, search.json (after every generation and at the
end; their columns: README), pareto.png, state.pkl (and lut.parquet when no --lut is given);
OUT is locked while the search runs (a second run into it fails at once)"""

EXAMPLES_EXPORT = """examples:
  nas export --front runs/search                 # best-ppl min-edp +0.1 +1
  nas export --front runs/search --pick 'ppl<=12' 0 L3-d128-h4.4.2-f512.256.512-hd32
  nas export --front runs/search --pick all --out runs/archs
  nas export --front runs/search --pick all --onnx --measure    # + ONNX, cards, host latency
writes one architecture YAML per pick (for `nas train-subnet --arch` and `nas simulate
--model`) and pareto.png with the picks circled, into --out; with --onnx (or --format) also
KEY.onnx (.pt2, .pt) and its model card KEY.onnx.card.json per architecture; with --measure
also host_latency.csv and host_latency.json."""


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=90)


def _parser(sub: argparse._SubParsersAction, name: str, help: str,  # noqa: A002 (argparse's)
            description: str, epilog: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog=epilog, help=help, description=_wrap(description))


def register(sub: argparse._SubParsersAction) -> None:
    _add_build_lut(sub)
    _add_search(sub)
    _add_export(sub)
    _add_quickstart(sub)


def _add_build_lut(sub: argparse._SubParsersAction) -> None:
    p = _parser(
        sub, "build-lut", epilog=EXAMPLES_LUT,
        help="simulate every operator group of a search space once; write a lookup table",
        description="Enumerate the distinct operator groups a search space can produce (one "
                    "attention group per (d, heads, attention kind), one FFN group per (d, "
                    "ffn), one head group per d), simulate each once on the hardware for the "
                    "workload, and write a Parquet table with what it was built for (hardware "
                    "and its hash, workload, space, attention sparsity, simulator and format "
                    "version). A candidate's cost is the sum of its groups' entries. `nas "
                    "search --lut` refuses a table built for anything else.")
    p.add_argument("--space", default="tiny", help="search-space preset or YAML (default: tiny)")
    p.add_argument("--hw", default="gemmini-transformer",
                   help="hardware preset or YAML (default: gemmini-transformer)")
    _mapping_arg(p)
    p.add_argument("--seq", type=int, default=128,
                   help="tokens per sequence (decoder: prompt length) (default: 128)")
    p.add_argument("--batch", type=int, default=1, help="sequences per batch (default: 1)")
    p.add_argument("--mode", choices=("encoder", "decoder"), default="decoder",
                   help="encoder pass, or decoder prefill + --gen generated tokens "
                        "(default: decoder)")
    p.add_argument("--gen", type=int, default=0, help="decoder: generated tokens (default: 0)")
    p.add_argument("--vocab", type=int, default=0,
                   help="LM-head width; 0 = no LM head (default: 0)")
    _sparsity_args(p)
    p.add_argument("--out", required=True, help="output Parquet file")
    add_progress_option(p)
    p.set_defaults(func=cmd_build_lut)


def _add_search(sub: argparse._SubParsersAction) -> None:
    from nas.pipeline import HW_EXHAUSTIVE_MAX, HW_SEARCHES, HW_WARM_START   # no torch
    p = _parser(
        sub, "search", epilog=EXAMPLES_SEARCH,
        help="evolutionary search (DEAP NSGA-II) of perplexity vs EDP/latency/energy/params",
        description="Search the supernet's space for the Pareto front of perplexity "
                    "(inherited weights, fixed validation subset) against a hardware objective "
                    "from a lookup table. Constraints are feasibility (constrained "
                    "domination), not penalties. The table is --lut (checked against the "
                    "supernet's space and workload, the sparsity and --hw), else "
                    "OUT/lut.parquet, built on first use for --hw and the supernet's context "
                    "and vocabulary. The state is saved every generation; --resume continues "
                    "it (also with more --generations).")
    # the options --resume takes from the search state when they are left off: absent from
    # the parsed arguments unless typed (SUPPRESS), SearchJob's defaults otherwise
    kept = argparse.SUPPRESS
    p.add_argument("--ckpt", default=kept,
                   help="supernet run directory or checkpoint file (required unless --resume)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--lut", default=kept,
                   help="lookup table from `nas build-lut` (default: OUT/lut.parquet, built "
                        "when missing)")
    p.add_argument("--hw", default=kept,
                   help="hardware preset or YAML. With --lut: the table must be built "
                        "for it; without --hw the table's hardware is used. Without "
                        "--lut: the hardware to build the table for (default: "
                        "gemmini-transformer)")
    _mapping_arg(p, default=kept)
    p.add_argument("--hw-space", default=kept,
                   help="search the hardware too: a hardware-space preset (edge-hw, "
                        "edge-hw-wide, survey-hw: `nas hw list`) or YAML, searched as "
                        "--hw-search says; bound the area with --max-area-mm2. Not with --lut, "
                        "--hw or --mapping")
    p.add_argument("--hw-search", choices=HW_SEARCHES, default=kept,
                   help="with --hw-space: bilevel (the default: NSGA-II over architectures, "
                        "each on its best hardware point for --objective within "
                        "--max-area-mm2; exact over a cost matrix of every point, built once "
                        "by --workers processes and cached in OUT/luts, for spaces up to "
                        "--hw-exhaustive-max points, else a local search from the best points "
                        "of the nearest architectures; the anchors run on their best points "
                        "too) or joint (one gene per hardware field in the genome; a lookup "
                        "table per point, built on first use and cached in OUT/luts)")
    p.add_argument("--hw-exhaustive-max", type=int, default=kept,
                   help="bilevel: enumerate hardware spaces of at most this many points "
                        f"(default: {HW_EXHAUSTIVE_MAX:,})")
    p.add_argument("--hw-warm-start", type=float, default=kept,
                   help="bilevel: the share of the evaluations first spent searching the "
                        "architecture alone on the space's base point (sequential design's "
                        "first step, state in OUT/warm-start); the bilevel search then starts "
                        "from that search's front and last population, so its front is never "
                        "worse than sequential design given the best hardware for its "
                        f"architecture. 0: start from random architectures (default: "
                        f"{HW_WARM_START:g})")
    _sparsity_args(p, default=kept)
    add_options(p, _search_config())
    _perplexity_args(p, default=kept)
    p.add_argument("--calibration", action=argparse.BooleanOptionalAction, default=kept,
                   help="score the calibrated perplexity when the supernet run has a "
                        "calibration.json (`nas calibrate`), the raw one beside it in "
                        "front.csv's ppl_raw (default: on; --no-calibration: raw)")
    p.add_argument("--resume", action="store_true",
                   help="continue the search saved in --out, with the options it was started "
                        "with (those typed must match them; --generations, --batch-size, "
                        "--workers, --executor, --ray-address, --threads and --progress may "
                        "change)")
    add_progress_option(p)
    p.set_defaults(func=cmd_search)


def _perplexity_args(p: argparse.ArgumentParser, default: Any = None) -> None:
    p.add_argument("--split", default=default or "valid", choices=("train", "valid", "test"),
                   help="dataset split perplexity is measured on (default: valid)")
    p.add_argument("--max-tokens", type=int, default=default or 8192,
                   help="tokens of that split per perplexity: the first N (default: 8192)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="evaluation windows per batch (memory vs speed; default: 16)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes evaluating perplexity in parallel, and building a "
                        "bilevel search's cost matrix (same results as 1; default: 1)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads per evaluating process (default: chosen from the "
                        "model size; 1 with --workers > 1)")
    add_executor_options(p, "perplexity evaluations")


def _add_export(sub: argparse._SubParsersAction) -> None:
    from nas.search.outputs import PICK_HELP, default_picks
    p = _parser(
        sub, "export", epilog=EXAMPLES_EXPORT,
        help="write chosen front architectures as YAML (for nas train-subnet / nas simulate)",
        description=f"Pick architectures from a search's front and write each as an "
                    f"architecture YAML file. Picks: {PICK_HELP}.")
    p.add_argument("--front", required=True, help="search output directory (or its front.json)")
    p.add_argument("--pick", nargs="+", default=None,
                   help=f"what to export (default: {' '.join(default_picks())}; with another "
                        f"--objective, min- and +X use it)")
    p.add_argument("--out", help="output directory (default: FRONT/export)")
    _model_file_args(p)
    p.set_defaults(func=cmd_export)


def _model_file_args(p: argparse.ArgumentParser) -> None:
    from nas.export_onnx import MODEL_FORMATS
    from supernet.host_latency import HostTiming
    g = p.add_argument_group(
        "model files and host latency", _wrap(
        "Each picked architecture's weights, copied out of the supernet the search scored, "
        "as a static model file, checked against PyTorch (max abs difference of the logits "
        "<= 1e-4, else an error), with a model card: architecture, the front's perplexity "
        "(raw and calibrated), simulated latency, energy, EDP, area and hardware."))
    g.add_argument("--format", choices=list(MODEL_FORMATS),
                   help="write model files: onnx (onnxruntime), pt2 (torch.export) or pt "
                        "(`nas eval`, `nas sample`)")
    g.add_argument("--onnx", dest="format", action="store_const", const="onnx",
                   help="same as --format onnx")
    g.add_argument("--ckpt", help="the supernet (default: the one the search scored, named in "
                                  "FRONT/search.json)")
    g.add_argument("--measure", action="store_true",
                   help="time each ONNX file on this machine's CPU with onnxruntime (one "
                        "forward pass of the front's workload) and write the measured latency "
                        "beside the simulated one, with Kendall's tau between them (implies "
                        "--onnx)")
    add_options(g, HostTiming)


def _add_quickstart(sub: argparse._SubParsersAction) -> None:
    p = _parser(
        sub, "quickstart", epilog="example:\n  nas quickstart --out runs/quickstart",
        help="the whole job on built-in defaults: train, build the table, search, export",
        description="Train a small supernet on the `tiny` space with the built-in offline "
                    "corpus, build the lookup table, run a reduced search (racing perplexity, "
                    "as `nas search`) and export the front, all into --out. Each stage is "
                    "skipped if its output exists, so re-running resumes.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=int, default=250, help="supernet training steps (default: 250)")
    p.add_argument("--hw", default="gemmini-transformer",
                   help="hardware preset or YAML (default: gemmini-transformer)")
    p.add_argument("--population", type=int, default=16, help="population (default: 16)")
    p.add_argument("--generations", type=int, default=8, help="generations (default: 8)")
    p.add_argument("--max-tokens", type=int, default=2048,
                   help="validation tokens per perplexity (default: 2048)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and search (default: 0)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: chosen from the model size)")
    add_progress_option(p)
    p.set_defaults(func=cmd_quickstart)


def _search_config():
    from nas.search.config import SearchConfig
    return SearchConfig


def _mapping_arg(p: argparse.ArgumentParser, default: Any = None) -> None:
    p.add_argument("--mapping", choices=("scalesim", "gemmini", "search"), default=default,
                   help="how GEMMs are mapped onto the array, overriding the hardware's "
                        "`mapping` field: scalesim (SCALE-Sim's fold model), gemmini "
                        "(Gemmini's software tiler), search (a per-operator mapping search); "
                        "default: the hardware's")


def _sparsity_args(p: argparse.ArgumentParser, default: Any = None) -> None:
    p.add_argument("--sparsity", type=float, default=default,
                   help="attention sparsity in [0, 1) for hardware with a sparse engine "
                        "(default: dense attention)")
    p.add_argument("--mask", default=default,
                   help="attention mask .npy (True = pruned) for the sparse engine")
    p.add_argument("--rescale-mask", action="store_true", default=default or False,
                   help="with --mask: allow a mask of another size than the sequence (its "
                        "column statistics are rescaled)")


def _sparsity(args: argparse.Namespace, seq: int | None = None):
    """The AttentionSparsity of --sparsity/--mask (None: dense), checked against `seq`."""
    from costmodel.sparsity import from_options
    return from_options(getattr(args, "sparsity", None), getattr(args, "mask", None),
                        rescale_mask=getattr(args, "rescale_mask", False), seq=seq)


def cmd_build_lut(args: argparse.Namespace) -> int:
    from costmodel.hardware import load_hardware
    from costmodel.workload import Workload
    from costmodel.mapping import with_mapping
    from nas.cli.hardware import workload_notes
    from nas.core.arch import SearchSpace
    from nas.core.paths import check_output_file
    from nas.pipeline import build_table

    check_output_file(args.out, "--out lookup table")
    workload = Workload(seq=args.seq, batch=args.batch, mode=args.mode, gen=args.gen,
                        vocab=args.vocab)
    hw = with_mapping(load_hardware(args.hw), args.mapping)
    space, sparsity = SearchSpace.load(args.space), _sparsity(args, workload.seq)
    workload_notes("build-lut", hw, workload, sparsity)
    build_table(space, hw, workload, Path(args.out), sparsity, progress=args.progress)
    return 0


# `nas search` options that are SearchJob fields of the same name (the rest: SearchConfig)
JOB_OPTIONS = ("ckpt", "lut", "hw", "mapping", "hw_space", "hw_search", "hw_exhaustive_max",
               "hw_warm_start", "rescale_mask", "split", "max_tokens", "calibration",
               "batch_size", "workers", "executor", "ray_address", "threads", "progress")


def cmd_search(args: argparse.Namespace) -> int:
    from nas.pipeline import SearchJob, resume_job, run_search

    typed = {k: getattr(args, k) for k in JOB_OPTIONS if hasattr(args, k)}
    if hasattr(args, "sparsity") or hasattr(args, "mask"):
        typed["sparsity"] = _sparsity(args)
    config = given(_search_config(), args)
    if args.resume:
        job = resume_job(Path(args.out), typed, config)
    elif "ckpt" not in typed:
        raise UserError("give --ckpt, the supernet to search (a run folder or checkpoint); "
                        "only --resume takes it from the search in --out")
    else:
        job = SearchJob(out=Path(args.out), config=_search_config()(**config), **typed)
    run_search(job)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nas.pipeline import export_front
    export_front(args.front, args.pick, args.out, models=_model_export(args))
    return 0


def _model_export(args: argparse.Namespace):
    """--format/--onnx/--measure as a nas.export_onnx.ModelExport (None: YAML files only)."""
    from nas.core.options import from_args
    from nas.export_onnx import ModelExport
    from supernet.host_latency import HostTiming
    timing_typed = [f"--{name}" for name in given(HostTiming, args)]
    if timing_typed and not args.measure:
        raise UserError(f"{', '.join(timing_typed)}: only with --measure")
    if args.format is None and not args.measure:
        if args.ckpt:
            raise UserError("--ckpt names the supernet of --onnx/--format; give one of them")
        return None
    return ModelExport(format=args.format or "onnx", ckpt=args.ckpt,
                       measure=from_args(HostTiming, args) if args.measure else None)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from nas.pipeline import Quickstart, quickstart
    quickstart(Quickstart(out=Path(args.out), steps=args.steps, hw=args.hw,
                          population=args.population, generations=args.generations,
                          max_tokens=args.max_tokens, seed=args.seed, threads=args.threads,
                          progress=args.progress))
    return 0
