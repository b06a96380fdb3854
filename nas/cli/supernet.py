"""`nas train-supernet`, `nas train-subnet`, `nas eval`, `nas export-subnet`.

torch and datasets are imported inside the command functions only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from nas.core.errors import UserError
from supernet.config import TrainConfig

EXAMPLES_TRAIN = """examples:
  nas train-supernet --space tiny --dataset builtin --steps 300 --out runs/sn
  nas train-supernet --dataset ../shared/data/tinyshakespeare/input.txt --steps 5000 --out runs/ts
  nas train-supernet --space survey --dataset ../shared/data/wikitext-2 --tokenizer word \\
      --block-size 256 --out runs/wt2
  torchrun --nproc_per_node 2 -m nas.cli train-supernet --out runs/ddp   # DistributedDataParallel
  nas train-supernet --out runs/sn --steps 600 --resume                  # continue / extend a run
writes: OUT/last.pt, OUT/best.pt (lowest mean validation loss), OUT/log.jsonl, OUT/eval.csv,
OUT/loss.png, OUT/config.json"""

EXAMPLES_SUBNET = """examples:
  nas train-subnet --arch arch.yaml --dataset ../shared/data/tinyshakespeare/input.txt --out runs/a
  nas train-subnet --arch L4-d128-h4.4.4.4-f512.512.512.512-hd32 --steps 2000 --out runs/big
writes the same files as train-supernet; `nas eval --ckpt OUT --arch ARCH` reads them."""

EXAMPLES_EVAL = """examples:
  nas eval --ckpt runs/sn --largest --smallest --random 5
  nas eval --ckpt runs/sn/best.pt --arch arch.yaml --split test --max-tokens 50000
prints JSON: checkpoint, split, tokens and, per architecture, key, loss (nats/token), perplexity,
params."""

EXAMPLES_EXPORT = """examples:
  nas export-subnet --ckpt runs/sn --arch arch.yaml --out subnet.pt
  nas export-subnet --ckpt runs/sn --smallest --out small.pt
