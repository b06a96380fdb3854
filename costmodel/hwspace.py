"""Hardware search spaces: the accelerator half of a joint architecture x hardware search.

A space is a YAML file like the architecture spaces (nas/core/spaces): a `base` preset that
every point derives from (`costmodel.hardware.derive`: fields not listed keep the preset's
values, SRAM and register energies are re-derived from the new sizes) and, per
`HardwareConfig` field, the list of values it may take (a gene). `tie` sets a field equal to
another one's value at every point (e.g. one SFU lane per array column):

```yaml
base: gemmini-transformer
rows: [8, 16, 32]
cols: [8, 16, 32]
scratchpad_kib: [32, 64, 128, 256, 512]
sfu: [onchip, host]
tie:
  sfu_lanes: cols
```

A scalar is a one-value list. The genes are ordered as the fields of `HardwareConfig` (not as
the file lists them), so two files with the same choices give the same genomes. A genome is one
index per gene; `decode` turns it into a valid `HardwareConfig` named
`<space>:<hash>`, `encode` does the reverse and names the field of a config that lies outside.

Every genome decodes to a valid configuration. Each choice is typed and checked on its own by
`HardwareConfig`'s rules when the space is loaded; choices that are invalid together, by the
rules between fields (`costmodel.hardware`: `tile_bytes`, `fusion_allowed`, `sparse_split_ok`),
are kept out (checked when the space is loaded, repaired when it is decoded):

- a buffer too small for one tile of the array: when the space is loaded, the largest
  `scratchpad_kib` / `accumulator_kib` choice must hold one double-buffered tile of the largest
  array (else a one-line error); a genome with a smaller buffer than its array needs decodes to
  the smallest listed size that fits;
- `attention_fusion` with `sfu: host` (a fused softmax needs on-chip SFUs): decodes with
  attention_fusion off;
- a sparse engine whose share leaves an engine without a PE row: every listed (rows,
  `sparse_pe_fraction`) pair is checked when the space is loaded.

Canonical points: a gene that cannot change cost or area at a point (`unused_fields`) decodes to
the `HardwareConfig` default, so genomes that differ only there decode to equal configurations with
equal hashes: `sparse_pe_fraction` without a sparse engine or with ViTCoD's dynamic split,
the other sparse-engine fields (`sparse_allocation`, `attention_fusion`, `qk_compression`,
`attention_lanes`, `head_timing`) without a sparse engine, `dataflow` and `mapping` on MAC lines
(`pe_array: lines`), `mapping_objective` unless `mapping: search`, `taylor_pipeline` without
ViTALiTy's units (`diag_pes` and `preproc_lanes` 0). `encode` accepts any value of such a gene
(it returns index 0 for it, or the default's index where it is listed).
"""

from __future__ import annotations

import itertools
import math
import operator
import random
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from costmodel.area import area
from costmodel.hardware import (PRESETS, HardwareConfig, derive, derived_energies, field_value,
                                fusion_allowed, holds, load_hardware, sparse_split_ok, tile_bytes,
                                unused_fields)
from nas.core.yamlfile import load_mapping
from nas.core.errors import UserError

SPACE_DIR = Path(__file__).resolve().parent / "spaces"
# what a hardware-space file holds, for the errors of `HardwareSpace.load`
HW_SPACE_FILE = ("a hardware-space YAML: `base: PRESET` and the values each field may take "
                 "(e.g. `rows: [8, 16, 32]`)")
HW_SPACE_PRESETS: tuple[str, ...] = tuple(sorted(p.stem for p in SPACE_DIR.glob("*.yaml")))

NOT_GENES = ("name", "description")                        # HardwareConfig fields never genes

