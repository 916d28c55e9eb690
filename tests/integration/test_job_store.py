"""The job store's scripts on a real Redis: claims, the reaper, waits, and keys that all expire."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import msgspec
import pytest
import redis

from deploy.launcher import Stack, stack
from shared.contract import (
    AnalysisOptions,
    CompactJob,
    CompactResult,
    EnrollJob,
    ErrorInfo,
    ExtractJob,
    ExtractResult,
    IdempotencyRecord,
    ImageResult,
    IngestedPhoto,
    IngestJob,
    IngestResult,
    Job,
    ModelRef,
    RecognizerInfo,
    RenderSettings,
    Track,
    TrackFace,
    VideoJob,
    VideoSegmentResult,
    WorkerInfo,
)
from shared.errors import JobNotFound
from shared.jobs import CallbackState, JobStatus, JobStore, Share, ShareFull, WorkerRegistry, job_images
from shared.queue import EXTRACT_TASK, create_celery, gather_stray_lanes, queue_lanes, waiting_jobs
from shared.settings import load_settings
from shared.split import split_job
from shared.videos import VideoStore
from shared.webhooks import HANDOFF_GRACE_S, CallbackStatus, Due, Outbox
from testkit.systems import redis_files_holding
from worker.reaper import Reaper

TTL_S = 600
MODEL = ModelRef("test", "test", "1", "MIT")
RESULT = ExtractResult([ImageResult("ok", 1.0, (1, 1))], "w1", 1.0, MODEL, MODEL)
RENDER = RenderSettings(api_ver="2", landmarks=False, data_count=1)


def info(name: str) -> WorkerInfo:
    return WorkerInfo(
        name, "cpu", 1, 1, 0.0, "insightface", [], ["scrfd"], RecognizerInfo("a", "a", "1", "MIT", 512), []
    )


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(Path(tmp_path_factory.mktemp("store"))) as running:
        yield running


@pytest.fixture(scope="module")
def client(system: Stack) -> Iterator[redis.Redis]:
    with system.client() as client:
        yield client


@pytest.fixture
def parts(client: redis.Redis) -> tuple[JobStore, WorkerRegistry, list[str]]:
    client.flushdb()
    sent: list[str] = []
    return JobStore(client, "facerest", TTL_S), WorkerRegistry(client, "facerest"), sent


def new_job(store: JobStore, job_id: str = "j1") -> str:
    store.create(job_id, ExtractJob([b"x"], AnalysisOptions(), "r"), RENDER)
    return job_id


def test_a_job_is_claimed_by_one_live_worker_and_finished_once(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    store, registry, _ = parts
    registry.beat(info("w1"), 60)
    registry.beat(info("w2"), 60)
    job = new_job(store)
    first = store.claim(job, "w1")
    assert first.granted and first.attempts == 1
    held = store.claim(job, "w2")
    assert not held.granted and held.holder == "w1" and store.state(job).attempts == 1
    assert store.holders() == {job: "w1"}

    assert store.finish(job, RESULT, "w1")
    assert store.holders() == {}
    assert not store.finish(job, ErrorInfo("internal_error", "late"), "w2"), "the first outcome stays"
    state = store.state(job)
    assert state.status is JobStatus.DONE and state.error is None and state.result == RESULT
    late = store.claim(job, "w2")
    assert not late.granted and late.finished


def test_progress_shows_while_a_job_runs_and_never_outlives_it(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    store, _, _ = parts
    job = new_job(store)
    store.progress(job, 1, 4)  # queued: not recorded
    assert store.state(job).progress is None
    store.mark_running(job, "w1")
    report = store.progress_reporter(job, every_s=60)
    report(0, 4)
    report(2, 4)  # within every_s of the last: skipped
    assert store.state(job).progress == (0, 4)
    report(4, 4)  # the last always goes through
    assert store.state(job).progress == (4, 4)
    assert store.finish(job, RESULT, "w1")
    store.progress(job, 1, 4)  # finished: stays as it was
    assert store.state(job).progress == (4, 4)


def test_a_job_another_reaper_is_sending_is_not_sent_again_unless_that_reaper_died(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    """Between a reaper's take_back and its send the job is neither held nor waiting: a second
    reaper that forgets the dead worker then leaves it to the first. If the first died before
    sending it, the job is sent once ``sending_s`` has passed (by whoever forgets that one)."""
    store, registry, sent = parts
    registry.beat(info("dead"), 0.2)
    job = new_job(store)
    assert store.claim(job, "dead").granted
    store.mark_running(job, "dead")
    time.sleep(0.3)
    assert store.take_back(job, "dead")  # the first reaper, about to send it
    second = Reaper(store, registry, sent.append, waiting=lambda: sent, sending_s=0.5)
    assert second.reap() == [] and sent == []
    # A worker starting in a dead predecessor's place sends it anyway (its copy of the message
    # may have died with it): a second copy is dropped at its claim.
    assert Reaper(store, registry, sent.append, sending_s=0.5).resend_lost() == [job]
    sent.clear()
    assert set(registry.snapshot()[1]) == set()  # the dead worker forgotten all the same
    time.sleep(0.6)  # the first reaper never sent it
    now = registry.snapshot()[0]
    assert second.resend_lost(now=now) == [job] and sent == [job]


def test_a_dead_holders_job_is_taken_back_by_exactly_one_reaper(
    client: redis.Redis, parts: tuple[JobStore, WorkerRegistry, list[str]]
) -> None:
    store, registry, sent = parts
    registry.beat(info("dead"), 0.3)
    registry.beat(info("alive"), 60)
    job = new_job(store)
    assert store.claim(job, "dead").granted
    store.mark_running(job, "dead")
    # What was sent waits in the queue (``waiting``), so no other reaper sends it too.
    reapers = [Reaper(store, registry, sent.append, waiting=lambda: sent) for _ in range(4)]
    assert [r.reap() for r in reapers] == [[]] * 4, "its heartbeat is still live"

    time.sleep(0.5)
    barrier = threading.Barrier(len(reapers))
    results: list[list[str]] = []

    def reap(reaper: Reaper) -> None:
        barrier.wait()
        results.append(reaper.reap())

    threads = [threading.Thread(target=reap, args=(r,)) for r in reapers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sent == [job] and sorted(results) == [[], [], [], [job]]
    state = store.state(job)
    assert state.status is JobStatus.QUEUED and state.worker is None
    # The dead worker is forgotten once it holds nothing; the live one stays.
    assert set(registry.snapshot()[1]) == {"alive"}
    # Its re-queued copy is claimed by a live worker; the dead one's stale copy is then dropped.
    assert store.claim(job, "alive").attempts == 2
    assert store.claim(job, "dead").holder == "alive"
    assert not client.exists("facerest:worker:dead")


def test_draining_workers_are_alive_but_not_online(parts: tuple[JobStore, WorkerRegistry, list[str]]) -> None:
    store, registry, sent = parts
    registry.beat(info("w1"), 60, draining=True)
    registry.beat(info("w2"), 60)
    job = new_job(store)
    assert store.claim(job, "w1").granted
    assert [w.name for w in registry.online()] == ["w2"]
    assert Reaper(store, registry, sent.append).reap() == []
    assert store.claim(job, "w2").holder == "w1"


def test_waiters_all_wake_and_every_key_of_a_finished_job_expires(
    client: redis.Redis, parts: tuple[JobStore, WorkerRegistry, list[str]]
) -> None:
    store, _, _ = parts
    job = new_job(store)
    assert store.claim(job, "w1").granted
    woken: list[JobStatus] = []
    waiters = [threading.Thread(target=lambda: woken.append(store.wait(job, 10).status)) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.3)
    started = time.monotonic()
    store.finish(job, RESULT, "w1")
    for waiter in waiters:
        waiter.join()
    assert woken == [JobStatus.DONE] * 3 and time.monotonic() - started < 1
    # Later waits (a polling client, a retry) still see the token, and leave it in place.
    assert store.wait(job, 5).status is JobStatus.DONE
    keys = sorted(k.decode() for k in cast(list[bytes], client.keys("*")))
    assert keys == [f"facerest:job:{job}", f"facerest:job:{job}:done"]
    assert all(0 < client.ttl(key) <= TTL_S for key in keys)
    assert client.llen(f"facerest:job:{job}:done") == 1


def test_an_idempotency_key_is_stored_with_its_job_or_returns_the_first(
    client: redis.Redis, parts: tuple[JobStore, WorkerRegistry, list[str]]
) -> None:
    store, _, _ = parts
    key = store.idempotency_key("", "abc")
    job = ExtractJob([b"x"], AnalysisOptions(), "r")
    assert store.create("j1", job, RENDER, (key, "d1")) is None
    again = store.create("j2", job, RENDER, (key, "d2"))
    assert isinstance(again, IdempotencyRecord) and (again.job_id, again.body_digest) == ("j1", "d1")
    assert not client.exists("facerest:job:j2") and 0 < client.ttl(key) <= TTL_S
    assert store.idempotency_key("scope", "abc") != key
    # Released (its job erased before it was whole: a video refused while cut) only by its own
    # record: a later job's record under the same key stays.
    store.release(key, IdempotencyRecord("j2", "d2"))
    assert store.idempotency(key) == again
    store.release(key, again)
    assert store.idempotency(key) is None
    assert store.create("j3", job, RENDER, (key, "d3")) is None


def test_another_owner_gets_the_answer_of_an_unknown_job(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    store, _, _ = parts
    job = ExtractJob([b"x"], AnalysisOptions(), "r1")
    store.create("owned", job, msgspec.structs.replace(RENDER, owner="a" * 64))
    assert store.state("owned", "a" * 64).status is JobStatus.QUEUED
    assert store.state("owned").render is not None  # no owner asked: the worker's and reaper's view
    with pytest.raises(JobNotFound) as other:
        store.wait("owned", 0.1, "b" * 64)
    with pytest.raises(JobNotFound) as unknown:
        store.state("nothing", "b" * 64)
    assert other.value.message == unknown.value.message.replace("nothing", "owned")
    with pytest.raises(JobNotFound):
        store.state("owned", "")  # a job with an owner is nobody else's, keys off or not


def test_delivery_shortens_a_jobs_ttl_and_never_lengthens_it(
    parts: tuple[JobStore, WorkerRegistry, list[str]], client: redis.Redis
) -> None:
    store, _, _ = parts
    idem = store.idempotency_key("", "k1")
    store.create("sync", ExtractJob([b"x"], AnalysisOptions(), "r1"), RENDER, (idem, "digest"))
    assert store.finish("sync", RESULT)
    store.delivered("sync", 5, idem)
    ttls = [int(client.ttl(key)) for key in ("facerest:job:sync", "facerest:job:sync:done", idem)]
    assert all(0 < ttl <= 5 for ttl in ttls), ttls
    store.delivered("sync", TTL_S, idem)  # a later retry's delivery does not extend the window
    assert 0 < int(client.ttl("facerest:job:sync")) <= 5


def test_unfinished_jobs_are_listed_until_they_finish_or_expire(
    client: redis.Redis, parts: tuple[JobStore, WorkerRegistry, list[str]]
) -> None:
    store, registry, _ = parts
    registry.beat(info("w1"), 60)
    queued, running, finished, expired = (new_job(store, name) for name in ("q", "r", "f", "x"))
    assert store.claim(running, "w1").granted
    store.mark_running(running, "w1")
    assert store.finish(finished, RESULT, "")
    client.delete(f"facerest:job:{expired}")  # its TTL ran out before it finished
    assert store.unfinished() == [queued, running]
    assert client.zcard("facerest:pending") == 2, "the expired job's entry is gone, the finished one's too"
    # Entries older than the result TTL are trimmed even if nobody listed them.
    assert store.trim_pending(time.time() + TTL_S + 1) == 2
    assert client.zcard("facerest:pending") == 0


def test_after_a_redis_failover_one_reaper_sends_every_unfinished_job_again(
    client: redis.Redis, parts: tuple[JobStore, WorkerRegistry, list[str]]
) -> None:
    store, registry, sent = parts
    reapers = [Reaper(store, registry, sent.append) for _ in range(3)]
    jobs = [new_job(store, name) for name in ("a", "b", "c")]
    assert store.finish(jobs[2], RESULT, "")
    assert [r.recover() for r in reapers] == [[], [], []], "the first server seen is no change"
    # What a promoted replica or a restarted server looks like: another run id than the one recorded
    # (the replica holds the record the old primary wrote).
    client.set("facerest:primary", "the-old-primary")
    assert sorted(r.recover() for r in reapers) == [[], [], ["a", "b"]]
    assert sent == ["a", "b"]
    assert [r.recover() for r in reapers] == [[], [], []]


def test_a_live_workers_claim_on_a_job_it_no_longer_runs_is_taken_back_by_itself(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    # A task that could not write its result (Redis unreachable) leaves its claim behind; the
    # worker is alive, so only the worker itself can tell the claim is orphaned.
    store, registry, sent = parts
    registry.beat(info("w1"), 60)
    registry.beat(info("w2"), 60)
    running, orphaned, others = (new_job(store, name) for name in ("running", "orphaned", "others"))
    for job, worker in ((running, "w1"), (orphaned, "w1"), (others, "w2")):
        assert store.claim(job, worker).granted
        store.mark_running(job, worker)
    assert Reaper(store, registry, sent.append, "w1", lambda: {running}).reap() == [orphaned]
    assert sent == [orphaned] and store.holders() == {running: "w1", others: "w2"}
    assert store.state(orphaned).status is JobStatus.QUEUED
    assert store.claim(orphaned, "w2").attempts == 2


def test_a_dead_workers_unclaimed_deliveries_are_sent_again_by_the_reaper_that_forgets_it(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    # Between the broker's delivery and the claim a message is in no queue and held by nobody: a
    # worker killed then takes it along, and only the reaper can tell it is gone.
    store, registry, sent = parts
    registry.beat(info("dead"), 0.3)
    registry.beat(info("alive"), 60)
    held, taken, waiting, running, finished = (
        new_job(store, name) for name in ("held", "taken", "waiting", "running", "finished")
    )
    assert store.claim(held, "dead").granted
    assert store.claim(running, "alive").granted
    assert store.finish(finished, RESULT, "")
    reapers = [Reaper(store, registry, sent.append, waiting=lambda: {waiting, *sent}) for _ in range(3)]
    assert [r.reap() for r in reapers] == [[]] * 3, "nobody is dead yet: nothing is sent"

    time.sleep(0.5)
    results = sorted(r.reap() for r in reapers)
    assert results == [[], [], [held, taken]], "one reaper takes the claim back and sends the lost job"
    assert sent == [held, taken]
    assert [r.reap() for r in reapers] == [[]] * 3, "once: the dead worker is forgotten"


def test_a_worker_restarted_under_its_name_is_told_so_by_its_first_beat(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    _, registry, _ = parts
    assert registry.beat(info("w1"), 60) is False
    assert registry.beat(info("w1"), 60) is True


def test_the_jobs_waiting_in_the_broker_queue_are_read_from_celerys_messages(
    system: Stack, client: redis.Redis
) -> None:
    client.flushdb()
    settings = load_settings(redis_url=system.redis_url)
    celery = create_celery(settings)
    for job_id in ("a", "b"):
        celery.send_task(EXTRACT_TASK, args=[job_id], task_id=job_id, queue=settings.queue)
    client.rpush(settings.queue, b"not a celery message")
    celery.send_task(EXTRACT_TASK, args=["c"], task_id="c", queue=queue_lanes(settings)[-1])
    assert waiting_jobs(client, queue_lanes(settings)) == {"a", "b", "c"}
    assert waiting_jobs(client, ("another-queue",)) == frozenset()


def test_a_worker_gathers_the_jobs_of_lanes_past_its_own_into_lane_zero(client: redis.Redis) -> None:
    client.flushdb()
    settings = load_settings(queue="q", queue_lanes=2)
    client.lpush("q", b"0")
    client.lpush("q.1", b"1")  # a lane of its own: left alone
    client.lpush("q.5", b"a", b"b")  # left by a deployment with more lanes: b is the newest
    client.lpush("q.63", b"c")
    assert gather_stray_lanes(client, settings) == 3
    # Lane 0 pops (BRPOP, from the right) its own message first, then the strays in their order.
    assert client.lrange("q", 0, -1) == [b"c", b"b", b"a", b"0"]
    assert client.lrange("q.1", 0, -1) == [b"1"]
    assert not client.exists("q.5", "q.63")


def test_erasing_a_collection_drops_its_finished_jobs_and_rewrites_redis_files(
    parts: tuple[JobStore, WorkerRegistry, list[str]], client: redis.Redis
) -> None:
    store, _, _ = parts
    name, photo = b"erase-me-5c0e", b"photo-bytes-91d3"
    enroll = EnrollJob([photo], "a", name.decode(), "largest", AnalysisOptions(), "r", 1)
    idem_a, idem_b = store.idempotency_key("", "k-a"), store.idempotency_key("", "k-b")
    store.create("enroll-a", enroll, RENDER, (idem_a, "d"))
    store.finish("enroll-a", ErrorInfo("no_face", f"{name.decode()}: no face"))
    store.create("queued-a", CompactJob("a", "r"), RENDER)
    store.create("done-b", CompactJob("b", "r"), RENDER, (idem_b, "d"))
    store.finish("done-b", CompactResult("b", 0, True, "w1", 1.0))
    store.create("extract", ExtractJob([b"x"], AnalysisOptions(), "r"), RENDER)
    store.finish("extract", RESULT)
    assert redis_files_holding(client, name, photo)  # in the AOF, though the input is gone

    assert store.forget_collection("a") == 1
    assert client.exists("facerest:job:enroll-a", "facerest:job:enroll-a:done", idem_a) == 0
    # Another collection's, an /extract's and an unfinished job of the collection stay.
    kept = ("facerest:job:queued-a", "facerest:job:done-b", "facerest:job:extract", idem_b)
    assert client.exists(*kept) == len(kept)
    assert store.erase_collection("a")
    assert redis_files_holding(client, name, photo) == []
    assert client.exists(*kept) == len(kept)


def _images(count: int) -> ExtractJob:
    return ExtractJob([b"x"] * count, AnalysisOptions(), "r")


def test_an_owners_share_takes_slots_and_releases_them_when_its_jobs_finish(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    store, _, _ = parts
    share = Share("a", max_jobs=2, max_images=5)
    assert store.create("a1", _images(2), RENDER, share=share) is None
    assert store.create("a2", _images(2), RENDER, share=share) is None
    assert store.create("a3", _images(1), RENDER, share=share) == ShareFull(2, 4)  # two jobs: full
    assert store.create("b1", _images(1), RENDER, share=Share("b", 2, 5)) is None  # another owner's own
    assert store.finish("a1", RESULT)
    assert store.share_jobs("a") == ["a2"]
    assert store.create("a4", _images(4), RENDER, share=share) == ShareFull(1, 2)  # 2 + 4 images > 5
    assert store.create("a5", _images(3), RENDER, share=share) is None
    assert sorted(store.share_jobs("a")) == ["a2", "a5"]
    # A failed job frees its slot too; a lone job may carry more images than the cap.
    assert store.finish("a2", ErrorInfo("invalid_image", "bad"))
    assert store.finish("a5", RESULT)
    assert store.create("a6", _images(9), RENDER, share=share) is None
    with pytest.raises(JobNotFound):  # refused jobs leave nothing behind
        store.state("a3")


def test_a_slot_whose_job_expired_or_outlived_its_deadline_is_released(
    parts: tuple[JobStore, WorkerRegistry, list[str]], client: redis.Redis
) -> None:
    store, _, _ = parts
    share = Share("lost", max_jobs=2, max_images=100)
    assert store.create("gone", _images(1), RENDER, share=share) is None
    assert store.create("stale", _images(1), RENDER, share=share) is None
    assert store.create("x", _images(1), RENDER, share=share) == ShareFull(2, 2)
    client.delete("facerest:job:gone")  # its worker crashed and the job expired unfinished
    client.zadd(store.share_key("lost"), {"stale": 1.0})  # its deadline (result_ttl_s) passed
    assert store.create("y", _images(1), RENDER, share=share) is None
    assert store.share_jobs("lost") == ["y"]
    assert 0 < client.ttl(store.share_key("lost")) <= TTL_S


def test_a_retry_with_its_idempotency_key_is_answered_even_with_the_share_full(
    parts: tuple[JobStore, WorkerRegistry, list[str]],
) -> None:
    store, _, _ = parts
    share = Share("k", max_jobs=1, max_images=10)
    key = store.idempotency_key("k", "retry")
    assert store.create("first", _images(1), RENDER, (key, "d"), share=share) is None
    again = store.create("second", _images(1), RENDER, (key, "d"), share=share)
    assert isinstance(again, IdempotencyRecord) and again.job_id == "first"
    assert store.create("third", _images(1), RENDER, share=share) == ShareFull(1, 1)


def test_a_job_with_a_callback_enters_the_outbox_as_it_ends_and_each_attempt_runs_once(
    client: redis.Redis,
) -> None:
    handed: list[str] = []
    store = JobStore(client, "hooks", TTL_S, handoff=handed.append)
    outbox = Outbox(client, "hooks")
    job = ExtractJob([b"x"], AnalysisOptions(), "r")
    store.create("cb", job, RENDER, callback="https://hooks.example/in")
    store.create("plain", job, RENDER)
    assert store.state("cb").callback == CallbackState(CallbackStatus.PENDING, 0, "")
    assert store.state("cb").callback_url == "https://hooks.example/in"
    assert store.state("plain").callback is None
    assert outbox.due_at("cb") is None, "not before the job ended"

    assert store.finish("cb", RESULT) and store.finish("plain", RESULT)
    assert not store.finish("cb", RESULT), "finished once, handed off once"
    assert handed == ["cb"]
    seconds, micros = client.time()
    due = outbox.due_at("cb")
    assert due is not None and abs(due - (seconds + micros / 1e6 + HANDOFF_GRACE_S)) < 2
    assert outbox.due_at("plain") is None

    # The worker's message and a sweep's for the same attempt: the first claims it, the other is dropped.
    assert outbox.claim("cb", 0, 30) == 1
    assert outbox.claim("cb", 0, 30) == 0
    assert store.state("cb").callback == CallbackState(CallbackStatus.PENDING, 1, "")
    outbox.record("cb", CallbackStatus.RETRYING, "the receiver answered HTTP 503", retry_in_s=0)
    assert outbox.take_due(30) == [Due("cb", 1)]
    assert outbox.take_due(30) == [], "leased until its message runs"
    assert outbox.claim("cb", 1, 30) == 2
    outbox.record("cb", CallbackStatus.DELIVERED)
    assert store.state("cb").callback == CallbackState(CallbackStatus.DELIVERED, 2, "")
    assert outbox.due_at("cb") is None and outbox.claim("cb", 2, 30) == 0

    # An entry whose job expired (or was erased with its collection) leaves without a delivery.
    store.create("gone", job, RENDER, callback="https://hooks.example/in")
    store.finish("gone", RESULT)
    client.delete("hooks:job:gone")
    client.zadd(outbox.key, {"gone": 0})
    assert outbox.take_due(30) == [] and outbox.due_at("gone") is None


def _ingest(photos: int) -> IngestJob:
    return IngestJob([b"x"] * photos, "lib", [f"p{i}" for i in range(photos)], AnalysisOptions(), "r", photos)


def _ingested(job: Job) -> IngestResult:
    assert isinstance(job, IngestJob)
    return IngestResult("lib", [IngestedPhoto(p, "ok") for p in job.photo_ids], "w1", 2.0, MODEL)


def test_a_split_request_is_one_job_gathered_from_its_children_and_one_slot_of_its_owners_share(
    client: redis.Redis, parts: tuple[JobStore, WorkerRegistry, list[str]]
) -> None:
    store, registry, sent = parts
    share = Share("o", max_jobs=2, max_images=100)
    children = [(f"c{i}", part) for i, part in enumerate(split_job(_ingest(5), 2))]
    assert [job_images(part) for _, part in children] == [2, 2, 1]
    assert store.create("p", _ingest(5), RENDER, share=share, queue="q0", children=children) is None
    # The children are the queued jobs (the reaper's and the queue's); the parent is one slot.
    assert store.unfinished() == ["c0", "c1", "c2"] and store.share_jobs("o") == ["p"]
    assert store.queue_of("c1") == "q0" and store.load_input("p") is None
    assert store.create("other", _images(1), RENDER, share=share) is None
    assert store.create("full", _images(1), RENDER, share=share) == ShareFull(2, 6)
    state = store.state("p")
    assert (
        state.status is JobStatus.QUEUED and state.progress == (0, 5) and state.children == ("c0", "c1", "c2")
    )

    # A child lost with a dead worker is taken back and run again like any job.
    registry.beat(info("dead"), 0.3)
    registry.beat(info("w1"), 60)
    assert store.claim("c1", "dead").granted
    store.mark_running("c1", "dead")
    assert store.state("p").status is JobStatus.RUNNING
    time.sleep(0.5)
    sent += ["c0", "c2", "other"]  # waiting in the queue
    assert Reaper(store, registry, sent.append, waiting=lambda: sent).reap() == ["c1"]
    # Finished out of order, answered in request order.
    for child in ("c2", "c1", "c0"):
        assert store.claim(child, "w1").granted
        store.mark_running(child, "w1")
        job = store.load_input(child)
        assert job is not None
        done = store.state("p")
        assert done.status is JobStatus.RUNNING and done.result is None
        assert store.finish(child, _ingested(job), "w1")
    assert done.progress == (3, 5), "c2 and c1 had finished before c0"
    done = store.wait("p", 0.1)
    assert done.status is JobStatus.DONE and done.progress == (5, 5) and done.error is None
    assert isinstance(done.result, IngestResult) and done.result.took_ms == 6.0
    assert [photo.photo_id for photo in done.result.photos] == ["p0", "p1", "p2", "p3", "p4"]
    assert store.share_jobs("o") == ["other"] and store.unfinished() == ["other"]
    # The children hold the result: they expire with the parent, and a delivery shortens both.
    assert client.ttl("facerest:job:c2") > TTL_S - 5 and client.ttl("facerest:job:p") > TTL_S - 5
    store.delivered("p", 30, children=done.children)
    assert all(0 < client.ttl(f"facerest:job:{job}") <= 30 for job in ("p", "c0", "c1", "c2"))


def test_a_split_request_whose_child_failed_fails_once_every_child_ended_and_calls_back_once(
    client: redis.Redis,
) -> None:
    handed: list[str] = []
    store = JobStore(client, "hooks", TTL_S, handoff=handed.append)
    outbox = Outbox(client, "hooks")
    children = [(f"f{i}", part) for i, part in enumerate(split_job(_ingest(4), 2))]
    store.create("fp", _ingest(4), RENDER, callback="https://hooks.example/in", children=children)
    assert store.state("f0").callback is None, "the callback is the parent's"
    assert store.finish("f0", ErrorInfo("internal_error", "boom"))
    running = store.state("fp")
    assert running.status is JobStatus.RUNNING and running.error is None and running.progress == (2, 4)
    assert handed == [] and outbox.due_at("fp") is None, "not before every child ended"
    job = store.load_input("f1")
    assert job is not None and store.finish("f1", _ingested(job))
    assert not store.finish("f1", _ingested(job)), "finished once"
    failed = store.state("fp")
    assert failed.status is JobStatus.FAILED and failed.error == ErrorInfo("internal_error", "boom")
    assert failed.result is None and failed.progress == (4, 4)
    assert handed == ["fp"] and outbox.due_at("fp") is not None and outbox.due_at("f1") is None


def test_a_video_counts_each_segment_once_and_a_deleted_video_is_never_written_again(
    client: redis.Redis,
) -> None:
    videos = VideoStore(client, "vid", TTL_S)
    face = TrackFace(0.5, (1.0, 2.0, 3.0, 4.0), 0.9, 0.5, b"jpeg")
    track = Track(0.0, 1.0, 3, face, b"\0" * 8, (1.0, 2.0, 3.0, 4.0), (1.0, 2.0, 3.0, 4.0))

    def segment(index: int, frames: int) -> VideoSegmentResult:
        return VideoSegmentResult("v1", index, float(index), frames, [track], "w1", 1.0)

    videos.create("v1", segments=2, frames=20, duration_s=2.0, cut_s=60)
    assert videos.cut_state("v1") == "cutting"
    assert videos.cut_whole("v1") and videos.cut_state("v1") == "whole"
    assert 0 < client.ttl("vid:video:v1") <= TTL_S
    client.expire("vid:video:v1", 5)
    assert videos.record(segment(1, 10)) == 1
    assert client.ttl("vid:video:v1") > 5  # each segment gives the video its TTL again
    assert videos.record(segment(1, 10)) == 1  # the same segment run again: counted once
    videos.publish("v1", 1, [track])
    videos.publish("v1", 0, [])  # joined from fewer segments: older, not kept
    progress = videos.progress("v1")
    assert progress is not None and (progress.segments_done, progress.frames_done) == (1, 10)
    assert progress.tracks == [track] and progress.failed is None
    assert videos.record(segment(0, 9)) == 2
    assert videos.record(segment(0, 9)) == 2  # all in: nothing more counts
    assert [r.index for r in videos.segment_results("v1", 2)] == [0, 1]
    videos.fail("v1", ErrorInfo("invalid_video", "first"))
    videos.fail("v1", ErrorInfo("invalid_video", "second"))
    failed = videos.progress("v1")
    assert failed is not None and failed.failed == ErrorInfo("invalid_video", "first")
    videos.finished("v1", 2)
    assert videos.segment_results("v1", 2) == [] and videos.progress("v1") is not None
    # The segments' results and the partial tracks are gone, the counts stay.
    counts = {
        b"segments",
        b"frames",
        b"duration_s",
        b"segments_done",
        b"frames_done",
        b"failed",
        b"tracks_from",
    }
    assert set(client.hkeys("vid:video:v1")) == counts
    videos.delete("v1")
    assert videos.record(segment(0, 9)) == -1
    videos.fail("v1", ErrorInfo("invalid_video", "late"))
    videos.publish("v1", 5, [track])
    assert not client.exists("vid:video:v1") and videos.progress("v1") is None


def test_a_video_s_cut_is_dead_once_its_deadline_passes_and_nothing_revives_it(
    client: redis.Redis,
) -> None:
    videos = VideoStore(client, "cut", TTL_S)
    for video in ("v1", "v2", "v3"):
        videos.create(video, segments=3, frames=30, duration_s=3.0, cut_s=60)
    assert [videos.cut_state(video) for video in ("v1", "v2", "v3")] == ["cutting"] * 3
    assert videos.cutting("v2", 60)
    assert videos.cut_whole("v3") and videos.cut_state("v3") == "whole"
    assert not videos.cutting("v3", 60) and videos.cut_state("v3") == "whole"  # not extended once whole
    # A deadline long past (its API process stopped extending it): dead, seen first by a retry...
    client.hset("cut:video:v1", "cut_until", 1)
    assert videos.cut_state("v1") == "dead"
    assert not videos.cutting("v1", 60) and not videos.cut_whole("v1") and videos.cut_state("v1") == "dead"
    # ...or by the cut itself (a stall past its lease), which must then stop.
    client.hset("cut:video:v2", "cut_until", 1)
    assert not videos.cutting("v2", 60) and videos.cut_state("v2") == "dead"
    videos.delete("v2")
    assert videos.cut_state("v2") == "gone" and not videos.cutting("v2", 60)
    assert not client.exists("cut:video:v2")


def test_a_video_job_runs_from_its_first_segment_and_each_segment_extends_its_life(
    client: redis.Redis,
) -> None:
    jobs = JobStore(client, "vidjob", TTL_S)
    video = VideoJob(2, 2.0, None, None, False, "r", duration_s=2.0, frames=10)
    assert jobs.create("v2", video, RENDER) is None
    client.expire("vidjob:job:v2", 5)
    jobs.mark_started("v2", "w1")
    state = jobs.state("v2")
    assert state.status is JobStatus.RUNNING and state.worker == "w1"
    assert client.ttl("vidjob:job:v2") > 5 and client.ttl("vidjob:job:v2:input") > 5
    jobs.erase(["v2"])
    jobs.mark_started("v2", "w1")  # a segment starting after its video was deleted
    assert not client.exists("vidjob:job:v2") and not client.exists("vidjob:job:v2:input")