writes a standalone model file (supernet.checkpoint.load_subnet reads it) and prints JSON with
the architecture and its parameter count."""


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("train-supernet", help="train the elastic supernet (sandwich rule)",
                       description="Train a weight-sharing GPT-style supernet over a search space: "
                       "every step the largest, the smallest and --n-random random subnets, "
                       "in-place distillation from the largest, AdamW with warmup and cosine "
                       "decay.", epilog=EXAMPLES_TRAIN, formatter_class=fmt)
    _add_train_options(p, supernet=True)
    p.set_defaults(func=cmd_train_supernet)

    p = sub.add_parser("train-subnet", help="train one fixed architecture from scratch",
                       description="Train one architecture alone with the supernet's recipe "
                       "(the standalone baseline, or the retraining step of a HAT-style "
                       "workflow).", epilog=EXAMPLES_SUBNET, formatter_class=fmt)
    _add_train_options(p, supernet=False)
    p.set_defaults(func=cmd_train_subnet)

    p = sub.add_parser("eval", help="perplexity of subnets with inherited weights",
                       description="Validation/test perplexity of subnets of a trained supernet "
                       "with inherited weights (no retraining); deterministic: non-overlapping "
                       "windows over the first --max-tokens tokens of the split.",
                       epilog=EXAMPLES_EVAL, formatter_class=fmt)
    _add_ckpt_and_arch(p, many=True)
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    p.add_argument("--max-tokens", type=int, default=None,
                   help="evaluate the first N tokens of the split (default: all)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per batch (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random sampling (default 0)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export-subnet", help="write a standalone model of one subnet",
                       description="Copy one subnet's weights out of the supernet into a "
                       "standalone model file and report its parameter count.",
                       epilog=EXAMPLES_EXPORT, formatter_class=fmt)
    _add_ckpt_and_arch(p, many=False)
    p.add_argument("--out", required=True, help="output file (.pt)")
    p.set_defaults(func=cmd_export_subnet)


def _add_train_options(p: argparse.ArgumentParser, supernet: bool) -> None:
    """One option per TrainConfig field; defaults and help come from the dataclass."""
    for f in fields(TrainConfig):
        if f.name == "arch":
            if not supernet:
                p.add_argument("--arch", required=True, help=f.metadata["help"])
            continue
        if f.metadata["supernet_only"] and not supernet:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                           help=f.metadata["help"])
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        p.add_argument(flag, type=kind, default=default, metavar=f.name.upper(),
                       help=f"{f.metadata['help']} (default: {default})")


def _config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                          if hasattr(args, f.name)})


def cmd_train_supernet(args: argparse.Namespace) -> int:
    from supernet.train import train
    out = train(_config(args))
    if os.environ.get("RANK", "0") == "0":                 # once under torchrun
        print(f"supernet run written to {out}")
    return 0


def cmd_train_subnet(args: argparse.Namespace) -> int:
    from supernet.train import train
    out = train(_config(args))
    if os.environ.get("RANK", "0") == "0":                 # once under torchrun
        print(f"subnet run written to {out}")
    return 0


def _add_ckpt_and_arch(p: argparse.ArgumentParser, many: bool) -> None:
    p.add_argument("--ckpt", required=True, help="run directory (uses best.pt) or checkpoint")
    p.add_argument("--arch", action="append" if many else "store", default=[] if many else None,
                   help="architecture YAML/JSON file or key" + (" (repeatable)" if many else ""))
    p.add_argument("--largest", action="store_true", help="the largest subnet")
    p.add_argument("--smallest", action="store_true", help="the smallest subnet")
    if many:
        p.add_argument("--random", type=int, default=0, metavar="N",
                       help="N uniformly sampled subnets")


def _selected_archs(args: argparse.Namespace, space, many: bool) -> list:
    from nas.core.arch import resolve_model
    archs = [resolve_model(a)[0] for a in (args.arch if many else [args.arch] if args.arch
                                           else [])]
    if args.largest:
        archs.append(space.largest())
    if args.smallest:
        archs.append(space.smallest())
    if many and args.random:
        if args.random < 0:
            raise UserError(f"--random must be >= 0, got {args.random}")
        rng = random.Random(args.seed)
        archs += [space.sample(rng) for _ in range(args.random)]
    if not archs:
        raise UserError("choose architectures: --arch, --largest, --smallest"
                        + (" or --random N" if many else ""))
    if not many and len(archs) > 1:
        raise UserError("export-subnet takes exactly one of --arch, --largest, --smallest")
    for arch in archs:
        space.check(arch)
    return archs


def cmd_eval(args: argparse.Namespace) -> int:
    from supernet.checkpoint import load_checkpoint, space_of
    from supernet.evaluate import SupernetEvaluator

    if args.batch_size <= 0:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    archs = _selected_archs(args, space_of(load_checkpoint(args.ckpt)), many=True)
    ev = SupernetEvaluator(args.ckpt, split=args.split, max_tokens=args.max_tokens,
                           batch_size=args.batch_size, device=args.device)
    losses = ev.losses(archs)
    import math
    result = {"checkpoint": ev.checkpoint, "step": ev.step, "split": args.split,
              "tokens": ev.tokens,
              "results": [{"key": a.key, "arch": a.to_dict(), "loss": loss,
                           "perplexity": math.exp(loss),
                           "params": a.params(ev.vocab_size, ev.block_size)}
                          for a, loss in zip(archs, losses)]}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


def cmd_export_subnet(args: argparse.Namespace) -> int:
    from supernet.checkpoint import export_subnet, load_checkpoint, space_of

    data = load_checkpoint(args.ckpt)
    (arch,) = _selected_archs(args, space_of(data), many=False)
    info = export_subnet(data, arch, args.out)
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    return 0
