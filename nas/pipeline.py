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

import json
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from nas.core.arch import SearchSpace
from nas.core.atomic import atomic_write_text
from nas.core.distributed import Engine, RunsOn
from nas.core.errors import UserError
from nas.core.options import flag_of
from nas.core.paths import check_output_dir
from nas.core.provenance import provenance
from nas.core.runlock import run_lock
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

# SearchJob fields a resumed search may take anew (with --generations); the state file keeps
# the others (`SearchJob.record`), so `nas search --resume` needs none of them retyped
RESUMABLE = ("out", "resume", "batch_size", "workers", "executor", "ray_address", "threads",
             "progress")
PATH_OPTIONS = ("ckpt", "lut", "hw", "hw_space")       # recorded absolute when they are files


@dataclass
class SearchJob(RunsOn):
    """Everything `nas search` takes (see `nas search --help` for each); where perplexity and
    table builds run: `RunsOn`."""

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
    calibration: bool = True        # use the supernet's calibration.json when it has one
    max_tokens: int | None = 8192
    batch_size: int = 16
    threads: int | None = None
    resume: bool = False
    progress: bool = True

    def check(self) -> None:
        from nas.search.bilevel import WARM_STATE
        from nas.search.checkpoint import STATE_FILE
        self.engine().probe()               # --workers, --executor, --ray-address
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
        check_output_dir(self.out)
        state = Path(self.out) / STATE_FILE
        warm = Path(self.out) / WARM_STATE / STATE_FILE
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

    def record(self) -> dict[str, Any]:
        """What the state file keeps of this job for --resume (`resume_job`): every option
        but the RESUMABLE ones, files as absolute paths, the settings as a dict."""
        kept = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in RESUMABLE and f.name != "config"}
        return {**kept, **{k: _absolute(kept[k]) for k in PATH_OPTIONS},
                "config": asdict(self.config)}


def _absolute(option: str | None) -> str | None:
    """A file option as an absolute path; a preset name (or None) as it is."""
    if option is None or not Path(option).exists():
        return option
    return str(Path(option).resolve())


def _shown(value: Any) -> str:
    """An option's value as an error names it (an attention sparsity by its mask or share)."""
    sparsity = getattr(value, "sparsity", None)
    if sparsity is not None:                            # an AttentionSparsity
        return repr(value.mask_path or sparsity)
    return repr(value)


def state_of(out: str | Path) -> Path:
    """The state file of the search in `out` (what --resume continues and reads the options
    of): OUT/state.pkl, or a bilevel search's warm start's while that has not finished."""
    from nas.search.bilevel import WARM_STATE
    from nas.search.checkpoint import STATE_FILE
    state, warm = Path(out) / STATE_FILE, Path(out) / WARM_STATE / STATE_FILE
    return warm if warm.is_file() and not state.is_file() else state


def resume_job(out: str | Path, given: dict[str, Any], config: dict[str, Any]) -> SearchJob:
    """The job continuing the search in `out`: the options its state file recorded, with
    `given` (SearchJob fields typed) and `config` (SearchConfig fields typed) applied. A typed
    option that differs from the recorded one is an error naming each (RESUMABLE ones and
    --generations may change)."""
    from nas.search.checkpoint import read_state
    out = Path(out)
    record = read_state(state_of(out)).get("record")
    if record is None:                  # a state written before the options were recorded
        if not given.get("ckpt"):
            raise UserError("--resume: this search state keeps no options; give them all "
                            "again, --ckpt first")
        return SearchJob(**{"ckpt": "", **given, "out": out, "resume": True,
                            "config": SearchConfig(**config)})
    saved = record["config"]
    typed = {k: _absolute(v) if k in PATH_OPTIONS else v for k, v in given.items()
             if k not in RESUMABLE}
    diffs = [f"{flag_of(k)} differs (search {_shown(saved.get(k))}, given {_shown(v)})"
             for k, v in config.items() if k != "generations" and saved.get(k) != v]
    diffs += [f"{'--sparsity/--mask' if k == 'sparsity' else flag_of(k)} differs (search "
              f"{_shown(record.get(k))}, given {_shown(v)})"
              for k, v in typed.items() if record.get(k) != v]
    if diffs:
        raise UserError(f"--resume: the search in {out} ran with other settings: "
                        + "; ".join(diffs) + "; leave them off to keep the search's, or "
                        "start a new --out")
    job = {k: v for k, v in record.items() if k != "config"}
    return SearchJob(**{**job, **given, "out": out, "resume": True,
                        "config": SearchConfig(**{**saved, **config})})


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

        self.hw_space, self.cache = hw_space, cache
        self.anchor_hw = hw_space.decode(hw_space.base_genome())
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


