"""What calibration changes for a user (run by hand, not in CI): the same search on the raw and
on the calibrated perplexity of one supernet, both fronts checked by training picks alone.

    python experiments/supernet/user_search/user_search.py [--supernet runs/ranking/supernet-fewshot-seed1337]

Each step is what a user types, and is skipped when done (so the script resumes):
 1. the supernet run copied to runs/user/supernet (the benchmark's run stays uncalibrated);
 2. `nas calibrate` (the largest subnet of each d trained alone with the supernet's recipe; a
    finished identical run of the ranking benchmark is copied in instead of training it again);
 3. `nas search --no-calibration` (raw) and `nas search` (calibrated), the same settings and
    lookup table;
 4. `nas verify --top 5 --pick +0.1 +1` on both fronts (five picks spread along the front, the
    two that `nas export` takes at +0.1 and +1 perplexity of the largest subnet, and the
    largest, each trained alone).
Writes experiments/supernet/user_search.json and .md: per search, the picks that leave the
front once trained alone, the EDP reduction at +0.1 and +1 perplexity of the largest subnet as
the search claims it and as training alone finds it, the inherited perplexity's error; the
calibration's cost; the calibrated source's speed against the raw one's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT)]
HERE = Path(__file__).resolve().parent
OUT = ROOT / "runs" / "user"
RANKING_RUNS = ROOT / "runs" / "ranking"
DELTAS = (0.1, 1.0)


def nas(*argv: str) -> None:
    """Run a `nas` command in this process (what a user types), failing loudly."""
    from nas.cli import main
    print("$ nas " + " ".join(argv), flush=True)
    if main(list(argv)) != 0:
        raise SystemExit(f"nas {argv[0]} failed")


def prepare(supernet: Path) -> Path:
    """The supernet copied to OUT/supernet, and the ranking's finished standalone runs of its
    anchors (same architecture, recipe and seed) copied in as the calibration's runs."""
    from nas.calibrate import ANCHOR_DIR, anchor_pool, pick_anchors
    from supernet.checkpoint import load_checkpoint, space_of
    run = OUT / "supernet"
    if not run.is_dir():
        shutil.copytree(supernet, run)
    data = load_checkpoint(run, "best")
    seed, steps = data["config"]["seed"], data["config"]["steps"]
    for arch in pick_anchors(anchor_pool(space_of(data))):
        ranked = RANKING_RUNS / f"standalone-{arch.key}-seed{seed}"
        target = run / ANCHOR_DIR / arch.key
        if (ranked / "last.pt").is_file() and not target.exists() and \
                load_checkpoint(ranked, "last")["step"] >= steps:
            shutil.copytree(ranked, target)
            print(f"anchor {arch.key}: the ranking benchmark's identical run {ranked}")
    return run


def search_and_verify(run: Path) -> None:
    if not (run / "calibration.json").is_file():
        nas("calibrate", "--ckpt", str(run), "--no-progress")
    common = ["--ckpt", str(run), "--threads", "1", "--no-progress"]
    raw, cal = OUT / "search-raw", OUT / "search-calibrated"
    if not (raw / "front.json").is_file():
        nas("search", *common, "--out", str(raw), "--no-calibration")
    if not (cal / "front.json").is_file():
        nas("search", *common, "--out", str(cal), "--lut", str(raw / "lut.parquet"))
    for folder in (raw, cal):
        nas("verify", "--front", str(folder), "--top", "5", "--pick", "+0.1", "+1",
            "--no-progress")


# -- the summary -------------------------------------------------------------------------------

def verified_reductions(rows: list[dict]) -> dict[str, dict]:
    """EDP reduction at +delta perplexity of the largest subnet, both trained alone: the lowest
    EDP among the architectures trained alone within the largest's standalone perplexity +
    delta."""
    largest = next(r for r in rows if r["role"] == "largest")
    out = {}
    for delta in DELTAS:
        within = [r for r in rows if r["standalone_ppl"] <= largest["standalone_ppl"] + delta]
        best = min(within, key=lambda r: r["edp"])
        out[f"+{delta:g}"] = {"reduction": largest["edp"] / best["edp"], "key": best["key"],
                              "standalone_ppl": best["standalone_ppl"]}
    return out


def claims(search: dict, rows: list[dict]) -> dict[str, dict]:
    """The search's EDP reductions at +0.1 and +1, and whether each pick, trained alone, is
    within delta of the largest trained alone."""
    by_key = {r["key"]: r for r in rows}
    largest = next(r for r in rows if r["role"] == "largest")
    out = {}
    for red in search["reductions_vs_largest"]:
        key = red["key"]
        alone = by_key.get(key, {}).get("standalone_ppl")
        out[f"+{red['delta']:g}"] = {
            "reduction": red["reduction"], "key": key, "inherited_ppl": red["perplexity"],
            "standalone_ppl": alone,
            "holds": None if alone is None else alone <= largest["standalone_ppl"] + red["delta"]}
    return out


