"""What the scripts of this study share: where things live, and a results file with its
provenance (command, commit, machine, simulator version).

`write_result` is this folder's stand-in for `nas.core.provenance.write_result` (on its way to
main in a parallel change); the scripts should call that one once it is there.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from costmodel.simulate import SIMULATOR_VERSION
from nas.core.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNS = ROOT / "runs"
DATA = ROOT.parent / "shared" / "data"


def provenance() -> dict[str, Any]:
    """The command that ran, the commit it ran at, the machine and the simulator version."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "costmodel", "lut", "nas", "supernet"], check=True,
                               capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"command": " ".join(["python", str(shown), *sys.argv[1:]]), "commit": commit,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python "
                       f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}",
            "simulator_version": SIMULATOR_VERSION}


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
        atomic_write_text(self.path, json.dumps(self.memo.values) + "\n")


def write_result(path: Path, doc: dict[str, Any]) -> Path:
    """`doc` with its provenance as indented JSON, written atomically."""
    atomic_write_text(path, json.dumps({**doc, "provenance": provenance()}, indent=1,
                                       default=str) + "\n")
    return path


__all__ = ["HERE", "ROOT", "RUNS", "DATA", "StoredPerplexity", "provenance", "write_result"]
