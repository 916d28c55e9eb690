"""api/bodies.py: one typed request from JSON, MessagePack or multipart, and the answer-format rule."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import msgpack
import orjson
import pytest
from flask import Flask
from pydantic import ValidationError
from werkzeug.exceptions import UnsupportedMediaType

from api.bodies import Body, Wire, parse, read_body
from api.render import request_warnings
from api.schemas import (
    DrawRequest,
    EnrollRequest,
    ExtractRequest,
    RecognizeRequest,
    VerifyRequest,
    max_size_pair,
)
from api.schemas.people import IngestRequest
from shared.contract import DEFAULT_THRESHOLD
from shared.errors import InvalidRequest
from shared.settings import ResponseFormat

APP = Flask("test-bodies")
JPEG = b"\xff\xd8\xff\xe0 raw image bytes"


def _read(data: bytes, content_type: str, model: type[ExtractRequest] = ExtractRequest) -> Body[Any]:
    with APP.test_request_context("/extract", method="POST", data=data, content_type=content_type):
        return read_body(model)


def _multipart(form: dict[str, Any]) -> Body[Any]:
    with APP.test_request_context("/extract", method="POST", data=form, content_type="multipart/form-data"):
        return read_body(ExtractRequest)


def test_json_carries_base64_text() -> None:
    body = _read(orjson.dumps({"images": {"data": ["aGk="]}, "threshold": 0.5}), "application/json")
    assert body.wire == "json"
    assert body.request.images.data == ["aGk="] and body.request.threshold == 0.5


def test_msgpack_carries_raw_bytes_and_text() -> None:
    packed = msgpack.dumps({"images": {"data": [JPEG, "aGk="]}, "msgpack": True})
    body = _read(packed, "application/msgpack")
    assert body.wire == "msgpack"
    assert body.request.images.data == [JPEG, "aGk="]
    assert body.request.msgpack is True


@pytest.mark.parametrize(
    ("packed", "problem"),
    [
        (b"\xc1\x00", "a byte that starts no MessagePack value"),
        (b"\x91" * 100_000 + b"\xc0", "nested too deep"),
        (b"\x81\x01\x02", "a map key is not a string"),
        # msgpack said "4294967295 exceeds max_array_len(5)": its own limit, not the problem.
        (b"\xdd\xff\xff\xff\xff", "it ends before the values it declares are complete"),
        (b"\x81\xa1a", "it ends before the values it declares are complete"),
        (b"\x91\x01\x02", "bytes follow the first value"),
        (b"\xa1\xff", "a string is not UTF-8"),
        (b"", "the body is empty"),
    ],
)
def test_bad_msgpack_is_invalid_request_in_our_words(packed: bytes, problem: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _read(packed, "application/x-msgpack")
    assert refused.value.message == f"body is not valid MessagePack: {problem}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # orjson said "str is not valid UTF-8: surrogates not allowed" for any bytes not UTF-8.
        (b'{"images": "\xed\xa0\x80"}', "the text is not UTF-8"),
        (b'{"images": "\xff"}', "the text is not UTF-8"),
        (b'{"images": {"data": [', "it ends before the value is complete"),
        (b'{"images" 1}', "syntax error at line 1, column 11"),
        (b'"\\ud800"', "syntax error at line 1, column 2"),
        (b"{}\n[]", "more follows the value, at line 2, column 1"),
        (b"[" * 5000, "nested too deep"),
        (b"", "the body is empty"),
    ],
)
def test_bad_json_is_invalid_request_in_our_words(text: bytes, problem: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _read(text, "application/json")
    assert refused.value.message == f"body is not valid JSON: {problem}"


def test_a_form_field_that_must_be_json_names_the_problem_in_our_words() -> None:
    with pytest.raises(InvalidRequest) as refused:
        _multipart({"file": (io.BytesIO(JPEG), "a.jpg"), "img_req_headers": '{"Cookie" "a=b"}'})
    assert (
        refused.value.message
        == "form field img_req_headers: not a JSON object: syntax error at line 1, column 11"
    )


def test_a_body_without_images_is_not_read_from_a_form() -> None:
    """A multipart rename said "not valid JSON" about the form's bytes."""
    with pytest.raises(UnsupportedMediaType, match="takes a JSON or MessagePack body"):
        parse(b"--x\r\n", "multipart")


