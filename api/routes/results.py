"""GET /results/<id>: a job's state and, when done, the payload /extract would have returned."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from api.context import context
from api.render import encode, render, wants_msgpack
from shared.errors import InvalidImage
from shared.jobs import JobStatus

bp = Blueprint("results", __name__)


@bp.get("/results/<job_id>")
def get_result(job_id: str) -> Response:
    state = context().store.state(job_id)
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
