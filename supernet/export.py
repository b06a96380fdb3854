"""A static subnet as a file other tools run: ONNX or a `torch.export` program, checked, with
its model card.

`export(model, path)` writes a `supernet.model.GPT` (one architecture's own weights, as
`ElasticGPT.export` copies them out of the supernet; `export_subnet` does both from a
checkpoint) in the format of the path's suffix:

    .pt    the PyTorch file `nas eval`, `nas sample` and `supernet.checkpoint.load_subnet` read
    .onnx  ONNX (opset OPSET): input `idx` int64 [batch, seq], output `logits` float32
           [batch, seq, vocab]; batch and seq are dynamic (seq up to the model's block size);
           weights named as in the state dict, shortened (`onnx_weight_name`), a Linear
           layer's stored as [in, out]
    .pt2   a `torch.export` program: `torch.export.load(path).module()(idx)` -> logits

The file holds the subnet's weights only, each once (the tied embedding and LM head is one
tensor), and no slicing of weights; every attention kind exports (the causal Taylor attention's
chunked prefix sums and the sparse masks are computed in the graph for any length). It is
written beside its target and checked before it is put in place: run (onnxruntime, the loaded
program, or the reloaded model) on random tokens at two batch sizes and two lengths, its logits
are compared with PyTorch's; a max abs difference above TOLERANCE is an error and nothing is
written.

`ModelCard` is what a user of the file needs (architecture, tokenizer, inputs, the check,
perplexity, simulated hardware costs); `write_card` puts it beside the file as FILE.card.json.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.core.arch import Arch
from nas.core.atomic import atomic_path, atomic_write_text
from nas.core.errors import UserError
from supernet.checkpoint import SUBNET_FORMAT, load_subnet, model_from_checkpoint, save_checkpoint
from supernet.host_latency import HostLatency
from supernet.model import GPT, num_params

FORMATS = {".pt": "pytorch", ".onnx": "onnx", ".pt2": "torch.export"}     # by file suffix
OPSET = 17                  # LayerNormalization (17), Trilu (14), CumSum (11)
TOLERANCE = 1e-4            # largest accepted |logits(file) - logits(PyTorch)|
CHECK_BATCHES = (1, 3)


def export_format(path: str | Path) -> str:
    """The format of an output file from its suffix (a one-line error for another suffix)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"--out {path}: unknown format '{suffix or '(no suffix)'}'; use "
                        + ", ".join(FORMATS))
    return FORMATS[suffix]


@dataclass(frozen=True)
class ExportCheck:
    """An exported file and how well it reproduces PyTorch."""

    path: str
    format: str
    max_abs_diff: float                      # logits, file vs PyTorch, over every shape below
    shapes: tuple[tuple[int, int], ...]      # the (batch, seq) checked
    runtime: str                             # what ran the file
    file_bytes: int
    param_bytes: int                         # float32 bytes of the parameters, each once

    @property
    def size_ratio(self) -> float:
        return self.file_bytes / self.param_bytes


