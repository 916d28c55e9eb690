"""The Celery application configuration both sides use: the API sends, the workers consume."""

from __future__ import annotations

import hashlib
import json
from typing import cast

import redis
from celery import Celery

from shared.redisconn import celery_broker
from shared.settings import MAX_QUEUE_LANES, Settings

EXTRACT_TASK = "facerest.extract"
# A webhook delivery (api/courier.py): never run by a worker, which loads models.
DELIVER_TASK = "facerest.deliver"
# Longest pause between two sweeps that return expired unacknowledged jobs to the queue.
RESTORE_SWEEP_MAX_S = 10


def restore_sweep_s(visibility_timeout_s: int) -> int:
    """Sweep at least twice per visibility timeout, so a lost job waits at most ~1.5 timeouts."""
    return max(1, min(RESTORE_SWEEP_MAX_S, visibility_timeout_s // 2))


def queue_lanes(settings: Settings) -> tuple[str, ...]:
    """The names of the queues ("lanes") the workers consume, lane 0 first: lane 0 is
    ``settings.queue`` itself (so one lane is the single queue of old), lane i the queue "<queue>.i".
    Stochastic fair queueing: an owner's jobs all go to its lane (``lane_for``), and the worker
    takes from the non-empty lanes in turn (kombu's Redis transport rotates the order of the
    queues it pops, queue_order_strategy round_robin), so a flood waits in its own lane."""
    return (settings.queue, *(f"{settings.queue}.{lane}" for lane in range(1, settings.queue_lanes)))


def video_lane(settings: Settings) -> str:
    """The queue of video segments (docs/video.md): one lane more that the workers take from in
    turn with the others, and that admission (max_queue_depth) does not count, so that a long
    video's hundreds of segments neither refuse nor starve other owners' image requests."""
    return f"{settings.queue}.video"


def worker_queues(settings: Settings) -> tuple[str, ...]:
    """Every queue a worker consumes: the lanes, then the video lane."""
    return (*queue_lanes(settings), video_lane(settings))


def webhook_queue(settings: Settings) -> str:
    """The courier's queue of deliver messages (shared/webhooks.py); no worker consumes it."""
    return f"{settings.queue}.webhooks"


def lane_for(settings: Settings, owner: str) -> str:
    """The lane of ``owner``'s jobs (an API key's digest, or a client address with keys off): a
    stable hash, the same in every API process, so two owners share a lane with odds 1/lanes."""
    digest = hashlib.sha256(owner.encode("utf-8", "surrogatepass")).digest()
    return queue_lanes(settings)[int.from_bytes(digest[:8], "big") % settings.queue_lanes]


def resend_lane(settings: Settings, recorded: str | None) -> str:
    """Where to send a job again: the lane recorded with it (the video lane included), or lane 0
    when it has none (made before lanes were kept) or one the workers no longer consume
    (queue_lanes was lowered)."""
    lanes = worker_queues(settings)
    return recorded if recorded in lanes else lanes[0]


def gather_stray_lanes(client: redis.Redis, settings: Settings) -> int:
    """Move the messages of lanes past ``settings.queue_lanes`` (left there before the setting was
    lowered, or by an API configured with more lanes) to lane 0, in their order, so that no
    accepted job waits in a lane no worker reads; how many were moved. A worker calls it at start."""
    moved = 0
    for lane in range(settings.queue_lanes, MAX_QUEUE_LANES):
        stray = f"{settings.queue}.{lane}"
        while client.rpoplpush(stray, settings.queue) is not None:
            moved += 1
    return moved


def queue_depth(client: redis.Redis, queues: tuple[str, ...]) -> int:
    """The messages waiting in all ``queues``, read in one round trip."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.llen(queue)
    return sum(int(length) for length in pipe.execute())


def create_celery(settings: Settings) -> Celery:
    broker, sentinel_options = celery_broker(settings.redis_url)
    app = Celery("facerest", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        # Results live in the job store, not in Celery's backend.
        task_ignore_result=True,
        # A job is acknowledged only after it finished: a worker that dies mid-job leaves it in
        # Redis's unacked set, and it is delivered again after the visibility timeout.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # kombu sweeps for expired unacked messages every interval * throttle seconds, 100 s by
        # default; a throttle of 1 makes the interval the only control.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": restore_sweep_s(settings.visibility_timeout_s),
            "unacked_restore_throttle": 1,
            **sentinel_options,
        },
        broker_connection_retry_on_startup=True,
        # After a Redis restart, keep reconnecting (never give up and exit).
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
    )
    return app


def waiting_jobs(client: redis.Redis, queues: tuple[str, ...]) -> frozenset[str]:
    """The ids of the jobs whose messages wait in the broker's ``queues`` (a Celery message carries
    its task id, which is the job id, in its headers). They are short: max_queue_depth bounds all."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.lrange(queue, 0, -1)
    ids = set()
    for raw in (message for messages in cast(list[list[bytes]], pipe.execute()) for message in messages):
        try:
            ids.add(str(json.loads(raw)["headers"]["id"]))
        except (ValueError, KeyError, TypeError):
            continue  # not a Celery task message: no job of ours
    return frozenset(ids)
