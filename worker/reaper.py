"""The reaper: every worker gives the jobs of dead workers back to the queue (shared/jobs.py has
the claims it reads and the scripts that take a job back atomically)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from shared.jobs import JobStore, WorkerRegistry


@dataclass(frozen=True, slots=True)
class Reaper:
    """Gives the jobs of dead workers back to the queue: every worker runs it with each heartbeat.

    A worker is dead when its heartbeat expired (or its entry is gone) while it still holds claims;
    a live worker's claim is orphaned when the worker itself no longer runs the job.
    ``take_back`` is atomic, so of several reapers exactly one re-queues each job, with ``send``
    (a new message; the dead worker's unacknowledged one comes back after the visibility timeout
    and is dropped then, as the job is finished or held).

    A dead worker may also have taken messages from the queue that it had not claimed yet (the
    moment between the broker's delivery and the claim): the reaper that forgets the dead worker
    sends again every unfinished job that nobody holds and that is not ``waiting`` in the queue.
    """

    store: JobStore
    registry: WorkerRegistry
    send: Callable[[str], None]
    # The reaping worker and the jobs it runs now: a claim of its own on a job it no longer runs
    # was left by a task that could not finish it (Redis was unreachable when it tried).
    name: str = ""
    running_here: Callable[[], Collection[str]] = frozenset
    # The jobs whose messages wait in the broker's queue (shared/queue.py waiting_jobs).
    waiting: Callable[[], Collection[str]] = frozenset
    # A job another reaper took back this long ago or less is on its way to the queue: that
    # reaper sends it (between its take_back and its send, the job is neither held nor waiting).
    # Shorter than a heartbeat's lifetime, so that a job whose reaper died before sending it is
    # sent by the one that forgets that reaper's worker.
    sending_s: float = 2.0

    def recover(self) -> list[str]:
        """After a Redis failover or restart, send every unfinished job again (once, by the first
        reaper to notice); the ids sent."""
        return self._send(self.store.unfinished()) if self.store.primary_changed() else []

    def reap(self) -> list[str]:
        """Re-queue the jobs of dead workers, forget dead workers that hold none; the re-queued ids."""
        now, beats = self.registry.snapshot()
        self.store.trim_pending(now)
        holders = self.store.holders()
        here = self.running_here()  # after the claims: a job in both is still running
        requeued = []
        for job_id, holder in holders.items():
            orphan = holder == self.name and job_id not in here
            beat = beats.get(holder)
            if not orphan and beat is not None and beat.expires_at > now:
                continue
            if self.store.take_back(job_id, holder, orphan):
                self.send(job_id)
                requeued.append(job_id)
        holding = set(self.store.holders().values()) if requeued or holders else set()
        forgot = False
        for name, beat in beats.items():
            if beat.expires_at <= now and name not in holding:
                forgot |= self.registry.forget(name)
        if forgot:
            requeued += self.resend_lost(just_sent=requeued, now=now)
        return requeued

    def resend_lost(self, just_sent: Collection[str] = (), now: float | None = None) -> list[str]:
        """Send again the unfinished jobs that no worker holds and that do not wait in the queue
        (nor were ``just_sent``): their messages were taken by a worker that died before
        claiming them (or are on their way to a live one, which then drops the copy at its
        claim); the ids sent. With ``now`` (Redis's time: a reaper that just forgot a dead
        worker), not those another reaper took back in the last ``sending_s``: it sends them.
        Without (a worker starting in its dead predecessor's place), those too: a copy too many
        is dropped at its claim, a job left unsent would be lost."""
        unfinished = self.store.unfinished()
        holders = self.store.holders()
        waiting = self.waiting()  # read last: a job moving from queue to claim is seen, or resent
        known = {*holders, *waiting, *just_sent}
        lost = [job_id for job_id in unfinished if job_id not in known]
        if now is not None:
            being_sent = self.store.requeued_since(lost, now - self.sending_s)
            lost = [job_id for job_id in lost if job_id not in being_sent]
        return self._send(lost)

    def _send(self, job_ids: list[str]) -> list[str]:
        for job_id in job_ids:
            self.send(job_id)
        return job_ids
