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