def check_lengths(block_size: int) -> tuple[int, int]:
    """The two sequence lengths a file is checked at: the whole context and about a third."""
    return block_size, max(1, block_size // 3)


def export(model: GPT, path: str | Path, seed: int = 0,
           payload: dict[str, Any] | None = None) -> ExportCheck:
    """Write `model` to `path` in its suffix's format, check it against PyTorch, put it in
    place. A .pt file also records `payload` (`subnet_payload`: tokenizer, source ...)."""
    fmt = export_format(path)
    if fmt == "pytorch" and payload is None:
        raise ValueError("a .pt subnet file needs its payload (subnet_payload)")
    model = model.eval()
    shapes = tuple((b, t) for b in CHECK_BATCHES for t in check_lengths(model.config.block_size))
    gen = torch.Generator().manual_seed(seed)
    tokens = [torch.randint(model.config.vocab_size, shape, generator=gen) for shape in shapes]
    write, run = _FORMATS[fmt]
    with atomic_path(path, "--out") as tmp:
        with warnings.catch_warnings():      # the tracer's notes; the check below is the test
            warnings.simplefilter("ignore")
            write(model, tmp, payload)
        diff, runtime = run(model, tmp, tokens)
        if not diff <= TOLERANCE:
            raise UserError(f"{path}: the exported {fmt} model's logits differ from PyTorch's by "
                            f"up to {diff:.3g} (> {TOLERANCE:g}); nothing written")
        size = tmp.stat().st_size
    return ExportCheck(str(path), fmt, diff, shapes, runtime, size, 4 * num_params(model))


def subnet_payload(data: dict[str, Any], arch: Arch, model: GPT,
                   params_supernet: int) -> dict[str, Any]:
    """What a .pt subnet file records besides the weights: its model config and tokenizer, and
    the checkpoint it came from with that run's training config (dataset: `nas eval` reads
    it)."""
    info = {"arch": arch.to_dict(), "key": arch.key, "params": num_params(model),
            "params_supernet": params_supernet, "source": data.get("path"),
            "step": data["step"]}
    return {"model_config": data["model_config"], "tokenizer": data["tokenizer"],
            "config": data["config"], "info": info}


def export_subnet(data: dict[str, Any], arch: Arch, path: str | Path,
                  seed: int = 0) -> tuple[GPT, ExportCheck]:
    """Copy `arch`'s weights out of the supernet checkpoint `data` and `export` them to `path`
    (any format); returns the standalone model and the check of its file."""
    supernet = model_from_checkpoint(data)
    model = supernet.export(arch)
    payload = subnet_payload(data, arch, model, num_params(supernet))
    return model, export(model, path, seed, payload)


class _Logits(torch.nn.Module):
    """The model's logits alone (its forward also returns a loss slot)."""

    def __init__(self, model: GPT) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)[0]


