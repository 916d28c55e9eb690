"""The facerest command without a server: where the API key comes from, and its exit status."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from facerest_client import FaceRest, RetryPolicy
from facerest_client.cli import (
    API_KEY_VARIABLE,
    EXIT_DIFFERENT,
    EXIT_ERROR,
    EXIT_OK,
    _parser,
    main,
    resolve_api_key,
    run,
)

from shared.settings import unknown_settings

RECOGNIZER = {"key": "arcface", "name": "w600k_mbf", "version": "1", "license": "non-commercial"}


def test_the_api_key_flag_wins_over_the_environment() -> None:
    environ = {API_KEY_VARIABLE: "from-env"}
    assert resolve_api_key("from-flag", environ) == "from-flag"
    assert resolve_api_key(None, environ) == "from-env"
    assert resolve_api_key("", environ) == ""  # sends none: FaceRest drops an empty key
    assert resolve_api_key(None, {}) is None and resolve_api_key(None, {API_KEY_VARIABLE: ""}) is None


def test_the_server_does_not_take_the_command_s_variable_for_a_misspelled_setting() -> None:
    assert unknown_settings({API_KEY_VARIABLE: "k"}) == []  # not "did you mean FACEREST_API_KEYS?"


def test_help_names_the_variable_and_the_exit_status() -> None:
    text = _parser().format_help()
    assert API_KEY_VARIABLE in text
    assert "1  verify: different people" in text and "2  an error" in text


def _verify_against(answer: httpx.Response, seen: list[httpx.Request]) -> FaceRest:
    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return FaceRest("http://facerest.test", api_key="k", transport=httpx.MockTransport(reply))


@pytest.mark.parametrize(("same", "status"), [(True, EXIT_OK), (False, EXIT_DIFFERENT)])
def test_verify_exits_1_for_different_people(
    same: bool, status: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"same": same, "similarity": 0.1, "threshold": 0.3, "faces": [], "took": {"total_ms": 1}}
    seen: list[httpx.Request] = []
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"jpeg")
    args = _parser().parse_args(["verify", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")])
    answer = httpx.Response(200, json=body | {"recognizer": RECOGNIZER})
    with _verify_against(answer, seen) as client:
        assert run(client, args) == status
    assert f'"same": {str(same).lower()}' in capsys.readouterr().out
    assert seen[0].url.path == "/verify" and seen[0].headers["X-API-Key"] == "k"


def test_errors_exit_2_not_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    args = _parser().parse_args(["verify", str(tmp_path / "a.jpg"), str(tmp_path / "a.jpg")])
    refused = httpx.Response(422, json={"code": "no_face", "message": "images.data[0]: no face"})
    with _verify_against(refused, []) as client:
        assert run(client, args) == EXIT_ERROR
    assert "422 no_face" in capsys.readouterr().err
    # A photo that is not there: no request is sent (no server listens on this URL).
    missing = str(tmp_path / "missing.jpg")
    assert main(["--url", "http://127.0.0.1:9", "verify", missing, missing]) == EXIT_ERROR
    assert "missing.jpg" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["verify"])
    assert usage.value.code == EXIT_ERROR


def test_a_junk_retry_after_is_retried_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    body = {"same": True, "similarity": 0.9, "threshold": 0.3, "faces": [], "took": {"total_ms": 1}}
    answers = [
        httpx.Response(
            503, json={"code": "overloaded", "message": "full"}, headers=[(b"Retry-After", "²".encode())]
        ),
        httpx.Response(200, json=body | {"recognizer": RECOGNIZER}),
    ]
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    args = _parser().parse_args(["verify", str(tmp_path / "a.jpg"), str(tmp_path / "a.jpg")])
    with FaceRest("http://facerest.test", retry=RetryPolicy(backoff_s=0.0), transport=transport) as client:
        assert run(client, args) == EXIT_OK
    assert answers == [] and '"same": true' in capsys.readouterr().out


def test_names_the_service_would_refuse_exit_2_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "1.jpg").write_bytes(b"jpeg")
    (tmp_path / "no name").mkdir()
    (tmp_path / "no name" / "1.jpg").write_bytes(b"jpeg")
    seen: list[httpx.Request] = []
    refused = httpx.Response(422, json={"code": "no_face", "message": "images.data[0]: no face"})
    with _verify_against(refused, seen) as client:
        recognize = ["recognize", str(tmp_path / "ann" / "1.jpg"), "--collection", ".."]
        assert run(client, _parser().parse_args(recognize)) == EXIT_ERROR
        assert "collection name '..' is not valid" in capsys.readouterr().err
        # The collection's name would also have made the resume file's name: refused first.
        enroll = ["enroll", str(tmp_path), "--collection", "../up"]
        assert run(client, _parser().parse_args(enroll)) == EXIT_ERROR
        assert "collection name '../up' is not valid" in capsys.readouterr().err
        assert seen == [] and not list(tmp_path.rglob(".facerest-enroll-*"))
        # A folder whose name is no subject name fails its own images, listed; the others go.
        assert run(client, _parser().parse_args(["enroll", str(tmp_path), "--collection", "c"])) == EXIT_ERROR
    assert [r.url.path for r in seen] == ["/collections/c/subjects/ann/faces"]
    assert "subject name 'no name' is not valid" in capsys.readouterr().err
