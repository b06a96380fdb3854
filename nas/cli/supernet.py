"""`nas train-supernet`, `nas train-subnet`, `nas eval`, `nas sample`, `nas export-subnet`.

torch and datasets are imported inside the command functions only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from dataclasses import asdict

from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.core.options import add_options, from_args, given
from nas.core.paths import check_output_dir, check_output_file
from supernet.config import TrainConfig

EXAMPLES_TRAIN = """examples:
  nas train-supernet --space tiny --dataset builtin --steps 300 --out runs/sn
  nas train-supernet --dataset ../shared/data/tinyshakespeare/input.txt --steps 5000 --out runs/ts
  nas train-supernet --space survey --dataset ../shared/data/wikitext-2 --tokenizer word \\
      --block-size 256 --out runs/wt2
  torchrun --nproc_per_node 2 -m nas.cli train-supernet --out runs/ddp   # DistributedDataParallel
  nas train-supernet --out runs/sn --steps 600 --resume      # continue, or extend to 600 steps
  nas train-supernet --space tiny-kinds --out runs/kinds   # attention kinds per layer: softmax,
                                                           # taylor, sparse25, sparse50
writes: OUT/last.pt, OUT/best.pt (lowest mean validation loss), OUT/log.jsonl, OUT/eval.csv,
OUT/loss.png, OUT/config.json (and OUT/tensorboard/ with --tensorboard:
`tensorboard --logdir OUT/tensorboard`). --resume takes every setting from the checkpoint."""

EXAMPLES_SUBNET = """examples:
  nas train-subnet --arch arch.yaml --dataset ../shared/data/tinyshakespeare/input.txt --out runs/a
  nas train-subnet --arch L4-d128-h4.4.4.4-f512.512.512.512-hd32 --steps 2000 --out runs/big
  nas train-subnet --out runs/big --steps 4000 --resume      # --arch comes from the checkpoint
  nas train-subnet --arch L2-d128-h4.4-f512.512-hd32-at.sp25 --out runs/mixed
      # attention kinds per layer (-a: s softmax, t taylor, spNN sparse keeping NN%)
writes the same files as train-supernet; `nas eval --ckpt OUT --largest` and
`nas sample --ckpt OUT` read them."""

EXAMPLES_EVAL = """examples:
  nas eval --ckpt runs/sn --largest --smallest --random 5
  nas eval --ckpt runs/sn/best.pt --arch arch.yaml --split test --max-tokens 50000 --json
  nas eval --ckpt runs/sn --random 20 --out eval.json --tensorboard runs/sn/tensorboard-eval
  nas eval --ckpt runs/kinds --arch L4-d128-h4.4.4.4-f512.512.512.512-hd32-as.t.sp25.sp50
  nas eval --ckpt subnet.pt --largest              # a subnet file of `nas export-subnet`
prints a table (key, parameters, loss in nats/token, perplexity) under a line with the
checkpoint, its step, the split and the number of tokens; --json prints the same as JSON."""

EXAMPLES_SAMPLE = """examples:
  nas sample --ckpt runs/ts --prompt "ROMEO:" --tokens 300
  nas sample --ckpt runs/ts --smallest --num-samples 3 --temperature 0.8 --top-k 20
  nas sample --ckpt runs/big                       # a train-subnet run: its architecture
  nas sample --ckpt subnet.pt                      # a subnet file of `nas export-subnet`
  nas sample --ckpt runs/kinds --arch L2-d96-h3.3-f256.256-hd32-at.sp25   # any attention kinds
prints each sample (the prompt, then the generated text), separated by lines of dashes."""

EXAMPLES_EXPORT = """examples:
  nas export-subnet --ckpt runs/sn --arch arch.yaml --out subnet.pt     # for nas eval / sample
  nas export-subnet --ckpt runs/sn --smallest --out small.onnx --hw gemmini-transformer
  nas export-subnet --ckpt runs/kinds --arch L2-d64-h2.2-f128.128-hd32-at.s --out mixed.pt2
  nas export-subnet --ckpt runs/sn --largest --out big.onnx --lut runs/sn.lut.parquet
