"""Ray as the distributed engine (issue 24): same fronts, nothing lost, and what it costs.

On a tiny supernet trained here, through the `nas` commands (in this process unless said):

    identical_front     `nas search --executor ray` vs `--executor local`, 2 workers each:
                        front.csv, front.json, history.csv byte for byte
    worker_kill         the Ray search with one perplexity actor killed (SIGKILL, from outside)
                        while it scores a job, after the first generation was saved:
                        evaluations lost (reference candidates missing), jobs run again
                        (search.json's retried_jobs), the same front
    two_node_cluster    a `ray.cluster_utils.Cluster` of two 1-CPU nodes, `nas search
                        --ray-address` in another process: the same front
    driver_kill         `nas search --executor ray` in another process, killed with `kill -9`
                        after a generation, then `--resume`d: the same front
    verify              `nas verify` with 1 and 2 workers, locally and on Ray (started before:
                        as on a cluster; its start-up is `ray_start_s`): parallel efficiency
                        t(1) / (2 t(2)) and Ray's time over the local pool's at 2 workers

Timings are only meaningful on a quiet machine (the load average of each part is recorded);
re-run with

    python experiments/distributed/distributed.py [--steps 200] [--top 5]
    python experiments/distributed/distributed.py --part timing --work runs/distributed

Writes ray.json next to itself (the work folder is temporary unless --work is given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from nas.cli import main as nas
from nas.core.provenance import provenance, write_result

HERE = Path(__file__).resolve().parent
FRONT_FILES = ("front.csv", "front.json", "history.csv")
ACTOR_BUSY = "ray::_QualityActor.run"       # the process title of an actor scoring a job
WORKERS = 2


def train_supernet(folder: Path) -> Path:
    """A small `tiny` supernet on the built-in corpus (what the quickstart trains, shorter)."""
    from supernet.config import TrainConfig
    from supernet.train import train
    run = folder / "supernet"
    train(TrainConfig(out=str(run), space="tiny", dataset="builtin", steps=40, eval_interval=40,
                      eval_tokens=512, seed=0, threads=1, progress=False))
    return run


def search_args(supernet: Path, out: Path, executor: str, *extra: str) -> list[str]:
    return ["search", "--ckpt", str(supernet), "--out", str(out), "--population", "12",
            "--generations", "4", "--max-tokens", "2048", "--seed", "0", "--threads", "1",
            "--workers", str(WORKERS), "--executor", executor, "--no-progress", *extra]


def front_of(out: Path) -> list[bytes]:
    return [(out / name).read_bytes() for name in FRONT_FILES]


def keys_of(out: Path) -> set[str]:
    import csv
    with (out / "history.csv").open() as f:
        return {row["key"] for row in csv.DictReader(f) if row["perplexity"] not in ("", "nan")}


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    if nas(argv) != 0:
        raise SystemExit(f"`nas {' '.join(argv)}` failed")
    return time.perf_counter() - t0


# -- worker kill ---------------------------------------------------------------------------------

def busy_actors() -> list[int]:
    """Process ids of Ray perplexity actors scoring a job now."""
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in ps.splitlines()
            if ACTOR_BUSY in line.split(None, 1)[-1]]


def generations_done(out: Path) -> int:
    try:
        return json.loads((out / "search.json").read_text()).get("generations_done", 0)
    except (OSError, ValueError):
        return 0


def kill_one_busy_actor(out: Path, killed: list[int], stop: threading.Event) -> None:
    """Once the search in `out` has saved its first generation, SIGKILL the first actor seen
    scoring a job (once): a worker lost in the middle of a later generation."""
    while not stop.is_set() and generations_done(out) < 1:
        stop.wait(0.05)
    while not stop.is_set():
        pids = busy_actors()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            return
        stop.wait(0.01)


def worker_kill(supernet: Path, work: Path, reference: Path) -> dict:
    out = work / "search-worker-kill"
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_one_busy_actor, args=(out, killed, stop))
    killer.start()
    try:
        seconds = timed(search_args(supernet, out, "ray"))
    finally:
        stop.set()
        killer.join()
    record = json.loads((out / "search.json").read_text())
    return {"killed_pids": killed, "lost_evaluations": len(keys_of(reference) - keys_of(out)),
            "retried_tasks": record["retried_jobs"],
            "identical_front": front_of(out) == front_of(reference), "seconds": round(seconds, 2)}


# -- another process: a 2-node cluster, a driver killed ------------------------------------------

def nas_process(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas.cli", *argv], env={**os.environ,
                            **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def two_node_cluster(supernet: Path, work: Path, reference: Path) -> dict:
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    out = work / "search-two-nodes"
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        proc = nas_process(search_args(supernet, out, "ray", "--ray-address", cluster.address))
        _, err = proc.communicate()
    finally:
        cluster.shutdown()
    if proc.returncode != 0:
        raise SystemExit(f"the 2-node search failed:\n{err[-2000:]}")
    return {"nodes": 2, "identical_front": front_of(out) == front_of(reference)}


def driver_kill(supernet: Path, work: Path, reference: Path) -> dict:
    """`kill -9` the driver once a generation is saved, then --resume (a fresh local Ray)."""
    out = work / "search-driver-kill"
    proc = nas_process(search_args(supernet, out, "ray"))
    doc = out / "search.json"
    while proc.poll() is None:
        if doc.is_file() and json.loads(doc.read_text() or "{}").get("generations_done", 0) >= 1:
            proc.kill()
            break
        time.sleep(0.2)
    proc.wait()
    killed_at = json.loads(doc.read_text())["generations_done"]
    resumed = nas_process(["search", "--out", str(out), "--resume", "--executor", "ray",
                           "--workers", str(WORKERS), "--no-progress"])
    _, err = resumed.communicate()
    if resumed.returncode != 0:
        raise SystemExit(f"the resumed search failed:\n{err[-2000:]}")
    return {"killed_after_generation": killed_at, "killed": proc.returncode == -signal.SIGKILL,
            "identical_front": front_of(out) == front_of(reference)}


# -- verify throughput ---------------------------------------------------------------------------

def verify_seconds(search: Path, work: Path, name: str, executor: str, workers: int,
                   steps: int, top: int) -> float:
    """`nas verify` on a fresh copy of the search (so that no run is reused)."""
    copy = work / f"verify-{name}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(search, copy, ignore=shutil.ignore_patterns("verify", ".nas.lock"))
    return timed(["verify", "--front", str(copy), "--top", str(top), "--steps", str(steps),
                  "--workers", str(workers), "--executor", executor, "--threads", "1",
                  "--no-progress"])


def verify_timings(search: Path, work: Path, steps: int, top: int) -> dict:
    t = {f"{executor}_{workers}": round(verify_seconds(search, work, f"{executor}{workers}",
                                                       executor, workers, steps, top), 2)
         for executor in ("local", "ray") for workers in (1, 2)}
    return {"seconds": t, "runs": top + 1, "steps": steps,
            "efficiency_local": round(t["local_1"] / (2 * t["local_2"]), 3),
            "efficiency_ray": round(t["ray_1"] / (2 * t["ray_2"]), 3),
            "ray_over_local_2_workers": round(t["ray_2"] / t["local_2"], 3)}


TARGETS = {"identical fronts, 0 lost evaluations": "identical_front, worker_kill, "
           "two_node_cluster, driver_kill",
           "verify_efficiency_2_workers": ">= 0.8",
           "ray_overhead_vs_local": "<= 1.1 (Ray started before: as on a cluster)"}


def correctness(supernet: Path, work: Path) -> dict:
    """The same front locally, on Ray, with an actor killed, on 2 nodes, after `kill -9`."""
    import ray
    reference = work / "search-local"
    local_s = timed(search_args(supernet, reference, "local"))
    t0 = time.perf_counter()
    ray.init(num_cpus=WORKERS, include_dashboard=False, configure_logging=False)
    ray_start = time.perf_counter() - t0
    try:
        on_ray = work / "search-ray"
        ray_s = timed(search_args(supernet, on_ray, "ray"))
        doc = {"identical_front": front_of(on_ray) == front_of(reference),
               "search_seconds": {"local": round(local_s, 2), "ray": round(ray_s, 2)},
               "ray_start_s": round(ray_start, 2),
               "worker_kill": worker_kill(supernet, work, reference)}
    finally:
        ray.shutdown()
    doc["two_node_cluster"] = two_node_cluster(supernet, work, reference)
    doc["driver_kill"] = driver_kill(supernet, work, reference)
    return doc


def timing(supernet: Path, work: Path, steps: int, top: int) -> dict:
    """`nas verify` with 1 and 2 workers, local and on Ray (started before, as on a cluster)."""
    import ray
    search = work / "search-local"
    if not (search / "front.json").is_file():
        timed(search_args(supernet, search, "local"))
    ray.init(num_cpus=WORKERS, include_dashboard=False, configure_logging=False)
    try:
        verify = verify_timings(search, work, steps, top)
    finally:
        ray.shutdown()
    return {"verify": verify, "verify_efficiency_2_workers": verify["efficiency_local"],
            "verify_efficiency_2_workers_ray": verify["efficiency_ray"],
            "ray_overhead_vs_local": verify["ray_over_local_2_workers"]}


def previous(out: Path) -> dict:
    """The figures ray.json holds (to update one part of it), without its provenance."""
    try:
        doc = json.loads(out.read_text())
    except (OSError, ValueError):
        return {}
    doc.pop("provenance", None)
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("all", "correctness", "timing"), default="all",
                    help="run one part and update its figures in --out (timings want a quiet "
                         "machine: run them apart)")
    ap.add_argument("--steps", type=int, default=200, help="training steps per verify run")
    ap.add_argument("--top", type=int, default=5, help="front picks per verify (+ the largest)")
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=HERE / "ray.json")
    args = ap.parse_args()
    prov = provenance()
    load_before = os.getloadavg()
    work = args.work or Path(tempfile.mkdtemp(prefix="distributed-"))
    parts = ("correctness", "timing") if args.part == "all" else (args.part,)
    doc = previous(args.out) if args.part != "all" else {}
    try:
        supernet = work / "supernet"
        if not (supernet / "last.pt").is_file():
            supernet = train_supernet(work)
        for part in parts:
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            figures = (correctness(supernet, work) if part == "correctness"
                       else timing(supernet, work, args.steps, args.top))
            doc.update(figures)
            doc.setdefault("parts", {})[part] = {
                "command": prov["command"], "commit": prov["commit"], "started": started,
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()]}
            load_before = os.getloadavg()
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    doc["targets"] = TARGETS
    write_result(args.out, doc, prov)
    print(json.dumps({k: v for k, v in doc.items() if k != "verify"}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
