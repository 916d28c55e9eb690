"""The OpenAPI document, generated from the routes and the wire types in api/schemas/.

Each route declares its ``Operation`` with ``@documented``; the document walks the URL map of
the registered blueprints and asks pydantic for the JSON schema of the very types that validate
requests (ExtractRequest) and type the bodies the routes build (TypedDicts), so the document
cannot drift from what is validated and sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, Flask
from pydantic import TypeAdapter

from api.bodies import FORM_ITEM_FIELDS
from api.schemas import ErrorDetail

View = TypeVar("View", bound=Callable[..., Any])

OPENAPI_ATTRIBUTE = "__openapi__"
MSGPACK = "application/x-msgpack"
REF_TEMPLATE = "#/components/schemas/{model}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One documented response: its description and body type (None: no schema)."""

    description: str
    body: Any = None
    msgpack: bool = False  # also sent as MessagePack when asked
    retry_after: bool = False  # carries a Retry-After header
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Header:
    """A request header the operation reads (never required)."""

    name: str
    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Upload:
    """The request also comes as multipart/form-data: image files in ``field``, options as form
    fields (api/bodies.py), so Swagger's Try it out shows a file picker."""

    field: str = "file"
    multiple: bool = True  # the field may repeat: one image per file


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    replies: Mapping[int, Reply]
    request: Any = None  # the type that validates the body (JSON, and MessagePack when msgpack_request)
    msgpack_request: bool = False  # also application/msgpack: images.data as raw bytes
    upload: Upload | None = None  # also (or, without request media types, only) multipart
    multipart_only: bool = False
    # A multipart form of its own (a pydantic model, files as bytes fields): the drop-in
    # protocols' forms, which are not a request model's options beside an image field.
    form: Any = None
    query: tuple[Query, ...] = ()
    headers: tuple[Header, ...] = ()
    # Needs no API key (health checks, readiness): the auth replies are not documented either.
    open: bool = False
    description: str = ""  # more than the summary says, when the operation needs it


def documented(operation: Operation) -> Callable[[View], View]:
    """Attach ``operation`` to a view function for build_openapi."""

    def attach(view: View) -> View:
        setattr(view, OPENAPI_ATTRIBUTE, operation)
        return view

    return attach


