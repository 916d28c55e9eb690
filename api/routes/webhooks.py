"""GET /webhooks/secret: the secret this API key's webhooks are signed with (docs/webhooks.md).

With API keys on, each key's deliveries are signed with a secret of its own, derived from
FACEREST_WEBHOOK_SECRET (shared/webhooks.py key_secret): its holder asks for it here with the key.
With keys off there is one secret, the setting itself, which the operator gives to receivers: it
is not told to anyone who can reach the API.
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from api.auth import request_owner
from api.context import context
from api.openapi import Operation, Reply, documented
from api.render import encode
from api.schemas import ErrorDetail
from shared.errors import NoWebhookSecret
from shared.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, key_secret

bp = Blueprint("webhooks", __name__)


@with_config(ConfigDict(extra="forbid"))
class WebhookSecretBody(TypedDict):
    secret: str
    algorithm: Literal["HMAC-SHA256"]
    signature_header: str
    timestamp_header: str


@bp.get("/webhooks/secret")
@documented(
    Operation(
        summary="The secret this API key's webhook deliveries are signed with",
        description="HMAC-SHA256 of TIMESTAMP.BODY (docs/webhooks.md). Only with API keys on: each "
        "key has its own; with keys off the operator gives receivers FACEREST_WEBHOOK_SECRET.",
        replies={
            200: Reply("The key's secret", WebhookSecretBody),
            404: Reply("no_webhook_secret: webhooks are off, or API keys are", ErrorDetail),
        },
    )
)
def secret() -> Response:
    ctx = context()
    service_secret = ctx.settings.webhook_secret.get_secret_value()
    if not service_secret:
        raise NoWebhookSecret("webhooks are off here: the operator has not set FACEREST_WEBHOOK_SECRET")
    if not ctx.api_keys.enabled:
        raise NoWebhookSecret(
            "API keys are off: deliveries are signed with FACEREST_WEBHOOK_SECRET itself; ask the operator"
        )
    body: WebhookSecretBody = {
        "secret": key_secret(service_secret, request_owner(ctx.api_keys)),
        "algorithm": "HMAC-SHA256",
        "signature_header": SIGNATURE_HEADER,
        "timestamp_header": TIMESTAMP_HEADER,
    }
    response = encode(body, False)
    response.headers["Cache-Control"] = "no-store"
    return response
