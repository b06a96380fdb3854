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


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory):
    """A barely trained `tiny` supernet (3 steps on the source of nas.core.arch, context 16),
    shared read-only by the tests that only need some checkpoint to search and verify."""
    pytest.importorskip("torch")
    from pathlib import Path

    import nas.core.arch
    from supernet.config import TrainConfig
    from supernet.train import train
    root = tmp_path_factory.mktemp("tiny-supernet")
    corpus = root / "corpus.txt"
    corpus.write_text(Path(nas.core.arch.__file__).read_text() * 2)
    run = root / "supernet"
    train(TrainConfig(out=str(run), space="tiny", dataset=str(corpus), steps=3, batch_size=2,
                      block_size=16, eval_interval=3, eval_tokens=256, eval_random=0,
                      warmup=1, progress=False))
    return run


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
