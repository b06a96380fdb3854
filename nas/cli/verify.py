"""`nas verify`: argument parsing only; the work is done by `nas.verify`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.core.distributed import add_executor_options
from nas.core.options import add_progress_option

EXAMPLES = """examples:
  nas verify --front runs/search                       # 5 picks and the largest subnet
  nas verify --front runs/search --top 8 --workers 2 --steps 500
  nas verify --front runs/search --pick +0.1 +1      # and the picks `nas export` takes
  nas verify --front runs/search --top 16 --workers 16 --executor ray --ray-address HEAD:6379
writes FRONT/verify/<arch key>/ (one training run each, reused or resumed when run again),
FRONT/verify/verified.csv, verified.json (Kendall tau, picks that leave the front) and
verified.png (standalone vs inherited perplexity)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        help="retrain front picks alone with the supernet's recipe; compare with inherited "
             "perplexity",
        description="Train K architectures spread evenly along a search's front (by "
                    "perplexity, the largest subnet aside) and the largest subnet from "
                    "scratch, each alone, with the supernet's training settings, and measure their perplexity on the "
                    "search's validation subset: the last step of HAT's workflow. Writes the "
                    "verified front beside the inherited one, Kendall's tau between the two "
                    "perplexities and the picks that leave the front.")
    p.add_argument("--front", required=True, help="search output directory (or its front.json)")
    p.add_argument("--top", type=int, default=5,
                   help="front architectures to retrain, spread evenly along the front "
                        "(default: 5; the whole front when it is smaller)")
    p.add_argument("--pick", nargs="+", default=[],
                   help="also retrain these front architectures (the expressions of `nas "
                        "export --pick`, e.g. +0.1 +1 min-edp)")
    p.add_argument("--workers", type=int, default=1,
                   help="training runs in parallel processes (default: 1)")
    p.add_argument("--steps", type=int,
                   help="training steps per run (default: the supernet's)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads per run (default: 1)")
    add_executor_options(p, "training runs")
    add_progress_option(p)
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from nas.verify import VerifyJob, verify
    verify(VerifyJob(front=Path(args.front), top=args.top, picks=args.pick, workers=args.workers,
                     steps=args.steps, threads=args.threads, progress=args.progress,
                     executor=args.executor, ray_address=args.ray_address))
    return 0
