"""Cross-request batching: grouping, limits, failures, cancellation, and unchanged counts."""

from __future__ import annotations

import asyncio

import pytest
import torch

from service.core.certifier import Certifier
from service.core.results import CertifyParams
from service.execution.batching import Batcher
from service.execution.local import LocalSampler
from tests.models import no_denoiser, random_conv_classifier

Work = tuple[str, int]  # (key, size)


class Recorder:
    """A run function that records its batches and holds the first one until released."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[Work]] = []
        self.release = asyncio.Event()
        self.fail_on = fail_on

    async def __call__(self, work: list[Work]) -> list[str]:
        self.batches.append(work)
        await self.release.wait()
        if any(key == self.fail_on for key, _ in work):
            raise RuntimeError("model failed")
        return [f"{key}:{size}" for key, size in work]


def _batcher(run: Recorder, max_size: int = 100) -> Batcher[Work, str]:
    return Batcher(run, size=lambda w: w[1], key=lambda w: w[0], max_size=max_size)


async def _running(batcher: Batcher[Work, str], run: Recorder, work: Work) -> asyncio.Task:
    """Submit ``work`` and return once the model is busy with it."""
    task = asyncio.create_task(batcher.submit(work))
    while not run.batches:
        await asyncio.sleep(0)
    return task


async def _submit_all(batcher: Batcher[Work, str], run: Recorder, works: list[Work]) -> list:
    tasks = [await _running(batcher, run, works[0])]
    tasks += [asyncio.create_task(batcher.submit(w)) for w in works[1:]]
    await asyncio.sleep(0)  # the rest queued while the model is busy
    run.release.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_work_queued_while_the_model_is_busy_runs_in_one_call() -> None:
    run = Recorder()
    works = [("a", 10), ("a", 20), ("b", 5), ("a", 30), ("a", 90)]
    results = asyncio.run(_submit_all(_batcher(run), run, works))
    assert results == [f"{k}:{s}" for k, s in works]
    # First alone (it started the drain); then same key within max_size; then the rest, in order.
    assert run.batches == [[("a", 10)], [("a", 20), ("a", 30)], [("b", 5)], [("a", 90)]]


def test_an_item_larger_than_the_limit_runs_alone() -> None:
    run = Recorder()
    results = asyncio.run(_submit_all(_batcher(run, max_size=8), run, [("a", 50), ("a", 60)]))
    assert results == ["a:50", "a:60"]
    assert run.batches == [[("a", 50)], [("a", 60)]]


def test_a_failing_batch_fails_its_callers_only() -> None:
    run = Recorder(fail_on="bad")
    results = asyncio.run(_submit_all(_batcher(run), run, [("ok", 1), ("bad", 1), ("ok", 2)]))
    assert results[0] == "ok:1" and results[2] == "ok:2"
    assert isinstance(results[1], RuntimeError)


def test_a_cancelled_caller_is_skipped_and_the_rest_complete() -> None:
    async def scenario() -> tuple[list[list[Work]], str]:
        run = Recorder()
        batcher = _batcher(run)
        first = await _running(batcher, run, ("a", 1))
        gone = asyncio.create_task(batcher.submit(("a", 2)))
        kept = asyncio.create_task(batcher.submit(("a", 3)))
        await asyncio.sleep(0)
        gone.cancel()
        run.release.set()
        await first
        return run.batches, await kept

    batches, kept = asyncio.run(scenario())
    assert batches == [[("a", 1)], [("a", 3)]] and kept == "a:3"


def test_work_submitted_together_starts_together() -> None:
    run = Recorder()
    run.release.set()

    async def scenario() -> list:
        batcher = _batcher(run)
        return await asyncio.gather(*(batcher.submit(("a", s)) for s in (10, 20, 30)))

    assert asyncio.run(scenario()) == ["a:10", "a:20", "a:30"]
    assert run.batches == [[("a", 10), ("a", 20), ("a", 30)]]


def test_a_batcher_survives_one_event_loop_per_call() -> None:
    run = Recorder()
    run.release.set()
    batcher = _batcher(run)
    for size in (1, 2):  # asyncio.run per certification, as the CLI does
        assert asyncio.run(asyncio.wait_for(batcher.submit(("a", size)), 5)) == f"a:{size}"


@pytest.mark.parametrize("batch_size", [64, 1000])
def test_concurrent_certifications_get_the_counts_they_get_alone(batch_size: int) -> None:
    worker = LocalSampler(no_denoiser(), random_conv_classifier(), "cpu", batch_size=batch_size)
    certifier = Certifier(worker, b"batching-secret")
    images = [torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    params = CertifyParams(sigma=0.5, n0=20, n=300)

    def counts(certificate) -> list:
        return [(c.key, c.count) for c in certificate.top_counts]

    alone = [counts(asyncio.run(certifier.certify(image, params))) for image in images]

    async def together() -> list:
        return list(await asyncio.gather(*(certifier.certify(i, params) for i in images)))

    assert [counts(c) for c in asyncio.run(together())] == alone
