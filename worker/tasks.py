"""The Celery task: read a job's input from the store, analyse it, write the result back."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
from celery import Celery, current_task

from shared.contract import (
    CompactJob,
    EnrollJob,
    ErrorInfo,
    ExtractJob,
    ExtractResult,
    IngestJob,
    Job,
    JobResult,
    ReclusterJob,
    RecognizeJob,
    ReindexJob,
    VerifyJob,
    VideoJob,
    VideoSegmentJob,
    VideoSegmentResult,
    worker_id,
)
from shared.errors import FaceRestError, InternalError, TooManyAttempts
from shared.jobs import Claim
from shared.queue import EXTRACT_TASK
from worker.analysis import Analyzer
from worker.recognition import Recognition
from worker.video import Cancelled, VideoWork

# The outcome of a segment whose video was deleted while it ran: dropped, never stored.
CANCELLED = "cancelled"

log = logging.getLogger("facerest.worker")


class Store(Protocol):
    """What a task needs of shared/jobs.py's JobStore."""

    def load_input(self, job_id: str) -> Job | None: ...

    def claim(self, job_id: str, worker: str) -> Claim: ...

    def mark_running(self, job_id: str, worker: str) -> None: ...

    def finish(self, job_id: str, outcome: JobResult | ErrorInfo, worker: str = "") -> bool: ...

    def progress_reporter(self, job_id: str, every_s: float = 0.5) -> Callable[[int, int], None]: ...


