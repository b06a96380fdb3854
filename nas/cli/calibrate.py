"""`nas calibrate`: argument parsing only; the work is done by `nas.calibrate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.core.distributed import add_executor_options
from nas.core.options import add_progress_option

EXAMPLES = """examples:
  nas calibrate --ckpt runs/supernet                  # the largest subnet of each d, alone
  nas calibrate --ckpt runs/supernet --anchors 6 --workers 2
  nas verify --front runs/search && nas calibrate --add-verified runs/search
  nas calibrate --ckpt runs/supernet --anchors 12 --workers 12 --executor ray  # $RAY_ADDRESS
writes RUN/calibration/<arch key>/ (one training run per anchor, reused or resumed when run
again) and RUN/calibration.json; from then on `nas eval`, `nas search`, `nas export` and `nas
verify` report the calibrated loss and perplexity with the raw value beside it
(`nas search --no-calibration` searches on the raw one)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        help="calibrate a supernet's perplexity with a few subnets trained alone",
        description="A supernet's inherited loss is biased by embedding width d (too "
                    "pessimistic by an offset that grows with d). Train anchor subnets alone "
                    "with the supernet's recipe (by default the largest of each d, one per "
                    "few-shot sub-supernet), measure their inherited and standalone loss on "
                    "the same tokens and fit a correction: an offset per d, and with two or "
                    "more anchors of a width the model of least leave-one-anchor-out error "
                    "(a slope on the inherited loss, shared or one per d, or a term in "
                    "ln(parameters)). "
                    "Stored as RUN/calibration.json for the checkpoint it was fitted on.")
    p.add_argument("--ckpt", help="supernet run directory or checkpoint (with --add-verified: "
                                  "default the supernet the search ran on)")
    p.add_argument("--anchors", type=int,
                   help="anchors to train: the largest subnet of every d first, then more per "
                        "d spread by parameter count (default: one per d)")
    p.add_argument("--add-verified", metavar="SEARCH",
                   help="instead of training anchors, add the architectures `nas verify "
                        "--front SEARCH` trained alone (with the supernet's step count) to the "
                        "run's anchors and fit again")
    p.add_argument("--workers", type=int, default=1,
                   help="anchor training runs in parallel: processes, or Ray tasks with "
                        "--executor ray (default: 1)")
    p.add_argument("--threads", type=int, help="torch CPU threads per run (default: 1)")
    p.add_argument("--split", default="valid", choices=("train", "valid", "test"),
                   help="split both losses of the anchors are measured on (default: valid)")
    p.add_argument("--max-tokens", type=int,
                   help="measure on the first N tokens of the split (default: all of it)")
    add_executor_options(p, "anchor training runs")
    add_progress_option(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from nas.calibrate import CalibrateJob, calibrate
    calibrate(CalibrateJob(
        ckpt=Path(args.ckpt) if args.ckpt else None, anchors=args.anchors,
        add_verified=Path(args.add_verified) if args.add_verified else None,
        workers=args.workers, threads=args.threads, split=args.split,
        max_tokens=args.max_tokens, progress=args.progress, executor=args.executor,
        ray_address=args.ray_address))
    return 0