AUTH_REPLIES: Mapping[int, str] = {
    401: "API keys are on and no X-API-Key header was sent",
    403: "The API key is not valid",
}
PATH_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class _Schemas:
    """Collects the types an operation names and turns them into component schemas at the end."""

    def __init__(self) -> None:
        self._types: dict[str, tuple[Any, str]] = {}

    def ref(self, body: Any, mode: str = "serialization") -> dict[str, str]:
        key = f"{mode}:{len(self._types)}"
        self._types[key] = (body, mode)
        return {"$facerest_type": key}

    def resolve(self, document: dict[str, Any]) -> None:
        """Replace each placeholder by its schema; shared types go to components.schemas."""
        adapters = [(key, mode, TypeAdapter(body)) for key, (body, mode) in self._types.items()]
        by_key, defs = TypeAdapter.json_schemas(adapters, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
        schemas = {key: schema for (key, _), schema in by_key.items()}

        def substitute(node: Any) -> Any:
            if isinstance(node, dict):
                if "$facerest_type" in node:
                    return schemas[node["$facerest_type"]]
                return {k: substitute(v) for k, v in node.items()}
            if isinstance(node, list):
                return [substitute(v) for v in node]
            return node

        document["paths"] = substitute(document["paths"])
        document["components"]["schemas"] = defs.get("$defs", {})


# A file: Swagger UI 5 shows a file picker for an OpenAPI 3.1 schema with contentMediaType (its
# 3.0 rule, format binary, is kept for other tools).
BINARY: Mapping[str, str] = {
    "type": "string",
    "format": "binary",
    "contentMediaType": "application/octet-stream",
}


def _form_schema(model: Any, upload: Upload) -> dict[str, Any]:
    """The multipart form of ``model``: its options as fields, next to the file field."""
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    options = {name: prop for name, prop in schema["properties"].items() if name != "images"}
    files: dict[str, Any] = {"type": "array", "items": dict(BINARY)} if upload.multiple else dict(BINARY)
    files["description"] = "Image file" + ("s, one image per part" if upload.multiple else "")
    # default []: without it Swagger UI's Try it out fills in (and sends) the URL "string".
    urls = {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": "Image URLs (images.urls)",
    }
    for part, listed in FORM_ITEM_FIELDS.items():
        if listed in options:  # sent as one part per item: the form names the part
            item = options.pop(listed)
            options[part] = {
                **item,
                "description": f"One part per item of {listed}: {item.get('description', '')}",
            }
    return {"type": "object", "properties": {upload.field: files, "urls": urls, **options}}


def _request_body(operation: Operation, schemas: _Schemas) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if operation.request is not None and not operation.multipart_only:
        content["application/json"] = {"schema": schemas.ref(operation.request, "validation")}
        if operation.msgpack_request:
            content["application/msgpack"] = {
                "schema": schemas.ref(operation.request, "validation"),
                "description": "The same map in MessagePack; images.data may hold raw bytes (bin)",
            }
    if operation.upload is not None:
        content["multipart/form-data"] = {"schema": _form_schema(operation.request, operation.upload)}
    if operation.form is not None:
        content["multipart/form-data"] = {"schema": schemas.ref(operation.form, "validation")}
    return {"required": True, "content": content}


def _reply(reply: Reply, schemas: _Schemas) -> dict[str, Any]:
    if reply.body is not None:
        schema = schemas.ref(reply.body)
    else:
        schema = dict(BINARY) if reply.media_type.startswith("image/") else {}
    content = {reply.media_type: {"schema": schema}}
    if reply.msgpack:
        content[MSGPACK] = {"schema": {}}
    out: dict[str, Any] = {"description": reply.description, "content": content}
    if reply.retry_after:
        out["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
    return out


def _operation(
    operation: Operation, path_arguments: list[str], schemas: _Schemas, auth_replies: Mapping[int, Reply]
) -> Any:
    out: dict[str, Any] = {"summary": operation.summary}
    if operation.description:
        out["description"] = operation.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_arguments
    ]
    parameters += [
        {"name": q.name, "in": "query", "required": False, "description": q.description, "schema": q.schema}
        for q in operation.query
    ]
    parameters += [
        {"name": h.name, "in": "header", "required": False, "description": h.description, "schema": h.schema}
        for h in operation.headers
    ]
    if parameters:
        out["parameters"] = parameters
    if operation.request is not None or operation.form is not None:
        out["requestBody"] = _request_body(operation, schemas)
    replies = dict(operation.replies)
    if operation.open:
        out["security"] = []
    else:
        replies |= auth_replies
    out["responses"] = {str(status): _reply(replies[status], schemas) for status in sorted(replies)}
    return out


DESCRIPTION = "Face detection, alignment and ArcFace embeddings over HTTP."


def build_openapi(
    blueprints: Iterable[Blueprint],
    version: str,
    title: str = "facerest",
    description: str = DESCRIPTION,
    key_header: str = "X-API-Key",
    auth_replies: Mapping[int, Reply] | None = None,
) -> dict[str, Any]:
    """The document for the ``@documented`` routes of these blueprints. ``auth_replies``: the
    replies every operation that is not ``open`` adds (default: facerest's 401 and 403)."""
    if auth_replies is None:
        auth_replies = {status: Reply(text, ErrorDetail) for status, text in AUTH_REPLIES.items()}
    app = Flask("facerest-openapi")
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        operation = getattr(app.view_functions[rule.endpoint], OPENAPI_ATTRIBUTE, None)
        if not isinstance(operation, Operation):
            continue
        path = PATH_ARGUMENT.sub(r"{\1}", rule.rule)
        arguments = PATH_ARGUMENT.findall(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                operation, arguments, schemas, auth_replies
            )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": description,
        },
        "paths": paths,
        # API keys are optional (FACEREST_API_KEYS): without them every operation is open.
        "security": [{}, {"ApiKey": []}],
        "components": {"securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": key_header}}},
    }
    schemas.resolve(document)
    return document
