"""``breakwater sample``: post a correctly signed sample webhook to a running edge.

It signs with the provider's first configured secret, exactly as the provider would, so it also
shows a newcomer what a real delivery looks like. SendGrid and PayPal sign with private keys that
only they hold (the edge is configured with their public key or certificate), so they are not offered.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated

import httpx
import typer

from services.cli.errors import ExitCode, fail
from services.edge.verifiers.signers import (
    sample_body,
    sign_github,
    sign_shopify,
    sign_standard,
    sign_stripe,
)

HMAC_KINDS = ("stripe", "github", "shopify", "standard")


def signed_sample(kind: str, secret: str, *, event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A realistic body for ``kind`` and the headers that sign it with ``secret``."""
    now = int(time.time())
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    body = sample_body(kind, event_id=event_id, now=now)
    if kind == "stripe":
        return body, sign_stripe(body, secret, now)
    if kind == "github":
        return body, sign_github(body, secret, delivery=event_id)
    if kind == "shopify":
        return body, sign_shopify(body, secret, webhook_id=event_id)
    if kind == "standard":
        return body, sign_standard(body, secret, timestamp=now, msg_id=event_id)
    raise ValueError(
        f"{kind} signs with a private key only the provider holds; try one of {', '.join(HMAC_KINDS)}"
    )


def sample(
    ctx: typer.Context,
    provider: Annotated[str, typer.Argument(help="A configured provider name, e.g. stripe.")],
    url: Annotated[
        str | None, typer.Option(help="Edge base URL (default: http://edge.host:edge.port).")
    ] = None,
    event_id: Annotated[
        str | None, typer.Option(help="Provider event id to use (send twice to see dedup).")
    ] = None,
) -> None:
    """Post one signed sample webhook for PROVIDER to the edge and print the answer."""
    settings = ctx.obj.settings
    if provider not in settings.providers:
        fail(f"no provider {provider!r} in the configuration", ExitCode.USAGE)
    kind = settings.provider_kind(provider)
    secret = settings.providers[provider].secrets[0].get_secret_value()
    try:
        body, headers = signed_sample(kind, secret, event_id=event_id)
    except ValueError as exc:
        fail(exc, ExitCode.USAGE)
    base = (url or f"http://{settings.edge.host}:{settings.edge.port}").rstrip("/")
    _check_url(base)
    try:
        response = httpx.post(f"{base}/webhooks/{provider}", content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the edge at {base}: {exc}")
    typer.echo(f"{response.status_code} {describe_body(response.content)}")
    if response.status_code != 202:
        raise typer.Exit(ExitCode.FAILED)


def describe_body(content: bytes) -> str:
    """The edge's JSON answer on one line; anything else (a proxy's HTML 503) by its first line."""
    try:
        return json.dumps(json.loads(content))
    except ValueError:
        pass
    text = content.decode("utf-8", "replace").strip()
    if not text:
        return "(empty body)"
    first = text.splitlines()[0].strip()
    return first if len(first) <= 200 else f"{first[:200]}…"


def _check_url(base: str) -> None:
    """--url is validated like a setting: http(s), a host, a port from 1 to 65535."""
    try:
        parsed = httpx.URL(base)
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as exc:
        fail(f"--url {base!r} is not a URL: {exc}", ExitCode.USAGE)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        fail(f"--url must be http(s)://host[:port], not {base!r}", ExitCode.USAGE)
    if port is not None and not 1 <= port <= 65535:
        fail(f"--url port must be 1 to 65535, not {port}", ExitCode.USAGE)
