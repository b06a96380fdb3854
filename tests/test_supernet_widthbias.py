"""Weight sharing without the width bias: the balanced sandwich, AlphaNet's alpha-divergence and
the few-shot supernet split by embedding width (training, checkpoint, evaluation, export)."""

from __future__ import annotations

import json
import random

import pytest
import torch
import torch.nn.functional as F

from nas.cli import main as cli_main
from nas.core.arch import Arch, SearchSpace
from nas.core.errors import UserError
from supernet.checkpoint import load_checkpoint, load_subnet, model_from_checkpoint
from supernet.evaluate import SupernetEvaluator
from supernet.fewshot import FewShotGPT, space_of_d
from supernet.model import ElasticGPT, ModelConfig
from supernet.train import (TrainConfig, adaptive_alpha_loss, alpha_divergence,
                            fewshot_split_step, make_optimizer, read_log, sandwich_step,
                            step_archs, step_groups, teachers, train)

SPACE = SearchSpace(name="test", layers=(1, 2), d=(16, 24, 32), heads=(1, 2), ffn=(32, 64),
                    head_dim=8)     # three widths (the shared `tiny` space has two)


def archs_of_every_d() -> list[Arch]:
    rng = random.Random(0)
    return [space_of_d(SPACE, d).sample(rng) for d in SPACE.d for _ in range(3)]


# -- sampling -----------------------------------------------------------------------------------

def test_default_sandwich_is_largest_global_smallest_and_random():
    archs = step_archs(SPACE, None, TrainConfig(n_random=2), 5)
    assert archs[:2] == [SPACE.largest(), SPACE.smallest()] and len(archs) == 4


def test_balanced_sandwich_trains_the_smallest_of_every_width():
    archs = step_archs(SPACE, None, TrainConfig(n_random=2, sandwich_smallest="each_d"), 5)
    assert archs[0] == SPACE.largest()
    assert archs[1:4] == [Arch.uniform(1, d, 1, 32, 8) for d in SPACE.d]
    assert len(archs) == 6 and archs[1] == SPACE.smallest()


def test_fewshot_steps_train_one_width_in_turn_after_the_split():
    cfg = TrainConfig(steps=100, fewshot=True, fewshot_after=0.3, n_random=3)
    assert fewshot_split_step(cfg) == 30 and fewshot_split_step(TrainConfig(fewshot=False)) is None
    before = step_archs(SPACE, None, cfg, 29)
    assert before[:2] == [SPACE.largest(), SPACE.smallest()]
    widths = []
    for step in range(30, 36):
        archs = step_archs(SPACE, None, cfg, step)
        assert len({a.d for a in archs}) == 1
        assert archs[0] == space_of_d(SPACE, archs[0].d).largest()
        assert archs[1] == space_of_d(SPACE, archs[0].d).smallest()
        widths.append(archs[0].d)
    assert widths == [16, 24, 32, 16, 24, 32]


def test_fewshot_every_d_trains_a_sandwich_per_width_after_the_split():
    cfg = TrainConfig(steps=100, fewshot=True, fewshot_after=0.3, fewshot_every_d=True)
    assert step_groups(SPACE, None, cfg, 29) == [step_archs(SPACE, None, cfg, 29)]
    groups = step_groups(SPACE, None, cfg, 30)
    assert [g[0] for g in groups] == [space_of_d(SPACE, d).largest() for d in SPACE.d]
    assert all(len({a.d for a in g}) == 1 for g in groups)
    assert teachers(groups) == {0, 4, 8}
    plain = TrainConfig(steps=100, fewshot=True, fewshot_after=0.3)
    assert step_groups(SPACE, None, plain, 30) == [step_archs(SPACE, None, plain, 30)]


def test_bad_width_bias_options_are_user_errors():
    for kw, msg in ((dict(sandwich_smallest="per_d"), "sandwich_smallest"),
                    (dict(distill_loss="js"), "distill_loss"),
                    (dict(fewshot_after=1.0), "fewshot_after")):
        with pytest.raises(UserError, match=msg):
            TrainConfig(**kw).validate()


# -- alpha-divergence ---------------------------------------------------------------------------

def test_alpha_divergence_is_kl_at_one_zero_at_the_teacher_and_positive_elsewhere():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    log_p = F.log_softmax(teacher, -1)
    kl = F.kl_div(F.log_softmax(student, -1), log_p.exp(), reduction="none").sum(-1)
    torch.testing.assert_close(alpha_divergence(student, log_p, 1.0), kl)
    for alpha in (-1.0, 0.5, 1.0):
        assert torch.allclose(alpha_divergence(teacher, log_p, alpha), torch.zeros(5), atol=1e-6)
        assert (alpha_divergence(student, log_p, alpha) > 0).all()
    # alpha = -1 without clipping: sum q (q/p - 1) / 2
    q = F.softmax(student, -1)
    expected = (q * (q / log_p.exp() - 1)).sum(-1) / 2
    torch.testing.assert_close(alpha_divergence(student, log_p, -1.0, clip=1e9), expected)


