"""The Celery task: read a job's input from the store, analyse it, write the result back."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from celery import Celery, current_task

from shared.errors import FaceRestError
from shared.jobs import JobStore
from shared.queue import EXTRACT_TASK
from shared.schemas import AnalysisOptions, JobResult
from worker.pipeline import FaceAnalyzer

log = logging.getLogger("facerest.worker")


@dataclass(frozen=True, slots=True)
class WorkerRuntime:
    """Everything a task needs, built once at worker start."""

    name: str
    analyzer: FaceAnalyzer
    store: JobStore
    max_attempts: int = 3

    def run_job(self, job_id: str) -> None:
        payload = self.store.load_input(job_id)
        if payload is None:
            log.info(
                "job %s: no input (already finished or expired), skipping", job_id, extra={"job_id": job_id}
            )
            return
        ids = {"job_id": job_id, "request_id": payload.get("request_id")}
        # Counted before the work: a job that kills its worker is redelivered, and must not be forever.
        attempts = self.store.add_attempt(job_id)
        if attempts > self.max_attempts:
            message = (
                f"job was delivered {attempts} times, more than max_attempts={self.max_attempts}: "
                "its worker crashed or was lost each time; giving up"
            )
            log.error("job %s: %s", job_id, message, extra=ids)
            self.store.finish(job_id, None, {"code": "too_many_attempts", "message": message})
            return
        start = time.perf_counter()
        self.store.mark_running(job_id, self.name)
        options = AnalysisOptions.from_wire(payload["options"])
        log.info(
            "job %s started (attempt %d, %d images)", job_id, attempts, len(payload["images"]), extra=ids
        )
        try:
            records = self.analyzer.analyze(
                payload["images"], options, {int(k): v for k, v in payload["errors"].items()}
            )
            detector, recognizer = self.analyzer.models_for(options)
        except FaceRestError as exc:
            # The job asks for something this worker cannot do (a model it has not loaded).
            log.info("job %s refused: %s", job_id, exc.message)
            self.store.finish(job_id, None, {"code": exc.code, "message": exc.message})
            return
        except Exception as exc:
            # A bug fails this job, not the worker or the other jobs.
            log.exception("job %s failed", job_id, extra=ids)
            self.store.finish(job_id, None, {"code": "internal_error", "message": str(exc)})
            return
        took = round((time.perf_counter() - start) * 1000, 3)
        result: JobResult = {
            "images": records,
            "worker": self.name,
            "took_ms": took,
            "detector": detector.to_record(),
            "recognizer": recognizer.to_record(),
        }
        self.store.finish(job_id, result, None)
        log.info("job %s done in %.1f ms (%d images)", job_id, took, len(records), extra=ids)


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
