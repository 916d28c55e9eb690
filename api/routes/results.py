"""GET /results/<id>: a job's state and, when done, the payload /extract would have returned.

``?wait=S`` long-polls: the call returns as soon as the job has finished, or after S seconds
(at most ``sync_timeout_s``) with the job's state then, so clients need not poll in a loop.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from api.context import context
from api.render import encode, render, wants_msgpack
from shared.errors import InvalidField, InvalidImage
from shared.jobs import JobStatus

bp = Blueprint("results", __name__)


def _wait_s(limit_s: float) -> float | None:
    text = request.args.get("wait")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= limit_s:  # also refuses nan
        raise InvalidField(
            f"wait must be a number of seconds from 0 to sync_timeout_s={limit_s:g}, got {text!r}"
        )
    return value


@bp.get("/results/<job_id>")
def get_result(job_id: str) -> Response:
    ctx = context()
    wait_s = _wait_s(ctx.settings.sync_timeout_s)
    state = ctx.store.state(job_id) if not wait_s else ctx.store.wait(job_id, wait_s)
    body: dict[str, Any] = {
        "id": state.id,
        "status": state.status.value,
        "created": state.created,
        "started": state.started,
        "finished": state.finished,
        "worker": state.worker,
        "attempts": state.attempts,
    }
    if state.status is JobStatus.FAILED:
        body["error"] = state.error
    elif state.result is not None:
        total_ms = ((state.finished or state.created) - state.created) * 1000
        try:
            data_count = state.meta.get("data_count")
            body["result"] = render(
                state.result,
                state.meta.get("api_ver", "1"),
                bool(state.meta.get("landmarks")),
                total_ms,
                int(data_count) if data_count else None,
            )
        except InvalidImage as exc:
            body["status"] = JobStatus.FAILED.value
            body["error"] = {"code": exc.code, "message": exc.message}
    return encode(body, wants_msgpack(request))
