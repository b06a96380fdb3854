"""How much the smaller subnets' losses weigh in the sandwich rule, and what it does to the largest.

Trains, on Tiny Shakespeare (`tiny` space, the nanoGPT baby-GPT recipe, one torch thread each):
the supernet with the students' losses summed (`--student-weight 1`, BigNAS's plain sum), the
supernet with them averaged (the default: 1 / number of students), and the largest architecture
alone (`nas train-subnet`), all for the same steps; then compares the largest subnet's final
validation loss. Runs go to runs/bench-student-weight/ and are reused when complete.

    python experiments/supernet/student_weight/student_weight.py --steps 1000
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from nas.core.provenance import provenance, write_result
from nas.cli import main as nas

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
LARGEST = "L4-d128-h4.4.4.4-f512.512.512.512-hd32"


def final_loss(run: Path, steps: int) -> float | None:
    """The largest subnet's validation loss at `steps` in run/eval.csv, or None if not there."""
    if not (run / "eval.csv").exists():
        return None
    for row in csv.DictReader((run / "eval.csv").open()):
        if int(row["step"]) == steps:
            return float(row.get("largest") or row["subnet"])
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench-student-weight")
    args = ap.parse_args(argv)
    prov = provenance()
    common = ["--dataset", str(DATA), "--steps", str(args.steps), "--eval-interval",
              str(args.steps // 2), "--threads", "1", "--no-progress"]
    variants = {"summed (student weight 1)": ["train-supernet", "--student-weight", "1"],
                "averaged (default, 1/3)": ["train-supernet"],
                "largest trained alone": ["train-subnet", "--arch", LARGEST]}
    results = {}
    for name, cmd in variants.items():
        run = args.runs / f"{cmd[0]}-{'-'.join(cmd[1:]) or 'default'}-{args.steps}"
        if final_loss(run, args.steps) is None:
            if nas(cmd + common + ["--out", str(run)]):
                return 1
        results[name] = {"loss": final_loss(run, args.steps), "run": str(run),
                         "command": "nas " + " ".join(cmd + common + ["--out", str(run)])}
    alone = results["largest trained alone"]["loss"]
    for r in results.values():
        r["gap_vs_alone_pct"] = 100 * (r["loss"] / alone - 1)
    out = {"steps": args.steps, "dataset": "Tiny Shakespeare (90/10)", "largest": LARGEST,
           "results": results}
    path = Path(__file__).with_name(f"student_weight_{args.steps}.json")
    write_result(path, out, prov)
    for name, r in results.items():
        print(f"{name:28s} largest's validation loss {r['loss']:.4f} "
              f"({r['gap_vs_alone_pct']:+.1f}% vs alone)")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
