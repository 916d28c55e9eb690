"""The queue's lanes (shared/queue.py): names, an owner's lane, where a job is sent again."""

from __future__ import annotations

from collections import Counter

from shared.queue import lane_for, queue_lanes, resend_lane
from shared.settings import load_settings


def test_lane_zero_is_the_queue_itself_and_one_lane_is_the_single_queue() -> None:
    assert queue_lanes(load_settings(queue="q", queue_lanes=3)) == ("q", "q.1", "q.2")
    one = load_settings(queue="q", queue_lanes=1)
    assert queue_lanes(one) == ("q",)
    assert {lane_for(one, f"owner-{i}") for i in range(50)} == {"q"}


def test_an_owners_lane_is_stable_and_owners_spread_over_all_lanes() -> None:
    settings = load_settings(queue="q", queue_lanes=8)
    # The first 8 bytes of sha256("a"), 0xca978112ca1bbdca, mod 8: the same in every process.
    assert lane_for(settings, "a") == "q.2"
    spread = Counter(lane_for(settings, f"addr:10.0.0.{i}") for i in range(800))
    assert set(spread) == set(queue_lanes(settings))
    assert max(spread.values()) < 2 * 800 / 8


def test_a_job_is_sent_again_to_its_recorded_lane_or_else_to_lane_zero() -> None:
    settings = load_settings(queue="q", queue_lanes=4)
    assert resend_lane(settings, "q.3") == "q.3"
    assert resend_lane(settings, None) == "q"  # a job made before lanes were recorded
    assert resend_lane(settings, "q.7") == "q"  # queue_lanes was lowered: q.7 is read by nobody
    assert resend_lane(settings, "other.1") == "q"
