"""schemathesis against the API's own OpenAPI document: bounded, no 5xx, responses as documented.

Driven through schemathesis' Python API with one Hypothesis run per operation and generation mode
(its pytest fixture loader does not work with pytest 9).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import TypeAdapter
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import build_openapi
from api.routes import BLUEPRINTS
from api.schemas import ExtractV1, ExtractV2, JobAccepted, JobStateBody
from testkit.photos import GROUP_PHOTOS

# Generated URLs must never make the API resolve or fetch a real host name: keep them on loopback
# (the API refuses them: not in the default allow-list).
LOOPBACK_URLS = ("http://127.0.0.1:9/a.jpg", "https://[::1]/x.png", "ftp://127.0.0.1/a", "file:///etc/passwd")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 100  # per operation and mode: the whole file runs in well under two minutes on 2 cores

SCHEMA = schemathesis.openapi.from_dict(build_openapi(BLUEPRINTS, "test"))
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}  # type: ignore[union-attr]
# Negative data (violating the schema): for the request body (any path segment is a valid id).
RUNS = [(label, GenerationMode.POSITIVE) for label in sorted(OPERATIONS)] + [
    (label, GenerationMode.NEGATIVE)
    for label, operation in sorted(OPERATIONS.items())
    if "requestBody" in operation.definition.raw
]


def _loopback_only(body: Any) -> None:
    if isinstance(body, dict) and isinstance(body.get("url"), str):  # POST /videos
        body["url"] = LOOPBACK_URLS[len(body["url"]) % len(LOOPBACK_URLS)]
    images = body.get("images") if isinstance(body, dict) else None
    if isinstance(images, dict) and isinstance(images.get("urls"), list):
        urls = images["urls"]
        images["urls"] = [LOOPBACK_URLS[i % len(LOOPBACK_URLS)] for i in range(len(urls))]


def test_served_document_is_the_tested_one(api: str) -> None:
    served = requests.get(f"{api}/openapi.json", timeout=10).json()
    assert set(served["paths"]) == set(SCHEMA.raw_schema["paths"])
    assert served["components"] == SCHEMA.raw_schema["components"]


@pytest.mark.parametrize(("label", "mode"), RUNS, ids=[f"{label} {mode}" for label, mode in RUNS])
def test_api_conforms_to_its_openapi_document(api: str, label: str, mode: GenerationMode) -> None:
    session = requests.Session()

    @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case[Any]) -> None:
        _loopback_only(case.body)
        case.call_and_validate(base_url=api, session=session, checks=CHECKS, timeout=60)

    run()


@pytest.mark.parametrize("api_ver", ["1", "2"])
def test_every_field_of_a_full_answer_is_in_the_documented_type(api: str, api_ver: str) -> None:
    """The response types forbid unknown keys: a field the API sends but the schema lacks fails."""
    photo = base64.b64encode(GROUP_PHOTOS["t1.jpg"].read_bytes()).decode()
    body = {
        "images": {"data": [photo, "bm90IGFuIGltYWdl"]} if api_ver == "2" else {"data": [photo]},
        "api_ver": api_ver,
        "return_landmarks": "106",
        "extract_ga": True,
        "return_face_data": True,
        "verbose_timings": True,
    }
    response = requests.post(f"{api}/extract", json=body, timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    kind: Any = ExtractV1 if api_ver == "1" else ExtractV2
    TypeAdapter(kind).validate_python(answer, strict=False)
    faces = answer[0] if api_ver == "1" else answer["data"][0]["faces"]
    assert faces and {"landmarks106", "gender", "age", "facedata"} <= set(faces[0])

    queued = requests.post(f"{api}/extract", json={**body, "async": True}, timeout=60).json()
    TypeAdapter(JobAccepted).validate_python(queued)
    state = requests.get(f"{api}/results/{queued['id']}?wait=25", timeout=60).json()
    TypeAdapter(JobStateBody).validate_python(state)
    assert state["status"] == "done"
