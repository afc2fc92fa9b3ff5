"""Resources: one torch thread per CPU the process may use; batches that fit in memory."""

from __future__ import annotations

import os

import torch

from service.config import Settings
from service.execution.devices import (
    available_cpus,
    bytes_per_sample,
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
    small = bytes_per_sample(worker.model, (3, 32, 32), worker.device)
    large = bytes_per_sample(worker.model, (3, 256, 256), worker.device)
    assert small > 4 * 3 * 32 * 32  # more than the input alone
    assert large >= 4 * 4 * 3 * 256 * 256  # the input and three identity-denoised copies


def test_batches_shrink_where_a_full_batch_would_not_fit_in_memory() -> None:
    worker = LocalSampler(no_denoiser(), random_conv_classifier(), "cpu", batch_size=500)
    budget = memory_budget(worker.device)
    assert budget > 0
    assert worker.batch_for((3, 32, 32)) == 500
    huge = (3, 2048, 2048)  # 200 MB per sample through the identity denoiser alone
    batch = worker.batch_for(huge)
    assert 1 <= batch < 500
    # Within the budget (which moves with the machine's free memory, hence the slack).
    assert batch * bytes_per_sample(worker.model, huge, worker.device) <= 1.5 * budget
