"""One torch thread for the tests (and OMP_NUM_THREADS=1 for their subprocesses).

The tests' models are tiny, and the tests share this machine's few cores with other work: torch's
default of one thread per core makes them slower, not faster (supernet/threads.py). Tests that
exercise the automatic choice set the count themselves.
"""

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