def test_multipart_files_and_text_options() -> None:
    body = _multipart(
        {
            "file": [(io.BytesIO(JPEG), "a.jpg"), (io.BytesIO(JPEG + b"2"), "b.jpg")],
            "urls": ["http://images.example/c.jpg"],
            "threshold": "0.5",
            "return_landmarks": "106",
            "extract_ga": "true",
            "max_size": "640,480",
            "img_req_headers": '{"Cookie": "a=b"}',
        }
    )
    req = body.request
    assert body.wire == "multipart"
    assert req.images.data == [JPEG, JPEG + b"2"]
    assert req.images.urls == ["http://images.example/c.jpg"]
    assert req.threshold == 0.5 and req.return_landmarks == "106" and req.extract_ga is True
    assert max_size_pair(req.max_size) == (640, 480)
    assert req.img_req_headers == {"Cookie": "a=b"}


def test_multipart_photo_id_parts_are_the_photo_ids_in_order() -> None:
    def form(photo_ids: list[str]) -> dict[str, Any]:
        return {
            "file": [(io.BytesIO(JPEG), "a.jpg"), (io.BytesIO(JPEG + b"2"), "b.jpg")],
            "photo_id": photo_ids,
        }

    with APP.test_request_context(
        "/photos", method="POST", data=form(["trip/a.jpg", "trip/b.jpg"]), content_type="multipart/form-data"
    ):
        req = read_body(IngestRequest).request
    assert req.images.data == [JPEG, JPEG + b"2"] and req.photo_ids == ["trip/a.jpg", "trip/b.jpg"]
    with (
        APP.test_request_context(
            "/photos",
            method="POST",
            data=form(["ok", "bad id!"]),
            content_type="multipart/form-data",
        ),
        pytest.raises(ValidationError, match="photo_ids"),
    ):
        read_body(IngestRequest)


def test_multipart_draw_options_as_insightface_rest_sends_them() -> None:
    form = {"file": (io.BytesIO(JPEG), "a.jpg"), "draw_landmarks": "false", "use_rotation": "false"}
    with APP.test_request_context("/d", method="POST", data=form, content_type="multipart/form-data"):
        req = read_body(DrawRequest).request
    assert req.images.data == [JPEG] and req.draw_landmarks is False and req.draw_scores is True


@pytest.mark.parametrize(
    "option",
    [{"min_face_size": 2**70}, {"limit_faces": 2**31}, {"max_size": 2**70}, {"max_size": [640, 2**70]}],
)
def test_pixel_counts_past_the_job_contract_are_refused_not_a_server_error(option: dict[str, Any]) -> None:
    # Found by schemathesis: a 113-bit min_face_size in a form passed validation and failed to
    # encode into the job (500).
    form = {"file": (io.BytesIO(JPEG), "a.jpg")} | {name: json.dumps(value) for name, value in option.items()}
    with pytest.raises(ValidationError):
        _multipart(form)


def test_null_options_mean_their_defaults() -> None:
    packed = msgpack.dumps({"images": {"data": [JPEG]}, "img_req_headers": None, "threshold": None})
    req = _read(packed, "application/msgpack").request
    assert req.img_req_headers == {} and req.threshold == DEFAULT_THRESHOLD


def test_the_digest_is_of_the_bytes_sent() -> None:
    first = _read(orjson.dumps({"images": {"data": ["aGk="]}}), "application/json")
    again = _read(orjson.dumps({"images": {"data": ["aGk="]}}), "application/json")
    other = _read(orjson.dumps({"images": {"data": ["aGo="]}}), "application/json")
    assert first.digest == again.digest != other.digest