def _example(model: GPT) -> torch.Tensor:
    """The tokens the graph is traced with: a shape unlike those it is checked at."""
    block = model.config.block_size
    return torch.zeros(2, min(block, max(2, block * 2 // 3)), dtype=torch.long)


# -- PyTorch (.pt) --------------------------------------------------------------------------------

def _write_pt(model: GPT, path: Path, payload: dict[str, Any]) -> None:
    save_checkpoint(path, {**payload, "model": model.state_dict()}, fmt=SUBNET_FORMAT)


def _run_pt(model: GPT, path: Path, tokens: list[torch.Tensor]) -> tuple[float, str]:
    loaded = load_subnet(path)[0].eval()
    return _max_diff(model, tokens, lambda x: loaded(x)[0]), f"torch {torch.__version__}"


# -- ONNX ----------------------------------------------------------------------------------------

def _write_onnx(model: GPT, path: Path, payload: Any = None) -> None:
    """TorchScript-traced ONNX with dynamic batch and sequence axes; no constant folding of
    weights (it would store transposed copies, the tied embedding twice), the graph's
    bookkeeping shrunk (`supernet.onnx_graph.simplify`)."""
    dynamic = {0: "batch", 1: "seq"}
    torch.onnx.export(model, (_example(model),), str(path), dynamo=False,
                      input_names=["idx"], output_names=["logits"],
                      dynamic_axes={"idx": dynamic, "logits": dynamic},
                      opset_version=OPSET, do_constant_folding=False)
    import onnx

    from supernet.onnx_graph import simplify
    proto = onnx.load(str(path))
    simplify(proto)
    _short_weight_names(proto.graph)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def onnx_weight_name(name: str) -> str:
    """A weight's name in the ONNX file: its state-dict name without `blocks.`, with `.w` and
    `.b` for `.weight` and `.bias` ('blocks.0.ln1.weight' -> '0.ln1.w'; names are a visible
    share of a small model's file)."""
    name = name.removeprefix("blocks.")
    for long, short in ((".weight", ".w"), (".bias", ".b")):
        if name.endswith(long):
            name = name[:-len(long)] + short
    return name


def _short_weight_names(graph) -> None:
    names = {t.name: onnx_weight_name(t.name) for t in graph.initializer}
    for t in graph.initializer:
        t.name = names[t.name]
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]


def _run_onnx(model: GPT, path: Path, tokens: list[torch.Tensor]) -> tuple[float, str]:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    diff = _max_diff(model, tokens, lambda x: torch.from_numpy(
        session.run(["logits"], {"idx": x.numpy()})[0]))
    return diff, f"onnxruntime {ort.__version__}"


# -- torch.export ----------------------------------------------------------------------------------

def _write_program(model: GPT, path: Path, payload: Any = None) -> None:
    from torch.export import Dim
    dims = {0: Dim("batch", min=1, max=1 << 16), 1: Dim("seq", min=1,
                                                       max=model.config.block_size)}
    program = torch.export.export(_Logits(model), (_example(model),), dynamic_shapes=(dims,))
    torch.export.save(program, str(path))


def _run_program(model: GPT, path: Path, tokens: list[torch.Tensor]) -> tuple[float, str]:
    loaded = torch.export.load(str(path)).module()
    return _max_diff(model, tokens, loaded), f"torch.export.load (torch {torch.__version__})"


# format -> (writer, runner: the file's max abs difference from PyTorch and what ran it)
_FORMATS = {"pytorch": (_write_pt, _run_pt), "onnx": (_write_onnx, _run_onnx),
            "torch.export": (_write_program, _run_program)}


@torch.no_grad()
def _max_diff(model: GPT, tokens: list[torch.Tensor], run) -> float:
    """The largest |run(x) - model(x)| over the token batches."""
    return max(float((run(x).float() - model(x)[0]).abs().max()) for x in tokens)


# -- model card ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CardPerplexity:
    """The subnet's perplexity: `raw` with the supernet's weights (as the search scored it),
    `calibrated` when a calibration to trained-alone perplexity is known."""

    raw: float
    calibrated: float | None = None
    split: str = "valid"
    tokens: int | None = None               # evaluation tokens (None: all of the split)
    dataset: str | None = None


@dataclass(frozen=True)
class CardCosts:
    """Simulated cost of one inference (the cost model's workload) on an accelerator."""

    hardware: str
    latency_ms: float
    energy_mj: float
    edp: float                              # J s
    area_mm2: float | None = None
    workload: str | None = None             # costmodel Workload key
    source: str = "simulated"               # or "lookup table PATH"


@dataclass(frozen=True)
class ModelCard:
    """Everything a user of an exported file needs, as plain data."""

    file: str
    format: str
    arch: dict[str, Any]
    key: str
    params: int
    vocab_size: int
    block_size: int
    tokenizer: dict[str, Any]
    check: dict[str, Any]
    perplexity: CardPerplexity | None = None
    costs: CardCosts | None = None
    source: dict[str, Any] = field(default_factory=dict)     # checkpoint, step
    host_latency: HostLatency | None = None     # measured on the exporting CPU (--measure)
    inputs: str = "idx: int64 token ids [batch, seq], seq <= block_size"
    outputs: str = "logits: float32 [batch, seq, vocab_size] (next-token scores)"


def model_card(check: ExportCheck, model: GPT, tokenizer: dict[str, Any],
               perplexity: CardPerplexity | None = None, costs: CardCosts | None = None,
               source: dict[str, Any] | None = None) -> ModelCard:
    """The card of an exported file: the export's check, the model's architecture and
    sizes, and whatever the caller knows of its perplexity and hardware costs."""
    return ModelCard(
        file=Path(check.path).name, format=check.format, arch=model.arch.to_dict(),
        key=model.arch.key, params=num_params(model), vocab_size=model.config.vocab_size,
        block_size=model.config.block_size, tokenizer=tokenizer,
        check={"max_abs_diff": check.max_abs_diff, "tolerance": TOLERANCE,
               "shapes": [list(s) for s in check.shapes], "runtime": check.runtime,
               "file_bytes": check.file_bytes, "param_bytes": check.param_bytes,
               "size_ratio": check.size_ratio},
        perplexity=perplexity, costs=costs, source=source or {})


def card_path(path: str | Path) -> Path:
    """Where the card of an exported file goes: FILE.card.json beside it."""
    path = Path(path)
    return path.with_name(path.name + ".card.json")


def write_card(card: ModelCard, path: str | Path) -> Path:
    """Write `card` beside the exported file `path`; returns the card's path."""
    target = card_path(path)
    atomic_write_text(target, json.dumps(asdict(card), indent=1) + "\n", "model card")
    return target


__all__ = ["FORMATS", "OPSET", "TOLERANCE", "export_format", "ExportCheck", "export",
           "subnet_payload", "export_subnet", "onnx_weight_name",
           "CardPerplexity", "CardCosts", "ModelCard", "model_card", "card_path", "write_card"]
