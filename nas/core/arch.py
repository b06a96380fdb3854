"""Architectures, search spaces and named models as plain data (no torch, no hardware).

Every package uses these definitions: `costmodel` turns an `Arch` into operators, `supernet`
slices its weights to an `Arch`, `lut` and `nas.search` enumerate a `SearchSpace`.

An `Arch` is a decoder/encoder transformer stack:
    d         embedding (model) width, shared by all layers
    heads[i]  attention heads of layer i; attention width of layer i = heads[i] * head_dim
    ffn[i]    hidden width of the feed-forward block of layer i
    head_dim  width of one attention head (64 in GPT-2/BERT and in the survey's space)
    attention[i]  attention kind of layer i (nas.core.attention): softmax (the default),
              taylor or sparseNN. An all-softmax architecture has the key, file and
              checkpoint entries it had before kinds existed.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nas.core.atomic import atomic_write_text
from nas.core.attention import SOFTMAX, check_kind, kind_code, kind_from_code
from nas.core.errors import UserError
from nas.core.yamlfile import load_mapping

ARCH_FILE = "an architecture YAML with d, heads and ffn (e.g. `d: 128`, `heads: [4, 4]`, " \
            "`ffn: [512, 256]`)"
SPACE_FILE = "a search-space YAML with the choices of layers, d, heads and ffn (e.g. " \
             "`layers: [2, 3]`, `d: [64, 128]`, `heads: [2, 4]`, `ffn: [128, 256]`)"

_KEY = re.compile(r"L(\d+)-d(\d+)-h([\d.]+)-f([\d.]+)-hd(\d+)(?:-a([a-z\d.]+))?")


@dataclass(frozen=True)
class Arch:
    d: int
    heads: tuple[int, ...]
    ffn: tuple[int, ...]
    head_dim: int = 64
    attention: tuple[str, ...] = ()      # () = softmax in every layer

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        object.__setattr__(self, "ffn", tuple(int(f) for f in self.ffn))
        kinds = (self.attention,) if isinstance(self.attention, str) else tuple(self.attention)
        if isinstance(self.attention, str) or not kinds:
            kinds = (kinds[0] if kinds else SOFTMAX,) * len(self.heads)
        object.__setattr__(self, "attention", tuple(check_kind(k) for k in kinds))
        if not self.heads:
            raise UserError("architecture: needs at least one layer (heads is empty)")
        if len(self.heads) != len(self.ffn):
            raise UserError(
                f"architecture: heads has {len(self.heads)} layers but ffn has {len(self.ffn)}"
            )
        if len(self.attention) != len(self.heads):
            raise UserError(f"architecture: heads has {len(self.heads)} layers but attention "
                            f"has {len(self.attention)}")
        for name, values in (("d", [self.d]), ("head_dim", [self.head_dim]),
                             ("heads", self.heads), ("ffn", self.ffn)):
            for v in values:
                if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                    raise UserError(f"architecture: {name} must be positive integers, got {v!r}")

    @property
    def layers(self) -> int:
        return len(self.heads)

    def attn_width(self, layer: int) -> int:
        return self.heads[layer] * self.head_dim

    @property
    def softmax_only(self) -> bool:
        return all(k == SOFTMAX for k in self.attention)

    def with_attention(self, kinds: str | tuple[str, ...]) -> Arch:
        """The same architecture with other attention kinds (one kind: every layer)."""
        return Arch(self.d, self.heads, self.ffn, self.head_dim, kinds)

    @property
    def key(self) -> str:
        """Stable string key, e.g. 'L2-d384-h4.6-f768.1024-hd64', and with other attention
        kinds than softmax '-a' + a code per layer ('...-hd64-at.sp25': taylor, sparse25);
        `Arch.from_key` inverts it."""
        key = (f"L{self.layers}-d{self.d}-h{'.'.join(map(str, self.heads))}"
               f"-f{'.'.join(map(str, self.ffn))}-hd{self.head_dim}")
        if self.softmax_only:
            return key
        return key + "-a" + ".".join(kind_code(k) for k in self.attention)

    @classmethod
    def from_key(cls, key: str) -> Arch:
        m = _KEY.fullmatch(key.strip())
        if not m:
            raise UserError(f"not an architecture key: {key!r}")
        kinds = tuple(kind_from_code(c) for c in m[6].split(".")) if m[6] else ()
        arch = cls(d=int(m[2]), heads=tuple(int(x) for x in m[3].split(".")),
                   ffn=tuple(int(x) for x in m[4].split(".")), head_dim=int(m[5]),
                   attention=kinds)
        if arch.layers != int(m[1]):
            raise UserError(f"architecture key {key!r}: L{m[1]} but {arch.layers} layers listed")
        return arch

    @classmethod
    def uniform(cls, layers: int, d: int, heads: int, ffn: int, head_dim: int = 64,
                attention: str = SOFTMAX) -> Arch:
        return cls(d=d, heads=(heads,) * layers, ffn=(ffn,) * layers, head_dim=head_dim,
                   attention=(attention,) * layers)

    def params(self, vocab: int = 0, max_seq: int = 0) -> int:
        """Weights and biases of the stack (+ tied embedding and positions when given)."""
        d, total = self.d, 0
        for h, f in zip(self.heads, self.ffn):
            a = h * self.head_dim
            total += 3 * (d * a + a) + (a * d + d)      # Q, K, V and output projections
            total += (d * f + f) + (f * d + d)          # FFN1, FFN2
            total += 2 * 2 * d                          # two LayerNorms
        total += 2 * d                                  # final LayerNorm
        return total + vocab * d + max_seq * d

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {"d": self.d, "heads": list(self.heads), "ffn": list(self.ffn),
               "head_dim": self.head_dim}
        if not self.softmax_only:
            out["attention"] = list(self.attention)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        if not isinstance(data, dict):
            raise UserError(f"architecture: expected a mapping, got {type(data).__name__}")
        data = data.get("arch", data)
        if not isinstance(data, dict):
            raise UserError(f"architecture: 'arch' must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"d", "heads", "ffn", "head_dim", "layers", "attention"}
        if unknown:
            raise UserError(f"architecture: unknown field(s) {sorted(unknown, key=str)}")
        for req in ("d", "heads", "ffn"):
            if req not in data:
                raise UserError(f"architecture: missing field '{req}'")
        layers = data.get("layers")
        if layers is not None and not (_is_int(layers) and 0 < layers <= MAX_LAYERS):
            raise UserError(f"architecture: layers must be an integer from 1 to {MAX_LAYERS}, "
                            f"got {layers!r}")
        # A scalar heads/ffn with `layers` means the same value in every layer.
        heads = _per_layer(data["heads"], "heads", layers or 1)
        ffn = _per_layer(data["ffn"], "ffn", layers or len(heads))
        attention = data.get("attention", ())
        if not isinstance(attention, (str, list, tuple)):
            raise UserError("architecture: attention must be a kind or a list of kinds")
        arch = cls(d=data["d"], heads=tuple(heads), ffn=tuple(ffn),
                   head_dim=data.get("head_dim", 64), attention=attention)
        if layers is not None and layers != arch.layers:
            raise UserError(f"architecture: layers={layers} but {arch.layers} layers listed")
        return arch

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write YAML (or JSON when the suffix is .json)."""
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else yaml.safe_dump(
            self.to_dict(), sort_keys=False, default_flow_style=None)
        atomic_write_text(path, text, "architecture file")

    @classmethod
    def load(cls, path: str | Path) -> Arch:
        return cls.from_dict(load_mapping(path, "architecture", ARCH_FILE))