@pytest.mark.parametrize(
    ("fields", "wire", "setting", "expected"),
    [
        ({}, "json", "auto", "1"),  # 2020's request
        ({"max_size": [640, 480], "return_landmarks": True}, "json", "auto", "1"),
        ({}, "msgpack", "auto", "2"),  # today's client, MessagePack
        ({}, "multipart", "auto", "2"),
        ({"msgpack": False, "img_req_headers": {}}, "json", "auto", "2"),  # today's client, JSON
        ({"detect_masks": False}, "json", "auto", "2"),
        ({"api_ver": "1"}, "msgpack", "auto", "1"),  # explicit api_ver wins
        ({"api_ver": 2}, "json", "auto", "2"),
        ({"msgpack": True}, "json", "v1", "1"),  # the deployment's default
        ({}, "json", "envelope", "2"),
        ({"api_ver": "1"}, "json", "envelope", "1"),
    ],
)
def test_answer_format_rule(
    fields: dict[str, Any], wire: Wire, setting: ResponseFormat, expected: str
) -> None:
    request = ExtractRequest.model_validate({"images": {"data": ["aGk="]}, **fields})
    assert Body(request, wire, "").api_ver(setting) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "a"},
        {"accept-encoding": "gzip"},
        {"Proxy-Authorization": "x"},
        {"X-A": "b\r\nX-B: c"},
        {"a b": "c"},
    ],
)
def test_fetch_headers_the_fetcher_owns_or_that_break_lines_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="img_req_headers"):
        ExtractRequest.model_validate(
            {"images": {"urls": ["http://a.example/x.jpg"]}, "img_req_headers": headers}
        )


def test_recognition_requests_come_in_every_wire_form_and_refuse_unknown_fields() -> None:
    form = {"file": [(io.BytesIO(JPEG), "a.jpg")], "face": "only", "max_size": "640,480", "async": "true"}
    with APP.test_request_context("/faces", method="POST", data=form, content_type="multipart/form-data"):
        enroll = read_body(EnrollRequest)
    assert enroll.wire == "multipart" and enroll.request.images.data == [JPEG]
    assert enroll.request.face == "only" and enroll.request.run_async is True
    assert max_size_pair(enroll.request.max_size) == (640, 480)
    packed = msgpack.dumps({"images": {"data": [JPEG, JPEG]}, "threshold": 0.4, "subject": None})
    with APP.test_request_context("/verify", method="POST", data=packed, content_type="application/msgpack"):
        verify = read_body(VerifyRequest)
    assert verify.request.images.data == [JPEG, JPEG] and verify.request.threshold == 0.4
    assert verify.request.subject is None
    typo = orjson.dumps({"images": {"data": ["aGk="]}, "limt": 5})
    with (
        APP.test_request_context("/recognize", method="POST", data=typo, content_type="application/json"),
        pytest.raises(ValidationError, match="limt"),
    ):
        read_body(RecognizeRequest)


def test_threshold_is_a_detection_score_on_extract_and_a_similarity_in_recognition() -> None:
    images = {"data": ["aGk="]}
    extract = ExtractRequest.model_validate({"images": images, "threshold": 0.7, "max_size": 640})
    assert extract.options(10).threshold == 0.7
    recognize = RecognizeRequest.model_validate(
        {"images": images, "threshold": -0.2, "det_threshold": 0.7, "detector": "mtcnn", "max_size": 640}
    )
    options = recognize.options(10)
    assert (options.threshold, options.detector, options.max_size) == (0.7, "mtcnn", (640, 640))
    assert recognize.threshold == -0.2
    # The detector options are /extract's, validated by the same rules.
    with pytest.raises(ValidationError, match="each side must be 0 or at least 32"):
        VerifyRequest.model_validate({"images": images, "max_size": 16})
    extract_doc = ExtractRequest.model_json_schema()["properties"]
    recognize_doc = RecognizeRequest.model_json_schema()["properties"]
    assert extract_doc["threshold"]["description"].startswith("Detection score (0-1)")
    assert recognize_doc["det_threshold"]["description"].startswith("Detection score (0-1)")
    assert recognize_doc["threshold"]["description"].startswith("Match threshold: the cosine similarity")
    assert recognize_doc["max_size"]["description"] == extract_doc["max_size"]["description"]