def test_alpha_distillation_moves_the_student_toward_the_teacher():
    g = torch.Generator().manual_seed(1)
    teacher = F.log_softmax(3 * torch.randn(6, 7, generator=g), -1)
    student = torch.zeros(6, 7, requires_grad=True)
    opt = torch.optim.SGD([student], lr=0.5)
    losses = []
    for _ in range(100):
        loss = adaptive_alpha_loss(student, teacher)
        losses.append(loss.item())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert losses[-1] < 0.5 * losses[0]


def test_sandwich_step_reports_the_alpha_loss_of_its_students(tiny):
    torch.manual_seed(0)
    model = ElasticGPT(ModelConfig(tiny.vocab, tiny.block), SPACE)
    x, y = tiny.batch()
    _, student = sandwich_step(model, x, y, [SPACE.largest(), SPACE.smallest()],
                               distill_loss="alpha")
    with torch.no_grad():
        teacher = F.log_softmax(model(x)[0], -1).view(-1, tiny.vocab)
        logits = model(x, SPACE.smallest())[0].view(-1, tiny.vocab)
    assert student == pytest.approx(adaptive_alpha_loss(logits, teacher).item(), rel=1e-5)


# -- few-shot supernet --------------------------------------------------------------------------

def test_split_warm_starts_every_width_from_the_shared_supernet(tiny):
    torch.manual_seed(0)
    model = FewShotGPT(ModelConfig(tiny.vocab, tiny.block), SPACE)
    opt = make_optimizer(model, TrainConfig(), torch.device("cpu"))
    x, y = tiny.batch()
    sandwich_step(model, x, y, [SPACE.largest(), SPACE.smallest()])
    opt.step()
    opt.zero_grad()
    archs = archs_of_every_d()
    with torch.no_grad():
        before = [model(x, a)[0] for a in archs]
    assert all(p.grad is None for p in model.subs.parameters())       # untouched before
    model.split(opt)
    with torch.no_grad():
        after = [model(x, a)[0] for a in archs]
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    sub = model.subs[0]
    assert sub.wte.weight.shape[1] == SPACE.d[0]
    torch.testing.assert_close(opt.state[sub.wte.weight]["exp_avg"],
                               opt.state[model.shared.wte.weight]["exp_avg"][:, :SPACE.d[0]])


def test_after_the_split_training_one_width_leaves_the_others_alone(tiny):
    torch.manual_seed(0)
    model = FewShotGPT(ModelConfig(tiny.vocab, tiny.block), SPACE)
    model.split()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = tiny.batch()
    d16 = space_of_d(SPACE, 16)
    others = [a for a in archs_of_every_d() if a.d != 16]
    with torch.no_grad():
        before = [model(x, a)[0] for a in others]
    sandwich_step(model, x, y, [d16.largest(), d16.smallest()])
    opt.step()
    with torch.no_grad():
        for a, b in zip(others, before):
            torch.testing.assert_close(model(x, a)[0], b, rtol=0, atol=0)
        assert not torch.equal(model(x, d16.smallest())[0], model.shared(x, d16.smallest())[0])


@pytest.fixture(scope="module")
def width_files(tiny, tmp_path_factory):
    """The tiny corpus (400 lines of a smaller vocabulary) and this module's space."""
    words = "the a cat dog sat ran on under mat log and then".split()
    return tiny.write_files(tmp_path_factory.mktemp("data"), SPACE,
                            tiny.corpus_text(400, words))


def test_balanced_alpha_run_trains_and_logs_its_loss_kind(tiny, width_files, tmp_path):
    out = train(tiny.cfg(width_files, tmp_path / "ba", sandwich_smallest="each_d",
                         distill_loss="alpha", steps=3))
    records = [r for r in read_log(out) if r["kind"] == "train"]
    assert records[-1]["student_loss_kind"] == "alpha"
    assert load_checkpoint(out, "last")["config"]["sandwich_smallest"] == "each_d"


@pytest.mark.parametrize("every_d", [False, True])
def test_fewshot_run_evaluates_and_exports_through_one_checkpoint(tiny, width_files, tmp_path,
                                                                  capsys, every_d):
    full = train(tiny.cfg(width_files, tmp_path / "full", fewshot=True, fewshot_after=0.5,
                          fewshot_every_d=every_d))
    data = load_checkpoint(full, "last")
    model = model_from_checkpoint(data)
    assert isinstance(model, FewShotGPT) and bool(model.is_split)
    ev = SupernetEvaluator(full, max_tokens=300)
    archs = archs_of_every_d()
    losses = ev.losses(archs)
    x = ev.x[:4]
    for arch in archs[::3]:
        expected = model.subs[SPACE.d.index(arch.d)](x, arch)[0]
        torch.testing.assert_close(ev.model(x, arch)[0], expected, rtol=0, atol=0)
    arch = archs[4]
    capsys.readouterr()
    assert cli_main(["export-subnet", "--ckpt", str(full), "--arch", arch.key,
                     "--out", str(tmp_path / "s.pt")]) == 0
    info = json.loads(capsys.readouterr().out)
    exported, meta = load_subnet(tmp_path / "s.pt")
    assert meta["key"] == arch.key == info["key"]
    torch.testing.assert_close(exported.eval()(x)[0], ev.model(x, arch)[0], rtol=0, atol=1e-6)
    assert all(loss > 0 for loss in losses)
