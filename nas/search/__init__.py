"""Hardware-aware evolutionary search (DEAP), one module per job:

    candidate   `Candidate`, the record of an evaluated architecture; objectives; +X rules
    config      `SearchConfig`: algorithm, population, constraints (also the CLI options)
    genome      integer genome <-> architecture
    selection   NSGA-II selection under constrained domination
    engine      `Search`: the loop, the evaluator, the resumable state file
    racing      `RacingEvaluator`: few validation windows first, more only where the front is
                still undecided (the default of `nas search`)
    pareto      fronts, hypervolume, the Pareto plot
    outputs     front/history/search files, reading them back, picks

It knows architectures (nas.core) and takes perplexity and cost as inputs: any callable
list[Arch] -> list[float], and any table with `.costs(archs)`. Import from the modules
(`from nas.search.engine import Search`); this package file imports nothing, so the command
line can read the search options without loading DEAP.
"""