writes the subnet alone (its own weights, each once) in the format of --out's suffix: .pt
(`nas eval --ckpt FILE`, `nas sample --ckpt FILE`), .onnx (dynamic batch and sequence axes) or
.pt2 (torch.export); runs the file (onnxruntime for .onnx) against PyTorch on random tokens at
two batch sizes and two lengths (a max abs difference of the logits above 1e-4 is an error);
writes the model card FILE.card.json beside it (architecture, tokenizer, the check, perplexity,
and with --hw or --lut the simulated latency, energy, EDP and area); prints the card (without
the tokenizer) as JSON."""

SPLIT_HELP = ("train, valid or test (default: valid). valid is the last 10%% of a single text "
              "file, the valid/validation file of a folder, the validation split of a hf: "
              "dataset, or 5%% of builtin; test exists for a folder with a test file, a hf: "
              "dataset with a test split, and builtin")
SUBNET_DEFAULTS = {"out": "runs/subnet"}


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("train-supernet", help="train the elastic supernet (sandwich rule)",
                       description="Train a weight-sharing GPT-style supernet over a search space: "
                       "every step the largest, the smallest and --n-random random subnets, "
                       "in-place distillation from the largest, AdamW with warmup and cosine "
                       "decay.", epilog=EXAMPLES_TRAIN, formatter_class=fmt)
    add_options(p, TrainConfig, include=lambda f: f.name != "arch")
    p.set_defaults(func=cmd_train, supernet=True)

    p = sub.add_parser("train-subnet", help="train one fixed architecture from scratch",
                       description="Train one architecture alone with the supernet's recipe "
                       "(the standalone baseline, or the retraining step of a HAT-style "
                       "workflow). --arch is required unless --resume.",
                       epilog=EXAMPLES_SUBNET, formatter_class=fmt)
    add_options(p, TrainConfig, include=lambda f: not f.metadata.get("supernet_only"),
                defaults=SUBNET_DEFAULTS)
    p.set_defaults(func=cmd_train, supernet=False)
    _register_eval(sub, fmt)
    _register_sample(sub, fmt)
    _register_export(sub, fmt)


def _register_eval(sub: argparse._SubParsersAction, fmt) -> None:
    p = sub.add_parser("eval", help="perplexity of subnets with inherited weights",
                       description="Validation/test perplexity of subnets of a trained supernet "
                       "with inherited weights (no retraining); deterministic: non-overlapping "
                       "windows over the first --max-tokens tokens of the split.",
                       epilog=EXAMPLES_EVAL, formatter_class=fmt)
    _add_ckpt_and_arch(p, many=True, subnets=True)
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"],
                   help=SPLIT_HELP)
    p.add_argument("--max-tokens", type=int, default=None,
                   help="evaluate the first N tokens of the split (default: all)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per batch (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random sampling (default: 0)")
    _add_device_and_threads(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the JSON to FILE")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write each architecture's loss and perplexity as TensorBoard "
                        "scalars (at the checkpoint's step) into DIR")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar over architectures x batches (default: on)")
    p.set_defaults(func=cmd_eval)


def _register_sample(sub: argparse._SubParsersAction, fmt) -> None:
    p = sub.add_parser("sample", help="generate text from a subnet",
                       description="Generate text with any subnet of a trained supernet (or a "
                       "train-subnet run) and its inherited weights, as nanoGPT's sample.py: "
                       "the context is cropped to the block size; word tokenizers join words "
                       "with spaces and print <eos> as a line break.",
                       epilog=EXAMPLES_SAMPLE, formatter_class=fmt)
    _add_ckpt_and_arch(p, many=False, default="the largest, or a train-subnet run's own",
                       subnets=True)
    p.add_argument("--prompt", default="",
                   help="text to continue (default: a new line); a word not in the vocabulary "
                        "becomes <unk>, a character not in it is an error")
    p.add_argument("--tokens", type=int, default=200, help="tokens to generate (default: 200)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="softmax temperature: < 1 more likely tokens, > 1 more diverse "
                        "(default: 1.0)")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="sample among the K most likely tokens only (default: all)")
    p.add_argument("--num-samples", type=int, default=1, help="samples to print (default: 1)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    _add_device_and_threads(p)
    p.set_defaults(func=cmd_sample)


def _register_export(sub: argparse._SubParsersAction, fmt) -> None:
    p = sub.add_parser("export-subnet", help="write one subnet alone: .pt, ONNX or torch.export",
                       description="Copy one subnet's weights out of the supernet into a "
                       "standalone model file (PyTorch, ONNX or torch.export), check it "
                       "against PyTorch, and write its model card beside it.",
                       epilog=EXAMPLES_EXPORT, formatter_class=fmt)
    _add_ckpt_and_arch(p, many=False)
    p.add_argument("--out", required=True,
                   help="output file; its suffix names the format: .pt, .onnx or .pt2")
    costs = p.add_mutually_exclusive_group()
    costs.add_argument("--hw", help="simulate the subnet on this hardware (preset or YAML) for "
                                    "the card's latency, energy, EDP and area")
    costs.add_argument("--lut", help="or take its costs from this lookup table "
                                     "(`nas build-lut` for the checkpoint's space)")
    p.add_argument("--perplexity", action=argparse.BooleanOptionalAction, default=True,
                   help="measure the subnet's validation perplexity on the checkpoint's "
                        "dataset for the card (default: on; skipped with a note when the "
                        "dataset is not there)")
    p.add_argument("--max-tokens", type=int, default=8192,
                   help="validation tokens of that perplexity (default: 8192)")
    p.set_defaults(func=cmd_export_subnet)


def _add_ckpt_and_arch(p: argparse.ArgumentParser, many: bool, default: str = "",
                       subnets: bool = False) -> None:
    p.add_argument("--ckpt", required=True,
                   help="run directory (uses best.pt) or checkpoint"
                        + (", or a subnet file of `nas export-subnet --out X.pt`" if subnets
                           else ""))
    p.add_argument("--arch", action="append" if many else "store", default=[] if many else None,
                   help="architecture YAML/JSON file or key" + (" (repeatable)" if many else "")
                        + (f" (default: {default})" if default else ""))
    p.add_argument("--largest", action="store_true", help="the largest subnet")
    p.add_argument("--smallest", action="store_true", help="the smallest subnet")
    if many:
        p.add_argument("--random", type=int, default=0, metavar="N",
                       help="N uniformly sampled subnets")


def _add_device_and_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 for a small model, every core for a "
                        "large one)")


# -- training ------------------------------------------------------------------------------------

def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of a train-supernet / train-subnet command line: with --resume, the
    checkpoint's settings and the options typed (train refuses those that may not change)."""
    from supernet.train import resume_config

    defaults = {} if args.supernet else SUBNET_DEFAULTS
    typed = given(TrainConfig, args)
    if not typed.get("resume"):
        cfg = from_args(TrainConfig, args, defaults)
        if not args.supernet and not cfg.arch:
            raise UserError("train-subnet needs --arch (a YAML file or key), or --resume")
        return cfg
    cfg = resume_config(typed.get("out", defaults.get("out", TrainConfig.out)), typed)
    if args.supernet and cfg.arch:
        raise UserError(f"{cfg.out} is a train-subnet run: resume it with `nas train-subnet "
                        f"--out {cfg.out} --resume`")
    if not args.supernet and not cfg.arch:
        raise UserError(f"{cfg.out} is a supernet run: resume it with `nas train-supernet "
                        f"--out {cfg.out} --resume`")
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    from supernet.train import train

    out = train(train_config(args))
    if os.environ.get("RANK", "0") == "0":                 # once under torchrun
        print(f"{'supernet' if args.supernet else 'subnet'} run written to {out}")
    return 0


