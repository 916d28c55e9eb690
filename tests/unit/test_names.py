"""One rule for names and ids, written once per side (the client imports no server code): the
same table goes to the server's checks and the client's, and they must agree on every entry."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from facerest_client import InvalidName
from facerest_client import names as client_names
from pydantic import TypeAdapter, ValidationError

from api.collection_access import check_face_id, check_name
from api.schemas import NameText
from shared.errors import InvalidField
from shared.recognition import FACE_ID_RULE, NAME_RULE, valid_face_id, valid_name

LONGEST = "a" + "b" * 127
# (name, valid): the kinds of input an app might pass on from its users.
NAMES = [
    ("staff", True),
    ("staff-2026.v1_a", True),
    ("7", True),
    ("a..b", True),  # dots inside a name are no dot segment
    (LONGEST, True),
    (LONGEST + "c", False),
    ("x" * 5000, False),
    ("", False),
    (".", False),
    ("..", False),
    ("...", False),
    (".hidden", False),
    ("-lead", False),
    ("_lead", False),
    ("a/b", False),
    ("../victim", False),
    ("a\\b", False),
    ("%2e", False),
    ("%2E%2E", False),
    ("a%2Fb", False),
    ("a b", False),
    ("a\x00b", False),
    ("\x00", False),
    ("a\n", False),
    ("a\r\nX-Injected: 1", False),
    ("a?b", False),
    ("a#b", False),
    ("é", False),
    ("Straße", False),
    ("名前", False),
    ("a²", False),
    ("٣", False),  # an Arabic-Indic digit: \d would take it, the rule does not
    ("\uff41", False),  # a fullwidth letter
]
FACE_IDS = [
    ("0123456789abcdef0123456789abcdef", True),
    ("f" * 32, True),
    ("0123456789ABCDEF0123456789ABCDEF", False),
    ("f" * 31, False),
    ("f" * 33, False),
    ("", False),
    (".", False),
    ("..", False),
    ("%2e%2e", False),
    ("f" * 31 + "\x00", False),
    ("f" * 32 + "\n", False),
    ("staff", False),
    ("../" + "f" * 29, False),
    ("٣" * 32, False),
]


def _server_takes_name(name: str) -> bool:
    try:
        check_name("subject", name)
    except InvalidField:
        return False
    return True


def _body_takes_name(name: str) -> bool:
    """The same rule in request bodies (verify's collection and subject, rename's new name)."""
    try:
        TypeAdapter(NameText).validate_python(name)
    except ValidationError:
        return False
    return True


def _client_takes(check: Callable[[str, str], str], kind: str, value: str) -> bool:
    try:
        check(kind, value)
    except InvalidName as refused:
        assert isinstance(refused, ValueError) and repr(value[:140]) in str(refused)
        return False
    return True


@pytest.mark.parametrize(("name", "valid"), NAMES)
def test_server_and_client_agree_on_every_name(name: str, valid: bool) -> None:
    server = (valid_name(name), _server_takes_name(name), _body_takes_name(name))
    client = _client_takes(client_names.check_name, "subject", name)
    assert server == (valid, valid, valid) and client == valid


@pytest.mark.parametrize(("face_id", "valid"), FACE_IDS)
def test_server_and_client_agree_on_every_face_id(face_id: str, valid: bool) -> None:
    try:
        check_face_id(face_id)
        server_takes = True
    except InvalidField:
        server_takes = False
    assert (valid_face_id(face_id), server_takes) == (valid, valid)
    assert _client_takes(client_names.check_id, "face", face_id) == valid


def test_both_sides_state_the_same_rule() -> None:
    """The client's refusal says what the server's 422 says."""
    assert (client_names.NAME_RULE, client_names.ID_RULE) == (NAME_RULE, FACE_ID_RULE)