def search_provenance() -> dict[str, Any]:
    """What search.json records about its run: command, commit, machine, date and the
    simulator's version (nas.core.provenance)."""
    from costmodel.simulate import SIMULATOR_VERSION
    return provenance(simulator_version=SIMULATOR_VERSION)


def run_search(job: SearchJob) -> SearchOutcome:
    """Load the supernet, get the costs (load and check --lut, reuse OUT/lut.parquet, or build
    it; with --hw-space, a table per hardware point in OUT/luts), run the search (resuming it
    when asked), write the front files (after every generation, and at the end with the plot)
    and print a summary. --out is locked while the search runs (nas.core.runlock)."""
    job.check()
    hw, hw_space = _hardware(job)           # a bad --hw or --hw-space fails before the supernet
    _check_area(job.config, hw)
    with run_lock(job.out):
        return _search(job, hw, hw_space)


def _search(job: SearchJob, hw, hw_space) -> SearchOutcome:
    from nas.search.build import build_search
    from nas.search.checkpoint import STATE_FILE

    quality, ev = _supernet_quality(job)
    workload = supernet_workload(ev)
    if job.sparsity is not None:
        job.sparsity.check_seq(workload.seq, rescale=job.rescale_mask)
    identity = {"perplexity": quality.describe(), "supernet_step": ev.step}
    if job.resume:                          # before any table is built into --out
        _check_resumable(state_of(job.out), ev.space, identity)
    bilevel = hw_space is not None and (job.hw_search or "bilevel") == "bilevel"
    _note_population(job.config, ev.space, None if bilevel else hw_space)
    info = {"provenance": search_provenance(), "perplexity_source": quality.describe(),
            "space": ev.space.to_dict()}
    raw = getattr(quality, "with_raw", None)     # calibrated: the raw perplexity beside

    def with_raw(result):
        return _with_raw(result, raw) if raw else result

    def noted(result) -> dict[str, Any]:    # evaluation jobs run again after a lost Ray worker
        return {**info, "retried_jobs": result.retried_jobs}

    def written(so_far) -> None:            # the front files, after every generation
        _write_results(job, with_raw(so_far), source, noted(so_far), final=False)

    if bilevel:
        costs, source = _bilevel_costs(job, hw_space, ev.space, workload)
        result, info["hw_search"] = _run_bilevel(job, quality, ev, costs, hw_space, identity,
                                                 written)
    else:
        costs, source = (_joint_costs(job, hw_space, ev.space, workload) if hw_space is not None
                         else _fixed_costs(job, hw, ev.space, workload))
        search = build_search(job.config, ev.space, quality, costs, vocab=ev.vocab_size,
                              max_seq=ev.block_size, workers=job.workers,
                              executor=job.executor, ray_address=job.ray_address,
                              state_path=Path(job.out) / STATE_FILE, identity=identity,
                              record=job.record(), progress=job.progress)
        search.on_generation = written
        result = search.run(resume=job.resume)
    result = with_raw(result)
    paths = _write_results(job, result, source, noted(result))
    if hw_space is not None:
        print(costs.usage())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return SearchOutcome(result, costs, paths)


def _check_resumable(state_path: Path, space: SearchSpace, identity: dict[str, Any]) -> None:
    """--resume: the state must be of this supernet, space and perplexity subset (checked
    before anything is written; the search checks the rest when it loads the state)."""
    from nas.search.checkpoint import read_state
    saved = read_state(state_path)["identity"]
    now = {"space": space.to_dict(), **identity}
    diff = [k for k, v in now.items() if saved.get(k) != v]
    if diff:
        raise UserError(f"--resume: {state_path} was written by a search of another supernet "
                        f"or subset ({', '.join(diff)} differ); resume it with its own --ckpt, "
                        f"--split and --max-tokens, or start a new --out")


