"""A task's outcomes in the job store: the result, a refusal, a crash, a job redelivered too often."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from shared import contract
from shared.contract import AnalysisOptions, ErrorInfo, ExtractJob, ExtractResult, ModelRef, worker_id
from shared.errors import ModelNotLoaded
from shared.jobs import Claim
from shared.videos import VideoProgress
from worker.analysis import Analysis
from worker.tasks import WorkerRuntime
from worker.video import VideoWork

DETECTOR = ModelRef("scrfd", "scrfd_500m_bnkps", "1", "research")
RECOGNIZER = ModelRef("arcface", "w600k_mbf", "1", "research")
JOB = ExtractJob(images=[b"one", b"two"], options=AnalysisOptions(), request_id="req-7")


@dataclass
class Store:
    job: contract.Job | None = JOB
    attempts: int = 0
    finished: list[contract.JobResult | ErrorInfo] = field(default_factory=list)

    def load_input(self, job_id: str) -> contract.Job | None:
        return self.job

    holder: str | None = None  # another live worker running the job
    claims: list[str] = field(default_factory=list)

    def claim(self, job_id: str, worker: str) -> Claim:
        if self.finished:
            return Claim(False, finished=True)
        if self.holder is not None:
            return Claim(False, holder=self.holder)
        self.claims.append(worker)
        self.attempts += 1
        return Claim(True, attempts=self.attempts)

    def mark_running(self, job_id: str, worker: str) -> None:
        pass

    def finish(self, job_id: str, outcome: contract.JobResult | ErrorInfo, worker: str = "") -> bool:
        self.finished.append(outcome)
        return len(self.finished) == 1

    def progress_reporter(self, job_id: str, every_s: float = 0.5) -> Callable[[int, int], None]:
        return lambda done, total: None


@dataclass
class Analyzer:
    failure: Exception | None = None

    def run(self, images: Sequence[bytes], options: AnalysisOptions, request_id: str = "") -> Analysis:
        if self.failure is not None:
            raise self.failure
        results = [contract.ImageResult(status="ok", took_ms=1.0, size=(4, 3)) for _ in images]
        return Analysis(results, DETECTOR, RECOGNIZER)


def test_a_job_stores_one_result_per_image_with_the_models_that_made_it() -> None:
    store = Store()
    WorkerRuntime("w1", Analyzer(), store).run_job("j")
    (result,) = store.finished
    assert isinstance(result, ExtractResult)
    assert len(result.images) == 2 and result.worker == "w1"
    assert (result.detector, result.recognizer) == (DETECTOR, RECOGNIZER)


def test_a_model_the_worker_lacks_fails_the_job_naming_the_available_ones() -> None:
    store = Store()
    WorkerRuntime("w1", Analyzer(ModelNotLoaded("no mtcnn here", ["scrfd"])), store).run_job("j")
    assert store.finished == [ErrorInfo("model_not_loaded", "no mtcnn here", ("scrfd",))]


def test_a_crash_stores_a_generic_message_and_logs_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    with caplog.at_level(logging.ERROR, logger="facerest.worker"):
        WorkerRuntime("w1", Analyzer(RuntimeError("secret /opt/lib detail")), store).run_job("j")
    assert store.finished == [
        ErrorInfo("internal_error", f"internal error in worker {worker_id('w1')}; request id req-7")
    ]
    assert any(record.exc_info and "secret" in str(record.exc_info[1]) for record in caplog.records)


def test_a_job_delivered_too_often_is_given_up_without_running() -> None:
    store = Store(attempts=3)
    WorkerRuntime("w1", Analyzer(RuntimeError("must not run")), store, max_attempts=3).run_job("j")
    (error,) = store.finished
    assert isinstance(error, ErrorInfo) and error.code == "too_many_attempts"
    assert "4 times" in error.message


def test_a_job_without_input_is_skipped() -> None:
    store = Store(job=None)
    WorkerRuntime("w1", Analyzer(), store).run_job("j")
    assert store.finished == [] and store.attempts == 0


def test_a_copy_of_a_job_another_live_worker_runs_is_dropped_without_counting() -> None:
    store = Store(holder="w2")
    WorkerRuntime("w1", Analyzer(RuntimeError("must not run")), store).run_job("j")
    assert store.finished == [] and store.attempts == 0


def test_a_copy_of_a_finished_job_is_dropped() -> None:
    store = Store()
    runtime = WorkerRuntime("w1", Analyzer(), store)
    runtime.run_job("j")
    runtime.run_job("j")  # redelivered after it finished
    assert len(store.finished) == 1 and store.claims == ["w1"]


@dataclass
class Videos:
    """shared/videos.py's VideoStore for one video of two segments, in memory."""

    segments: int = 2
    results: dict[int, contract.VideoSegmentResult] = field(default_factory=dict)
    failed: ErrorInfo | None = None
    gone: bool = False

    def exists(self, video_id: str) -> bool:
        return not self.gone

    def record(self, result: contract.VideoSegmentResult) -> int:
        self.results.setdefault(result.index, result)
        return len(self.results)

    def fail(self, video_id: str, error: ErrorInfo) -> None:
        self.failed = self.failed or error

    def may_publish(self, video_id: str, every_s: float) -> bool:
        return True

    def publish(self, video_id: str, joined_from: int, tracks: list[contract.Track]) -> None:
        pass

    def segment_results(self, video_id: str, segments: int) -> list[contract.VideoSegmentResult]:
        return [self.results[i] for i in sorted(self.results)]

    def progress(self, video_id: str, with_tracks: bool = True) -> VideoProgress | None:
        done = len(self.results)
        return None if self.gone else VideoProgress(self.segments, done, 10, done * 5, 2.0, [], self.failed)

    def finished(self, video_id: str, segments: int) -> None:
        pass


