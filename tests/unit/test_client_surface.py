"""The client cannot drift: its options are the server's request fields by name, and its sync and
asyncio classes have the same methods with the same signatures."""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Iterator

import httpx
import msgpack
import pytest
from facerest_client import AsyncFaceRest, FaceRest
from pydantic import BaseModel

from api.schemas import DrawRequest, EnrollRequest, ExtractRequest, RecognizeRequest, VerifyRequest
from api.schemas.people import IngestRequest
from api.schemas.videos import VideoRequest

# Each method that sends a request body: the server's model of that body, and the method's
# parameters that are not body fields (the images, which become "images", and path segments).
BODIES: dict[str, tuple[type[BaseModel], frozenset[str]]] = {
    "extract": (ExtractRequest, frozenset({"images", "urls"})),
    "submit": (ExtractRequest, frozenset({"images", "urls"})),
    "draw": (DrawRequest, frozenset({"image"})),
    "enroll": (EnrollRequest, frozenset({"collection", "subject", "images", "urls"})),
    "ingest": (IngestRequest, frozenset({"collection", "images", "urls"})),
    "recognize": (RecognizeRequest, frozenset({"collection", "images", "urls"})),
    "verify": (VerifyRequest, frozenset({"images", "urls"})),
    "submit_video": (VideoRequest, frozenset({"video"})),
}
# Server fields deliberately not options of the client, and why.
NOT_OPTIONS = {
    "images": "the images and urls arguments",
    "api_ver": 'always "2": the client reads the envelope only',
    "msgpack": "the answer's format follows use_msgpack (the Accept header)",
    "async": "submit() is extract's queued form; the other methods wait for their answer",
    "detect_masks": "not supported (mask_probs null and a warning): kept for InsightFace-REST's clients",
}
NOT_DRAW_OPTIONS = {"img_req_headers": "draw sends one image's bytes: no URL to fetch"}


@pytest.fixture
def clients() -> Iterator[tuple[FaceRest, AsyncFaceRest]]:
    sync, aio = FaceRest(), AsyncFaceRest()  # no request is sent
    yield sync, aio
    sync.close()
    asyncio.run(aio.close())


def _options(method: typing.Callable[..., object], not_fields: frozenset[str]) -> set[str]:
    """The body fields a client method takes: its own parameters and its options' keys."""
    names = set()
    for parameter in inspect.signature(method).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # **opts: Unpack[SomeOptions]
            (options,) = typing.get_args(parameter.annotation)
            names |= options.__required_keys__ | options.__optional_keys__
        elif parameter.name not in not_fields:
            names.add(parameter.name)
    return names


def _fields(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_the_client_s_options_are_the_server_s_request_fields(
    name: str, clients: tuple[FaceRest, AsyncFaceRest]
) -> None:
    model, not_fields = BODIES[name]
    left_out = NOT_OPTIONS | (NOT_DRAW_OPTIONS if name == "draw" else {})
    assert _options(getattr(clients[0], name), not_fields) == _fields(model) - set(left_out)


def test_the_left_out_fields_are_still_the_server_s() -> None:
    """A field the server drops must leave the lists above too."""
    every = set().union(*(_fields(model) for model, _ in BODIES.values()))
    assert set(NOT_OPTIONS) <= every and set(NOT_DRAW_OPTIONS) <= _fields(DrawRequest)


def _public(client: object) -> dict[str, typing.Callable[..., object]]:
    return {name: getattr(client, name) for name in dir(client) if not name.startswith("_")}


def test_sync_and_async_clients_have_the_same_methods_and_signatures(
    clients: tuple[FaceRest, AsyncFaceRest],
) -> None:
    sync, aio = (_public(client) for client in clients)
    assert sync.keys() == aio.keys() and {"extract", "verify", "close"} <= sync.keys()
    for name, method in sync.items():
        # An async def's signature names what its coroutine returns: the same as the sync one's.
        assert inspect.signature(method) == inspect.signature(aio[name]), name
        assert inspect.iscoroutinefunction(aio[name]) and not inspect.iscoroutinefunction(method), name
        assert method.__doc__ == aio[name].__doc__, name
    # The constructors too, but for the transport's class (httpx's sync or async one).
    sync_init, aio_init = (inspect.signature(cls).parameters.values() for cls in (FaceRest, AsyncFaceRest))
    assert [(p.name, p.kind, p.default) for p in sync_init] == [(p.name, p.kind, p.default) for p in aio_init]


def test_flip_reaches_the_extract_body() -> None:
    bodies: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(msgpack.unpackb(request.content))
        return httpx.Response(202, json={"id": "j", "status": "queued", "status_url": "/results/j"})

    with FaceRest("http://facerest.test", transport=httpx.MockTransport(answer)) as client:
        client.submit([b"jpeg"], flip=True, max_size=(640, 640))
    (body,) = bodies
    assert body["flip"] is True and body["max_size"] == [640, 640] and body["async"] is True
