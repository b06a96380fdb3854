"""One torch thread for the tests (and OMP_NUM_THREADS=1 for their subprocesses), and the `nas`
parser built once per test process.

The tests' models are tiny, and the tests share this machine's few cores with other work: torch's
default of one thread per core makes them slower, not faster (supernet/threads.py). Tests that
exercise the automatic choice set the count themselves.

Below: the shared tiny supernet run (`tiny_supernet`), figures drawn only where a test looks at
them (`figures_not_drawn`, the `figures` marker, `drawn`), files of ../shared, the supernet
tests' tiny setting (`tiny`, `tiny_files`), and the order of the test files (longest first).
"""

import collections
import contextlib
import functools
import importlib.util
import json
import os
from pathlib import Path

import pytest

os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Set in each test process before its first test (pytest-xdist's controller, which runs
    no test, does not import torch at all: 1.5 CPU-seconds)."""
    if importlib.util.find_spec("torch") is not None:
        import torch
        torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def parser_built_once():
    """`nas.cli.main` builds its parser once per test process, not once per call: building it
    takes about 10 ms (240 arguments), and the tests call `main` some 700 times. A command runs
    once per process, so its parser is built once there too."""
    import nas.cli
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nas.cli, "build_parser", functools.cache(nas.cli.build_parser))
        yield


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


@contextlib.contextmanager
def shared_between_workers(tmp_path_factory, name: str):
    """A folder `name` made once for the whole run: under pytest-xdist, every test process
    sees the same one (the first to take its lock makes it, the others wait, then reuse it).
    Gives (folder, whether it still has to be made); the caller makes it inside the `with`."""
    import fcntl
    base = Path(tmp_path_factory.getbasetemp())
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent                  # the run's folder, above each worker's own
    folder = base / name
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / ".made"
        yield folder, not done.is_file()
        done.parent.mkdir(parents=True, exist_ok=True)
        done.touch()


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory):
    """A barely trained `tiny` supernet (3 steps on `fixed_corpus`, context 16), shared
    read-only by the tests that only need some checkpoint to search and verify (trained once
    per test run, whatever the number of test processes); one-shot, the recipe the search
    goldens were recorded on (few-shot is the default since)."""
    pytest.importorskip("torch")
    with shared_between_workers(tmp_path_factory, "tiny-supernet") as (root, to_make):
        if to_make:
            from supernet.config import TrainConfig
            from supernet.train import train
            root.mkdir(parents=True, exist_ok=True)
            corpus = root / "corpus.txt"
            corpus.write_text(fixed_corpus())
            train(TrainConfig(out=str(root / "supernet"), space="tiny", dataset=str(corpus),
                              steps=3, batch_size=2, block_size=16, eval_interval=3,
                              eval_tokens=256, eval_random=0, warmup=1, fewshot=False,
                              progress=False))
    return root / "supernet"


# every `nas` subcommand (tests/test_cli.py checks the parser has exactly these; the bad-input
# sweep, that it covers each)
COMMANDS = {"hw", "profile", "simulate", "train-supernet", "train-subnet", "eval", "verify",
            "export-subnet", "sample", "build-lut", "search", "export", "quickstart", "report",
            "calibrate"}


# -- figures: drawn for real only where a test looks at them --------------------------------------
# Rasterizing a figure (matplotlib's draw, the PNG encoding) costs about 0.1 s, and the suite
# writes some 130 of them (a loss plot per training, a Pareto plot per search, ...): a fifth of
# the suite's CPU. So `Figure.savefig` writes a placeholder file instead, after every line of the
# figure code has run; tests marked `figures` draw for real and check the image (`drawn`).

_draw_for_real = False
NOT_DRAWN = b"\x89PNG\r\n\x1a\n(not drawn: tests/conftest.py, see the figures marker)\n"


@pytest.fixture(scope="session", autouse=True)
def figures_not_drawn():
    if importlib.util.find_spec("matplotlib") is None:
        yield
        return
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    real = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        if _draw_for_real:
            return real(self, fname, *args, **kwargs)
        if hasattr(fname, "write"):
            fname.write(NOT_DRAWN)
        else:
            with open(fname, "wb") as f:
                f.write(NOT_DRAWN)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", savefig)
        yield


@pytest.fixture(autouse=True)
def figures_drawn_when_marked(request):
    global _draw_for_real
    _draw_for_real = request.node.get_closest_marker("figures") is not None
    yield
    _draw_for_real = False


@pytest.fixture
def drawn():
    """`drawn(path, size)`: asserts `path` is a PNG drawn for real, of `size` = (width, height)
    pixels when given, and not blank (many colours, ink in each half: a figure's panels)."""
    def check(path, size: tuple[int, int] | None = None) -> None:
        from PIL import Image
        with Image.open(path) as image:
            assert image.format == "PNG", image.format
            assert size is None or image.size == size, image.size
            rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50, f"{path}: {len(colours)} colours"
        width, height = rgb.size
        for half in ((0, 0, width // 2, height), (width // 2, 0, width, height)):
            extrema = rgb.crop(half).getextrema()
            assert any(lo < 128 for lo, _ in extrema), f"{path}: a blank half {half}"
    return check


# -- shared data (../shared: masks, oracles) -------------------------------------------------------
# Tests that need a file of ../shared fail naming it when it is missing; they never skip.

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


def pytest_collection_finish(session):
    """What the imports and the collection made (torch, Ray, the test modules: some 270,000
    objects that live as long as the process) leaves the garbage collector's reach, so its
    full collections during the tests, and pytest's at the end, walk only what tests make:
    about 4 CPU-seconds less per suite run. Full collections still took 0.13 s each, 20 per
    test process (5.8 CPU-seconds a run, timed by gc.callbacks): they now come after 100
    collections of the middle generation instead of 10 (2.6 CPU-seconds; the young
    generations, which free most cycles, run as often as before)."""
    import gc
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)


# -- order: the longest test files first ----------------------------------------------------------
# pytest-xdist hands whole files to the test processes in the order of the collection
# (`--dist loadfile --no-loadscope-reorder` in pyproject.toml). Taken longest first, the short
# files fill in at the end and both processes finish together; in the files' own order the last
# long file ran alone for 3-4 s. The seconds are those of an earlier run (`--record-file-seconds`
# writes the files that run took; tests/test_suite.py checks that every test file has its line).

FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


def pytest_addoption(parser):
    parser.addoption("--record-file-seconds", action="store_true",
                     help=f"write each test file's seconds in this run to {FILE_SECONDS.name} "
                          "(the order of the files in later runs: longest first)")


def pytest_collection_modifyitems(items):
    seconds = json.loads(FILE_SECONDS.read_text())
    items.sort(key=lambda item: -seconds.get(item.path.name, 0.0))       # stable in a file


_file_seconds: collections.Counter = collections.Counter()


def pytest_runtest_logreport(report):
    _file_seconds[report.nodeid.partition("::")[0].rpartition("/")[2]] += report.duration


def pytest_sessionfinish(session):
    """In the process that sees every test's report (xdist's controller, or the only one)."""
    if session.config.getoption("record_file_seconds") and not hasattr(session.config,
                                                                       "workerinput"):
        seconds = json.loads(FILE_SECONDS.read_text())
        seconds.update({name: round(s, 2) for name, s in _file_seconds.items()})
        FILE_SECONDS.write_text(json.dumps(dict(sorted(seconds.items())), indent=0) + "\n")