def _check_area(config: SearchConfig, hw) -> None:
    """--max-area-mm2 on fixed hardware (None: not known yet): refused before the search when
    the hardware alone breaks it, since then every candidate would."""
    if hw is None or config.max_area_mm2 is None:
        return
    from costmodel.area import area
    mm2 = area(hw).total_mm2
    if mm2 > config.max_area_mm2:
        raise UserError(f"--max-area-mm2 {config.max_area_mm2:g}: hardware '{hw.name}' "
                        f"takes {mm2:.3g} mm2 and is fixed in this search, so no candidate "
                        f"can meet it; give a larger bound, or search the hardware too with "
                        f"--hw-space")


def _note_population(config: SearchConfig, space: SearchSpace, hw_space) -> None:
    """A note when the population is larger than the space: generation 0 then takes long to
    find as many distinct designs, and can hold every one."""
    size = space.size() * (hw_space.size() if hw_space is not None else 1)
    if config.population > size:
        print(f"nas search: note: --population {config.population:,} is larger than the "
              f"space's {size:,} designs: each generation can hold all of them, and building "
              f"generation 0 takes long; a population well below the space's size is what "
              f"an evolutionary search is for", file=sys.stderr)


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
    """The supernet's perplexity source on the job's tokens, calibrated when the run has a
    calibration for this checkpoint and the job uses it, and its loaded evaluator (a bad
    checkpoint fails here)."""
    from nas.core.calibration import load_calibration
    from nas.search.quality import CalibratedQuality
    from supernet.perplexity import SupernetPerplexity
    quality = SupernetPerplexity(job.ckpt, split=job.split, max_tokens=job.max_tokens,
                                 batch_size=job.batch_size,
                                 threads=job.threads or (1 if job.workers > 1 else None))
    ev = quality.evaluator
    if ev.fixed_arch is not None:
        raise UserError(f"--ckpt {job.ckpt} holds one architecture ({ev.fixed_arch.key}: an "
                        f"exported subnet or a train-subnet run), not a supernet to search; "
                        f"give a run of `nas train-supernet`")
    calibration, note = (load_calibration(ev.checkpoint, ev.step) if job.calibration
                         else (None, ""))
    print(f"supernet {ev.checkpoint}: space '{ev.space.name}' ({ev.space.size():,} "
          f"architectures), context {ev.block_size}, vocabulary {ev.vocab_size}, "
          f"{ev.tokens} {job.split} tokens per perplexity"
          + (f"; perplexity {calibration.summary()}" if calibration else ""))
    if note:
        print(note)
    return (CalibratedQuality(quality, calibration) if calibration else quality), ev


def _with_raw(result, with_raw):
    """The search's result with every candidate's raw perplexity beside the calibrated one."""
    from dataclasses import replace
    return replace(result, history=[with_raw(c) for c in result.history],
                   front=[with_raw(c) for c in result.front], largest=with_raw(result.largest),
                   smallest=with_raw(result.smallest))


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
        _check_area(job.config, table.hardware)
        if hw is None:
            print(f"hardware: '{table.hw_name}', the table's (no --hw given)")
        print(table.describe())
    else:
        hw = hw or with_mapping(load_hardware(DEFAULT_HARDWARE), job.mapping)
        _check_area(job.config, hw)
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
                  folder: Path | None, sparsity=None, engine: Engine = Engine(),
                  exhaustive_max: int = HW_EXHAUSTIVE_MAX, progress: bool = False):
    """The bilevel search's cost source (nas.search.bilevel.BilevelCosts): each architecture
    on its best point of `hw_space` for `config`'s objective within its area budget. Exact
    over a cost matrix of every point within the budget (lut.matrix.CostMatrix, simulated on
    `engine`: local processes or Ray tasks, and cached in `folder`) when the space has at
    most `exhaustive_max` genomes, else a local search over per-point tables cached in
    `folder`."""
    import hashlib
    import json

    from costmodel.area import area
    from lut.cache import TableCache
    from lut.matrix import CostMatrix
    from nas.search.bilevel import BilevelCosts, ExhaustiveHardware, LocalHardware

    budget = config.max_area_mm2

    def point(hw):
        return hardware_point(hw, hw_space)

    if hw_space.size() <= exhaustive_max:
        sized = [(hw, area(hw).total_mm2) for hw in hw_space.points()]   # each area once
        sized = [(hw, mm2) for hw, mm2 in sized if budget is None or mm2 <= budget]
        if not sized:
            raise UserError(f"hardware space '{hw_space.name}': no point fits in "
                            f"--max-area-mm2 {budget:g}")
        points, areas = zip(*sized)
        matrix = CostMatrix.build(space, points, workload, sparsity, folder=folder,
                                  engine=engine, progress=progress)
        solver = ExhaustiveHardware(matrix, areas, config)
        return BilevelCosts(solver, point, f"bilevel-{matrix.id}")
    cache = TableCache(space, workload, sparsity, folder=folder)
    start = hw_space.decode(hw_space.base_genome())
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
                          job.engine(), job.hw_exhaustive_max, job.progress)
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

    from lut.matrix import MatrixTables
    from nas.search.bilevel import ExhaustiveHardware
    from nas.search.costs import FixedHardware
    genome = hw_space.base_genome()
    if max_area_mm2 is not None:
        genome = hw_space.within_area(genome, max_area_mm2, random.Random(0))
    hw = hw_space.decode(genome)
    solver = costs.solver
    tables = MatrixTables(solver.matrix) if isinstance(solver, ExhaustiveHardware) \
        else solver.tables
    return FixedHardware(tables.table(hw), hardware_point(hw))


