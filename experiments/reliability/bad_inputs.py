"""The bad-input sweep (tests/bad_inputs.py) against a checkout: every case in a subprocess,
outcomes counted.

    python experiments/reliability/bad_inputs.py --code /path/to/checkout --label before \\
        --json experiments/reliability/bad_inputs_before.json

The inputs (a tiny supernet trained for 3 steps, a search of it, tables, broken variants) are
made with this checkout's code; the cases run `python -m nas.cli` with --code first on the
path, one at a time (they share the inputs), each with --timeout seconds. An outcome is the
first of: special file destroyed, traceback, hang, exit 0, another exit code, more than one
line on stderr, files changed on disk; else good (exit 2, one line, nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bad_inputs import CASES, Attempt, attempt_case, build_world  # noqa: E402
from nas.cli import main  # noqa: E402

ORDER = ("special file destroyed", "traceback", "hang", "exit 0", "exit", "lines on stderr",
         "files changed on disk")


def outcome(problems: list[str]) -> str:
    for name in ORDER:
        if any(p == name or (name in ("exit", "lines on stderr") and name in p)
               for p in problems):
            return {"exit": "other exit code", "lines on stderr": "several lines"}.get(name, name)
    return "good"


def subprocess_runner(code: Path, timeout: float):
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}

    def run(argv: list[str], cwd: Path) -> Attempt:
        proc = subprocess.Popen([sys.executable, "-m", "nas.cli", *argv], cwd=cwd, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace", start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
            return Attempt(proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return Attempt(None, out, err)
    return run


def tiny_supernet(root: Path) -> Path:
    """The tests' tiny supernet (tests/conftest.py), trained with the command line."""
    import nas.core.arch
    corpus = root / "corpus.txt"
    corpus.write_text(Path(nas.core.arch.__file__).read_text() * 2)
    run = root / "supernet"
    assert main(["train-supernet", "--out", str(run), "--space", "tiny", "--dataset",
                 str(corpus), "--steps", "3", "--batch-size", "2", "--block-size", "16",
                 "--eval-interval", "3", "--eval-tokens", "256", "--eval-random", "0",
                 "--warmup", "1", "--no-progress"]) == 0
    return run


def git_commit(code: Path) -> str:
    proc = subprocess.run(["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain"],
                           capture_output=True, text=True).stdout.strip()
    return (proc.stdout.strip() or "unknown") + (" (uncommitted changes)" if dirty else "")


def sweep(code: Path, timeout: float, root: Path, only: str | None) -> list[dict]:
    world = build_world(root, tiny_supernet(root), main)
    run = subprocess_runner(code, timeout)
    rows = []
    try:
        for i, case in enumerate(c for c in CASES if not only or only in c.id):
            if world.missing(case):
                rows.append({"id": case.id, "outcome": "skipped", "problems": []})
                continue
            t0 = time.perf_counter()
            attempt, problems = attempt_case(world, case, root / "cwd" / case.id, run)
            err = [line for line in attempt.err.splitlines() if line.strip()]
            rows.append({"id": case.id, "argv": world.fill(case.argv), "exit": attempt.code,
                         "outcome": outcome(problems), "problems": problems,
                         "stderr_last_line": (err[-1] if err else "")[:300],
                         "seconds": round(time.perf_counter() - t0, 2)})
            print(f"{i + 1:4d} {case.id:45s} {rows[-1]['outcome']:22s} "
                  f"{rows[-1]['seconds']:6.2f} s", flush=True)
    finally:
        world.close()
    return rows


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to run (default: this)")
    parser.add_argument("--commit", help="commit of --code, when it is not a git checkout")
    parser.add_argument("--label", default="after")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--only", help="cases whose id contains this")
    args = parser.parse_args()
    # a kill ends the sweep through its `finally`: the read-only folder is made writable again
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        rows = sweep(args.code.resolve(), args.timeout, Path(tmp), args.only)
    counts = Counter(r["outcome"] for r in rows)
    doc = {"label": args.label, "cases": len(rows),
           "counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
           "problems": dict(Counter(p for r in rows for p in r["problems"])),
           "failing": [r for r in rows if r["outcome"] not in ("good", "skipped")],
           "good": [r["id"] for r in rows if r["outcome"] == "good"],
           "provenance": {"command": " ".join([sys.executable, *sys.argv]),
                          "commit": args.commit or git_commit(args.code),
                          "code": str(args.code.resolve()),
                          "machine": f"{platform.node()} {platform.machine()}, "
                                     f"{os.cpu_count()} cores, Python "
                                     f"{platform.python_version()}, uid {os.geteuid()}",
                          "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                          "seconds": round(time.perf_counter() - t0, 1)}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["counts"]))


if __name__ == "__main__":
    main_cli()