MAX_LAYERS = 1024        # an architecture file asking for more is a mistake, not a model


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _per_layer(value: Any, name: str, layers: int) -> list[int]:
    """An architecture file's heads or ffn: one integer per layer, or one for every layer."""
    if _is_int(value):
        return [value] * layers
    if isinstance(value, list) and all(_is_int(v) for v in value):
        return value
    raise UserError(f"architecture: {name} must be an integer or a list of integers, "
                    f"got {value!r}"[:200])


# -- search spaces ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchSpace:
    """Choices for depth, embedding width, and per-layer heads, FFN width and attention kind
    (HAT/BigNAS style). The first attention kind is that of the largest and smallest subnets
    (the sandwich's teacher and floor); a space with one kind draws none."""

    name: str
    layers: tuple[int, ...]
    d: tuple[int, ...]
    heads: tuple[int, ...]
    ffn: tuple[int, ...]
    head_dim: int = 64
    attention: tuple[str, ...] = (SOFTMAX,)

    def __post_init__(self) -> None:
        for f in ("layers", "d", "heads", "ffn"):
            values = getattr(self, f)
            if isinstance(values, int):
                values = (values,)
            values = tuple(sorted(set(int(v) for v in values)))
            if not values or values[0] <= 0:
                raise UserError(f"search space '{self.name}': {f} needs positive choices")
            object.__setattr__(self, f, values)
        if self.head_dim <= 0:
            raise UserError(f"search space '{self.name}': head_dim must be positive")
        kinds = (self.attention,) if isinstance(self.attention, str) else self.attention
        kinds = tuple(dict.fromkeys(check_kind(k) for k in kinds))    # order kept, no repeats
        if not kinds:
            raise UserError(f"search space '{self.name}': attention needs at least one kind")
        object.__setattr__(self, "attention", kinds)

    def largest(self) -> Arch:
        return Arch.uniform(self.layers[-1], self.d[-1], self.heads[-1], self.ffn[-1],
                            self.head_dim, self.attention[0])

    def smallest(self) -> Arch:
        return Arch.uniform(self.layers[0], self.d[0], self.heads[0], self.ffn[0], self.head_dim,
                            self.attention[0])

    def sample(self, rng: random.Random) -> Arch:
        """Uniform choice of depth, d, and of heads, FFN width and (with several kinds) the
        attention kind independently per layer."""
        n = rng.choice(self.layers)
        d = rng.choice(self.d)
        heads = tuple(rng.choice(self.heads) for _ in range(n))
        ffn = tuple(rng.choice(self.ffn) for _ in range(n))
        kinds = (tuple(rng.choice(self.attention) for _ in range(n))
                 if len(self.attention) > 1 else self.attention[0])
        return Arch(d=d, heads=heads, ffn=ffn, head_dim=self.head_dim, attention=kinds)

    def check(self, arch: Arch) -> Arch:
        """Return `arch` if it lies in the space, else raise UserError naming the first bad field."""
        def bad(what: str, value: Any, choices: tuple[Any, ...]) -> UserError:
            return UserError(f"architecture {arch.key} is outside search space '{self.name}': "
                             f"{what}={value} not in {list(choices)}")
        if arch.head_dim != self.head_dim:
            raise bad("head_dim", arch.head_dim, (self.head_dim,))
        if arch.layers not in self.layers:
            raise bad("layers", arch.layers, self.layers)
        if arch.d not in self.d:
            raise bad("d", arch.d, self.d)
        for i, (h, f, k) in enumerate(zip(arch.heads, arch.ffn, arch.attention)):
            if h not in self.heads:
                raise bad(f"heads[{i}]", h, self.heads)
            if f not in self.ffn:
                raise bad(f"ffn[{i}]", f, self.ffn)
            if k not in self.attention:
                raise bad(f"attention[{i}]", k, self.attention)
        return arch

    def __contains__(self, arch: Arch) -> bool:
        try:
            self.check(arch)
        except UserError:
            return False
        return True

    def size(self) -> int:
        """Number of distinct architectures in the space."""
        per_layer = len(self.heads) * len(self.ffn) * len(self.attention)
        return len(self.d) * sum(per_layer ** n for n in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Every field; `attention` only when it is not softmax alone (as before kinds)."""
        out = {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
               for f in fields(self)}
        if self.attention == (SOFTMAX,):
            del out["attention"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "custom") -> SearchSpace:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"search space: unknown field(s) {sorted(unknown, key=str)}")
        for req in ("layers", "d", "heads", "ffn"):
            if req not in data:
                raise UserError(f"search space: missing field '{req}'")
        data.setdefault("name", name)
        if not isinstance(data["name"], str):
            raise UserError(f"search space: name must be text, got {data['name']!r}")
        if not _is_int(data.get("head_dim", 64)):
            raise UserError(f"search space: head_dim must be an integer, got "
                            f"{data['head_dim']!r}")
        for f in ("layers", "d", "heads", "ffn"):
            data[f] = _choices(data[f], f)
        if "attention" in data:
            kinds = data["attention"]
            if isinstance(kinds, str):
                kinds = [kinds]
            if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
                raise UserError("search space: attention must be a list of kinds "
                                "(softmax, taylor, sparseNN)")
            data["attention"] = tuple(kinds)
        return cls(**data)

    @classmethod
    def load(cls, name_or_path: str | Path) -> SearchSpace:
        """A preset name (`nas.core.arch.SPACE_PRESETS`) or a YAML file."""
        if str(name_or_path) in SPACE_PRESETS:
            text = resources.files("nas.core.spaces").joinpath(f"{name_or_path}.yaml").read_text()
            return cls.from_dict(yaml.safe_load(text), name=str(name_or_path))
        path = Path(name_or_path)
        if not path.suffix and not path.exists():
            raise UserError(f"unknown search space '{name_or_path}'; "
                            f"presets: {', '.join(SPACE_PRESETS)} (or a YAML file)")
        return cls.from_dict(load_mapping(path, "search space", SPACE_FILE), name=path.stem)


def _choices(value: Any, what: str) -> tuple[int, ...]:
    """A list of ints, or {min, max, step} for a range (inclusive); at most MAX_CHOICES."""
    if isinstance(value, dict):
        try:
            lo, hi, step = (value["min"], value["max"], value.get("step", 1))
        except KeyError:
            lo = hi = step = None
        if not all(_is_int(v) for v in (lo, hi, step)) or step <= 0:
            raise UserError(f"search space: {what} range needs integer min, max (and a "
                            f"positive step)")
        value = range(lo, hi + 1, step)
    elif _is_int(value):
        value = [value]
    elif not (isinstance(value, list) and all(_is_int(v) for v in value)):
        raise UserError(f"search space: {what} must be a list of integers or {{min, max, step}}")
    if len(value) > MAX_CHOICES:
        raise UserError(f"search space: {what} has {len(value):,} choices, more than "
                        f"{MAX_CHOICES:,}")
    return tuple(value)


MAX_CHOICES = 4096      # per field: the survey's space has at most 19


SPACE_PRESETS = ("survey", "tiny", "survey-kinds", "tiny-kinds")


# -- named models ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NamedModel:
    """A published model: its architecture and the workload it is usually run with."""

    arch: Arch
    vocab: int          # 0 = no language-model head (e.g. a ViT classifier)
    seq: int            # usual sequence length
    mode: str           # "encoder" or "decoder"
    source: str = field(default="", compare=False)


NAMED_MODELS: dict[str, NamedModel] = {
    "bert-base": NamedModel(Arch.uniform(12, 768, 12, 3072), 30522, 512, "encoder",
                            "Devlin et al. 2019, BERT-Base"),
    "bert-large": NamedModel(Arch.uniform(24, 1024, 16, 4096), 30522, 512, "encoder",
                             "Devlin et al. 2019, BERT-Large"),
    "gpt2": NamedModel(Arch.uniform(12, 768, 12, 3072), 50257, 1024, "decoder",
                       "Radford et al. 2019, GPT-2 small (124M)"),
    "deit-tiny": NamedModel(Arch.uniform(12, 192, 3, 768), 0, 197, "encoder",
                            "Touvron et al. 2021, DeiT-Tiny (196 patches + class token)"),
    "survey-6l": NamedModel(Arch.uniform(6, 768, 12, 3072), 33278, 1024, "decoder",
                            "Kim et al. 2023, Sec. 6.4 baseline: 6-layer GPT-2-sized, WikiText-2"),
}


def resolve_model(name_or_path: str) -> tuple[Arch, NamedModel | None]:
    """A named model (`NAMED_MODELS`), an architecture key, or an architecture YAML/JSON file."""
    if name_or_path in NAMED_MODELS:
        model = NAMED_MODELS[name_or_path]
        return model.arch, model
    if _KEY.fullmatch(name_or_path):
        return Arch.from_key(name_or_path), None
    if re.fullmatch(r"L\d+-d\d+-h[\d.]+-f[\d.]+", name_or_path):
        raise UserError(f"unknown model '{name_or_path}': an architecture key needs its -hdN "
                        f"suffix (the head width), e.g. {name_or_path}-hd64")
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        raise UserError(f"unknown model '{name_or_path}'; named models: "
                        f"{', '.join(NAMED_MODELS)} (or an architecture YAML file)")
    return Arch.load(path), None


__all__ = ["Arch", "SearchSpace", "NamedModel", "NAMED_MODELS", "SPACE_PRESETS",
           "load_mapping", "resolve_model"]
