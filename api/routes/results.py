"""GET /results/<id>: a job's state and, when done, the payload /extract would have returned.

``?wait=S`` long-polls: the call returns as soon as the job has finished, or after S seconds
(at most ``sync_timeout_s``) with the job's state then, so clients need not poll in a loop.
With API keys on, a job is answered only to the key that created it.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, request

from api.auth import request_owner
from api.context import context
from api.openapi import Operation, Query, Reply, documented
from api.query import seconds_arg
from api.render import encode, job_state_body, wants_msgpack
from api.schemas import ErrorDetail, JobStateBody
from shared.errors import JobNotFound

bp = Blueprint("results", __name__)
# Job ids are uuid4().hex (api/routes/extract.py): anything else is refused before Redis is asked.
JOB_ID = re.compile(r"^[0-9a-f]{32}$")

RESULTS_DOC = Operation(
    summary="State and result of a job",
    query=(
        Query(
            "wait",
            "Long-poll: answer as soon as the job has finished, or after this many seconds (at most "
            "sync_timeout_s) with its state then.",
            {"type": "number", "minimum": 0},
        ),
    ),
    replies={
        200: Reply("The job", JobStateBody, msgpack=True),
        404: Reply("Unknown or expired job, or (with API keys) another key's job", ErrorDetail),
        422: Reply("wait is not a number of seconds from 0 to sync_timeout_s", ErrorDetail),
        503: Reply("Redis unavailable: retry after Retry-After seconds", ErrorDetail, retry_after=True),
    },
)


@bp.get("/results/<job_id>")
@documented(RESULTS_DOC)
def get_result(job_id: str) -> Response:
    ctx = context()
    if not JOB_ID.fullmatch(job_id):
        raise JobNotFound("no such job: a job id is 32 lowercase hex digits")
    wait_s = seconds_arg("wait", ctx.settings.sync_timeout_s)
    # Another key's job is answered like an unknown one (404), also while long-polling.
    owner = request_owner(ctx.api_keys)
    state = ctx.store.state(job_id, owner) if not wait_s else ctx.store.wait(job_id, wait_s, owner)
    body = job_state_body(state)
    return encode(body, wants_msgpack(request))
