"""Background certification jobs: submit, follow progress (polling or SSE), cancel.

A job runs as an asyncio task in the gateway that accepted it; cancelling it stops sampling at
the next chunk. Without Redis that is all: jobs live in this process, finished ones for ``ttl``
seconds, at most ``max_jobs``. With Redis (:mod:`service.distributed.redis_jobs`) every change
is recorded there too, so any replica answers ``GET``, SSE and ``DELETE`` for any job, and a job
whose gateway died is taken over by another replica and continues from its stored votes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError

from service.api.auth import Principal
from service.api.problems import Problem, ProblemError
from service.core.certifier import Progress
from service.core.results import Certificate, Prediction
from service.distributed.redis_jobs import RedisJobRecords

__all__ = ["Job", "JobManager", "JobProgress", "JobRecord", "JobState", "JobView"]

log = logging.getLogger("dsmooth")

Runner = Callable[[Progress], Awaitable[Certificate | Prediction]]
Cleanup = Callable[[], Awaitable[None]]
# (the job's stored record, its image) -> what runs it again, and what to await once it ended
Resume = Callable[[dict[str, str], bytes], Awaitable[tuple[Runner, Cleanup]]]

SYNC_S = 0.5  # how often a running job's progress, lease and cancel flag meet Redis


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What another replica needs to run a job again: its options (JSON), its booking on the
    key's budget (JSON) and its image."""

    options: str
    booking: str
    image: bytes


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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f0c1a8e9b7d4c2a8e5f60718293a4b5", "operation": "certify",
                    "state": "running", "progress": {"done": 500, "planned": 1100},
                    "created_at": "2026-01-01T12:00:00Z",
                }
            ]
        }
    )  # fmt: skip

    id: str
    operation: str
    state: JobState
    progress: JobProgress
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    result: Certificate | Prediction | None = None
    error: Problem | None = None


