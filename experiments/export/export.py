"""Exported subnets of a `tiny-kinds` supernet: ONNX and torch.export files of every attention
kind, checked against PyTorch.

    python experiments/export/export.py                 # writes experiments/export/export.json

Trains (or reuses: supernet.train.train_run) a short `tiny-kinds` supernet on Tiny Shakespeare in
runs/export-supernet, then exports with `nas export-subnet`'s code (supernet.export): for each
attention kind the space's smallest and largest subnet with that kind in every layer, and
--random subnets drawn from the space (kinds mixed per layer). Each file is checked by the
export itself: its logits (onnxruntime for .onnx, the loaded program for .pt2) against PyTorch's
on random tokens, batch 1 and 3 x length 64 and 21. export.json holds per pick its key,
parameters, and per format the max abs difference and the file size over the parameters'
float32 bytes; `max_abs_diff` and `size_ratio_max` are the ONNX maxima (targets: <= 1e-4 and
<= 1.02), `pt2_max_abs_diff` and `pt2_size_ratio_max` those of the .pt2 files.

Then every ONNX file is timed on this machine's CPU as `nas export --onnx --measure` times a
front's picks (supernet.host_latency.measure_onnx: one forward pass of the supernet's workload,
batch 1 x the context, one onnxruntime thread, median of the timed runs, the files interleaved)
and compared with its latency simulated on gemmini-transformer for the same workload:
`measured_vs_simulated_latency_tau` is Kendall's tau over the picks (at least 30, the rule for
a rank correlation), with its p-value and each pick's two latencies.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from nas.core.arch import Arch, SearchSpace  # noqa: E402
from nas.core.provenance import provenance, write_result  # noqa: E402

SIMULATED_ON = "gemmini-transformer"        # the accelerator the host timing is ranked against

DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
KINDS = ("softmax", "taylor", "sparse25", "sparse50")


def picks(space: SearchSpace, n_random: int, seed: int = 0) -> list[Arch]:
    """Smallest and largest with each kind in every layer, then `n_random` sampled subnets."""
    rng = random.Random(seed)
    chosen = [a for kind in KINDS for a in (space.smallest().with_attention(kind),
                                            space.largest().with_attention(kind))]
    chosen += [space.sample(rng) for _ in range(n_random)]
    return list(dict.fromkeys(chosen))


def measure(data: dict, arch: Arch, folder: Path, formats: tuple[str, ...]) -> dict:
    from supernet.export import export_subnet
    row = {"key": arch.key, "attention": list(arch.attention)}
    for suffix in formats:
        model, check = export_subnet(data, arch, folder / f"{arch.key}{suffix}")
        row["params"] = sum(p.numel() for p in model.parameters())
        row[suffix[1:]] = {"max_abs_diff": check.max_abs_diff, "size_ratio": check.size_ratio,
                           "file_bytes": check.file_bytes, "param_bytes": check.param_bytes,
                           "shapes": [list(s) for s in check.shapes], "runtime": check.runtime}
        print(f"{arch.key:48s} {suffix:6s} max abs diff {check.max_abs_diff:.2e}, "
              f"size {check.size_ratio:.4f} x the parameters", flush=True)
    return row


def host_latency(data: dict, rows: list[dict], folder: Path, repeats: int) -> dict:
    """Each pick's ONNX file timed on this CPU and simulated on SIMULATED_ON (the supernet's
    workload: a prefill of its context), their Kendall tau; each row gets both latencies."""
    from costmodel.workload import Workload
    from nas.export_onnx import LatencyComparison, subnet_costs
    from supernet.host_latency import HostTiming, measure_onnx
    config = data["model_config"]
    workload = Workload(seq=config["block_size"], batch=1, mode="decoder",
                        vocab=config["vocab_size"])
    timing = HostTiming(repeats=repeats)
    measured = measure_onnx([folder / f"{r['key']}.onnx" for r in rows], 1,
                            config["block_size"], config["vocab_size"], timing)
    for row, lat in zip(rows, measured):
        row["simulated_ms"] = subnet_costs(Arch.from_key(row["key"]), workload,
                                           hw=SIMULATED_ON).latency_ms
        row["measured_ms"], row["measured_q1_ms"], row["measured_q3_ms"] = \
            lat.median_ms, lat.q1_ms, lat.q3_ms
    comparison = LatencyComparison.of(rows)
    print(f"measured (onnxruntime, {timing.threads} thread, median of {timing.repeats}) vs "
          f"simulated ({SIMULATED_ON}) latency over {len(rows)} picks: Kendall tau "
          f"{comparison.kendall_tau:.3f} (p = {comparison.pvalue:.2g})", flush=True)
    return {"measured_vs_simulated_latency_tau": comparison.kendall_tau,
            "measured_vs_simulated_latency_pvalue": comparison.pvalue,
            "host_latency": {"simulated_on": SIMULATED_ON, "workload": workload.key,
                             "picks": len(rows), **measured[0].conditions()}}


def versions() -> dict:
    import onnx
    import onnxruntime
    import torch
    return {"torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="supernet training steps")
    ap.add_argument("--random", type=int, default=24, help="random subnets besides the kinds'")
    ap.add_argument("--repeats", type=int, default=50,
                    help="timed runs of each ONNX file (its latency: their median)")
    ap.add_argument("--out", type=Path, default=HERE / "export.json")
    args = ap.parse_args(argv)
    from costmodel.simulate import SIMULATOR_VERSION
    prov = provenance(simulator_version=SIMULATOR_VERSION)
    import torch

    from supernet.checkpoint import load_checkpoint
    from supernet.config import TrainConfig
    from supernet.export import OPSET, TOLERANCE
    from supernet.train import train_run
    torch.set_num_threads(1)
    run = ROOT / "runs" / "export-supernet"
    train_run(TrainConfig(out=str(run), space="tiny-kinds", dataset=str(DATA), steps=args.steps,
                          eval_interval=args.steps, threads=1, progress=False))
    data = load_checkpoint(run, "best")
    space = SearchSpace.from_dict(data["space"])
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(data, a, Path(tmp), (".onnx", ".pt2"))
                for a in picks(space, args.random)]
        latency = host_latency(data, rows, Path(tmp), args.repeats)
    result = {
        "supernet": {"space": "tiny-kinds", "dataset": "Tiny Shakespeare (char)",
                     "steps": data["step"], "block_size": data["model_config"]["block_size"],
                     "vocab_size": data["model_config"]["vocab_size"]},
        "opset": OPSET, "tolerance": TOLERANCE, "kinds": list(KINDS), "picks": rows,
        "max_abs_diff": max(r["onnx"]["max_abs_diff"] for r in rows),
        "size_ratio_max": max(r["onnx"]["size_ratio"] for r in rows),
        "pt2_max_abs_diff": max(r["pt2"]["max_abs_diff"] for r in rows),
        "pt2_size_ratio_max": max(r["pt2"]["size_ratio"] for r in rows),
        **latency, "versions": versions()}
    write_result(args.out, result, prov)
    print(f"ONNX: max abs diff {result['max_abs_diff']:.2e} (target <= {TOLERANCE:g}), size "
          f"ratio max {result['size_ratio_max']:.4f} (target <= 1.02); .pt2: "
          f"{result['pt2_max_abs_diff']:.2e}, {result['pt2_size_ratio_max']:.4f}; measured "
          f"vs simulated latency tau {result['measured_vs_simulated_latency_tau']:.3f}; wrote "
          f"{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
