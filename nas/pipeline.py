"""The whole job, one stage after the other: supernet -> workload -> table -> search -> front
-> export. The `nas` commands, `nas quickstart`, the studies and the benchmarks all run these
functions (or, for a search on their own perplexity and cost sources,
`nas.search.build.build_search`, which `run_search` runs too), so a stage works the same from
every entry point: the same default evaluator (racing), the same state file, the same outputs.

    build_table     simulate a space's operator groups once on a hardware (`nas build-lut`)
    load_table      read a table and check it against the space, workload, sparsity, hardware
    run_search      supernet + table -> search -> front files (`nas search`)
    export_front    front -> architecture YAML files (`nas export`)
    quickstart      all of it on built-in defaults (`nas quickstart`)

torch is imported only by the stages that need the supernet.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas.core.arch import SearchSpace
from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.search.candidate import Candidate
from nas.search.config import SearchConfig
from nas.search.outputs import default_picks, picks_of, read_front

LUT_FILE = "lut.parquet"
# How a search with --hw-space chooses the hardware (nas.search.bilevel, JointCosts below).
HW_SEARCHES = ("bilevel", "joint")
# Bilevel search: hardware spaces of at most this many genomes are enumerated (a cost matrix
# over every point within the area budget, built once); larger ones are searched locally.
# edge-hw-wide (57,600 points) is enumerated.
HW_EXHAUSTIVE_MAX = 100_000
# Bilevel search: the share of the evaluations first spent searching the architecture on the
# space's base point (nas.search.bilevel.run_bilevel: a warm start from sequential design).
HW_WARM_START = 0.5


# -- lookup tables -------------------------------------------------------------------------------

def build_table(space: SearchSpace, hw, workload, out: str | Path | None = None,
                sparsity=None, progress: bool = True):
    """Build a table, save it to `out` (atomically) when given, print one summary line."""
    from lut.table import CostTable
    t0 = time.perf_counter()
    table = CostTable.build(space, hw, workload, sparsity=sparsity, progress=progress)
    if out is not None:
        table.save(out)
    print(f"{table.describe()}\nbuilt in {time.perf_counter() - t0:.2f} s"
          + (f" -> {out}" if out is not None else ""))
    return table


def load_table(path: str | Path, space: SearchSpace, workload, sparsity=None, hw=None):
    """A saved table, refused (one line naming every difference) unless it was built for this
    space, workload and sparsity, and for `hw` when given (else the table's hardware is used)."""
    from lut.table import CostTable
    table = CostTable.load(path)
    table.check(space, workload, sparsity=sparsity, hw=hw)
    return table


def supernet_workload(model):
    """What a supernet's candidates are costed on: its context as a decoder prefill, with its
    vocabulary as the LM head (`model`: a SupernetEvaluator or a ModelConfig)."""
    from costmodel.workload import Workload
    return Workload(seq=model.block_size, batch=1, mode="decoder", vocab=model.vocab_size)


# -- search --------------------------------------------------------------------------------------

@dataclass
class SearchJob:
    """Everything `nas search` takes (see `nas search --help` for each)."""

    ckpt: str
    out: Path
    config: SearchConfig = field(default_factory=SearchConfig)
    lut: str | None = None          # a table from `nas build-lut`; None: build one into out
    hw: str | None = None           # preset or YAML; None: the table's, else gemmini-transformer
    mapping: str | None = None      # override of the hardware's GEMM mapping mode
    hw_space: str | None = None     # search the hardware too: a hardware-space preset or YAML
    hw_search: str | None = None    # with hw_space: "bilevel" (the default) or "joint"
    hw_exhaustive_max: int = HW_EXHAUSTIVE_MAX  # bilevel: enumerate spaces up to this size
    hw_warm_start: float = HW_WARM_START        # bilevel: share of evaluations warm-starting
    sparsity: Any = None            # costmodel.sparsity.AttentionSparsity, None = dense
    rescale_mask: bool = False      # allow a mask of another size than the context
    split: str = "valid"
    max_tokens: int | None = 8192
    batch_size: int = 16
    workers: int = 1
    threads: int | None = None
    resume: bool = False
    progress: bool = True

    def check(self) -> None:
        from nas.search.bilevel import WARM_STATE
        from nas.search.checkpoint import STATE_FILE
        if self.workers < 1:
            raise UserError(f"--workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be >= 1, got {self.threads}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.hw_space and (self.lut or self.hw or self.mapping):
            raise UserError("--hw-space searches the hardware too: give none of --lut, --hw, "
                            "--mapping with it (the space sets the mapping)")
        if self.hw_search is not None and not self.hw_space:
            raise UserError("--hw-search chooses how --hw-space is searched: give --hw-space")
        if self.hw_search is not None and self.hw_search not in HW_SEARCHES:
            raise UserError(f"--hw-search must be one of {', '.join(HW_SEARCHES)}, got "
                            f"{self.hw_search!r}")
        if self.hw_exhaustive_max < 1:
            raise UserError(f"--hw-exhaustive-max must be >= 1, got {self.hw_exhaustive_max}")
        if not 0.0 <= self.hw_warm_start < 1.0:
            raise UserError(f"--hw-warm-start must be in [0, 1), got {self.hw_warm_start}")
        state = Path(self.out) / STATE_FILE
        warm = Path(self.out) / WARM_STATE / STATE_FILE
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} is a file; give a folder")
        if warm.exists() and not state.exists() and not self.resume:
            raise UserError(f"{self.out} already holds the warm start of a bilevel search "
                            f"({WARM_STATE}/{STATE_FILE}); pass --resume to continue it or "
                            f"choose another --out")
        if state.exists() and not self.resume:
            raise UserError(f"{self.out} already holds a search ({STATE_FILE}); pass --resume "
                            f"to continue it or choose another --out")
        if self.resume and not state.is_file() and not warm.is_file():
            raise UserError(f"--resume: no search state at {state} (nothing to continue; "
                            f"run without --resume)")


@dataclass
class SearchOutcome:
    result: Any                     # nas.search.engine.SearchResult
    costs: Any                      # the cost source: FixedHardware (its .table) or JointCosts
    paths: dict[str, Path]


def hardware_point(hw, hw_space=None):
    """A hardware config as the search records it: name, hash, area (costmodel.area) and,
    when it is a point of `hw_space`, the values of the space's fields and its hardware file."""
    from costmodel.area import area
    from nas.search.candidate import HardwarePoint
    if hw_space is None:
        return HardwarePoint(hw.name, hw.hash(), area(hw).total_mm2)
    return HardwarePoint(hw.name, hw.hash(), area(hw).total_mm2,
                         tuple((f, getattr(hw, f)) for f, _ in hw_space.genes()),
                         tuple(hw_space.hardware_dict(hw).items()))


class JointCosts:
    """The cost source (nas.search.costs) of a joint architecture x hardware search: each
    design's cost from the lookup table of its hardware point, built on first use and cached
    on disk by hardware hash (lut.cache.TableCache). The anchors run on the space's point
    nearest its base preset."""

    def __init__(self, hw_space, cache):
        import hashlib
        import json

        from costmodel.hardware import load_hardware
        self.hw_space, self.cache = hw_space, cache
        self.anchor_hw = hw_space.decode(hw_space.encode(load_hardware(hw_space.base)))
        blob = json.dumps(hw_space.to_dict(), sort_keys=True, default=str).encode()
        self.id = "hw-space-" + hashlib.sha1(blob).hexdigest()[:12]
        self._points: dict[str, Any] = {}

    def point(self, hw):
        if hw.hash() not in self._points:
            self._points[hw.hash()] = hardware_point(hw, self.hw_space)
        return self._points[hw.hash()]

    def __call__(self, designs) -> list[tuple[Any, Any]]:
        return [(self.cache.table(d.hw).cost(d.arch), self.point(d.hw)) for d in designs]

    def usage(self) -> str:
        c = self.cache
        return (f"lookup tables: {c.built} built, {c.loaded} loaded from {c.folder}, "
                f"{c.hits} reused in memory")


def run_search(job: SearchJob) -> SearchOutcome:
    """Load the supernet, get the costs (load and check --lut, reuse OUT/lut.parquet, or build
    it; with --hw-space, a table per hardware point in OUT/luts), run the search (resuming it
    when asked), write the front files and print a summary."""
    from nas.search.build import build_search
    from nas.search.checkpoint import STATE_FILE

    job.check()
    hw, hw_space = _hardware(job)           # a bad --hw or --hw-space fails before the supernet
    quality = _supernet_quality(job)
    ev = quality.evaluator
    workload = supernet_workload(ev)
    if job.sparsity is not None:
        job.sparsity.check_seq(workload.seq, rescale=job.rescale_mask)
    info = {"perplexity_source": quality.describe(), "space": ev.space.to_dict()}
    if hw_space is not None and (job.hw_search or "bilevel") == "bilevel":
        costs, source = _bilevel_costs(job, hw_space, ev.space, workload)
        result, info["hw_search"] = _run_bilevel(job, quality, costs, hw_space)
    else:
        costs, source = (_joint_costs(job, hw_space, ev.space, workload) if hw_space is not None
                         else _fixed_costs(job, hw, ev.space, workload))
        search = build_search(job.config, ev.space, quality, costs, vocab=ev.vocab_size,
                              max_seq=ev.block_size, workers=job.workers,
                              state_path=Path(job.out) / STATE_FILE,
                              identity={"perplexity": quality.describe()}, progress=job.progress)
        result = search.run(resume=job.resume)
    paths = _write_results(job, result, source, info)
    if hw_space is not None:
        print(costs.usage())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return SearchOutcome(result, costs, paths)


def _hardware(job: SearchJob):
    """--hw (with --mapping) and --hw-space, loaded (None where not given)."""
    from costmodel.hardware import load_hardware
    from costmodel.mapping import with_mapping
    hw = with_mapping(load_hardware(job.hw), job.mapping) if job.hw else None
    hw_space = None
    if job.hw_space:
        from costmodel.hwspace import HardwareSpace
        hw_space = HardwareSpace.load(job.hw_space)
    return hw, hw_space


def _supernet_quality(job: SearchJob):
    """The supernet's perplexity on the job's tokens, loaded (a bad checkpoint fails here)."""
    from supernet.perplexity import SupernetPerplexity
    quality = SupernetPerplexity(job.ckpt, split=job.split, max_tokens=job.max_tokens,
                                 batch_size=job.batch_size,
                                 threads=job.threads or (1 if job.workers > 1 else None))
    ev = quality.evaluator
    print(f"supernet {ev.checkpoint}: space '{ev.space.name}' ({ev.space.size():,} "
          f"architectures), context {ev.block_size}, vocabulary {ev.vocab_size}, "
          f"{ev.tokens} {job.split} tokens per perplexity")
    return quality


def _fixed_costs(job: SearchJob, hw, space: SearchSpace, workload):
    """The architecture-only search's table (--lut, else OUT/lut.parquet, built when missing)
    on `hw` (None: the table's, or gemmini-transformer for a new one); and where its costs
    come from, for the front files."""
    from costmodel.hardware import DEFAULT_HARDWARE, load_hardware
    from costmodel.mapping import with_mapping
    from lut.table import CostTable
    from nas.search.costs import FixedHardware
    from nas.search.outputs import table_source
    own_table = Path(job.out) / LUT_FILE
    if job.lut:
        table = CostTable.load(job.lut)
        if hw is None and job.mapping:      # the table's hardware, mapped as asked
            hw = with_mapping(table.hardware, job.mapping)
        table.check(space, workload, sparsity=job.sparsity, hw=hw)
        if hw is None:
            print(f"hardware: '{table.hw_name}', the table's (no --hw given)")
        print(table.describe())
    else:
        hw = hw or with_mapping(load_hardware(DEFAULT_HARDWARE), job.mapping)
        if own_table.is_file():
            table = load_table(own_table, space, workload, job.sparsity, hw)
            print(table.describe())
        else:
            table = build_table(space, hw, workload, own_table, job.sparsity,
                                progress=job.progress)
    return FixedHardware(table, hardware_point(table.hardware)), table_source(table)


def _joint_costs(job: SearchJob, hw_space, space: SearchSpace, workload):
    """The joint search's cost source (a table per hardware point, cached in OUT/luts), and
    where its costs come from, for the front files."""
    from dataclasses import asdict

    from lut.cache import TableCache
    cache = TableCache(space, workload, job.sparsity, folder=Path(job.out) / "luts")
    costs = JointCosts(hw_space, cache)
    print(f"hardware space '{hw_space.name}': {hw_space.size():,} points around "
          f"'{hw_space.base}'; lookup tables built per point on first use, cached in "
          f"{cache.folder}")
    source = {"ids": {"hw_space": hw_space.name, "table_id": costs.id},
              "table": f"one lookup table per hardware point of '{hw_space.name}', "
                       f"cached in {cache.folder}",
              "workload": asdict(workload), "hw_space": hw_space.to_dict()}
    return costs, source


def bilevel_costs(hw_space, space: SearchSpace, workload, config: SearchConfig,
                  folder: Path | None, sparsity=None, workers: int = 1,
                  exhaustive_max: int = HW_EXHAUSTIVE_MAX, progress: bool = False):
    """The bilevel search's cost source (nas.search.bilevel.BilevelCosts): each architecture
    on its best point of `hw_space` for `config`'s objective within its area budget. Exact
    over a cost matrix of every point within the budget (lut.matrix.CostMatrix, simulated by
    `workers` processes and cached in `folder`) when the space has at most `exhaustive_max`
    genomes, else a local search over per-point tables cached in `folder`."""
    import hashlib
    import json

    from costmodel.area import area
    from costmodel.hardware import load_hardware
    from lut.cache import TableCache
    from lut.matrix import CostMatrix
    from nas.search.bilevel import BilevelCosts, ExhaustiveHardware, LocalHardware

    budget = config.max_area_mm2

    def point(hw):
        return hardware_point(hw, hw_space)

    if hw_space.size() <= exhaustive_max:
        points = [hw for hw in hw_space.points()
                  if budget is None or area(hw).total_mm2 <= budget]
        if not points:
            raise UserError(f"hardware space '{hw_space.name}': no point fits in "
                            f"--max-area-mm2 {budget:g}")
        matrix = CostMatrix.build(space, points, workload, sparsity, folder=folder,
                                  workers=workers, progress=progress)
        solver = ExhaustiveHardware(matrix, [area(hw).total_mm2 for hw in points], config)
        return BilevelCosts(solver, point, f"bilevel-{matrix.id}")
    cache = TableCache(space, workload, sparsity, folder=folder)
    start = hw_space.decode(hw_space.encode(load_hardware(hw_space.base)))
    memo = folder / "bilevel-local.json" if folder is not None else None
    solver = LocalHardware(hw_space, cache, lambda hw: area(hw).total_mm2, config, start,
                           memo_path=memo)
    blob = json.dumps(hw_space.to_dict(), sort_keys=True, default=str).encode()
    return BilevelCosts(solver, point, "bilevel-local-" + hashlib.sha1(blob).hexdigest()[:12])


def _bilevel_costs(job: SearchJob, hw_space, space: SearchSpace, workload):
    """`bilevel_costs` for the job (its cost matrix or tables in OUT/luts), and where its costs
    come from, for the front files."""
    from dataclasses import asdict
    folder = Path(job.out) / "luts"
    print(f"hardware space '{hw_space.name}': {hw_space.size():,} points around "
          f"'{hw_space.base}'; bilevel search: each architecture on its best point for "
          f"--objective {job.config.objective} within the area budget")
    costs = bilevel_costs(hw_space, space, workload, job.config, folder, job.sparsity,
                          job.workers, job.hw_exhaustive_max, job.progress)
    print(f"inner hardware solve: {costs.solver.describe()}; cached in {folder}")
    source = {"ids": {"hw_space": hw_space.name, "table_id": costs.id},
              "table": f"bilevel search: {costs.solver.describe()} of '{hw_space.name}', "
                       f"cached in {folder}",
              "workload": asdict(workload), "hw_space": hw_space.to_dict()}
    return costs, source


def warm_costs(costs, hw_space, max_area_mm2: float | None):
    """The warm start of a bilevel search (`costs`: nas.pipeline.bilevel_costs): sequential
    design's first step, the architecture alone on the space's base point (stepped down to fit
    the area budget), its table from the bilevel search's matrix or table cache."""
    import random

    from costmodel.hardware import load_hardware
    from lut.matrix import MatrixTables
    from nas.search.bilevel import ExhaustiveHardware
    from nas.search.costs import FixedHardware
    genome = hw_space.encode(load_hardware(hw_space.base))
    if max_area_mm2 is not None:
        genome = hw_space.within_area(genome, max_area_mm2, random.Random(0))
    hw = hw_space.decode(genome)
    solver = costs.solver
    tables = MatrixTables(solver.matrix) if isinstance(solver, ExhaustiveHardware) \
        else solver.tables
    return FixedHardware(tables.table(hw), hardware_point(hw))


def _run_bilevel(job: SearchJob, quality, costs, hw_space) -> tuple[Any, dict[str, Any]]:
    """The bilevel search of the job, warm-started as --hw-warm-start says (its state in
    OUT/warm-start), and how, for search.json."""
    from nas.search.bilevel import run_bilevel
    ev = quality.evaluator
    warm = warm_costs(costs, hw_space, job.config.max_area_mm2) if job.hw_warm_start else None
    result, first = run_bilevel(job.config, ev.space, quality, costs, warm, job.hw_warm_start,
                                vocab=ev.vocab_size, max_seq=ev.block_size,
                                workers=job.workers, folder=Path(job.out),
                                identity={"perplexity": quality.describe()},
                                resume=job.resume, progress=job.progress)
    how = {"mode": "bilevel", "inner_solve": costs.solver.describe(), "warm_start": None}
    if first is not None:
        how["warm_start"] = {"share": job.hw_warm_start, "hardware": warm.hardware.name,
                             "generations": first.generations_done,
                             "architectures": len(first.history)}
        print(f"warm start: {len(first.history)} architectures searched on "
              f"'{warm.hardware.name}' ({first.generations_done} generations), the bilevel "
              f"search started from their front and last population")
    return result, how


def _write_results(job: SearchJob, result, source: dict[str, Any],
                   info: dict[str, Any]) -> dict[str, Path]:
    """The front files (nas.search.outputs) with the command and the job's settings, and the
    summary printed."""
    from nas.search.outputs import summary_lines, write_outputs
    info = {"command": " ".join(["nas"] + sys.argv[1:]), **info, "workers": job.workers}
    paths = write_outputs(result, job.out, source, info)
    for line in summary_lines(result):
        print(line)
    return paths


# -- export --------------------------------------------------------------------------------------

def export_front(front: str | Path, picks: list[str] | None = None, out: str | Path | None = None,
                 skip_unmatched: bool = False, plot: bool = True) -> dict[Path, list[str]]:
    """Write the picked front architectures as YAML files (and pareto.png with the picks
    circled); returns {file: [pick expressions]}. Nothing is written when a pick fails."""
    doc = read_front(front)
    chosen = picks_of(doc.front, doc.largest, picks or default_picks(doc.objective),
                      doc.objective, skip_unmatched=skip_unmatched)
    if not any(chosen.values()):
        raise UserError(f"nothing to export: no pick matched the front of {doc.path}")
    out = Path(out) if out else doc.folder / "export"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    written: dict[Path, list[str]] = {}
    for expr, cands in chosen.items():
        for cand in cands:
            for target, data in _export_files(cand, doc, out):
                if target not in written:
                    atomic_write_text(target, _export_header(cand, expr, doc) + yaml.safe_dump(
                        data, sort_keys=False, default_flow_style=None))
                written.setdefault(target, []).append(expr)
    for target, names in written.items():
        print(f"{', '.join(names)}: {target}")
    history = doc.history() if plot else None
    if history:
        from nas.search.pareto import plot_pareto
        labelled = {expr: cands[0] for expr, cands in chosen.items() if len(cands) == 1}
        front_path = out / "pareto.png"
        plot_pareto(history, doc.front, doc.largest, front_path, objective=doc.objective,
                    picks=labelled, title=f"{doc.folder}: exported picks on {doc.hw}")
        print(f"plot with the picks circled: {front_path}")
    return written


def _export_files(cand: Candidate, doc, out: Path) -> list[tuple[Path, dict]]:
    """The architecture YAML of a pick and, when the search chose its hardware, a hardware
    YAML (the space's base preset and the chosen fields) for `nas simulate --hw` and
    `nas build-lut --hw`."""
    files = [(out / f"{cand.arch.key}.yaml", cand.arch.to_dict())]
    hw = cand.hardware
    if hw is not None and hw.searched:
        config = dict(hw.config) or {"base": (doc.hw_space or {}).get("base"), **dict(hw.fields)}
        files.append((out / f"hw-{hw.hash}.yaml", config))
    return files


def _export_header(cand: Candidate, expr: str, doc) -> str:
    return (f"# exported by `nas export --pick {expr}` from {doc.path}\n"
            f"# perplexity {cand.perplexity:.4f}, EDP {cand.edp:.4e} J s, latency "
            f"{cand.latency_ms:.4f} ms, energy {cand.energy_mj:.5f} mJ, {cand.params:,} "
            f"parameters on {cand.hardware.name if cand.hardware else doc.hw}"
            f"{f', {cand.area_mm2:.3g} mm2' if cand.area_mm2 else ''} (table {doc.table_id})\n")


# -- quickstart ----------------------------------------------------------------------------------

@dataclass
class Quickstart:
    """`nas quickstart`: a small supernet on the `tiny` space and the built-in corpus, its
    table, a reduced search (population x generations instead of the survey's 40 x 40) and
    the default export."""

    out: Path
    steps: int = 250
    hw: str = "gemmini-transformer"
    population: int = 16
    generations: int = 8
    max_tokens: int = 2048
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def check(self) -> None:
        for name in ("steps", "population", "generations", "max_tokens"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be >= 1, got {self.threads}")


def quickstart(q: Quickstart) -> None:
    """train -> lookup table -> search -> export, each stage skipped when already done, so an
    interrupted quickstart continues where it stopped."""
    from costmodel.hardware import load_hardware
    from nas.search.checkpoint import STATE_FILE

    q.check()
    out = Path(q.out)
    hw = load_hardware(q.hw)
    t0 = time.perf_counter()
    run_dir, lut_path, search_dir = out / "supernet", out / LUT_FILE, out / "search"

    # 1. supernet (continues an interrupted run)
    train_supernet_stage(run_dir, q)

    # 2. lookup table for the supernet's space, context and vocabulary (from the checkpoint
    # alone: the search loads the data)
    from supernet.checkpoint import load_checkpoint, space_of
    from supernet.model import ModelConfig
    ckpt = load_checkpoint(run_dir, "best")
    space, workload = space_of(ckpt), supernet_workload(ModelConfig(**ckpt["model_config"]))
    del ckpt
    if lut_path.is_file():
        load_table(lut_path, space, workload, hw=hw)
        print(f"[2/4] lookup table: exists, {lut_path}")
    else:
        print(f"[2/4] lookup table: {hw.name}, workload {workload.key}")
        build_table(space, hw, workload, lut_path, progress=q.progress)

    # 3. search (a reduced population/generations so it stays within minutes)
    config = SearchConfig(population=q.population, generations=q.generations, seed=q.seed)
    if (search_dir / "front.json").is_file():
        print(f"[3/4] search: done, {search_dir}")
    else:
        print(f"[3/4] search: NSGA-II with population {config.population} and "
              f"{config.generations} generations (reduced from the survey's 40 x 40 to stay "
              f"within minutes; `nas search` defaults to 40 x 40), "
              f"{'racing' if config.racing else 'exact'} perplexity as in `nas search`")
        run_search(SearchJob(ckpt=str(run_dir), out=search_dir, config=config,
                             lut=str(lut_path), hw=q.hw, max_tokens=q.max_tokens,
                             threads=q.threads, progress=q.progress,
                             resume=(search_dir / STATE_FILE).is_file()))

    # 4. export
    export_dir = search_dir / "export"
    if export_dir.is_dir() and any(export_dir.glob("*.yaml")):
        print(f"[4/4] export: exists, {export_dir}")
    else:
        print("[4/4] export: best perplexity, lowest EDP, lowest EDP within +0.1 and +1 "
              "perplexity of the largest subnet")
        export_front(search_dir, out=export_dir, skip_unmatched=True)

    print(f"\ndone in {time.perf_counter() - t0:.0f} s. Results in {out}:\n"
          f"  supernet        {run_dir} (best.pt, log.jsonl, loss.png)\n"
          f"  lookup table    {lut_path}\n"
          f"  Pareto front    {search_dir / 'front.csv'}, {search_dir / 'front.json'}\n"
          f"  plot            {search_dir / 'pareto.png'}\n"
          f"  all candidates  {search_dir / 'history.csv'}; settings and hypervolume in "
          f"{search_dir / 'search.json'}\n"
          f"  architectures   {export_dir}/*.yaml (for `nas train-subnet --arch` and "
          f"`nas simulate --model`)")


def train_supernet_stage(run_dir: Path, q: Quickstart) -> None:
    """Stage 1 of the quickstart: train, or continue (with the run's own settings; only the
    step count, threads and progress bar may change), or skip when trained far enough."""
    from supernet.checkpoint import load_checkpoint
    from supernet.config import TrainConfig
    from supernet.train import resume_config, train

    done = load_checkpoint(run_dir, "last")["step"] if (run_dir / "last.pt").is_file() else None
    if done is not None and done >= q.steps:
        print(f"[1/4] supernet: exists ({done} steps), {run_dir}")
        return
    print(f"[1/4] supernet: {q.steps} steps on the `tiny` space, built-in corpus -> {run_dir}")
    if done is not None:
        cfg = resume_config(run_dir, {"steps": q.steps, "threads": q.threads,
                                      "progress": q.progress})
    else:
        cfg = TrainConfig(out=str(run_dir), space="tiny", dataset="builtin", steps=q.steps,
                          eval_interval=max(1, q.steps // 3), eval_tokens=q.max_tokens,
                          seed=q.seed, threads=q.threads, progress=q.progress)
    train(cfg)


__all__ = ["build_table", "load_table", "supernet_workload", "SearchJob", "SearchOutcome",
           "run_search", "bilevel_costs", "warm_costs", "JointCosts", "hardware_point",
           "HW_SEARCHES", "HW_EXHAUSTIVE_MAX", "HW_WARM_START", "export_front", "Quickstart",
           "quickstart"]