# -- evaluation, sampling, export ------------------------------------------------------------------

def _selected_archs(args: argparse.Namespace, space, many: bool, fixed=None) -> list:
    """The architectures named by --arch/--largest/--smallest(/--random), checked against
    `space`; an empty list when none is named. For a train-subnet run (`fixed`, its
    architecture), --largest and --smallest name that architecture: its space also holds the
    other mixes of its attention kinds."""
    from nas.core.arch import resolve_model

    archs = [resolve_model(a)[0] for a in (args.arch if many else [args.arch] if args.arch
                                           else [])]
    if args.largest:
        archs.append(fixed or space.largest())
    if args.smallest:
        archs.append(fixed or space.smallest())
    if many and args.random:
        rng = random.Random(args.seed)
        archs += [space.sample(rng) for _ in range(args.random)]
    if not many and len(archs) > 1:
        raise UserError("choose one architecture: --arch, --largest or --smallest, not several")
    for arch in archs:
        space.check(arch)
    return archs


def cmd_eval(args: argparse.Namespace) -> int:
    from supernet.evaluate import SupernetEvaluator
    from supernet.tensorboard import require_tensorboard, summary_writer

    if not (args.arch or args.largest or args.smallest or args.random):
        raise UserError("choose architectures: --arch, --largest, --smallest or --random N")
    if args.random < 0:
        raise UserError(f"--random must be >= 0, got {args.random}")
    if args.out:
        check_output_file(args.out, "--out file")
    if args.tensorboard:
        require_tensorboard()
        check_output_dir(args.tensorboard, "--tensorboard")
    ev = SupernetEvaluator(args.ckpt, split=args.split, max_tokens=args.max_tokens,
                           batch_size=args.batch_size, threads=args.threads, device=args.device)
    archs = _selected_archs(args, ev.space, many=True, fixed=ev.fixed_arch)
    losses = ev.losses(archs, show_progress=args.progress)
    calibration = _calibration(ev)
    result = {"checkpoint": ev.checkpoint, "step": ev.step, "split": args.split,
              "tokens": ev.tokens,
              **({"calibration": calibration.summary()} if calibration else {}),
              "results": [{"key": a.key, "arch": a.to_dict(),
                           **_eval_losses(calibration, a, loss),
                           "params": a.params(ev.vocab_size, ev.block_size)}
                          for a, loss in zip(archs, losses)]}
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        atomic_write_text(args.out, text, "--out")
    if args.tensorboard:
        with summary_writer(args.tensorboard) as writer:
            for r in result["results"]:
                writer.add_scalar(f"{args.split}_loss/{r['key']}", r["loss"], ev.step)
                writer.add_scalar(f"{args.split}_perplexity/{r['key']}", r["perplexity"],
                                  ev.step)
    sys.stdout.write(text if args.json else eval_table(result))
    return 0