@dataclass(frozen=True, slots=True)
class WorkerRuntime:
    """Everything a task needs, built once at worker start."""

    name: str
    analyzer: Analyzer
    store: Store
    max_attempts: int = 3
    # Enroll, recognize, verify, reindex; None in a worker built without a gallery (unit tests).
    recognition: Recognition | None = None
    # Video segments and the settling of their videos; None: this worker takes no videos.
    video: VideoWork | None = None

    # The jobs this process runs now: a second delivery of one of them (after a Redis restart the
    # broker may hand out a message again) is dropped here, as the claim is already ours.
    running: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def in_flight(self) -> frozenset[str]:
        with self.lock:
            return frozenset(self.running)

    def run_job(self, job_id: str) -> None:
        with self.lock:
            if job_id in self.running:
                log.info("job %s: already running here, dropping this copy", job_id, extra={"job_id": job_id})
                return
            self.running.add(job_id)
        try:
            self._claim_and_run(job_id)
        finally:
            with self.lock:
                self.running.discard(job_id)

    def _claim_and_run(self, job_id: str) -> None:
        job = self.store.load_input(job_id)
        if job is None:
            log.info(
                "job %s: no input (already finished or expired), skipping", job_id, extra={"job_id": job_id}
            )
            return
        ids = {"job_id": job_id, "request_id": job.request_id}
        if isinstance(job, VideoJob):
            # A video runs as its segments; a copy of its own job (the reaper sends every
            # unfinished job again after a failover) only settles it.
            self._video().settle(job_id)
            return
        # Only one worker runs a job: a copy redelivered (the visibility timeout ran out on a long
        # job, or after its dead worker's jobs were re-queued) is acknowledged and dropped. The
        # claim counts the delivery, before the work: a job that kills its worker every time is
        # delivered again, and must not be forever.
        claim = self.store.claim(job_id, self.name)
        if not claim.granted:
            why = "it has finished" if claim.finished else f"worker {claim.holder} runs it"
            log.info("job %s: dropping a redelivered copy, %s", job_id, why, extra=ids)
            return
        attempts = claim.attempts
        if attempts > self.max_attempts:
            message = (
                f"job was delivered {attempts} times, more than max_attempts={self.max_attempts}: "
                "its worker crashed or was lost each time; giving up"
            )
            log.error("job %s: %s", job_id, message, extra=ids)
            gave_up = TooManyAttempts(message).info()
            if isinstance(job, VideoSegmentJob):
                self._video().record(job, gave_up)
            self.store.finish(job_id, gave_up, self.name)
            return
        start = time.perf_counter()
        self.store.mark_running(job_id, self.name)
        log.info("job %s started (attempt %d, %s)", job_id, attempts, _describe(job), extra=ids)
        outcome = self._run(job_id, job, ids, start)
        if isinstance(job, VideoSegmentJob):
            if isinstance(outcome, ErrorInfo) and outcome.code == CANCELLED:
                log.info("job %s: its video was deleted, result dropped", job_id, extra=ids)
                return
            self._video().record(job, outcome)
            if isinstance(outcome, VideoSegmentResult):
                # Its tracks live with the video now; the job keeps the counts, not a second copy.
                outcome = msgspec.structs.replace(outcome, tracks=[])
        if not self.store.finish(job_id, outcome, self.name):
            # Taken for dead (missed heartbeats) and run elsewhere meanwhile: the first result stays.
            log.warning("job %s: finished elsewhere first, this result is dropped", job_id, extra=ids)
        elif not isinstance(outcome, ErrorInfo):
            log.info("job %s done in %.1f ms (%s)", job_id, outcome.took_ms, _describe(job), extra=ids)

    def _run(self, job_id: str, job: Job, ids: dict[str, str], start: float) -> JobResult | ErrorInfo:
        try:
            match job:
                case ExtractJob():
                    return self._extract(job, start)
                case EnrollJob():
                    return self._recognition().enroll(job, start)
                case RecognizeJob():
                    return self._recognition().recognize(job, start)
                case VerifyJob():
                    return self._recognition().verify(job, start)
                case ReindexJob():
                    return self._recognition().reindex(job, start)
                case CompactJob():
                    return self._recognition().compact(job, start)
                case IngestJob():
                    return self._recognition().ingest(job, start)
                case ReclusterJob():
                    return self._recognition().recluster(job, start, self.store.progress_reporter(job_id))
                case VideoSegmentJob():
                    return self._video().segment(job, start)
                case VideoJob():  # settled before the claim, never run
                    raise RuntimeError("a video job is settled, not run")
        except Cancelled:
            return ErrorInfo(CANCELLED, "the video was deleted")
        except FaceRestError as exc:
            # The job asks for something this worker cannot do (a model it has not loaded).
            log.info("job %s refused: %s", job_id, exc.message, extra=ids)
            return exc.info()
        except Exception:
            # A bug fails this job, not the worker or the other jobs. The client learns where to
            # look; the exception's text, which may hold library internals, stays in the log.
            log.exception("job %s failed", job_id, extra=ids)
            return InternalError(
                f"internal error in worker {worker_id(self.name)}; request id {job.request_id}"
            ).info()

    def _video(self) -> VideoWork:
        if self.video is None:
            raise RuntimeError("this worker runtime was built without videos")
        return self.video

    def _recognition(self) -> Recognition:
        if self.recognition is None:
            raise RuntimeError("this worker runtime was built without a gallery")
        return self.recognition

    def _extract(self, job: ExtractJob, start: float) -> ExtractResult:
        done = self.analyzer.run(job.images, job.options, job.request_id)
        took = round((time.perf_counter() - start) * 1000, 3)
        return ExtractResult(done.images, self.name, took, done.detector, done.recognizer)


def _describe(job: Job) -> str:
    if isinstance(job, ReindexJob):
        return f"reindex {job.collection}"
    if isinstance(job, CompactJob):
        return f"compact {job.collection}"
    if isinstance(job, ReclusterJob):
        return f"recluster {job.collection}"
    if isinstance(job, VideoSegmentJob):
        return f"segment {job.index} of video {job.video_id}, {job.start_s:.1f} s to {job.end_s:.1f} s"
    if isinstance(job, VideoJob):
        return f"video, {job.segments} segments"
    return f"{type(job).__name__}, {len(job.images)} images"


class TaskContextFilter(logging.Filter):
    """Gives log lines made while a task runs, Celery's own included ("Task ... succeeded"), the
    job id (the task id) and the request id the API sent as a message header."""

    def filter(self, record: logging.LogRecord) -> bool:
        if current_task and getattr(record, "job_id", None) is None:
            request = current_task.request
            record.job_id = request.id
            if getattr(record, "request_id", None) is None:
                record.request_id = getattr(request, "request_id", None)
        return True


def register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    @app.task(name=EXTRACT_TASK)
    def extract(job_id: str) -> None:
        runtime.run_job(job_id)
