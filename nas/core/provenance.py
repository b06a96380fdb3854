"""Provenance of a result file: the command that wrote it, the code version, the machine, the
date and, for anything the cost model produced, the simulator version.

    prov = provenance(simulator_version=SIMULATOR_VERSION)   # at the start of a run
    ...                                                      # the run
    write_result(path, figures, prov)                        # {**figures, "provenance": prov}

Collect it when the run starts (the code that runs is the code at the start; a long run may
outlive later edits of the tree), write it with the figures. Every script under experiments/
writes its results this way, and tests/test_provenance.py fails when a committed result lacks
it or carries an old simulator version.

This module is the foundation layer: it imports nothing above `nas.core` and never imports
torch; the caller passes `simulator_version` (`costmodel.simulate.SIMULATOR_VERSION`) when
the cost model produced the result.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from nas.core.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
# What counts as code for the `dirty` flag: results and documentation do not.
CODE_PATHS = ("*.py", "*.yaml", "*.yml", "*.toml")
REQUIRED = ("command", "commit", "machine")


def command_line(argv: list[str] | None = None) -> str:
    """The command as run: `python experiments/x/y.py --args` (the script relative to the
    repository when it is inside it), `python -m package ...`, or `nas search ...` for an
    entry point."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]) if argv and argv[0] else Path("python")
    if argv and argv[0] == "-c":                        # python -c CODE
        head = ["python", "-c"]
    elif script.name == "__main__.py":                  # python -m package
        head = ["python", "-m", script.parent.name]
    elif script.suffix == ".py":
        path = script.resolve()
        head = ["python", str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else script)]
    else:
        head = [script.name]
    return shlex.join(head + argv[1:])


def _git(*args: str, root: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version(root: Path = ROOT) -> dict[str, Any]:
    """{"commit": git HEAD, "dirty": uncommitted changes to code or configs (CODE_PATHS,
    untracked ones included)}; "unknown" and None outside a git checkout."""
    commit = _git("rev-parse", "HEAD", root=root)
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = _git("status", "--porcelain", "--", *CODE_PATHS, root=root)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu(torch: Any) -> str | None:
    """The first GPU's name: from torch when the run imported it, else from nvidia-smi."""
    if torch is not None:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    names = done.stdout.strip().splitlines() if done.returncode == 0 else []
    return names[0] if names else None


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Host CPU model, cores, OS, Python, load average, torch's version when installed, its
    threads when the run imported it (this module never imports torch), and the GPU if any."""
    torch = sys.modules.get("torch")
    info: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg")
        else None,
    }
    version = _installed("torch")
    if version:
        info["torch"] = version
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    info["gpu"] = _gpu(torch)
    return info


def provenance(simulator_version: str | None = None, command: str | None = None
               ) -> dict[str, Any]:
    """`command` (default: this process's command line), `commit` and `dirty`, `machine`,
    `date` (UTC) and, when given, `simulator_version`."""
    prov: dict[str, Any] = {"command": command or command_line(), **code_version(),
                            "machine": machine(),
                            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if simulator_version is not None:
        prov["simulator_version"] = str(simulator_version)
    return prov


def write_result(path: str | Path, data: dict[str, Any], prov: dict[str, Any]) -> Path:
    """Write `data` as JSON with `prov` under "provenance", atomically (nothing half-written
    on a crash). Returns the path."""
    missing = [k for k in REQUIRED if not prov.get(k)]
    if missing:
        raise ValueError(f"provenance lacks {', '.join(missing)}")
    doc = {k: v for k, v in data.items() if k != "provenance"} | {"provenance": prov}
    atomic_write_text(path, json.dumps(doc, indent=1, default=str) + "\n", what="result")
    return Path(path)


def problems(doc: Any, simulator_version: str) -> list[str]:
    """Why a result document fails the provenance rule: no provenance object, a required
    field missing, or a simulator version other than `simulator_version` (empty: it passes)."""
    prov = doc.get("provenance") if isinstance(doc, dict) else None
    if not isinstance(prov, dict):
        return ["no provenance"]
    found = [f"no provenance.{k}" for k in REQUIRED if not prov.get(k)]
    if "simulator_version" in prov and str(prov["simulator_version"]) != simulator_version:
        found.append(f"simulator {prov['simulator_version']} != {simulator_version}")
    return found