def _run_bilevel(job: SearchJob, quality, ev, costs, hw_space, identity: dict[str, Any],
                 on_generation) -> tuple[Any, dict[str, Any]]:
    """The bilevel search of the job, warm-started as --hw-warm-start says (its state in
    OUT/warm-start), and how, for search.json; `on_generation` after each of its
    generations (not the warm start's)."""
    from nas.search.bilevel import bilevel_evaluations, run_bilevel
    warm = warm_costs(costs, hw_space, job.config.max_area_mm2) if job.hw_warm_start else None
    result, first = run_bilevel(job.config, ev.space, quality, costs, warm, job.hw_warm_start,
                                vocab=ev.vocab_size, max_seq=ev.block_size,
                                workers=job.workers, executor=job.executor,
                                ray_address=job.ray_address, folder=Path(job.out),
                                identity=identity, record=job.record(), resume=job.resume,
                                progress=job.progress, on_generation=on_generation)
    # evaluations: the warm start's and the bilevel part's architecture measurements together
    how = {"mode": "bilevel", "inner_solve": costs.solver.describe(), "warm_start": None,
           "evaluations": bilevel_evaluations(result, first)}
    if first is not None:
        how["warm_start"] = {"share": job.hw_warm_start, "hardware": warm.hardware.name,
                             "generations": first.generations_done,
                             "architectures": len(first.history),
                             "retried_jobs": first.retried_jobs}
        print(f"warm start: {len(first.history)} architectures searched on "
              f"'{warm.hardware.name}' ({first.generations_done} generations), the bilevel "
              f"search started from their front and last population (re-costed, not measured "
              f"again): {how['evaluations']} architectures evaluated by both parts")
    return result, how


def _write_results(job: SearchJob, result, source: dict[str, Any], info: dict[str, Any],
                   final: bool = True) -> dict[str, Path]:
    """The front files (nas.search.outputs) with the command and the job's settings; `final`:
    with the plot, and the summary printed (after each generation: the files alone)."""
    from nas.search.outputs import summary_lines, write_outputs
    info = {**info, "workers": job.workers, "executor": job.executor}
    paths = write_outputs(result, job.out, source, info, plot=final)
    if final:
        for line in summary_lines(result):
            print(line)
    return paths


# -- export --------------------------------------------------------------------------------------

def export_front(front: str | Path, picks: list[str] | None = None, out: str | Path | None = None,
                 skip_unmatched: bool = False, plot: bool = True,
                 models=None) -> dict[Path, list[str]]:
    """Write the picked front architectures as YAML files (and pareto.png with the picks
    circled) and, given `models` (nas.export_onnx.ModelExport: `nas export --onnx`), each
    one's checked model file and card; returns {file: [pick expressions]}. Nothing is
    written when a pick fails."""
    doc = read_front(front)
    chosen = picks_of(doc.front, doc.largest, picks or default_picks(doc.objective),
                      doc.objective, skip_unmatched=skip_unmatched)
    if not any(chosen.values()):
        raise UserError(f"nothing to export: no pick matched the front of {doc.path}")
    out = check_output_dir(Path(out) if out else doc.folder / "export")
    if models is not None:
        models.check(doc)
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
    for stale in _stale_exports(out, written):
        stale.unlink()
        print(f"removed {stale} (an earlier export's pick, not picked now)")
    history = doc.history() if plot else None
    if history:
        from nas.search.pareto import plot_pareto
        labelled = {expr: cands[0] for expr, cands in chosen.items() if len(cands) == 1}
        front_path = out / "pareto.png"
        plot_pareto(history, doc.front, doc.largest, front_path, objective=doc.objective,
                    picks=labelled, title=f"{doc.folder}: exported picks on {doc.hw}")
        print(f"plot with the picks circled: {front_path}")
    if models is not None:
        models.write(doc, [c for cands in chosen.values() for c in cands], out)
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


