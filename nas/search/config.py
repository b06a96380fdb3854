"""Search settings (`SearchConfig`): each field is also a `nas search` option (nas.core.options).

Defaults are the survey's case study (Kim et al. 2023, Sec. 6.4): population 40, 40
generations, mutation probability 0.2; perplexity is raced (`racing`), whatever the entry point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nas.core.errors import UserError
from nas.core.options import flag_of, option
from nas.search.candidate import OBJECTIVES, Candidate

ALGORITHMS = ("nsga2", "random", "evolution")

# constraint setting -> the Candidate field it bounds
CONSTRAINTS = {"max_ppl": "perplexity", "max_latency_ms": "latency_ms",
               "max_energy_mj": "energy_mj", "max_params": "params",
               "max_area_mm2": "area_mm2"}


@dataclass
class SearchConfig:
    objective: str = option("edp", "hardware objective minimised beside perplexity",
                            choices=tuple(OBJECTIVES))
    algorithm: str = option("nsga2", "nsga2 (NSGA-II, Deb et al. 2002); random (uniform "
                            "sampling, same budget); evolution (HAT-style single objective: "
                            "perplexity under the hardware constraints, or --objective under "
                            "--max-ppl alone)", choices=ALGORITHMS)
    population: int = option(40, "candidates per generation")
    generations: int = option(40, "generations after the initial population")
    mutation_prob: float = option(0.2, "per-gene probability of a uniform resample (of an "
                                  "architecture genome; a joint genome with --hw-space is "
                                  "longer and scales it to mutate as many genes per child)")
    crossover_prob: float = option(0.9, "probability of uniform crossover per pair of parents")
    screen: int = option(1, "draw SCREEN times the children each generation and measure only "
                         "the population's worth that NSGA-II ranks best on a perplexity model "
                         "fitted to the architectures measured so far (surrogate-assisted, as "
                         "NSGANetV2; nas/search/screening.py); the last generation measures "
                         "the cheaper one-gene neighbours of the +0.1 and +1 perplexity picks "
                         "instead (a local search); 1: every child drawn is measured")
    seed: int = option(0, "random seed: the same seed, supernet and table give the same front")
    max_ppl: float | None = option(None, "constraint: perplexity <= X")
    max_latency_ms: float | None = option(None, "constraint: latency <= X ms")
    max_energy_mj: float | None = option(None, "constraint: energy <= X mJ")
    max_params: float | None = option(None, "constraint: parameters <= X")
    max_area_mm2: float | None = option(None, "constraint: accelerator area <= X mm2 (with "
                                        "--hw-space: the hardware the search chooses, the "
                                        "best point within it (bilevel) or stepped down to "
                                        "fit before it is evaluated (joint))")
    # the default evaluator, for every entry point (nas.search.build.make_evaluator);
    # experiments/search/racing/racing.json: 3.1-3.5x less perplexity time at the same hypervolume
    racing: bool = option(True, "racing evaluator (nas/search/racing.py): score each new "
                          "candidate on the first --racing-start share of the perplexity "
                          "windows and add windows (doubling) only to those that could still "
                          "be on the front within --racing-z standard errors (and "
                          "--racing-tolerance); front members are always scored on every "
                          "window. --no-racing: the exact evaluator, every candidate on every "
                          "window")
    racing_start: float = option(0.0625, "racing: share of the windows every candidate is "
                                 "scored on first")
    racing_z: float = option(2.0, "racing: half-width of the confidence interval in standard "
                             "errors (larger: more windows, fewer misjudged candidates)")
    racing_tolerance: float = option(0.005, "racing: a candidate that cannot beat a front "
                                     "member's perplexity by more than this share (0.002 = "
                                     "0.2%%) counts as dominated (it could add at most a sliver "
                                     "of hypervolume)")

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UserError(f"--objective must be one of {', '.join(OBJECTIVES)}, "
                            f"got {self.objective!r}")
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"--algorithm must be one of {', '.join(ALGORITHMS)}, "
                            f"got {self.algorithm!r}")
        if self.population < 4:
            raise UserError(f"--population must be at least 4, got {self.population}")
        if self.screen < 1:
            raise UserError(f"--screen must be at least 1, got {self.screen}")
        if self.generations < 0:
            raise UserError(f"--generations must be >= 0, got {self.generations}")
        for name in ("mutation_prob", "crossover_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{flag_of(name)} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.racing_start <= 1.0:
            raise UserError(f"--racing-start must be in (0, 1], got {self.racing_start}")
        if self.racing_tolerance < 0:
            raise UserError(f"--racing-tolerance must be >= 0, got {self.racing_tolerance}")
        if self.racing_z < 0:
            raise UserError(f"--racing-z must be >= 0, got {self.racing_z}")
        for name in self.constraints():
            if getattr(self, name) <= 0:
                raise UserError(f"{flag_of(name)} must be positive, got {getattr(self, name)}")

    def constraints(self) -> dict[str, float]:
        """Active constraints: setting -> limit."""
        return {s: getattr(self, s) for s in CONSTRAINTS if getattr(self, s) is not None}

    def violation(self, cand: Candidate) -> float:
        """Total relative violation of the constraints (0 = feasible)."""
        return sum(max(0.0, getattr(cand, CONSTRAINTS[s]) / limit - 1.0)
                   for s, limit in self.constraints().items())

    def violated(self, cand: Candidate) -> list[str]:
        """The constraints `cand` breaks, e.g. ['--max-ppl 1 (perplexity 7.31)']."""
        return [f"{flag_of(s)} {limit:g} ({CONSTRAINTS[s]} {getattr(cand, CONSTRAINTS[s]):.4g})"
                for s, limit in self.constraints().items()
                if getattr(cand, CONSTRAINTS[s]) > limit]

    def identity(self) -> dict[str, Any]:
        """Settings that must match to resume a search (everything but the generation count)."""
        d = asdict(self)
        d.pop("generations")
        return d
