"""Search test doubles: stand-ins for a supernet (a perplexity per architecture, or per-window
losses for the racing evaluator), a lookup table and a hardware space, without torch or the
simulator. The search must not care where perplexity and cost come from.

A plain helper module (`from doubles import SPACE, SyntheticPerplexity`), kept free of torch:
the Ray tests' worker processes import it to unpickle these objects.
"""

from __future__ import annotations

import hashlib
import math

from nas.core.arch import SearchSpace

SPACE = SearchSpace.load("tiny")
WINDOWS = 64                # validation windows of `NoisyWindows`


class SyntheticPerplexity:
    """Deterministic stand-in for a supernet: bigger is better, with diminishing returns and a
    small per-width wiggle so the front is not a single line. Counts evaluated architectures."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, archs):
        self.calls += len(archs)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        out = []
        for a in archs:
            size = sum(h * a.head_dim * a.d + f * a.d for h, f in zip(a.heads, a.ffn))
            out.append(3.0 + 300.0 / math.sqrt(size) + 0.05 * ((a.d // 32) % 3)
                       + 0.02 * sum(h % 2 for h in a.heads))
        return out


def _noise(*parts) -> float:
    """A deterministic value in [-0.5, 0.5) from its arguments."""
    digest = hashlib.sha1(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 - 0.5


class NoisyWindows:
    """Per-window losses around SyntheticPerplexity's log: a window difficulty shared by every
    architecture (large) plus a small per-architecture noise, as real validation windows
    behave. Counts the windows it scores."""

    windows = WINDOWS

    def __init__(self):
        self.scored = 0
        self.base = SyntheticPerplexity()

    def window_losses(self, archs, windows):
        self.scored += len(archs) * len(windows)
        return [[math.log(p) + 0.6 * _noise("w", i) + 0.02 * _noise(a.key, i)
                 for i in windows] for a, p in zip(archs, self.base(archs))]

    def __call__(self, archs):
        self.scored += len(archs) * WINDOWS
        return [math.exp(sum(ws) / WINDOWS)
                for ws in self.window_losses(archs, range(WINDOWS))]


def synthetic_table(space: SearchSpace = SPACE):
    """A CostTable with made-up but monotone costs (no simulator involved)."""
    from lut.table import CostTable, key_row, space_groups
    rows = []
    for key in space_groups(space):
        work = {"attn": key.d * key.heads * key.head_dim + 50 * key.heads,
                "ffn": 2 * key.d * key.ffn, "head": 4 * key.d}[key.kind]
        rows.append(key_row(key, work, 3 * work + 1000))
    meta = {"hw_name": "synthetic", "hw_hash": "0" * 12, "hw": {}, "clock_hz": 1e9,
            "workload": {"seq": 32, "batch": 1, "mode": "decoder", "gen": 0, "vocab": 0},
            "space": space.to_dict(), "simulator_version": "test", "sparsity": None}
    return CostTable(rows, meta)


class FakeHW:
    """A stand-in hardware config: the search needs only hash() from it."""

    def __init__(self, rows: int, sram: int):
        self.rows, self.sram = rows, sram
        self.name = f"fake:{self.hash()}"

    def hash(self) -> str:
        return f"r{self.rows}s{self.sram}"


class FakeHWSpace:
    CHOICES = (("rows", (8, 16, 32)), ("sram", (64, 256)))

    def genes(self):
        return list(self.CHOICES)

    def decode(self, idx):
        return FakeHW(*(c[i] for (_, c), i in zip(self.CHOICES, idx)))

    def encode(self, hw):
        return [c.index(getattr(hw, f)) for f, c in self.CHOICES]

    def to_dict(self):
        return {"name": "fake", "base": "gemmini", "choices": [list(c) for c in self.CHOICES]}

    def within_area(self, idx, max_area_mm2, rng):
        idx = list(idx)
        while fake_area(self.decode(idx)) > max_area_mm2:
            idx[rng.choice([k for k, i in enumerate(idx) if i > 0])] -= 1
        return idx


def fake_area(hw) -> float:
    return 0.004 * hw.rows ** 2 + 0.01 * hw.sram


def fake_joint_costs(designs):
    """A bigger array is faster and larger; more SRAM saves DRAM energy and costs area."""
    from lut.table import Cost
    from nas.search.candidate import HardwarePoint
    out = []
    for d in designs:
        base = synthetic_table().cost(d.arch)
        speed = d.hw.rows / 16
        cost = Cost(cycles=base.cycles / speed, clock_hz=base.clock_hz,
                    energy_pj=base.energy_pj * (1.2 if d.hw.sram == 64 else 1.0))
        out.append((cost, HardwarePoint(d.hw.name, d.hw.hash(), fake_area(d.hw),
                                        (("rows", d.hw.rows), ("sram", d.hw.sram)))))
    return out


class FakeJointCosts:
    """The cost source of a joint search over `FakeHWSpace` (`fake_joint_costs`); the anchors
    run on its 16-row, 256-SRAM point."""

    id = None

    def __init__(self):
        self.hw_space, self.anchor_hw = FakeHWSpace(), FakeHW(16, 256)

    def __call__(self, designs):
        return fake_joint_costs(designs)