def summarise(folder: Path) -> dict:
    search = json.loads((folder / "search.json").read_text())
    verified = json.loads((folder / "verify" / "verified.json").read_text())
    rows = verified["rows"]
    picks = [r for r in rows if r["role"] == "pick"]
    return {"front_size": search["front_size"], "evaluations": search["evaluations"],
            "search_seconds": search["seconds"].get("total_s"),
            "calibrated": "calibration" in search["perplexity_source"],
            "picks_verified": len(picks),
            "picks_leaving_front": verified["picks_leaving_front"],
            "kendall_tau": verified["kendall_tau"],
            "perplexity_error_pct": statistics.fmean(
                abs(r["inherited_ppl"] / r["standalone_ppl"] - 1) * 100 for r in rows),
            "claimed": claims(search, rows), "verified": verified_reductions(rows),
            "rows": [{k: r.get(k) for k in ("key", "role", "inherited_ppl", "inherited_ppl_raw",
                                            "standalone_ppl", "edp", "on_verified_front")}
                     for r in rows]}


def source_speed(run: Path, archs: int = 24, repeats: int = 3) -> dict:
    """Seconds to score the same architectures with the raw and the calibrated source (median
    of interleaved repeats), on the search's tokens."""
    import random

    from nas.core.calibration import load_calibration
    from nas.search.quality import CalibratedQuality
    from supernet.perplexity import SupernetPerplexity
    raw = SupernetPerplexity(run, max_tokens=8192, threads=1)
    ev = raw.evaluator
    cal = CalibratedQuality(raw, load_calibration(ev.checkpoint, ev.step)[0])
    rng = random.Random(0)
    sample = [ev.space.sample(rng) for _ in range(archs)]
    times = {"raw": [], "calibrated": []}
    for _ in range(repeats):
        for name, source in (("raw", raw), ("calibrated", cal)):
            t = time.perf_counter()
            source(sample)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"archs": archs, "seconds": med, "calibrated_vs_raw": med["calibrated"] / med["raw"]}


def calibration_cost(run: Path) -> dict:
    cal = json.loads((run / "calibration.json").read_text())
    train = {}
    for a in cal["anchors"]:
        log = Path(a["run"]) / "log.jsonl"
        train[a["key"]] = json.loads(log.read_text().splitlines()[-1])["time"]
    return {"anchor_train_seconds": train, "anchors_total_s": sum(train.values()),
            "measure_and_fit_s": sum(v for k, v in cal["seconds"].items()
                                     if k != "train_anchors"),
            "model": cal["model"], "offsets": cal["offsets"]}


def write(run: Path) -> dict:
    from nas.core.atomic import atomic_write_text
    from nas.core.provenance import provenance, write_result
    out = {"supernet": str(run), "raw": summarise(OUT / "search-raw"),
           "calibrated": summarise(OUT / "search-calibrated"),
           "calibration": calibration_cost(run), "search_source_speed": source_speed(run)}
    write_result(HERE / "user_search.json", out,
                 provenance(command="python experiments/supernet/user_search/user_search.py"))
    atomic_write_text(HERE / "user_search.md", markdown(out))
    return out


def markdown(r: dict) -> str:
    lines = ["# The same search on raw and on calibrated perplexity", "",
             f"Supernet `{r['supernet']}`; calibration: {r['calibration']['model']}, offsets "
             + ", ".join(f"d{d} {v:+.4f}" for d, v in r["calibration"]["offsets"].items())
             + f"; anchors trained in {r['calibration']['anchors_total_s']:.0f} s, measured "
             f"and fitted in {r['calibration']['measure_and_fit_s']:.1f} s. Scoring "
             f"{r['search_source_speed']['archs']} architectures: calibrated / raw time "
             f"{r['search_source_speed']['calibrated_vs_raw']:.3f}.", "",
             "| search | front | picks verified | picks leaving the front | tau | inherited "
             "ppl error % | claimed EDP reduction +0.1 (holds?) | trained alone +0.1 | claimed "
             "+1 (holds?) | trained alone +1 |", "|---|---:|---:|---|---:|---:|---|---|---|---|"]
    for name in ("raw", "calibrated"):
        s = r[name]
        cells = []
        for d in ("+0.1", "+1"):
            c, v = s["claimed"][d], s["verified"][d]
            cells += [f"{c['reduction']:.2f}x ({c['holds']})" if c["reduction"] else "-",
                      f"{v['reduction']:.2f}x"]
        lines.append(f"| {name} | {s['front_size']} | {s['picks_verified']} | "
                     f"{len(s['picks_leaving_front'])} | {s['kendall_tau']:.3f} | "
                     f"{s['perplexity_error_pct']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--supernet", type=Path,
                    default=RANKING_RUNS / "supernet-fewshot-seed1337",
                    help="a finished supernet run (default: the ranking's few-shot, seed 1337)")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    run = prepare(args.supernet)
    search_and_verify(run)
    print(markdown(write(run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
