"""What the scripts of this study share: where things live, and the supernet's perplexities
kept on disk. Results are written with their provenance by `nas.core.provenance`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from costmodel.simulate import SIMULATOR_VERSION
from nas.core.atomic import atomic_write_text
from nas.core.provenance import provenance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = ROOT / "runs"
DATA = ROOT.parent / "shared" / "data"


def run_provenance() -> dict[str, Any]:
    """The provenance of this run's results (nas.core.provenance; the cost model made them),
    collected when it starts: the code that runs is the code at the start."""
    return provenance(simulator_version=SIMULATOR_VERSION)


class StoredPerplexity:
    """A supernet's perplexities shared by this study's scripts and kept on disk: a
    `MemoQuality` over `SupernetPerplexity(ckpt, max_tokens)`, read from and written to
    `folder`/perplexity-step<checkpoint step>-t<max_tokens>.json (`save`), so a re-run or
    another script measures no architecture twice."""

    def __init__(self, ckpt: Path, max_tokens: int, folder: Path):
        from nas.search.quality import MemoQuality
        from supernet.perplexity import SupernetPerplexity
        quality = SupernetPerplexity(ckpt, max_tokens=max_tokens, threads=1)
        self.evaluator = quality.evaluator
        self.memo = MemoQuality(quality)
        self.path = folder / f"perplexity-step{self.evaluator.step}-t{max_tokens}.json"
        if self.path.is_file():
            self.memo.values.update(json.loads(self.path.read_text()))

    def save(self) -> None:
        """Write the perplexities, with those other runs of the study wrote meanwhile (an
        architecture's perplexity is the same whoever measured it)."""
        if self.path.is_file():
            for key, value in json.loads(self.path.read_text()).items():
                self.memo.values.setdefault(key, value)
        atomic_write_text(self.path, json.dumps(self.memo.values) + "\n")


__all__ = ["HERE", "ROOT", "RUNS", "DATA", "StoredPerplexity", "run_provenance"]
