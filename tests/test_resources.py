"""Resources: one torch thread per CPU the process may use; batches that fit in memory."""

from __future__ import annotations

import os

import torch

from service.config import Settings
from service.execution.cost import measure, scaled
from service.execution.devices import (
    available_cpus,
    configure_cpu_threads,
    memory_budget,
)
from service.execution.local import LocalSampler
from tests.models import no_denoiser, random_conv_classifier


def test_threads_follow_the_cpus_this_process_may_use() -> None:
    before = torch.get_num_threads()
    try:
        assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))
        assert configure_cpu_threads(None) == available_cpus() == torch.get_num_threads()
        assert configure_cpu_threads(1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_thread_count_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DSMOOTH_CPU_THREADS", "3")
    assert Settings().cpu_threads == 3
    monkeypatch.setenv("DSMOOTH_CPU_THREADS", "0")
    try:
        Settings()
    except ValueError as exc:
        assert "cpu_threads" in str(exc)
    else:
        raise AssertionError("0 threads accepted")


def test_memory_per_sample_grows_with_the_image() -> None:
    worker = LocalSampler(no_denoiser(), random_conv_classifier(), "cpu", batch_size=500)
    small = worker.work((3, 32, 32))
    large = worker.work((3, 256, 256))
    assert small.peak_bytes > 4 * 3 * 32 * 32  # more than the input alone
    assert large.peak_bytes >= 4 * 4 * 3 * 256 * 256  # the input and three identity copies
    assert large.flops == small.flops > 0  # no denoiser; the classifier sees 32 x 32 copies


def test_scaled_cost_matches_a_measurement_at_the_real_size() -> None:
    """The per-pixel scaling (what keeps a huge image from being run to be priced) agrees
    with running the model at the size itself."""
    convolutional = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1)
    ).eval()
    for side in (32, 96, 160):
        exact = measure(convolutional, (3, side, side))
        estimate = scaled(convolutional, (3, side, side))
        assert abs(estimate.flops - exact.flops) <= 0.05 * exact.flops
        assert abs(estimate.peak_bytes - exact.peak_bytes) <= 0.05 * exact.peak_bytes


def test_batches_shrink_where_a_full_batch_would_not_fit_in_memory() -> None:
    worker = LocalSampler(no_denoiser(), random_conv_classifier(), "cpu", batch_size=500)
    budget = memory_budget(worker.device)
    assert budget > 0
    assert worker.batch_for((3, 32, 32)) == 500
    huge = (3, 2048, 2048)  # 200 MB per sample through the identity denoiser alone
    batch = worker.batch_for(huge)
    assert 1 <= batch < 500
    # Within the budget (which moves with the machine's free memory, hence the slack).
    assert batch * worker.work(huge).peak_bytes <= 1.5 * budget
