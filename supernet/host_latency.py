"""An exported ONNX subnet timed on this machine's CPU with onnxruntime.

    timing = HostTiming(warmup=10, repeats=50, threads=1)
    [lat_a, lat_b] = measure_onnx([path_a, path_b], batch=1, seq=64, vocab=96, timing=timing)
    lat_a.median_ms

Each file gets its own onnxruntime session with `threads` intra-op threads (one inter-op
thread, sequential execution) and the same random tokens [batch, seq]. After `warmup` runs of
each, the files are timed in `repeats` rounds, one run of every file per round, so that a
change of the machine's load during the measurement touches every file alike; a file's
latency is the median of its runs (with the quartiles, to show the spread). This is the
measured counterpart of the cost model's simulated latency (`nas export --onnx --measure`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from nas.core.options import option
from nas.core.provenance import machine


@dataclass(frozen=True)
class HostTiming:
    """How files are timed (also the options of `nas export --measure`)."""

    warmup: int = option(10, "--measure: untimed runs of each file first")
    repeats: int = option(50, "--measure: timed runs of each file; its latency is their "
                              "median")
    threads: int = option(1, "--measure: onnxruntime intra-op threads")


@dataclass(frozen=True)
class HostLatency:
    """One file's measured latency of one forward pass of `batch` x `seq` tokens."""

    median_ms: float
    q1_ms: float                 # first and third quartiles of the timed runs
    q3_ms: float
    batch: int
    seq: int
    warmup: int
    repeats: int
    threads: int
    runtime: str                 # onnxruntime version and execution provider
    cpu: str                     # model name and cores
    load_average: list[float] | None    # 1, 5 and 15 minutes, when the timing started

    def conditions(self) -> dict[str, Any]:
        """How it was measured: every field but the latencies."""
        return {k: v for k, v in asdict(self).items() if not k.endswith("_ms")}


def measure_onnx(paths: Sequence[str | Path], batch: int, seq: int, vocab: int,
                 timing: HostTiming = HostTiming(), seed: int = 0) -> list[HostLatency]:
    """The latency of each ONNX file in `paths` (input `idx` int64 [batch, seq] of tokens
    below `vocab`), timed as the module docstring says."""
    import numpy as np
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = timing.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for p in paths]
    tokens = np.random.default_rng(seed).integers(0, vocab, (batch, seq), dtype=np.int64)
    host = machine()                        # CPU, cores and the load when the timing starts
    for session in sessions:
        for _ in range(timing.warmup):
            session.run(None, {"idx": tokens})
    runs = np.empty((len(sessions), timing.repeats))
    for r in range(timing.repeats):
        for i, session in enumerate(sessions):
            t0 = time.perf_counter()
            session.run(None, {"idx": tokens})
            runs[i, r] = (time.perf_counter() - t0) * 1e3
    runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider"
    return [HostLatency(float(np.median(ms)), float(np.percentile(ms, 25)),
                        float(np.percentile(ms, 75)), batch, seq, timing.warmup,
                        timing.repeats, timing.threads, runtime,
                        f"{host['cpu']}, {host['cores']} cores", host['load_average'])
            for ms in runs]


__all__ = ["HostTiming", "HostLatency", "measure_onnx"]
