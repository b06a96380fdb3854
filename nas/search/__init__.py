"""Hardware-aware evolutionary search (DEAP), assembled from parts, one module per job:

    candidate    `Candidate`, the record of an evaluated design; objectives; +X rules
    config       `SearchConfig`: algorithm, population, constraints, evaluator (also the CLI
                 options)
    genome       integer genome <-> design (architecture, and hardware in a joint search)
    selection    NSGA-II selection under constrained domination; DEAP individuals

  the parts
    quality      the perplexity source: any callable list[Arch] -> list[float]; `MemoQuality`
    costs        the cost source: `FixedHardware` (one lookup table), or a joint search's
    executors    how perplexity jobs are mapped: `InProcess`, `ProcessPool`
    evaluators   designs -> candidates, each once: `ExactEvaluator`
    racing       `RacingEvaluator`: few validation windows first, more only where the front is
                 still undecided (the default)
    algorithms   NSGA-II, random search, HAT-style evolution as strategy objects
    screening    `Screen`: the children worth measuring, by a perplexity model (--screen)

  the search
    engine       `Search`: the loop over generations
    checkpoint   the resumable state file
    build        `build_search` (a Search from a config and parts, for every entry point) and
                 `make_evaluator` (the one place that picks the evaluator)
    pareto       fronts, hypervolume, the Pareto plot
    outputs      front/history/search files, reading them back, picks

It knows architectures (nas.core) and takes perplexity and cost as inputs; the supernet's
perplexity and the lookup tables are built above it (nas.pipeline). Import from the modules
(`from nas.search.build import build_search`); this package file imports nothing, so the
command line can read the search options without loading DEAP.
"""
