"""CPU thread settings: one torch thread per CPU the process may use, or what settings say."""

from __future__ import annotations

import os

import torch

from service.settings import Settings
from service.worker import available_cpus, configure_cpu_threads


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