EXPORT_MARK = "# exported by `nas export"           # the first line of an exported file


def _stale_exports(out: Path, written: dict[Path, list[str]]) -> list[Path]:
    """The files of an earlier export into `out` that this one did not write again."""
    stale = []
    for path in sorted(out.glob("*.yaml")):
        if path not in written:
            with path.open(errors="replace") as f:
                if f.readline().startswith(EXPORT_MARK):
                    stale.append(path)
    return stale


def _workload_line(cand: Candidate, doc) -> str:
    """Where the costs in an exported file's header come from: the workload, and the command
    that simulates it again."""
    from costmodel.workload import Workload
    if not doc.workload:
        return ""
    wl = Workload(**doc.workload)
    point = cand.hardware
    hw = (f"hw-{point.hash}.yaml" if point.searched else point.name) if point else doc.hw
    return (f"# costs for the workload {wl.key} (`nas simulate --model THIS_FILE --hw {hw} "
            f"--mode {wl.mode} --seq {wl.seq} --batch {wl.batch} --gen {wl.gen} --vocab "
            f"{wl.vocab}`)\n")


def _export_header(cand: Candidate, expr: str, doc) -> str:
    raw = f" (calibrated; raw {cand.ppl_raw:.4f})" if cand.ppl_raw is not None else ""
    return (f"{EXPORT_MARK} --pick {expr}` from {doc.path}\n"
            f"# perplexity {cand.perplexity:.4f}{raw}, EDP {cand.edp:.4e} J s, latency "
            f"{cand.latency_ms:.4f} ms, energy {cand.energy_mj:.5f} mJ, {cand.params:,} "
            f"parameters on {cand.hardware.name if cand.hardware else doc.hw}"
            f"{f', {cand.area_mm2:.3g} mm2' if cand.area_mm2 else ''} (table {doc.table_id})\n"
            + _workload_line(cand, doc))


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
        self.search_config()                # the search's own rules, before any training
        check_output_dir(self.out)

    def search_config(self) -> SearchConfig:
        return SearchConfig(population=self.population, generations=self.generations,
                            seed=self.seed)


QUICKSTART_FILE = "quickstart.json"     # in --out: what the search stage last ran on


def quickstart(q: Quickstart) -> None:
    """train -> lookup table -> search -> export. A stage whose output exists and whose inputs
    are unchanged is skipped, so an interrupted quickstart continues where it stopped; one
    whose inputs changed (more --steps, another --hw, --population ...) runs again, and so do
    the stages after it. --out is locked while it runs (nas.core.runlock)."""
    from costmodel.hardware import load_hardware

    q.check()
    hw = load_hardware(q.hw)
    with run_lock(q.out):
        _quickstart(q, Path(q.out), hw)


def _quickstart(q: Quickstart, out: Path, hw) -> None:
    from supernet.checkpoint import load_checkpoint, space_of
    from supernet.model import ModelConfig

    t0 = time.perf_counter()
    run_dir, lut_path, search_dir = out / "supernet", out / LUT_FILE, out / "search"
    train_supernet_stage(run_dir, q)
    # the table and the search's inputs from the checkpoint alone (the search loads the data)
    ckpt = load_checkpoint(run_dir, "best")
    space, workload = space_of(ckpt), supernet_workload(ModelConfig(**ckpt["model_config"]))
    step = ckpt["step"]
    del ckpt
    table = _table_stage(lut_path, space, workload, hw, q)
    searched = _search_stage(search_dir, q, {"supernet": str(run_dir), "supernet_step": step,
                                             "table": table.id, "population": q.population,
                                             "seed": q.seed, "max_tokens": q.max_tokens})
    export_dir = search_dir / "export"
    if not searched and export_dir.is_dir() and any(export_dir.glob("*.yaml")):
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


