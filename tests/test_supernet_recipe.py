"""The sandwich's random subnets: uniform, or stratified by parameter count (whittle's
ParamBins, supernet/sampling.py)."""

from __future__ import annotations

import random

import pytest

from nas.core.arch import SearchSpace
from nas.core.errors import UserError
from supernet.config import TrainConfig
from supernet.sampling import PARAM_BINS, param_bins_sample, sample_subnets

SPACE = SearchSpace.load("tiny")


def bin_of(arch, space=SPACE, bins=PARAM_BINS) -> int:
    lo, hi = space.smallest().params(), space.largest().params()
    return min(bins - 1, (arch.params() - lo) * bins // (hi - lo))


def test_param_bins_spread_parameter_counts_over_the_range():
    rng_u, rng_p = random.Random(0), random.Random(0)
    uniform = [bin_of(a) for a in sample_subnets(SPACE, rng_u, 2000)]
    stratified = [bin_of(a) for _ in range(500)
                  for a in sample_subnets(SPACE, rng_p, 4, "param_bins")]
    for arch in param_bins_sample(SPACE, random.Random(1), 50):
        SPACE.check(arch)
    # the upper half of the parameter range: rare under uniform sampling, common when stratified
    upper = lambda bins: sum(b >= PARAM_BINS // 2 for b in bins) / len(bins)
    assert upper(uniform) < 0.2 < 0.3 < upper(stratified)
    # the most filled bin holds far less of the draws
    top = lambda bins: max(bins.count(b) for b in set(bins)) / len(bins)
    assert top(stratified) < 0.7 * top(uniform)


def test_samplers_are_a_pure_function_of_the_seed():
    draw = lambda sampler: [a.key for a in sample_subnets(SPACE, random.Random("s-3"), 3,
                                                          sampler)]
    assert draw("param_bins") == draw("param_bins") != draw("uniform")
    rng = random.Random("s-3")                    # uniform: the space's own sampling
    assert draw("uniform") == [SPACE.sample(rng).key for _ in range(3)]


def test_sampler_option_is_checked():
    TrainConfig(sampler="param_bins").validate()
    with pytest.raises(UserError, match="sampler must be uniform or param_bins"):
        TrainConfig(sampler="bins").validate()


# -- the default recipe -------------------------------------------------------------------------

def test_fewshot_is_the_default_and_older_runs_resume_as_they_were_trained(tiny, tiny_files,
                                                                           tmp_path):
    """Few-shot by d became the default; a checkpoint that does not record `fewshot` (written
    before it existed) was trained one-shot and resumes so."""
    import torch

    from supernet.runs import resume_config
    from supernet.train import train
    assert TrainConfig().fewshot is True
    out = train(tiny.cfg(tiny_files, tmp_path / "old", steps=2, eval_interval=2,
                         fewshot=False))
    for name in ("last.pt", "best.pt"):       # as an older version wrote it
        data = torch.load(out / name, weights_only=False)
        del data["config"]["fewshot"]
        torch.save(data, out / name)
    cfg = resume_config(out, {"steps": 3})
    assert cfg.fewshot is False
    train(cfg)                                # the one-shot weights load and train on
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 3
