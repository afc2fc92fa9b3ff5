"""Background certification jobs: submit, follow progress (polling or SSE), cancel.

A job is an asyncio task in this process; cancelling it stops sampling at the next chunk. Finished
jobs are kept for ``ttl`` seconds, at most ``max_jobs`` of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum

from pydantic import BaseModel, Field

from service.api.auth import Principal
from service.api.problems import Problem, ProblemError
from service.core.certifier import Progress
from service.core.results import Certificate, Prediction

__all__ = ["Job", "JobManager", "JobProgress", "JobState", "JobView"]

Runner = Callable[[Progress], Awaitable[Certificate | Prediction]]


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobProgress(BaseModel):
    done: int = Field(description="samples drawn so far")
    planned: int = Field(description="samples planned")


class JobView(BaseModel):
    id: str
    operation: str
    state: JobState
    progress: JobProgress
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    result: Certificate | Prediction | None = None
    error: Problem | None = None


class Job:
    def __init__(self, owner: str, operation: str, planned: int) -> None:
        self.id = uuid.uuid4().hex
        self.owner, self.operation = owner, operation
        self.state = JobState.QUEUED
        self.done, self.planned = 0, planned
        self.created_at = dt.datetime.now(dt.UTC)
        self.finished_at: dt.datetime | None = None
        self.finished_monotonic: float | None = None
        self.result: Certificate | Prediction | None = None
        self.error: Problem | None = None
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def view(self) -> JobView:
        return JobView(
            id=self.id,
            operation=self.operation,
            state=self.state,
            progress=JobProgress(done=self.done, planned=self.planned),
            created_at=self.created_at,
            finished_at=self.finished_at,
            result=self.result,
            error=self.error,
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _finish(self, state: JobState) -> None:
        self.state = state
        self.finished_at = dt.datetime.now(dt.UTC)
        self.finished_monotonic = time.monotonic()
        self._notify()

    async def changes(self) -> AsyncIterator[JobView]:
        """The job's state now, then after every change, until it has finished."""
        while True:
            event = self._changed
            yield self.view()
            if self.state.finished:
                return
            await event.wait()


class JobManager:
    def __init__(self, ttl_seconds: float, max_jobs: int) -> None:
        self.ttl, self.max_jobs = ttl_seconds, max_jobs
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._cleanups: set[asyncio.Future[None]] = set()
        self._closing = False

    def submit(
        self,
        principal: Principal,
        operation: str,
        planned: int,
        run: Runner,
        on_error: Callable[[Exception], Problem],
        on_done: Callable[[], Awaitable[None]] | None = None,
    ) -> Job:
        """Start ``run`` as a job; ``on_done`` is awaited once it has ended, however it ended
        (even when it was cancelled before it started)."""
        self._evict()
        if len(self._jobs) >= self.max_jobs:
            raise ProblemError(
                status=429,
                slug="too-many-jobs",
                title="Too many jobs",
                detail="the job queue is full; retry later",
            )
        job = Job(principal.name, operation, planned)
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, run, on_error), name=f"job-{job.id}")
        if on_done is not None:
            job.task.add_done_callback(lambda _: self._later(on_done()))
        return job

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._cleanups.add(task)  # a reference until it is done (the loop keeps only weak ones)
        task.add_done_callback(self._cleanups.discard)

    async def _run(self, job: Job, run: Runner, on_error: Callable[[Exception], Problem]) -> None:
        def progress(done: int, planned: int) -> None:
            # The first report comes once the job holds a running slot: queued until then.
            job.state = JobState.RUNNING
            job.done, job.planned = done, planned
            job._notify()

        try:
            job.result = await run(progress)
        except asyncio.CancelledError:
            if self._closing:  # not the client's doing: say so, and how to resume
                job.error = Problem(
                    type="/problems/server-shutdown",
                    title="Server shut down",
                    status=503,
                    detail="the server shut down before the job finished; submit it again "
                    "(the votes drawn so far are kept and reused)",
                )
                job._finish(JobState.FAILED)
            else:
                job._finish(JobState.CANCELLED)
            raise
        except Exception as exc:
            job.error = on_error(exc)
            job._finish(JobState.FAILED)
        else:
            job._finish(JobState.SUCCEEDED)

    def counts(self) -> Counter[str]:
        """Jobs kept, by state."""
        return Counter(job.state.value for job in self._jobs.values())

    def get(self, job_id: str, principal: Principal) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.owner != principal.name:  # others' jobs do not exist for you
            raise ProblemError(
                status=404, slug="job-not-found", title="Job not found", detail=f"no job {job_id!r}"
            )
        return job

    async def cancel(self, job_id: str, principal: Principal) -> Job:
        job = self.get(job_id, principal)
        if job.task is not None and not job.state.finished:
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
        return job

    async def shutdown(self) -> None:
        """Stop every unfinished job, marked failed by the shutdown (not cancelled by a client)."""
        self._closing = True
        tasks = [j.task for j in self._jobs.values() if j.task and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._cleanups, return_exceptions=True)

    def _evict(self) -> None:
        now = time.monotonic()
        for job_id in [
            j.id
            for j in self._jobs.values()
            if j.finished_monotonic is not None and now - j.finished_monotonic > self.ttl
        ]:
            del self._jobs[job_id]
        while len(self._jobs) >= self.max_jobs:
            oldest = next((j for j in self._jobs.values() if j.state.finished), None)
            if oldest is None:
                break
            del self._jobs[oldest.id]