def _table_stage(lut_path: Path, space: SearchSpace, workload, hw, q: Quickstart):
    """Stage 2: the table for the supernet's space, context and vocabulary on `hw`; an
    existing one is reused when it was built for them, else built anew."""
    if lut_path.is_file():
        try:
            table = load_table(lut_path, space, workload, hw=hw)
            print(f"[2/4] lookup table: exists, {lut_path}")
            return table
        except UserError as exc:
            print(f"[2/4] lookup table: {exc}: building it anew")
    else:
        print(f"[2/4] lookup table: {hw.name}, workload {workload.key}")
    return build_table(space, hw, workload, lut_path, progress=q.progress)


def _search_stage(search_dir: Path, q: Quickstart, inputs: dict[str, Any]) -> bool:
    """Stage 3: the search, skipped when done on the same `inputs` (supernet checkpoint and
    step, table, population, seed, tokens) and --generations, resumed when interrupted or
    given more generations, run anew when an input changed. Whether it ran."""
    from nas.search.checkpoint import STATE_FILE
    manifest = search_dir.parent / QUICKSTART_FILE
    recorded = _read_json(manifest).get("search") or {}
    changed = [f"{k} {recorded.get(k)} -> {v}" for k, v in inputs.items() if recorded.get(k) != v]
    done = _read_json(search_dir / "search.json").get("generations_done")
    if changed or (done is not None and q.generations < done):
        why = "; ".join(changed) or f"generations {done} -> {q.generations}"
        if _clear_search(search_dir):
            print(f"[3/4] search: its inputs changed ({why}): searching anew")
    elif done is not None and done >= q.generations and (search_dir / "front.json").is_file():
        print(f"[3/4] search: done, {search_dir}")
        return False
    atomic_write_text(manifest, json.dumps({"search": inputs}, indent=1) + "\n")
    config = q.search_config()
    print(f"[3/4] search: NSGA-II with population {config.population} and "
          f"{config.generations} generations (reduced from the survey's 40 x 40 to stay "
          f"within minutes; `nas search` defaults to 40 x 40), "
          f"{'racing' if config.racing else 'exact'} perplexity as in `nas search`")
    run_search(SearchJob(ckpt=inputs["supernet"], out=search_dir, config=config,
                         lut=str(search_dir.parent / LUT_FILE), hw=q.hw,
                         max_tokens=q.max_tokens, threads=q.threads, progress=q.progress,
                         resume=(search_dir / STATE_FILE).is_file()))
    return True


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _clear_search(search_dir: Path) -> bool:
    """Remove a quickstart search's files (outputs, state, export) before it runs anew;
    whether there were any."""
    import shutil

    from nas.search.checkpoint import STATE_FILE
    from nas.search.outputs import FILES
    paths = [search_dir / name for name in (*FILES, STATE_FILE, "export")
             if (search_dir / name).exists()]
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return bool(paths)


def train_supernet_stage(run_dir: Path, q: Quickstart) -> None:
    """Stage 1 of the quickstart: train, or continue (with the run's own settings; only the
    step count, threads and progress bar may change), or skip when trained far enough
    (`supernet.runs.plan_run`)."""
    from supernet.config import TrainConfig
    from supernet.train import plan_run, train

    plan = plan_run(TrainConfig(out=str(run_dir), space="tiny", dataset="builtin", steps=q.steps,
                                eval_interval=max(1, q.steps // 3), eval_tokens=q.max_tokens,
                                seed=q.seed, threads=q.threads, progress=q.progress))
    if plan.action == "skip":
        print(f"[1/4] supernet: exists ({plan.done} steps), {run_dir}")
        return
    print(f"[1/4] supernet: {q.steps} steps on the `tiny` space, built-in corpus -> {run_dir}")
    train(plan.config)


__all__ = ["build_table", "load_table", "supernet_workload", "SearchJob", "SearchOutcome",
           "run_search", "bilevel_costs", "warm_costs", "JointCosts", "hardware_point",
           "HW_SEARCHES", "HW_EXHAUSTIVE_MAX", "HW_WARM_START", "export_front", "Quickstart",
           "quickstart"]
