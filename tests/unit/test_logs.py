"""JSON log lines and request ids."""

from __future__ import annotations

import logging
import re
import sys

import orjson
import pytest

from api.observability import request_id_of
from shared.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("facerest.worker", logging.INFO, __file__, 1, "job %s done", ("j1",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_line_carries_message_level_and_ids() -> None:
    line = orjson.loads(JsonFormatter().format(_record(request_id="r-1", job_id="j1")))
    assert line["msg"] == "job j1 done" and line["level"] == "INFO" and line["logger"] == "facerest.worker"
    assert line["request_id"] == "r-1" and line["job_id"] == "j1"
    assert "request_id" not in orjson.loads(JsonFormatter().format(_record()))


def test_exceptions_stay_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = _record()
        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text and "boom" in orjson.loads(text)["exc"]


@pytest.mark.parametrize("given", ["abc", "trace-1.2:3_x", "A" * 128])
def test_plain_request_ids_are_kept(given: str) -> None:
    assert request_id_of(given) == given


@pytest.mark.parametrize("given", [None, "", "a b", "x\nforged log line", "A" * 129, "ünïcode", "a;b"])
def test_unsafe_request_ids_are_replaced(given: str | None) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", request_id_of(given))
