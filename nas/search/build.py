"""A `Search` assembled from a config and its parts: the one way every entry point builds one
(`nas search` and `nas quickstart` through nas.pipeline.run_search, the studies and the
benchmarks directly).

    make_evaluator   the one place that picks the evaluator: racing, the default
                     (`SearchConfig.racing`), unless the config says exact (`--no-racing`)
    build_search     executor + evaluator + state file + Search
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from nas.core.arch import Arch, SearchSpace
from nas.core.errors import UserError
from nas.search.checkpoint import StateFile
from nas.search.config import SearchConfig
from nas.search.costs import CostSource
from nas.search.engine import Search
from nas.search.evaluators import Evaluator, ExactEvaluator
from nas.search.executors import Executor, make_executor
from nas.search.quality import Quality, scores_windows
from nas.search.racing import RacingEvaluator


def make_evaluator(config: SearchConfig, quality: Quality, costs: CostSource,
                   executor: Executor, vocab: int = 0, max_seq: int = 0,
                   pinned: Sequence[Arch] = ()) -> Evaluator:
    """The racing evaluator unless `config.racing` is off, then the exact one. `pinned`: the
    architectures racing scores on every window (the anchors)."""
    if not config.racing:
        return ExactEvaluator(executor, costs, config, vocab, max_seq)
    if not scores_windows(quality):
        raise UserError("the racing evaluator (the default) needs a perplexity source that "
                        "scores windows separately (supernet.perplexity.SupernetPerplexity "
                        "does); pass racing=False (--no-racing) for the exact evaluator")
    return RacingEvaluator(executor, costs, config, vocab, max_seq, windows=quality.windows,
                           pinned=pinned)


def build_search(config: SearchConfig, space: SearchSpace, quality: Quality, costs: CostSource,
                 *, vocab: int = 0, max_seq: int = 0, workers: int = 1,
                 executor: str = "local", ray_address: str | None = None,
                 state_path: str | Path | None = None, identity: dict[str, Any] | None = None,
                 record: dict[str, Any] | None = None, progress: bool = False,
                 start: Sequence[Arch] = ()) -> Search:
    """A search of `space` for the perplexity source `quality` and the cost source `costs`
    (nas.search.costs: `FixedHardware(table, hardware)`, or a joint search's source).

    `vocab`, `max_seq`: the model's, for parameter counts; `workers`: processes measuring
    perplexity, on this machine (`executor` 'local') or Ray actors ('ray': on the cluster at
    `ray_address`, else on a local one; nas.search.executors); `state_path`: the state file,
    written every generation (`identity`: what else must match to resume, e.g. the
    perplexity source; `record`: what else to keep in it, e.g. the options of `nas search`);
    `progress`: a progress bar; `start`: architectures generation 0 evaluates besides the
    anchors (a warm start)."""
    runner = make_executor(quality, workers, executor, ray_address)
    evaluator = make_evaluator(config, quality, costs, runner, vocab, max_seq,
                               pinned=[space.largest(), space.smallest()])
    state = StateFile(state_path, identity, record) if state_path is not None else None
    return Search(config, space, evaluator, state, progress, start)
