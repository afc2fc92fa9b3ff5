"""The soundness audit's attack core (benchmarks/attack.py): projection, L2 PGD on tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.attack import pgd_l2, project, smoothed_log_prob


def _images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, 3, 8, 8), generator=generator)


def _tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # Non-linear, so the smoothed loss is not just linear in the input.
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.Tanh(), nn.Linear(16, 3)).eval()


def _loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, sigma: float) -> float:
    """The attack's objective with one fixed set of noise draws, so two images compare fairly."""
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return float(-smoothed_log_prob(model, images, labels, sigma, 256, generator).sum())


@pytest.mark.parametrize("eps", [0.05, 0.5, torch.tensor([0.1, 0.2, 1.0, 3.0])])
def test_project_stays_in_the_ball_and_the_box(eps: float | torch.Tensor) -> None:
    images = _images()
    delta = 2.0 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))
    projected = project(images, delta, eps)
    bound = torch.as_tensor(eps).expand(4)
    assert (projected.flatten(1).norm(dim=1) <= bound * (1 + 1e-6)).all()
    attacked = images + projected
    assert attacked.min() >= 0.0
    assert attacked.max() <= 1.0


def test_project_leaves_a_feasible_delta_alone_and_scales_along_its_direction() -> None:
    images = torch.full((2, 3, 8, 8), 0.5)
    small = torch.full((2, 3, 8, 8), 0.01)  # norm 0.01 * sqrt(192) ~ 0.14 < 1, in the box
    assert torch.allclose(project(images, small, 1.0), small)
    large = torch.full((2, 3, 8, 8), 0.1)  # norm ~ 1.39 > 1, inside the box
    projected = project(images, large, 1.0)
    assert torch.allclose(projected.flatten(1).norm(dim=1), torch.ones(2))
    assert torch.allclose(projected / projected.norm() * large.norm(), large, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.0, 0.25])
def test_pgd_increases_the_loss_within_the_ball(sigma: float) -> None:
    model, images = _tiny_model(), _images()
    with torch.no_grad():
        labels = model(images).argmax(dim=1)  # attack the model's own clean answer
    eps = 0.5
    attacked = pgd_l2(
        model, images, labels, eps, sigma, steps=10, samples=8,
        generator=torch.Generator().manual_seed(7),
    )  # fmt: skip
    assert _loss(model, attacked, labels, sigma) > _loss(model, images, labels, sigma) + 0.1
    assert ((attacked - images).flatten(1).norm(dim=1) <= eps * (1 + 1e-5)).all()
    assert attacked.min() >= 0.0
    assert attacked.max() <= 1.0


def test_pgd_flips_a_linear_model_given_room() -> None:
    # Class 1 iff the mean pixel exceeds 0.5: images at mean 0.45 flip once moved by ~0.05 per
    # pixel (L2 ~ 0.7); eps = 2 is plenty, eps = 0 must change nothing.
    linear = nn.Linear(3 * 8 * 8, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.stack([-torch.ones(192), torch.ones(192)]) * 10 / 192)
        linear.bias.copy_(torch.tensor([5.0, -5.0]))
    model = nn.Sequential(nn.Flatten(), linear).eval()
    images = torch.full((2, 3, 8, 8), 0.45)
    labels = torch.zeros(2, dtype=torch.long)
    attacked = pgd_l2(model, images, labels, 2.0, 0.1, steps=10, samples=4)
    assert (model(attacked).argmax(dim=1) == 1).all()
    assert torch.equal(pgd_l2(model, images, labels, 0.0, 0.1, steps=5, samples=4), images)


def test_pgd_mutates_neither_its_input_nor_the_model() -> None:
    model, images = _tiny_model(), _images()
    before_images = images.clone()
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    labels = torch.tensor([0, 1, 2, 0])
    attacked = pgd_l2(model, images, labels, 0.3, 0.25, steps=3, samples=4)
    assert torch.equal(images, before_images)
    assert not images.requires_grad
    assert attacked.data_ptr() != images.data_ptr()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before_state[key])
    assert all(p.grad is None for p in model.parameters())


def test_smoothed_log_prob_is_the_log_of_the_mean_softmax() -> None:
    model, images = _tiny_model(), _images(batch=2)
    labels = torch.tensor([1, 2])
    generator = torch.Generator().manual_seed(5)
    got = smoothed_log_prob(model, images, labels, 0.25, 6, generator)
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn((6, *images.shape), generator=generator)
    with torch.no_grad():
        probs = torch.stack([model(images + 0.25 * n).softmax(dim=1) for n in noise])
    expected = probs.mean(dim=0).gather(1, labels[:, None]).squeeze(1).log()
    assert torch.allclose(got, expected, atol=1e-5)