def _calibration(ev):
    """The run's calibration for the evaluated checkpoint (None, with a note on standard
    error when it was fitted on another step; None for an uncalibrated run)."""
    from nas.core.calibration import load_calibration
    calibration, note = load_calibration(ev.checkpoint, ev.step)
    if note:
        print(f"nas eval: {note}", file=sys.stderr)
    return calibration


def _eval_losses(calibration, arch, loss: float) -> dict:
    """A result's loss and perplexity: calibrated with the raw values beside when the run has
    a calibration, else the raw ones."""
    if calibration is None:
        return {"loss": loss, "perplexity": math.exp(loss)}
    calibrated = calibration.loss(arch, loss)
    return {"loss": calibrated, "perplexity": math.exp(calibrated), "loss_raw": loss,
            "ppl_raw": math.exp(loss)}


def eval_table(result: dict) -> str:
    """`nas eval`'s result as a header line and one row per architecture (calibrated: the raw
    loss and perplexity beside)."""
    width = max(len("key"), *(len(r["key"]) for r in result["results"]))
    raw = "calibration" in result
    lines = [f"checkpoint {result['checkpoint']} (step {result['step']}), split "
             f"{result['split']}, {result['tokens']:,} tokens"
             + (f"; {result['calibration']}" if raw else ""),
             f"{'key':<{width}}  {'params':>11}  {'loss':>7}  {'perplexity':>10}"
             + (f"  {'loss_raw':>8}  {'ppl_raw':>8}" if raw else "")]
    lines += [f"{r['key']:<{width}}  {r['params']:>11,}  {r['loss']:>7.4f}  "
              f"{r['perplexity']:>10.3f}"
              + (f"  {r['loss_raw']:>8.4f}  {r['ppl_raw']:>8.3f}" if raw else "")
              for r in result["results"]]
    return "\n".join(lines) + "\n"


