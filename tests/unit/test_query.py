"""api/query.py: numbers in query strings are ASCII digits of bounded length, else 422."""

from __future__ import annotations

import pytest
from flask import Flask

from api.query import int_arg, seconds_arg
from shared.errors import InvalidField

APP = Flask(__name__)


def int_of(query: str) -> int:
    with APP.test_request_context(f"/?{query}"):
        return int_arg("limit", 7, 100)


def seconds_of(query: str) -> float | None:
    with APP.test_request_context(f"/?{query}"):
        return seconds_arg("wait", 30)


def test_an_integer_argument_reads_ascii_digits_within_its_range() -> None:
    assert [int_of("limit=0"), int_of("limit=100"), int_of("limit=007"), int_of("x=1")] == [0, 100, 7, 7]


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",  # superscript two: isdigit() said yes, int() no (a 500)
        "limit=%E2%91%A0",  # circled one, the same
        "limit=%D9%A3",  # Arabic-Indic three: int() read it as 3
        "limit=" + "9" * 4301,  # past int()'s 4,300 digits
        "limit=101",
        "limit=-1",
        "limit=+5",
        "limit=%203",
        "limit=3%0A",
        "limit=",
    ],
)
def test_an_integer_argument_refuses_anything_else_as_a_validation_error(query: str) -> None:
    with pytest.raises(InvalidField) as refused:
        int_of(query)
    assert refused.value.code == "validation_error"
    assert refused.value.message.startswith("limit must be an integer from 0 to 100, got ")


def test_a_seconds_argument_reads_ascii_decimals_within_its_range() -> None:
    assert [seconds_of("wait=0"), seconds_of("wait=2.5"), seconds_of("wait=.5"), seconds_of("wait=30")] == [
        0.0,
        2.5,
        0.5,
        30.0,
    ]
    assert seconds_of("other=1") is None


@pytest.mark.parametrize(
    "value", ["%D9%A3", "%C2%B2", "nan", "inf", "1e1", "31", "-1", "1_0", "", "9" * 4301]
)
def test_a_seconds_argument_refuses_anything_else(value: str) -> None:
    with pytest.raises(InvalidField) as refused:
        seconds_of(f"wait={value}")
    assert refused.value.code == "validation_error"
