"""One torch thread for the tests (and OMP_NUM_THREADS=1 for their subprocesses).

The tests' models are tiny, and the tests share this machine's few cores with other work: torch's
default of one thread per core makes them slower, not faster (supernet/threads.py). Tests that
exercise the automatic choice set the count themselves.

Below: the shared tiny supernet run (`tiny_supernet`), and the supernet tests' tiny setting
(`tiny`, `tiny_files`).
"""

import functools
import importlib.util
import os

if importlib.util.find_spec("torch") is not None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


import pytest  # noqa: E402


def fixed_corpus(chars: int = 30_000) -> str:
    """A fixed text of seeded words, digits and punctuation (every printable ASCII character but
    a few), independent of the code: the golden fronts of tests/test_search_pinned.py train on
    it, so they move only when the code that trains, scores or searches does."""
    import random
    import string
    rng = random.Random(1234)
    text, n = [], 0
    while n < chars:
        word = "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 9)))
        text.append(word + rng.choice(" " * 12 + ".,;:!?()[]{}'\"-+*/=<>_#%&@$0123456789\n"))
        n += len(text[-1])
    return "".join(text)[:chars]


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory):
    """A barely trained `tiny` supernet (3 steps on `fixed_corpus`, context 16), shared
    read-only by the tests that only need some checkpoint to search and verify; one-shot, the
    recipe the search goldens were recorded on (few-shot is the default since)."""
    pytest.importorskip("torch")
    from pathlib import Path

    from supernet.config import TrainConfig
    from supernet.train import train
    root = tmp_path_factory.mktemp("tiny-supernet")
    corpus = root / "corpus.txt"
    corpus.write_text(fixed_corpus())
    run = root / "supernet"
    train(TrainConfig(out=str(run), space="tiny", dataset=str(corpus), steps=3, batch_size=2,
                      block_size=16, eval_interval=3, eval_tokens=256, eval_random=0,
                      warmup=1, fewshot=False, progress=False))
    return run


# every `nas` subcommand (tests/test_cli.py checks the parser has exactly these; the bad-input
# sweep, that it covers each)
COMMANDS = {"hw", "profile", "simulate", "train-supernet", "train-subnet", "eval", "verify",
            "export-subnet", "sample", "build-lut", "search", "export", "quickstart", "report",
            "calibrate"}


# -- search test doubles (plain helpers: `from conftest import SPACE, SyntheticPerplexity`) ------
# The search must not care where perplexity and cost come from: these stand in for a supernet
# (a perplexity per architecture, or per-window losses for the racing evaluator), a lookup
# table and a hardware space, without torch or the simulator.

import hashlib  # noqa: E402
import math  # noqa: E402

from nas.core.arch import SearchSpace  # noqa: E402

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


# -- shared data (../shared: masks, oracles) -------------------------------------------------------
# Tests that need a file of ../shared fail naming it when it is missing; they never skip.

from pathlib import Path  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VITCOD_MASK = SHARED / "data" / "vitcod" / "deit_tiny_attention_masks_0.95.npy"
SCALESIM_ORACLE = SHARED / "oracles" / "scalesim-3.0.0-ws.jsonl"


def shared_file(path: Path, what: str) -> Path:
    """`path`, or a failure saying which file of ../shared is missing."""
    if not path.is_file():
        pytest.fail(f"{what} not found at {path} (../shared is part of the test setup)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def vitcod_mask() -> Path:
    """ViTCoD's released DeiT-Tiny attention masks (95% pruned), [12, 3, 197, 197]."""
    return shared_file(VITCOD_MASK, "ViTCoD masks")


@pytest.fixture(scope="session")
def scalesim_runs() -> list[dict]:
    """SCALE-Sim 3.0.0's reference runs (../shared/oracles), one dict per GEMM and array."""
    import json
    path = shared_file(SCALESIM_ORACLE, "SCALE-Sim reference runs")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# == supernet tests: the tiny space, batches, corpus and run settings they share ==================
# tests/test_supernet*.py take these through the fixtures `tiny` and `tiny_files` (no test module
# imports another).

class TinySupernet:
    """The supernet tests' setting: a two-layer space of widths 16 and 32 (head_dim 8), an
    11-token vocabulary for model-level tests, a context of 16 tokens, a corpus of short
    sentences, and the settings of a six-step training run."""

    vocab, block = 11, 16
    words = "the a cat dog sat ran on under mat log and then quickly slowly".split()

    @functools.cached_property
    def space(self):
        from nas.core.arch import SearchSpace
        return SearchSpace(name="test", layers=(1, 2), d=(16, 32), heads=(1, 2), ffn=(32, 64),
                           head_dim=8)

    def model(self, dropout: float = 0.0, seed: int = 0, space=None):
        """An ElasticGPT over `space` (default: this one) initialised from `seed`."""
        import torch

        from supernet.model import ElasticGPT, ModelConfig
        torch.manual_seed(seed)
        return ElasticGPT(ModelConfig(self.vocab, self.block, dropout), space or self.space)

    def batch(self, seed: int = 0, b: int = 3):
        """`b` random sequences and their next tokens."""
        import torch
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(self.vocab, (b, self.block + 1), generator=g)
        return x[:, :-1], x[:, 1:]

    def corpus_text(self, n_lines: int = 600, words: list[str] | None = None) -> str:
        """Sentences of 3 to 9 random words, one per line (seeded)."""
        import random
        rng, words = random.Random(0), words or self.words
        return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + " .\n"
                       for _ in range(n_lines))

    def write_files(self, root, space=None, corpus: str | None = None):
        """corpus.txt and space.yaml in the folder `root`; returns it."""
        import yaml
        (root / "corpus.txt").write_text(corpus if corpus is not None else self.corpus_text())
        (root / "space.yaml").write_text(yaml.safe_dump((space or self.space).to_dict()))
        return root

    def cfg(self, files, out, **kw):
        """A six-step run on the corpus and space in `files`, `kw` changing any setting."""
        from supernet.config import TrainConfig
        base = dict(out=str(out), space=str(files / "space.yaml"),
                    dataset=str(files / "corpus.txt"), steps=6, batch_size=4,
                    block_size=self.block, warmup=2, eval_interval=3, eval_tokens=512,
                    eval_random=1, log_interval=1, progress=False, seed=3, threads=1)
        return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def tiny() -> TinySupernet:
    return TinySupernet()


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny):
    """A folder with the tiny corpus.txt and space.yaml (one per test module)."""
    return tiny.write_files(tmp_path_factory.mktemp("data"))
