"""Numbers in query strings: ASCII digits only, of bounded length, and within their range.

``str.isdigit()`` and ``int()``/``float()`` accept other digits ("²" passes isdigit and fails
int; Arabic-Indic "٣" reads as 3) and ``int()`` refuses more than 4,300 digits: the one parse
here refuses all of those as ``validation_error`` (422), never a 500.
"""

from __future__ import annotations

import re

from flask import request

from shared.errors import InvalidField

# [0-9], not \d: \d matches every Unicode decimal digit. 18 digits fit any range used here.
INTEGER = re.compile(r"[0-9]{1,18}")
DECIMAL = re.compile(r"[0-9]{1,18}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}")


def int_arg(name: str, default: int, most: int) -> int:
    """The query argument ``name``: an integer from 0 to ``most``, ``default`` when absent."""
    text = request.args.get(name)
    if text is None:
        return default
    if not INTEGER.fullmatch(text) or int(text) > most:
        raise InvalidField(f"{name} must be an integer from 0 to {most}, got {text[:20]!r}")
    return int(text)


def seconds_arg(name: str, most: float) -> float | None:
    """The query argument ``name``: a number of seconds from 0 to ``most``, None when absent."""
    text = request.args.get(name)
    if text is None:
        return None
    if not DECIMAL.fullmatch(text) or float(text) > most:
        raise InvalidField(f"{name} must be a number of seconds from 0 to {most:g}, got {text[:20]!r}")
    return float(text)
