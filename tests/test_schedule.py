"""The cosine schedule against a hand-written table, and its LambdaLR wiring."""

import math

import pytest
import torch

from act_hydra.config import SchedulerConfig
from act_hydra.schedule import build_scheduler, cosine_with_warmup_factor, restore_scheduler

# (step, warmup, total, min_lr_ratio, expected factor), computed by hand from the formula.
TABLE = [
    (0, 500, 20000, 1e-2, 0.0),  # step 0: warmup starts at 0
    (250, 500, 20000, 1e-2, 0.5),  # inside the warmup
    (499, 500, 20000, 1e-2, 0.998),  # last warmup step
    (500, 500, 20000, 1e-2, 1.0),  # end of warmup: the base LR
    (10250, 500, 20000, 1e-2, 0.505),  # midpoint of the decay: (1 + r) / 2
    (20000, 500, 20000, 1e-2, 0.01),  # T: the floor
    (19999, 500, 20000, 1e-2, 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 19499 / 19500))),
    (0, 0, 100, 0.0, 1.0),  # warmup_steps=0 starts at the base LR
    (50, 0, 100, 0.0, 0.5),
    (100, 0, 100, 0.0, 0.0),
]


@pytest.mark.parametrize("step,warmup,total,ratio,expected", TABLE)
def test_cosine_factor_table(step, warmup, total, ratio, expected):
    assert cosine_with_warmup_factor(step, warmup, total, ratio) == pytest.approx(
        expected, rel=1e-12
    )


def test_last_update_is_just_above_the_floor():
    # The last update of T=100 runs at i=99, one step before the floor is reached at i=T.
    f = cosine_with_warmup_factor(99, 10, 100, 0.1)
    assert 0.1 < f < 0.1 + 1e-3


def _optimizer():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.AdamW([{"params": [a], "lr": 1e-4}, {"params": [b], "lr": 1e-5}])


def test_lambda_lr_scales_both_groups_by_the_same_factor():
    opt = _optimizer()
    sched = build_scheduler(opt, SchedulerConfig("cosine", 10, 1e-6), lr=1e-4, num_steps=100)
    seen = []
    for _ in range(100):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    for i, (lr, lr_bb) in enumerate(seen):
        f = cosine_with_warmup_factor(i, 10, 100, 1e-6 / 1e-4)
        assert lr == pytest.approx(1e-4 * f, rel=1e-9, abs=0)
        assert lr_bb == pytest.approx(1e-5 * f, rel=1e-9, abs=0)


def test_none_keeps_the_base_lr():
    opt = _optimizer()
    sched = build_scheduler(opt, SchedulerConfig("none"), lr=1e-4, num_steps=10)
    for _ in range(10):
        assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-5]
        opt.step()
        sched.step()


def test_restored_schedule_continues_at_the_saved_step():
    cfg = SchedulerConfig("cosine", 2, 1e-6)
    opt = _optimizer()
    sched = build_scheduler(opt, cfg, lr=1e-4, num_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    expected = [g["lr"] for g in opt.param_groups]
    assert expected[0] > 0

    resumed = _optimizer()
    resumed_sched = build_scheduler(resumed, cfg, lr=1e-4, num_steps=10)
    resumed.load_state_dict(opt.state_dict())
    restore_scheduler(resumed_sched, sched.state_dict(), cfg, lr=1e-4, num_steps=10)
    assert [g["lr"] for g in resumed.param_groups] == expected
    resumed.step()
    resumed_sched.step()
    opt.step()
    sched.step()
    assert [g["lr"] for g in resumed.param_groups] == [g["lr"] for g in opt.param_groups]
