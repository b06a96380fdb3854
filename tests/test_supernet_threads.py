"""The automatic choice of torch's CPU thread count (supernet.threads)."""

from __future__ import annotations

import pytest
import torch

import supernet.threads as threads
from nas.core.arch import Arch, SearchSpace
from nas.core.errors import UserError
from supernet.train import train


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_small_models_get_one_thread_large_ones_every_core(tiny):
    test_model = threads.forward_macs(tiny.space.largest(), tiny.vocab, 4 * 16)
    tiny = SearchSpace.load("tiny")
    survey = threads.forward_macs(SearchSpace.load("survey").largest(), 33278, 12 * 64)
    assert threads.auto_threads(test_model, cores=8) == 1
    for arch in (tiny.smallest(), tiny.largest()):      # Tiny Shakespeare: 65 characters
        for tokens in (12 * 64, 16 * 64):               # a training batch, an eval batch
            assert threads.auto_threads(threads.forward_macs(arch, 65, tokens), cores=8) == 1
    assert threads.auto_threads(survey, cores=8) == 8
    assert threads.auto_threads(threads.SINGLE_THREAD_MACS, cores=8) == 8


def test_forward_macs_counts_each_weight_once_per_token():
    arch = Arch(d=16, heads=(1,), ffn=(32,), head_dim=8)
    assert threads.forward_macs(arch, 11, 10) == 10 * arch.params(11)
    assert threads.forward_macs(arch, 11, 20) == 2 * threads.forward_macs(arch, 11, 10)


def test_set_threads_honours_a_request_and_splits_cores_between_processes(monkeypatch,
                                                                           restore_threads):
    big = SearchSpace.load("survey").largest()
    assert threads.set_threads(3, big, 100, 1024) == 3 == torch.get_num_threads()
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    assert threads.set_threads(None, big, 33278, 1024) == 8
    assert threads.set_threads(None, big, 33278, 1024, processes=2) == 4
    assert threads.set_threads(None, big, 33278, 1024, processes=16) == 1
    with pytest.raises(UserError, match="threads must be >= 1"):
        threads.set_threads(0, big, 100, 1024)


def test_training_without_threads_chooses_them(tiny, tiny_files, tmp_path, restore_threads):
    torch.set_num_threads(2)
    train(tiny.cfg(tiny_files, tmp_path / "auto", steps=1, eval_interval=1, threads=None))
    assert torch.get_num_threads() == 1
    torch.set_num_threads(1)
    train(tiny.cfg(tiny_files, tmp_path / "two", steps=1, eval_interval=1, threads=2))
    assert torch.get_num_threads() == 2
