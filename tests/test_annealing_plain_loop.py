"""A scheduled activation in a plain PyTorch loop moves when the loop calls actlab.annealing.step."""

import math

import pytest
import torch
import torch.nn.functional as F

import actlab
from actlab.annealing import step

SPEC = "theta_relu(schedule=linear(start=0.7853981633974483,end=0,epochs=4))"


def _train(advance: bool) -> float:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), actlab.make_activation(SPEC), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(200, 2), torch.randint(0, 2, (200,))
    for i in range(50):  # 5 epochs of 10 steps
        if advance:
            step(model, i + 1, steps_per_epoch=10)
        loss = F.cross_entropy(model(x[(i % 10) * 20:(i % 10 + 1) * 20]), y[(i % 10) * 20:(i % 10 + 1) * 20])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model[1].theta


def test_theta_reaches_its_target_in_a_plain_loop_that_calls_step_and_stays_put_otherwise():
    assert _train(advance=True) == pytest.approx(0.0, abs=1e-9)
    assert _train(advance=False) == pytest.approx(math.pi / 4)


def test_step_rejects_a_zero_epoch_length():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        step(torch.nn.Linear(1, 1), 1, steps_per_epoch=0)