_FIELDS = {f.name: f for f in fields(HardwareConfig)}
_ORDER = [f.name for f in fields(HardwareConfig)]
DEFAULTS = {f.name: f.default for f in fields(HardwareConfig) if f.default is not MISSING}
# what a lone choice is checked in: ample buffers, on-chip SFUs, no sparse engine
_PROBE = {"scratchpad_kib": 2.0 ** 30, "accumulator_kib": 2.0 ** 30, "sfu": "onchip",
          "sparse_engine": False}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return a == b and type(a) is type(b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)


def _choice(space: str, name: str, value: Any) -> Any:
    """One choice of field `name`, typed, and checked on its own (positive sizes, ranges...) by
    HardwareConfig's rules, or a one-line error; what it must be together with other fields
    is checked over the whole space (HardwareSpace._check)."""
    try:
        typed = field_value(name, value)
        HardwareConfig(name=space, **{**_PROBE, name: typed})
    except ValueError as exc:
        raise UserError(f"hardware space '{space}': {name} choice {value!r}: {exc}") from None
    except UserError as exc:
        msg = str(exc).split(": ", 1)[-1]
        raise UserError(f"hardware space '{space}': {name} choice {value!r}: {msg}") from None
    return typed


@dataclass(frozen=True)
class HardwareSpace:
    """Choices per `HardwareConfig` field around a base preset (see the module docstring)."""

    name: str
    base: str                                  # preset name every point derives from
    choices: tuple[tuple[str, tuple], ...]     # (HardwareConfig field, allowed values), gene order
    ties: tuple[tuple[str, str], ...] = ()     # (field, field whose value it takes)
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False,
                        hash=False)

    def __post_init__(self) -> None:
        if self.base not in PRESETS:
            raise UserError(f"hardware space '{self.name}': base '{self.base}' is not a preset "
                            f"({', '.join(PRESETS)})")
        if not self.choices:
            raise UserError(f"hardware space '{self.name}': no genes (list at least one "
                            "HardwareConfig field with its choices)")
        seen: set[str] = set()
        typed = []
        for name, values in self.choices:
            if name not in _FIELDS or name in NOT_GENES:
                raise UserError(f"hardware space '{self.name}': unknown field '{name}' (a "
                                "HardwareConfig field: see `nas hw show gemmini`)")
            if name in seen:
                raise UserError(f"hardware space '{self.name}': field '{name}' listed twice")
            seen.add(name)
            if not isinstance(values, (tuple, list)) or not values:
                raise UserError(f"hardware space '{self.name}': {name} has no choices")
            vals = tuple(_choice(self.name, name, v) for v in values)
            for i, v in enumerate(vals):
                if any(_same(v, w) for w in vals[:i]):
                    raise UserError(f"hardware space '{self.name}': {name} lists {v!r} twice")
            typed.append((name, vals))
        typed.sort(key=lambda nv: _ORDER.index(nv[0]))
        object.__setattr__(self, "choices", tuple(typed))
        ties = []
        for target, source in self.ties:
            for what, f in (("tie", target), ("tie source", source)):
                if f not in _FIELDS or f in NOT_GENES:
                    raise UserError(f"hardware space '{self.name}': {what} '{f}' is not a "
                                    "HardwareConfig field")
            if target in seen:
                raise UserError(f"hardware space '{self.name}': '{target}' is a gene and tied "
                                f"to '{source}'; give one or the other")
            if target == source or source in dict(self.ties):
                raise UserError(f"hardware space '{self.name}': tie {target}: {source} would "
                                "chain ties")
            if _FIELDS[target].type != _FIELDS[source].type:
                raise UserError(f"hardware space '{self.name}': tie {target}: {source} mixes a "
                                f"{_FIELDS[target].type} with a {_FIELDS[source].type}")
            ties.append((target, source))
        object.__setattr__(self, "ties", tuple(sorted(ties, key=lambda t: _ORDER.index(t[0]))))
        self._check()

    # -- whole-space checks -----------------------------------------------------------------
    def _options(self, name: str) -> tuple:
        """Every value `name` can take at a point (its choices, its tie source's, or the base's)."""
        genes = dict(self.choices)
        source = dict(self.ties).get(name, name)
        return genes.get(source, (getattr(PRESETS[self.base], source),))

    def _check(self) -> None:
        """Every point can be made valid (HardwareConfig's rules): the largest buffer choice
        holds one tile of the largest array, and every sparse split leaves each engine rows."""
        largest = {name: max(self._options(name))
                   for name in ("rows", "cols", "input_bits", "acc_bits", "double_buffer")}
        for buf, need in tile_bytes(largest).items():
            if not holds(max(self._options(buf)), need):
                raise UserError(f"hardware space '{self.name}': no {buf} choice holds one tile "
                                f"of the {largest['rows']}x{largest['cols']} array (needs "
                                f"{need / 1024:g} KiB)")
        if True in self._options("sparse_engine"):
            fractions = set(self._options("sparse_pe_fraction")) | {
                DEFAULTS["sparse_pe_fraction"]}
            for r in self._options("rows"):
                for f in sorted(fractions):
                    if not sparse_split_ok(r, f):
                        raise UserError(
                            f"hardware space '{self.name}': sparse_pe_fraction {f:g} leaves an "
                            f"engine of the {r}-row array without rows")

    # -- genes ------------------------------------------------------------------------------
    def genes(self) -> list[tuple[str, tuple]]:
        return list(self.choices)

    def size(self) -> int:
        """Number of genomes: the product of the choice counts (genomes that decode to one
        configuration, see the module docstring, count once each)."""
        return math.prod(len(v) for _, v in self.choices)

    def points(self) -> Iterator[HardwareConfig]:
        """Every distinct configuration of the space once, in genome order (genomes that decode
        to an earlier configuration are skipped): an exhaustive hardware search."""
        seen: set[str] = set()
        for indices in itertools.product(*(range(len(v)) for _, v in self.choices)):
            hw = self.decode(indices)
            if hw.name not in seen:                     # the name holds the hash
                seen.add(hw.name)
                yield hw

    def sample(self, rng: random.Random) -> HardwareConfig:
        return self.decode([rng.randrange(len(v)) for _, v in self.choices])

    def within_area(self, indices: Sequence[int], max_area_mm2: float,
                    rng: random.Random | Any = random) -> list[int]:
        """`indices` if its point fits in `max_area_mm2`, else the genome stepped down to fit:
        each step moves one gene to a neighbouring choice that lowers the area (drawn by `rng`
        among those moves; any other choice of one gene when no neighbour lowers it), so a
        search's child keeps what it inherited except what the budget cannot pay for. Area is
        analytic, so a search never spends an evaluation on hardware that does not fit."""
        genes = list(self._genome(indices))
        size = area(self.decode(genes)).total_mm2
        while size > max_area_mm2:
            near, far = [], []
            for k, (_, vals) in enumerate(self.choices):
                for j in range(len(vals)):
                    if j == genes[k]:
                        continue
                    step = genes[:k] + [j] + genes[k + 1:]
                    smaller = area(self.decode(step)).total_mm2
                    if smaller < size:
                        (near if abs(j - genes[k]) == 1 else far).append((step, smaller))
            if not near and not far:
                raise UserError(f"hardware space '{self.name}': no point fits in "
                                f"{max_area_mm2:g} mm2 (the smallest it reaches is "
                                f"{size:.3g} mm2; `nas hw show` prints a point's area)")
            genes, size = rng.choice(near or far)
        return genes

    def decode(self, indices: Sequence[int]) -> HardwareConfig:
        """The configuration of a genome (one index per gene, in gene order)."""
        key = self._genome(indices)
        hw = self._memo.get(key)
        if hw is None:
            hw = self._memo[key] = self._decode(key)
        return hw

    def _genome(self, indices: Sequence[int]) -> tuple[int, ...]:
        """`indices` as a tuple of ints, checked against the genes."""
        key = tuple(indices)
        if len(key) != len(self.choices):
            raise UserError(f"hardware space '{self.name}': a genome has {len(self.choices)} "
                            f"genes, got {len(key)}")
        out = []
        for i, ((name, vals), idx) in enumerate(zip(self.choices, key)):
            try:
                ok = not isinstance(idx, bool) and 0 <= operator.index(idx) < len(vals)
            except TypeError:
                ok = False
            if not ok:
                raise UserError(f"hardware space '{self.name}': gene {i} ({name}) index {idx!r} "
                                f"is not in 0..{len(vals) - 1}")
            out.append(operator.index(idx))
        return tuple(out)

    @cached_property
    def _base_values(self) -> dict[str, Any]:
        """The base preset's fields (read by every decode)."""
        return PRESETS[self.base].to_dict()

    def _decode(self, key: tuple[int, ...]) -> HardwareConfig:
        values = dict(self._base_values)
        changes: dict[str, Any] = {}
        for (name, vals), idx in zip(self.choices, key):
            changes[name] = vals[idx]
        values.update(changes)
        for target, source in self.ties:
            values[target] = changes[target] = values[source]
        # repairs (module docstring): fusion needs on-chip SFUs; buffers hold one tile
        if not fusion_allowed(values):
            values["attention_fusion"] = changes["attention_fusion"] = False
        genes = dict(self.choices)
        for buf, need in tile_bytes(values).items():
            if buf in genes and not holds(values[buf], need):
                fits = [v for v in sorted(genes[buf]) if holds(v, need)]
                values[buf] = changes[buf] = fits[0]           # _check: the largest fits
        for name in unused_fields(values) & genes.keys():
            values[name] = changes[name] = DEFAULTS[name]
        desc = ", ".join(f"{n}={changes[n]:g}" if isinstance(changes[n], float)
                         else f"{n}={changes[n]}" for n in _ORDER if n in changes)
        try:
            hw = derive(self.base, self.name, f"point of hardware space '{self.name}' "
                        f"(base {self.base}): {desc}", **changes)
        except UserError as exc:                            # not expected: _check guards it
            raise UserError(f"hardware space '{self.name}': genome {list(key)} is not a valid "
                            f"configuration: {exc}") from None
        return replace(hw, name=f"{self.name}:{hw.hash()}")

    def encode(self, hw: HardwareConfig) -> list[int]:
        """The genome of `hw`; a UserError naming the first field outside the space."""
        def outside(what: str) -> UserError:
            return UserError(f"hardware '{hw.name}' is outside hardware space '{self.name}': "
                             f"{what}")
        values = hw.to_dict()
        skip = unused_fields(values)
        indices = []
        for name, vals in self.choices:
            if name in skip:
                default = [i for i, v in enumerate(vals) if _same(v, DEFAULTS[name])]
                indices.append(default[0] if default else 0)
                continue
            match = [i for i, v in enumerate(vals) if _same(v, values[name])]
            if not match:
                raise outside(f"{name}={values[name]!r} not in {list(vals)}")
            indices.append(match[0])
        point = self.decode(indices).to_dict()
        ties = dict(self.ties)
        for name in _ORDER:
            if name in NOT_GENES or name in skip:
                continue
            if not _same(point[name], values[name]):
                why = (f"tied to {ties[name]}={values[ties[name]]!r}" if name in ties else
                       f"every point has {point[name]!r} (base {self.base})")
                raise outside(f"{name}={values[name]!r}, but {why}")
        return indices

    def nearest(self, hw: HardwareConfig) -> list[int]:
        """The genome of `hw` when it is a point of the space, else of the point nearest it:
        each gene at the choice equal to hw's value, else the numerically nearest one (ties:
        the lower), else the first."""
        try:
            return self.encode(hw)
        except UserError:
            pass
        values, out = hw.to_dict(), []
        for name, vals in self.choices:
            value = values.get(name)
            same = [i for i, v in enumerate(vals) if value is not None and _same(v, value)]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in (*vals, value))
            out.append(same[0] if same else
                       min(range(len(vals)), key=lambda i: abs(vals[i] - value)) if numeric
                       else 0)
        return out

    def base_genome(self) -> list[int]:
        """The genome of the point nearest the space's base preset (the base itself when it is
        a point): where joint searches anchor and bilevel searches start."""
        return self.nearest(load_hardware(self.base))

    def __contains__(self, hw: object) -> bool:
        if not isinstance(hw, HardwareConfig):
            return False
        try:
            self.encode(hw)
        except UserError:
            return False
        return True

    # -- files ------------------------------------------------------------------------------
    def hardware_dict(self, hw: HardwareConfig) -> dict[str, Any]:
        """`hw` as a hardware file starting from the space's base preset (`base:` plus the
        fields that differ from it; SRAM and register energies only where they are not the
        ones derived from the sizes): what `load_hardware` reads back to the same hash."""
        derived = derived_energies(vars(hw))
        base = PRESETS[self.base].to_dict()
        out: dict[str, Any] = {"base": self.base, "name": hw.name,
                               "description": hw.description}
        for name, value in hw.to_dict().items():
            if name in NOT_GENES or (name in derived and value == derived[name]):
                continue
            if name in derived or value != base[name]:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "base": self.base}
        out.update({n: list(v) for n, v in self.choices})
        if self.ties:
            out["tie"] = dict(self.ties)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_dict(cls, data: Any, name: str = "custom") -> HardwareSpace:
        if not isinstance(data, dict):
            raise UserError(f"hardware space '{name}': expected a mapping, got "
                            f"{type(data).__name__}")
        data = dict(data)
        if not isinstance(data.get("name", name), str):
            raise UserError(f"hardware space '{name}': name must be a string")
        name = data.pop("name", name)
        data.pop("description", None)
        if "base" not in data:
            raise UserError(f"hardware space '{name}': missing 'base' (the preset every point "
                            f"derives from: {', '.join(PRESETS)})")
        base = str(data.pop("base"))
        tie = data.pop("tie", None) or {}
        if not isinstance(tie, dict):
            raise UserError(f"hardware space '{name}': tie must map a field to the field whose "
                            "value it takes, e.g. {sfu_lanes: cols}")
        unknown = sorted(k for k in data if k not in _FIELDS or k in NOT_GENES)
        if unknown:
            raise UserError(f"hardware space '{name}': unknown field(s) {unknown} (HardwareConfig "
                            "fields, plus base, name, description, tie)")
        choices = []
        for key, value in data.items():
            if isinstance(value, dict):
                raise UserError(f"hardware space '{name}': {key} must be a list of choices")
            choices.append((key, tuple(value) if isinstance(value, list) else (value,)))
        return cls(name=name, base=base, choices=tuple(choices),
                   ties=tuple((str(k), str(v)) for k, v in tie.items()))

    @classmethod
    def load(cls, name_or_path: str | Path) -> HardwareSpace:
        """A built-in space (`HW_SPACE_PRESETS`) or a YAML file."""
        key = str(name_or_path)
        if key in HW_SPACE_PRESETS:
            path = SPACE_DIR / f"{key}.yaml"
            return cls.from_dict(yaml.safe_load(path.read_text()), name=key)
        path = Path(key)
        if not path.suffix and not path.exists():
            raise UserError(f"unknown hardware space '{key}'; built-in: "
                            f"{', '.join(HW_SPACE_PRESETS)} (or a YAML file)")
        data = load_mapping(path, "hardware space", HW_SPACE_FILE)
        try:
            return cls.from_dict(data, name=path.stem)
        except UserError as exc:
            raise UserError(f"hardware space file {path}: {exc}") from None


__all__ = ["HardwareSpace", "HW_SPACE_PRESETS"]
