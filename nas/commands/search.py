"""`nas build-lut`, `nas search`, `nas export`, `nas quickstart`: from a trained supernet and a
hardware config to a Pareto front of architectures.

Heavy imports (torch through the supernet, matplotlib, pyarrow) happen inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

from nas.errors import UserError

EXAMPLES_LUT = """examples:
  nas build-lut --space tiny --hw gemmini-transformer --seq 64 --mode decoder --vocab 96 \\
      --out runs/lut-tiny.parquet
  nas build-lut --space survey --hw gemmini-transformer --seq 1024 --mode decoder \\
      --vocab 33278 --out runs/lut-survey.parquet"""

EXAMPLES_SEARCH = """examples:
  nas search --ckpt runs/supernet --lut runs/lut-tiny.parquet --out runs/search
  nas search --ckpt runs/supernet --hw gemmini-transformer --objective latency \\
      --max-ppl 12 --out runs/search-lat
  nas search --ckpt runs/supernet --lut runs/lut-tiny.parquet --out runs/search --resume"""

EXAMPLES_EXPORT = """examples:
  nas export --front runs/search --pick best-ppl min-edp +0.1 +1
  nas export --front runs/search --pick 'ppl<=12' 0 L3-d128-h4.4.2-f512.256.512-hd32
  nas export --front runs/search --pick all --out runs/archs"""


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "build-lut", formatter_class=fmt, epilog=EXAMPLES_LUT,
        help="simulate every operator group of a search space once; write a lookup table",
        description=_wrap("Enumerate the distinct operator groups a search space can produce (one "
                    "attention group per (d, heads), one FFN group per (d, ffn), one head group "
                    "per d), simulate each once on the hardware for the workload, and write a "
                    "Parquet table with its metadata (hardware and its hash, workload, space, "
                    "simulator version). A candidate's cost is the sum of its groups' entries."))
    p.add_argument("--space", default="tiny", help="search-space preset or YAML (default: tiny)")
    p.add_argument("--hw", default="gemmini-transformer",
                   help="hardware preset or YAML (default: gemmini-transformer)")
    _workload_args(p)
    p.add_argument("--out", required=True, help="output Parquet file")
    p.set_defaults(func=cmd_build_lut)

    p = sub.add_parser(
        "search", formatter_class=fmt, epilog=EXAMPLES_SEARCH,
        help="evolutionary search (DEAP NSGA-II) of perplexity vs EDP/latency/energy/params",
        description=_wrap(
            "Search the supernet's space for the Pareto front of perplexity (inherited "
            "weights, fixed validation subset) against a hardware objective from a "
            "lookup table. Constraints are feasibility (constrained domination), not "
            "penalties. Writes front.csv, front.json, history.csv, search.json and "
            "pareto.png to --out, and checkpoints state.pkl every generation "
            "(--resume continues it)."))
    p.add_argument("--ckpt", required=True, help="supernet run directory or checkpoint file")
    p.add_argument("--lut", help="lookup table from `nas build-lut` (default: build one into "
                                 "--out for --hw and the supernet's context and vocabulary)")
    p.add_argument("--hw", help="hardware preset or YAML; with --lut, the table must match it "
                                "(default: gemmini-transformer)")
    p.add_argument("--out", required=True, help="output directory")
    _search_args(p)
    p.add_argument("--split", default="valid", help="validation split (default: valid)")
    p.add_argument("--max-tokens", type=int, default=8192,
                   help="tokens of the validation subset (default: 8192)")
    p.add_argument("--batch-size", type=int, default=16, help="evaluation batch size")
    p.add_argument("--workers", type=int, default=1,
                   help="processes evaluating perplexity in parallel (same results as 1)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads per evaluating process (default: torch's choice; "
                        "1 with --workers > 1)")
    p.add_argument("--resume", action="store_true", help="continue the search saved in --out")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "export", formatter_class=fmt, epilog=EXAMPLES_EXPORT,
        help="write chosen front architectures as YAML (for nas train-subnet / nas simulate)",
        description=_wrap(
            "Pick architectures from a search's front and write each as an architecture "
            "YAML file. Picks: 'all'; 'best-ppl'; 'min-edp', 'min-latency', "
            "'min-energy', 'min-params'; '+X' (lowest EDP within X perplexity of the "
            "largest subnet); 'ppl<=X' (lowest EDP with perplexity <= X); an index into "
            "front.csv (0 = lowest perplexity); or an architecture key."))
    p.add_argument("--front", required=True, help="search output directory (or its front.json)")
    p.add_argument("--pick", nargs="+", default=["best-ppl", "min-edp", "+0.1", "+1"],
                   help="what to export (default: best-ppl min-edp +0.1 +1)")
    p.add_argument("--out", help="output directory (default: FRONT/export)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "quickstart", formatter_class=fmt,
        help="the whole job on built-in defaults: train, build the table, search, export",
        description=_wrap("Train a small supernet on the `tiny` space with the built-in offline "
                    "corpus, build the lookup table, run a reduced search and export the front, "
                    "all into --out. Each stage is skipped if its output exists, so re-running "
                    "resumes."),
        epilog="example:\n  nas quickstart --out runs/quickstart")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=int, default=250, help="supernet training steps (default 250)")
    p.add_argument("--hw", default="gemmini-transformer", help="hardware preset or YAML")
    p.add_argument("--population", type=int, default=16, help="population (default 16)")
    p.add_argument("--generations", type=int, default=8, help="generations (default 8)")
    p.add_argument("--max-tokens", type=int, default=2048,
                   help="validation tokens per perplexity (default 2048)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: torch's choice; 1 helps on a busy machine)")
    p.set_defaults(func=cmd_quickstart)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=90)


def _workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seq", type=int, default=128,
                   help="tokens per sequence (decoder: prompt length) (default 128)")
    p.add_argument("--batch", type=int, default=1, help="sequences per batch (default 1)")
    p.add_argument("--mode", choices=("encoder", "decoder"), default="decoder",
                   help="encoder pass, or decoder prefill + --gen generated tokens "
                        "(default decoder)")
    p.add_argument("--gen", type=int, default=0, help="decoder: generated tokens (default 0)")
    p.add_argument("--vocab", type=int, default=0, help="LM-head width (0 = no LM head)")
    p.add_argument("--sparsity", type=float, help="attention sparsity for the sparse engine")
    p.add_argument("--mask", help="attention mask .npy for the sparse engine (True = pruned)")


def _search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", choices=("edp", "latency", "energy", "params"), default="edp",
                   help="hardware objective minimised beside perplexity (default edp)")
    p.add_argument("--algorithm", choices=("nsga2", "random", "evolution"), default="nsga2",
                   help="nsga2 (default); random; or evolution (HAT-style single objective: "
                        "perplexity under the hardware constraints, or --objective under "
                        "--max-ppl alone)")
    p.add_argument("--population", type=int, default=40, help="population (default 40)")
    p.add_argument("--generations", type=int, default=40, help="generations (default 40)")
    p.add_argument("--mutation-prob", type=float, default=0.2,
                   help="per-gene mutation probability (default 0.2)")
    p.add_argument("--crossover-prob", type=float, default=0.9,
                   help="crossover probability per pair (default 0.9)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-ppl", type=float, help="constraint: perplexity <= X")
    p.add_argument("--max-latency-ms", type=float, help="constraint: latency <= X ms")
    p.add_argument("--max-energy-mj", type=float, help="constraint: energy <= X mJ")
    p.add_argument("--max-params", type=float, help="constraint: parameters <= X")


def _workload(args: argparse.Namespace):
    from costmodel.workload import Workload
    return Workload(seq=args.seq, batch=args.batch, mode=args.mode, gen=args.gen,
                    vocab=args.vocab)


def _sparsity(args: argparse.Namespace):
    if args.sparsity is None and not args.mask:
        return None
    from costmodel.sparsity import AttentionSparsity
    if args.mask:
        return AttentionSparsity.from_mask(args.mask)
    return AttentionSparsity(sparsity=args.sparsity)


# -- build-lut -------------------------------------------------------------------------------

def build_table(space, hw, workload, out: Path, sparsity=None):
    """Build, save and time a table; print one summary line."""
    from lut.table import CostTable
    t0 = time.perf_counter()
    table = CostTable.build(space, hw, workload, sparsity=sparsity, progress=True)
    table.save(out)
    print(f"{table.describe()}\nbuilt in {time.perf_counter() - t0:.1f} s -> {out}")
    return table


def cmd_build_lut(args: argparse.Namespace) -> int:
    from costmodel.hardware import load_hardware
    from nas.arch import SearchSpace

    build_table(SearchSpace.load(args.space), load_hardware(args.hw), _workload(args),
                Path(args.out), _sparsity(args))
    return 0


# -- search ----------------------------------------------------------------------------------

def _config(args: argparse.Namespace):
    from nas.search import SearchConfig
    return SearchConfig(objective=args.objective, algorithm=args.algorithm,
                        population=args.population, generations=args.generations,
                        mutation_prob=args.mutation_prob, crossover_prob=args.crossover_prob,
                        seed=args.seed, max_ppl=args.max_ppl,
                        max_latency_ms=args.max_latency_ms, max_energy_mj=args.max_energy_mj,
                        max_params=args.max_params)


def run_search(ckpt: str, out: Path, config, lut: str | None = None, hw_name: str | None = None,
               split: str = "valid", max_tokens: int | None = 8192, batch_size: int = 16,
               workers: int = 1, resume: bool = False, threads: int | None = None) -> int:
    """Everything `nas search` does (also used by `nas quickstart`)."""
    from costmodel.hardware import load_hardware
    from costmodel.workload import Workload
    from lut.table import CostTable
    from nas.search import STATE_FILE, Search, SupernetPerplexity, summary_lines, write_outputs

    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    state = out / STATE_FILE
    if state.exists() and not resume:
        raise UserError(f"{out} already holds a search ({STATE_FILE}); pass --resume to "
                        f"continue it or choose another --out")
    quality = SupernetPerplexity(ckpt, split=split, max_tokens=max_tokens,
                                 batch_size=batch_size,
                                 threads=threads or (1 if workers > 1 else None))
    ev = quality.evaluator        # loads the supernet (and fails early on a bad checkpoint)
    print(f"supernet {ev.checkpoint}: space '{ev.space.name}' ({ev.space.size():,} "
          f"architectures), context {ev.block_size}, vocabulary {ev.vocab_size}, "
          f"{ev.tokens} {split} tokens per perplexity")
    hw = load_hardware(hw_name) if hw_name else None
    if lut:
        table = CostTable.load(lut, expect_hw=hw, expect_space=ev.space)
        print(table.describe())
    else:
        hw = hw or load_hardware("gemmini-transformer")
        workload = Workload(seq=ev.block_size, batch=1, mode="decoder", vocab=ev.vocab_size)
        path = out / "lut.parquet"
        if path.exists():
            table = CostTable.load(path, expect_hw=hw, expect_space=ev.space,
                                   expect_workload=workload)
            print(table.describe())
        else:
            table = build_table(ev.space, hw, workload, path)
    search = Search(ev.space, quality, table, config, vocab=ev.vocab_size,
                    max_seq=ev.block_size, workers=workers, state_path=state,
                    identity={"perplexity": quality.describe()}, progress=True)
    result = search.run(resume=resume)
    info = {"command": " ".join(["nas"] + sys.argv[1:]),
            "perplexity_source": quality.describe(), "workers": workers,
            "space": ev.space.to_dict()}
    paths = write_outputs(result, out, table, info)
    for line in summary_lines(result):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    return run_search(args.ckpt, Path(args.out), _config(args), lut=args.lut, hw_name=args.hw,
                      split=args.split, max_tokens=args.max_tokens, batch_size=args.batch_size,
                      workers=args.workers, resume=args.resume, threads=args.threads)


# -- export ----------------------------------------------------------------------------------

def pick_candidates(doc: dict, pick: str) -> list[dict]:
    """Front rows selected by one --pick expression (see `nas export --help`)."""
    front = sorted(doc["front"], key=lambda r: r["perplexity"])
    if not front:
        raise UserError("the front is empty (no feasible candidate)")
    fields = {"edp": "edp", "latency": "latency_ms", "energy": "energy_mj", "params": "params"}

    def lowest_edp(limit: float, what: str) -> list[dict]:
        within = [r for r in front if r["perplexity"] <= limit]
        if not within:
            raise UserError(f"--pick {pick}: no front architecture with perplexity <= "
                            f"{limit:.4g} ({what})")
        return [min(within, key=lambda r: (r["edp"], r["perplexity"]))]

    if pick == "all":
        return front
    if pick == "best-ppl":
        return [front[0]]
    if pick.startswith("min-") and pick[4:] in fields:
        return [min(front, key=lambda r: (r[fields[pick[4:]]], r["perplexity"]))]
    try:
        if pick.startswith("+"):
            base = doc["largest"]["perplexity"]
            return lowest_edp(base + float(pick[1:]), f"largest subnet's {base:.4g} {pick}")
        if pick.startswith("ppl<="):
            return lowest_edp(float(pick[5:]), "given limit")
    except ValueError:
        prefix = "+" if pick.startswith("+") else "ppl<="
        raise UserError(f"--pick {pick}: expected a number after '{prefix}'") from None
    if pick.isdigit():
        if int(pick) >= len(front):
            raise UserError(f"--pick {pick}: the front has {len(front)} architectures "
                            f"(indices 0..{len(front) - 1})")
        return [front[int(pick)]]
    for r in front:
        if r["key"] == pick:
            return [r]
    raise UserError(f"--pick {pick}: not 'all', 'best-ppl', 'min-edp|latency|energy|params', "
                    f"'+X', 'ppl<=X', an index, or a key on the front")


def export_front(front: str | Path, picks: list[str], out: str | Path | None = None,
                 skip_unmatched: bool = False) -> dict[Path, list[str]]:
    """Write the picked front architectures as YAML files; returns {file: [picks]}."""
    import yaml
    from nas.arch import Arch

    src = Path(front)
    path = src / "front.json" if src.is_dir() else src
    if not path.is_file():
        raise UserError(f"no front.json at {path} (run `nas search --out DIR` first)")
    try:
        doc = json.loads(path.read_text())
        doc["front"], doc["largest"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{path}: not a front.json written by `nas search`") from None
    out = Path(out) if out else path.parent / "export"
    out.mkdir(parents=True, exist_ok=True)
    written: dict[Path, list[str]] = {}
    for pick in picks:
        try:
            rows = pick_candidates(doc, pick)
        except UserError as exc:
            if not skip_unmatched:
                raise
            print(f"skipped: {exc}")
            continue
        for row in rows:
            arch = Arch.from_dict(row["arch"])
            target = out / f"{arch.key}.yaml"
            header = (f"# exported by `nas export --pick {pick}` from {path}\n"
                      f"# perplexity {row['perplexity']:.4f}, EDP {row['edp']:.4e} J s, "
                      f"latency {row['latency_ms']:.4f} ms, energy {row['energy_mj']:.5f} mJ, "
                      f"{row['params']:,} parameters on {doc.get('hw')} (table "
                      f"{doc.get('table_id')})\n")
            target.write_text(header + yaml.safe_dump(arch.to_dict(), sort_keys=False,
                                                      default_flow_style=None))
            written.setdefault(target, []).append(pick)
    for target, names in written.items():
        print(f"{', '.join(names)}: {target}")
    return written


def cmd_export(args: argparse.Namespace) -> int:
    export_front(args.front, args.pick, args.out)
    return 0


# -- quickstart ------------------------------------------------------------------------------

def cmd_quickstart(args: argparse.Namespace) -> int:
    """train -> lookup table -> search -> export, each stage skipped when already done."""
    from costmodel.hardware import load_hardware
    from costmodel.workload import Workload
    from nas.search import SearchConfig

    out = Path(args.out)
    for name in ("steps", "population", "generations", "max_tokens"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    hw = load_hardware(args.hw)
    t0 = time.perf_counter()
    run_dir, lut_path, search_dir = out / "supernet", out / "lut.parquet", out / "search"

    # 1. supernet (continues an interrupted run)
    from supernet.checkpoint import load_checkpoint, space_of
    from supernet.config import TrainConfig
    from supernet.train import train
    done_steps = (load_checkpoint(run_dir, "last")["step"]
                  if (run_dir / "last.pt").is_file() else None)
    if done_steps is not None and done_steps >= args.steps:
        print(f"[1/4] supernet: exists ({done_steps} steps), {run_dir}")
    else:
        print(f"[1/4] supernet: {args.steps} steps on the `tiny` space, built-in corpus"
              f"{f' (continuing from step {done_steps})' if done_steps else ''} -> {run_dir}")
        train(TrainConfig(out=str(run_dir), space="tiny", dataset="builtin", steps=args.steps,
                          eval_interval=max(1, args.steps // 3), eval_tokens=args.max_tokens,
                          seed=args.seed, resume=done_steps is not None,
                          threads=args.threads))

    # 2. lookup table for the supernet's space, context and vocabulary
    from lut.table import CostTable
    ckpt = load_checkpoint(run_dir, "best")
    space, model_config = space_of(ckpt), ckpt["model_config"]
    workload = Workload(seq=model_config["block_size"], batch=1, mode="decoder",
                        vocab=model_config["vocab_size"])
    if lut_path.is_file():
        CostTable.load(lut_path, expect_hw=hw, expect_space=space, expect_workload=workload)
        print(f"[2/4] lookup table: exists, {lut_path}")
    else:
        print(f"[2/4] lookup table: {hw.name}, workload {workload.key}")
        build_table(space, hw, workload, lut_path)
    del ckpt

    # 3. search (a reduced population/generations so it stays within minutes)
    config = SearchConfig(population=args.population, generations=args.generations,
                          seed=args.seed)
    if (search_dir / "front.json").is_file():
        print(f"[3/4] search: done, {search_dir}")
    else:
        print(f"[3/4] search: NSGA-II with population {config.population} and "
              f"{config.generations} generations (reduced from the survey's 40 x 40 to stay "
              f"within minutes; `nas search` defaults to 40 x 40)")
        run_search(str(run_dir), search_dir, config, lut=str(lut_path), hw_name=args.hw,
                   max_tokens=args.max_tokens, threads=args.threads,
                   resume=(search_dir / "state.pkl").is_file())

    # 4. export
    export_dir = search_dir / "export"
    if export_dir.is_dir() and any(export_dir.glob("*.yaml")):
        print(f"[4/4] export: exists, {export_dir}")
    else:
        print("[4/4] export: best perplexity, lowest EDP, lowest EDP within +0.1 and +1 "
              "perplexity of the largest subnet")
        export_front(search_dir, ["best-ppl", "min-edp", "+0.1", "+1"], export_dir,
                     skip_unmatched=True)

    print(f"\ndone in {time.perf_counter() - t0:.0f} s. Results in {out}:\n"
          f"  supernet        {run_dir} (best.pt, log.jsonl, loss plot)\n"
          f"  lookup table    {lut_path}\n"
          f"  Pareto front    {search_dir / 'front.csv'}, {search_dir / 'front.json'}\n"
          f"  plot            {search_dir / 'pareto.png'}\n"
          f"  all candidates  {search_dir / 'history.csv'}; settings and hypervolume in "
          f"{search_dir / 'search.json'}\n"
          f"  architectures   {export_dir}/*.yaml (for `nas train-subnet --arch` and "
          f"`nas simulate --model`)")
    return 0