def cmd_sample(args: argparse.Namespace) -> int:
    from supernet.checkpoint import fixed_arch_of, load_checkpoint, model_from_checkpoint, space_of
    from supernet.data import Tokenizer
    from supernet.evaluate import default_device
    from supernet.sample import sample
    from supernet.threads import set_threads

    device = default_device(args.device)
    data = load_checkpoint(args.ckpt, map_location=device, subnets=True)
    space, fixed = space_of(data), fixed_arch_of(data)
    (arch,) = _selected_archs(args, space, many=False, fixed=fixed) or [fixed or space.largest()]
    model = model_from_checkpoint(data).to(device)
    set_threads(args.threads, arch, model.config.vocab_size, model.config.block_size)
    texts = sample(model, arch, Tokenizer.from_dict(data["tokenizer"]), args.prompt,
                   args.tokens, args.num_samples, args.temperature, args.top_k, args.seed)
    sys.stdout.write("\n---------------\n".join(texts) + "\n")
    return 0


def cmd_export_subnet(args: argparse.Namespace) -> int:
    from supernet.export import export_format

    export_format(args.out)                 # a bad suffix or place: before anything is read
    check_output_file(args.out, "--out")
    from nas.export_onnx import export_subnet_file
    from supernet.checkpoint import fixed_arch_of, load_checkpoint, space_of

    data = load_checkpoint(args.ckpt)
    archs = _selected_archs(args, space_of(data), many=False, fixed=fixed_arch_of(data))
    if not archs:
        raise UserError("choose the architecture: --arch, --largest or --smallest")
    costs = _export_costs(args, data, archs[0])
    perplexity = _export_perplexity(args, data, archs[0])
    exported = export_subnet_file(data, archs[0], args.out, perplexity, costs)
    check = exported.check
    print(f"{args.out}: {check.format}, {check.file_bytes:,} bytes ({check.size_ratio:.4f} x "
          f"the parameters' {check.param_bytes:,}); {check.runtime} vs PyTorch, max abs "
          f"difference {check.max_abs_diff:.3g} over (batch, length) "
          f"{', '.join(map(str, check.shapes))}; card {exported.card}", file=sys.stderr)
    card = {k: v for k, v in asdict(exported.model_card).items() if k != "tokenizer"}
    sys.stdout.write(json.dumps({**card, "path": args.out, "card": str(exported.card)},
                                indent=2) + "\n")
    return 0


def _export_costs(args: argparse.Namespace, data: dict, arch):
    """The card's simulated costs with --hw or --lut (the supernet's workload), else None."""
    if not (args.hw or args.lut):
        return None
    from nas.export_onnx import subnet_costs
    from nas.pipeline import supernet_workload
    from supernet.checkpoint import space_of
    from supernet.model import ModelConfig

    workload = supernet_workload(ModelConfig(**data["model_config"]))
    return subnet_costs(arch, workload, args.hw, args.lut, space_of(data))


def _export_perplexity(args: argparse.Namespace, data: dict, arch):
    """The card's perplexity (None with --no-perplexity, or with a note when the checkpoint's
    dataset can not be read here)."""
    if not args.perplexity:
        return None
    if args.max_tokens <= 0:
        raise UserError(f"--max-tokens must be positive, got {args.max_tokens}")
    from nas.export_onnx import checkpoint_perplexity
    try:
        return checkpoint_perplexity(data["path"], arch, args.max_tokens)
    except UserError as exc:
        print(f"nas export-subnet: note: no perplexity in the card ({exc})", file=sys.stderr)
        return None
