"""The search's state file (`state.pkl`), written atomically after every generation, so a search
killed at any point continues exactly where its last generation ended (`--resume`).

It holds what the search needs to go on (nas.search.engine.Search.state: the population with
ranks and crowding distances, the random generator, the archive, the hypervolumes, the
evaluator's own state such as the racing evaluator's per-window losses, the timings), the
format version, and the identity of the search: the settings that must match to resume it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from nas.core.atomic import atomic_path
from nas.core.errors import UserError

STATE_FILE = "state.pkl"
STATE_VERSION = 4           # 2: `Candidate` records; 3: designs (joint search); 4: racing


class StateFile:
    """A state file at `path`. A search saves and loads it with its identity (settings, space,
    costs); `extra` is what else must match to resume (e.g. the perplexity source); `record`
    is saved beside them for the caller (`nas search` keeps its options there, so --resume
    needs none of them retyped)."""

    def __init__(self, path: str | Path, extra: dict[str, Any] | None = None,
                 record: dict[str, Any] | None = None):
        self.path, self.extra, self.record = Path(path), dict(extra or {}), record

    def save(self, identity: dict[str, Any], state: dict[str, Any]) -> None:
        doc = {"version": STATE_VERSION, "identity": {**identity, **self.extra},
               "record": self.record, **state}
        with atomic_path(self.path) as tmp, tmp.open("wb") as f:
            pickle.dump(doc, f, protocol=pickle.HIGHEST_PROTOCOL)

    def saved_generation(self) -> int | None:
        """The last generation the file holds (None: no readable state of this version)."""
        try:
            with open(self.path, "rb") as f:
                state = pickle.load(f)
        except Exception:  # missing, truncated or foreign: nothing saved
            return None
        ok = isinstance(state, dict) and state.get("version") == STATE_VERSION
        return state.get("generation") if ok else None

    def load(self, identity: dict[str, Any]) -> dict[str, Any]:
        """The saved state; refused in one line when it is missing, unreadable, of another
        version or of a search with another identity (naming what differs)."""
        path, identity = self.path, {**identity, **self.extra}
        state = read_state(path)
        if state["identity"] != identity:
            raise UserError(f"--resume: {path} was written by a search with different "
                            f"settings ({', '.join(_differences(state['identity'], identity))}"
                            f"); use the same settings or a new --out")
        return state


def read_state(path: str | Path) -> dict[str, Any]:
    """The state saved at `path`, whatever search wrote it; a one-line UserError when it is
    missing, unreadable or of another version."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--resume: no search state at {path}")
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except Exception as exc:  # a truncated or foreign file: say so in one line
        raise UserError(f"--resume: {path} is not a readable search state ({exc})") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise UserError(f"--resume: {path} is not a search state of this version "
                        f"(written by another version of the search; start a new --out)")
    return state


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The identity's keys that differ, the config's down to the setting."""
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if "config" in diff:
        diff = [f"config.{k}" for k in new["config"]
                if old["config"].get(k) != new["config"].get(k)] + \
               [d for d in diff if d != "config"]
    return diff
