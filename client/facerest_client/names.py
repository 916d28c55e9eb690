"""The service's rules for names and ids, checked by the client before a request is sent.

The client does not import the server, so the rules are written here a second time, as
shared/recognition.py has them; tests/unit/test_names.py feeds one table of names to both sides
and asserts they agree on every one.
"""

from __future__ import annotations

import re

from facerest_client.errors import InvalidName

# Collection and subject names: no '/', never '.' or '..' (the first character is a letter or digit).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
NAME_RULE = "1 to 128 characters: letters, digits, '_', '.', '-', starting with a letter or digit"
# Face ids and job ids: what the service makes (uuid4 hex).
ID_PATTERN = re.compile(r"[0-9a-f]{32}")
ID_RULE = "32 lowercase hex digits"


def check_name(kind: str, name: str) -> str:
    """``name`` when the service takes it as a collection or subject name, else InvalidName."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise InvalidName(f"{kind} name", name, NAME_RULE)
    return name


def check_id(kind: str, value: str) -> str:
    """``value`` when it has the form of the service's face and job ids, else InvalidName."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise InvalidName(f"{kind} id", value, ID_RULE)
    return value