class Job:
    def __init__(
        self,
        owner: str,
        operation: str,
        planned: int,
        job_id: str | None = None,
        created_at: dt.datetime | None = None,
    ) -> None:
        self.id = job_id or uuid.uuid4().hex
        self.owner, self.operation = owner, operation
        self.state = JobState.QUEUED
        self.done, self.planned = 0, planned
        self.created_at = created_at or dt.datetime.now(dt.UTC)
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

    def fail(self, problem: Problem) -> None:
        self.error = problem
        self._finish(JobState.FAILED)

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
    def __init__(
        self, ttl_seconds: float, max_jobs: int, records: RedisJobRecords | None = None
    ) -> None:
        self.ttl, self.max_jobs, self.records = ttl_seconds, max_jobs, records
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._background: set[asyncio.Future[None]] = set()
        self._closing = False

    async def submit(
        self,
        principal: Principal,
        operation: str,
        planned: int,
        run: Runner,
        on_error: Callable[[Exception], Problem],
        on_done: Cleanup | None = None,
        record: JobRecord | None = None,
    ) -> Job:
        """Start ``run`` as a job; ``on_done`` is awaited once it has ended, however it ended
        (even when it was cancelled before it started). With Redis, ``record`` is stored so
        that another replica can take the job over."""
        self._evict()
        if len(self._jobs) >= self.max_jobs:
            raise ProblemError(
                status=429,
                slug="too-many-jobs",
                title="Too many jobs",
                detail="the job queue is full; retry later",
            )
        job = Job(principal.name, operation, planned)
        if self.records is not None and record is not None:
            fields = {"owner": job.owner, "operation": operation, "options": record.options,
                      "booking": record.booking}  # fmt: skip
            await self.records.create(job.id, fields, record.image, job.view().model_dump_json())
        self._start(job, run, on_error, on_done)
        return job

    def _start(
        self,
        job: Job,
        run: Runner,
        on_error: Callable[[Exception], Problem],
        on_done: Cleanup | None,
    ) -> None:
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, run, on_error), name=f"job-{job.id}")
        if on_done is not None:
            job.task.add_done_callback(lambda _: self._later(on_done()))
        if self.records is not None:
            self._later(self._sync(job, self.records))

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)  # a reference until it is done (the loop keeps only weak ones)
        task.add_done_callback(self._background.discard)

    async def _run(self, job: Job, run: Runner, on_error: Callable[[Exception], Problem]) -> None:
        def progress(done: int, planned: int) -> None:
            # The first report comes once the job holds a running slot: queued until then.
            job.state = JobState.RUNNING
            job.done, job.planned = done, planned
            job._notify()

        try:
            job.result = await run(progress)
        except asyncio.CancelledError:
            if self._closing and self.records is None:  # not the client's doing: say so
                job.fail(
                    Problem(
                        type="/problems/server-shutdown",
                        title="Server shut down",
                        status=503,
                        detail="the server shut down before the job finished; submit it again "
                        "(the votes drawn so far are kept and reused)",
                    )
                )
            elif not self._closing:
                job._finish(JobState.CANCELLED)
            raise
        except Exception as exc:
            job.fail(on_error(exc))
        else:
            job._finish(JobState.SUCCEEDED)

    async def _sync(self, job: Job, records: RedisJobRecords) -> None:
        """Mirror a job running here into Redis: each change, the lease, the cancel flag."""
        while True:
            changed = job._changed
            try:
                if self._closing and not job.state.finished:
                    return  # left to its lease: another replica takes it over
                view = job.view().model_dump_json()
                if job.state.finished:
                    await records.finish(job.id, view, int(self.ttl))
                    return
                await records.update(job.id, view)
                if await records.cancel_requested(job.id) and job.task is not None:
                    job.task.cancel()
            except RedisError:
                log.warning("job %s: Redis unreachable, retrying", job.id, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), SYNC_S)

    def start_takeovers(
        self, resume: Resume, on_error: Callable[[Exception], Problem], interval_s: float = 2.0
    ) -> None:
        """Take over, every ``interval_s``, the jobs whose gateway stopped renewing its lease."""
        if self.records is not None:
            self._later(self._take_over(self.records, resume, on_error, interval_s))

    async def _take_over(
        self,
        records: RedisJobRecords,
        resume: Resume,
        on_error: Callable[[Exception], Problem],
        interval_s: float,
    ) -> None:
        while not self._closing:
            await asyncio.sleep(interval_s)
            try:
                for job_id in await records.claim_expired():
                    try:
                        await self._resume(records, job_id, resume, on_error)
                    except RedisError:
                        raise
                    except Exception:  # one bad record must not end the loop for all
                        log.exception("job takeover: job %s could not be resumed", job_id)
            except RedisError:
                log.warning("job takeover: Redis unreachable", exc_info=True)

    async def _resume(
        self,
        records: RedisJobRecords,
        job_id: str,
        resume: Resume,
        on_error: Callable[[Exception], Problem],
    ) -> None:
        mine = self._jobs.get(job_id)
        if mine is not None and not mine.state.finished:
            return  # running here: its lease renewal was late, nothing to take over
        record, image = await records.get(job_id), await records.image(job_id)
        if record is None:
            return
        view = JobView.model_validate_json(record["view"])
        if view.state.finished:
            return
        job = Job(record["owner"], view.operation, view.progress.planned, job_id, view.created_at)
        if image is None or "options" not in record:  # nothing to run it again from
            job.fail(
                Problem(
                    type="/problems/job-lost",
                    title="Job lost",
                    status=503,
                    detail="the gateway running this job stopped and its request was not kept; "
                    "submit it again (the votes drawn so far are reused)",
                )
            )
            await records.finish(job_id, job.view().model_dump_json(), int(self.ttl))
            return
        try:
            run, on_done = await resume(record, image)
        except ProblemError as exc:
            if exc.status in (429, 503):
                return  # busy here: the lease runs out again and someone retries
            job.fail(on_error(exc))
            await records.finish(job_id, job.view().model_dump_json(), int(self.ttl))
            return
        except ValidationError as exc:  # accepted by an older version, refused by this one
            job.fail(
                Problem(
                    type="/problems/job-invalid",
                    title="Job no longer valid",
                    status=422,
                    detail="the gateway running this job stopped, and this version refuses its "
                    f"request ({_first_error(exc)}); submit it again with valid options",
                )
            )
            await records.finish(job_id, job.view().model_dump_json(), int(self.ttl))
            return
        log.info("job %s: taken over from a gateway that stopped", job_id)
        self._start(job, run, on_error, on_done)

    async def view(self, job_id: str, principal: Principal) -> JobView:
        """The job's view, from this process or, with Redis, from any replica's record."""
        job = self._jobs.get(job_id)
        if job is not None:
            if job.owner != principal.name:
                raise _not_found(job_id)
            return job.view()
        record = await self.records.get(job_id) if self.records is not None else None
        if record is None or record.get("owner") != principal.name:
            raise _not_found(job_id)  # others' jobs do not exist for you
        return JobView.model_validate_json(record["view"])

    async def changes(self, job_id: str, principal: Principal) -> AsyncIterator[JobView]:
        """The job's view now, then after every change, until it has finished."""
        view = await self.view(job_id, principal)
        job = self._jobs.get(job_id)
        if job is not None and (self.records is None or not job.state.finished):
            async for change in job.changes():
                yield change
            return
        if self.records is None or view.state.finished:
            yield view
            return
        async for recorded in self.records.events(job_id):
            view = JobView.model_validate_json(recorded)
            yield view
            if view.state.finished:
                return

    async def cancel(self, job_id: str, principal: Principal) -> JobView:
        view = await self.view(job_id, principal)
        job = self._jobs.get(job_id)
        if job is not None:
            if job.task is not None and not job.state.finished:
                job.task.cancel()
                await asyncio.gather(job.task, return_exceptions=True)
            return job.view()
        if self.records is None or view.state.finished:
            return view
        await self.records.request_cancel(job_id)  # the replica running it stops it
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                async for change in self.changes(job_id, principal):
                    view = change
        return view

    @property
    def handing_over(self) -> bool:
        """Shutting down with Redis: unfinished jobs go to another replica, not to an end."""
        return self._closing and self.records is not None

    def counts(self) -> Counter[str]:
        """Jobs kept in this process, by state."""
        return Counter(job.state.value for job in self._jobs.values())

    async def shutdown(self) -> None:
        """Stop every unfinished job. Without Redis it is marked failed by the shutdown (not
        cancelled by a client); with Redis it is left to its lease, for another replica."""
        self._closing = True
        tasks = [j.task for j in self._jobs.values() if j.task and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.records is not None:
            for job in self._jobs.values():
                if not job.state.finished:
                    await _quietly(self.records.release(job.id))
        await asyncio.gather(*self._background, return_exceptions=True)

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


def _not_found(job_id: str) -> ProblemError:
    return ProblemError(
        status=404, slug="job-not-found", title="Job not found", detail=f"no job {job_id!r}"
    )


async def _quietly(work: Awaitable[None]) -> None:
    try:
        await work
    except RedisError:
        log.warning("could not release a job's lease", exc_info=True)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "request"
    return f"{field}: {error['msg']}"[:200]