def _swagger_sample(prop: dict[str, Any]) -> Any:
    """What Swagger UI 5 (5.24.2, the one /docs serves) fills a form field with: the schema's
    default, else a placeholder by type (checked against the real page in Chromium)."""
    first = (prop.get("anyOf") or prop.get("oneOf") or [{}])[0]
    merged = {**prop, **first}
    if "default" in prop:
        return prop["default"]
    if "enum" in merged:
        return merged["enum"][0]
    kind = str(merged.get("type"))
    if kind == "array":
        return [_swagger_sample(merged.get("items", {}))]
    if kind == "object":
        return {f"additionalProp{n}": "string" for n in (1, 2, 3)}
    return {"string": "string", "boolean": True, "integer": 0, "number": 0}.get(kind)


def _swagger_text(value: Any) -> str:
    """A sample as the form sends it: arrays joined by commas, the rest as JSON text."""
    if isinstance(value, list):
        return ",".join(_swagger_text(item) for item in value)
    return value if isinstance(value, str) else orjson.dumps(value).decode()


MULTIPART_MODELS: dict[str, type[Any]] = {
    "/extract": ExtractRequest,
    "/draw_detections": DrawRequest,
    "/collections/{collection}/recognize": RecognizeRequest,
    "/collections/{collection}/subjects/{subject}/faces": EnrollRequest,
    "/verify": VerifyRequest,
}


@pytest.mark.parametrize("path", sorted(MULTIPART_MODELS))
def test_swagger_try_it_out_form_as_it_comes_asks_for_the_defaults(path: str) -> None:
    from api.openapi import build_openapi
    from api.routes import BLUEPRINTS

    document = build_openapi(BLUEPRINTS, "test")
    form_schema = document["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    form: dict[str, Any] = {"file": [(io.BytesIO(JPEG), "a.jpg")]}
    for name, prop in form_schema["properties"].items():
        if name != "file":
            form[name] = _swagger_text(_swagger_sample(prop))
    assert form["urls"] == "" and form["img_req_headers"] == "{}"
    model = MULTIPART_MODELS[path]
    with APP.test_request_context(path, method="POST", data=form, content_type="multipart/form-data"):
        body = read_body(model)
    assert body.request.images.data == [JPEG] and body.request.images.urls == []
    defaults = model.model_validate({"images": {"data": [JPEG]}})
    assert body.request.model_dump() == defaults.model_dump()


def test_a_form_without_a_file_field_names_the_field_expected_and_the_ones_sent() -> None:
    wrong_name = {"image": [(io.BytesIO(JPEG), "photo.jpg")], "threshold": "0.5"}
    with pytest.raises(InvalidRequest) as refused:
        _multipart(wrong_name)
    assert refused.value.message == (
        "no image: the file(s) came in form field(s) 'image'; each image is a file upload in a form "
        "field named 'file' (curl -F file=@photo.jpg)"
    )
    with pytest.raises(InvalidRequest) as refused:
        _multipart({"file": "photo.jpg"})  # curl -F file=photo.jpg: the path as text, no @
    assert refused.value.message == (
        "no image: form field 'file' holds text ('photo.jpg'), not a file upload; curl needs @ "
        "before the path: -F file=@photo.jpg"
    )
    with pytest.raises(InvalidRequest, match="or image URLs in 'urls' fields"):
        _multipart({"threshold": "0.5"})


def test_unknown_extract_fields_are_accepted_named_in_the_warnings_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    typos = {"images": {"data": ["aGk="]}, "treshold": 0.3, "return_landmark": True, "client\n": 1}
    with caplog.at_level(logging.WARNING, logger="facerest.api"):
        body = _read(orjson.dumps(typos), "application/json")
    assert body.request.threshold == DEFAULT_THRESHOLD and body.request.return_landmarks is False
    assert body.unknown == ("client\\n", "return_landmark", "treshold")
    assert request_warnings(body.request, body.unknown) == (
        "unknown fields ignored: client\\n, return_landmark (did you mean return_landmarks?), "
        "treshold (did you mean threshold?)",
    )
    (logged,) = [r for r in caplog.records if "unknown fields" in r.getMessage()]
    assert logged.getMessage() == "/extract: unknown fields ignored: client\\n, return_landmark, treshold"
    form = _multipart({"file": [(io.BytesIO(JPEG), "a.jpg")], "treshold": "0.3"})
    assert form.unknown == ("treshold",)
    assert _multipart({"file": [(io.BytesIO(JPEG), "a.jpg")], "threshold": "0.3"}).unknown == ()