VIDEO = contract.VideoJob(2, 2.0, None, None, False, "req-v", duration_s=2.0, frames=10)
SEGMENT = contract.VideoSegmentJob("v", 1, b"", 1.0, 2.0, 5, 2.0, 0, AnalysisOptions(), "req-v")


@dataclass
class VideoJobs(Store):
    """The job store holding the video's job and its segment's, by id."""

    video: contract.Job | None = VIDEO
    video_outcomes: list[contract.JobResult | ErrorInfo] = field(default_factory=list)

    def load_input(self, job_id: str) -> contract.Job | None:
        return self.video if job_id == "v" else self.job

    def finish(self, job_id: str, outcome: contract.JobResult | ErrorInfo, worker: str = "") -> bool:
        if job_id == "v":
            self.video_outcomes.append(outcome)
            self.video = None  # a finished job's input is dropped
            return len(self.video_outcomes) == 1
        return super().finish(job_id, outcome, worker)

    def mark_started(self, job_id: str, worker: str) -> None:
        pass


def video_runtime(store: VideoJobs, videos: Videos) -> WorkerRuntime:
    work = VideoWork(Analyzer(), videos, store, "w1", 10_000)  # type: ignore[arg-type]
    return WorkerRuntime("w1", Analyzer(), store, max_attempts=2, video=work)


def test_a_segment_delivered_too_often_fails_its_video() -> None:
    store, videos = VideoJobs(job=SEGMENT, attempts=2), Videos()
    video_runtime(store, videos).run_job("v.1")
    (gave_up,) = store.finished
    assert isinstance(gave_up, ErrorInfo) and gave_up.code == "too_many_attempts"
    assert videos.failed == gave_up and store.video_outcomes == [gave_up]


def test_a_delivered_video_job_only_settles_and_finishes_once_every_segment_is_in() -> None:
    store, videos = VideoJobs(job=VIDEO), Videos()
    videos.record(contract.VideoSegmentResult("v", 0, 0.0, 5, [], "w1", 1.0))
    video_runtime(store, videos).run_job("v")
    assert store.claims == [] and store.video_outcomes == []  # never claimed, nothing to finish yet
    videos.record(contract.VideoSegmentResult("v", 1, 1.0, 5, [], "w1", 1.0))
    video_runtime(store, videos).run_job("v")
    (done,) = store.video_outcomes
    assert isinstance(done, contract.VideoResult) and (done.segments, done.frames) == (2, 10)
