"""Hostile requests for the real edge, for every provider kind, and the accounting of their answers.

:func:`edge_and_worker` serves the edge (all six provider kinds, two secrets each so rotation is
exercised, PayPal's certificate host answered by an in-process transport) and runs a worker in the
same event loop. A drawn :class:`Req` becomes bytes and headers signed by the provider's own scheme
(services/edge/verifiers/signers.py) at the moment it is sent, then :func:`judge` checks the answer
against the README's edge table and :func:`account_events` checks that every 202 ended downstream once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from hypothesis import strategies as st

from schemas.providers import KINDS
from services.config import BreakwaterSettings, load_settings
from services.edge.app import create_app
from services.edge.verifiers.signers import (
    generate_paypal_certificate,
    generate_sendgrid_key,
    sample_body,
    sign_github,
    sign_paypal,
    sign_sendgrid,
    sign_shopify,
    sign_standard,
    sign_stripe,
)
from services.kafka.local import free_ports
from tests.support.pipeline import FAST_TIERS
from tests.support.waiting import until

MAX_BODY = 1024 * 1024
FRESH_ID = ("github", "shopify")
CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-hostile"
WEBHOOK_ID = "WH-HOSTILE-1"
ALLOWED = {202: None, 400: {"malformed"}, 401: {"bad_signature", "stale_timestamp"}}
ALLOWED |= {404: {"unknown_provider"}, 413: {"too_large"}, 415: {"unsupported_media_type"}}


def _whsec(seed: bytes) -> str:
    return "whsec_" + base64.b64encode(seed).decode()


@dataclass
class Keys:
    """Current and previous secrets per provider (both configured), and what only a stranger holds."""

    hmac: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "stripe": ("whsec_hostile_current", "whsec_hostile_previous"),
            "github": ("gh-hostile-current", "gh-hostile-previous"),
            "shopify": ("shp-hostile-current", "shp-hostile-previous"),
            "standard": (_whsec(b"standard-hostile-current-key!"), _whsec(b"standard-hostile-previous-k")),
        }
    )
    sendgrid: list[Any] = field(default_factory=lambda: [generate_sendgrid_key(), generate_sendgrid_key()])
    paypal: tuple[Any, bytes] = field(default_factory=generate_paypal_certificate)

    def secrets(self) -> list[str]:
        """Every value an answer must never show."""
        values = [s for pair in self.hmac.values() for s in pair]
        values += [base64.b64decode(s.removeprefix("whsec_")).decode() for s in self.hmac["standard"]]
        return values


def hostile_settings(bootstrap: str, name: str, state: Path, keys: Keys) -> BreakwaterSettings:
    providers: dict[str, Any] = {kind: {"secrets": list(keys.hmac[kind])} for kind in keys.hmac}
    providers["sendgrid"] = {"secrets": [public for _, public in keys.sendgrid]}
    providers["paypal"] = {"webhook_id": WEBHOOK_ID, "cert_hosts": ["api.sandbox.paypal.com"]}
    return load_settings(
        None,
        environment="test",
        kafka={"bootstrap": bootstrap, "request_timeout_ms": 5000},
        signing={"active_key_id": "e1", "keys": {"e1": "hostile-edge-key"}},
        topics={"partitions": 4},
        providers=providers,
        pipeline={
            "app_id": name,
            "topic_prefix": f"{name}.",
            "state_dir": str(state),
            "retry_tiers": FAST_TIERS,
            "transaction_timeout_ms": 10_000,
            "session_timeout_ms": 6_000,
        },
    )


def paypal_http(keys: Keys) -> httpx.AsyncClient:
    """PayPal's certificate host, answered in process: no request leaves the machine."""
    pem = keys.paypal[1]

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) == CERT_URL:
            return httpx.Response(200, content=pem)
        return httpx.Response(404, content=b"no such certificate")

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@contextlib.asynccontextmanager
async def serving_edge(settings: BreakwaterSettings, keys: Keys) -> AsyncIterator[str]:
    """The real edge app under uvicorn on a free port; yields its base URL once it reaches Kafka."""
    app = create_app(settings, http=paypal_http(keys))
    (port,) = free_ports(1)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    import asyncio

    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done(), timeout=15, what="uvicorn to listen")
    if task.done():
        task.result()
    await until(lambda: app.state.edge.publisher.connected, timeout=30, what="the edge to reach Kafka")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# --------------------------------------------------------------------------------------- requests

SIGNATURES = ("current", "current", "current", "previous", "wrong", "missing", "garbled")
TIMES = ("now", "now", "now", "stale", "future")
BODIES = (
    "sample",
    "sample",
    "extra_json",
    "deep",
    "bom",
    "nan",
    "inf_literal",
    "lone_surrogate",
    "non_utf8",
    "not_json",
    "empty",
    "near_limit",
    "over_limit",
)
CONTENT_TYPES = ("default", "default", "charset", "upper", "text_plain", "missing")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@dataclass(frozen=True)
class Req:
    kind: str
    signature: str
    when: str
    body: str
    content_type: str
    extra: Any
    headers: tuple[tuple[str, str], ...]
    replays: int
    """Exact resends of the same request (a provider's retry): duplicates of its events."""
    fresh_id_replay: bool
    """GitHub/Shopify only: the same signed body again under a new delivery id."""
    depth: int = 0


header_text = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)
safe_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=16).map(lambda n: f"x-{n}")


@st.composite
def requests(draw: st.DrawFn, kind: str | None = None, body: str | None = None) -> Req:
    kind = kind or draw(st.sampled_from((*KINDS, "nobody")))
    headers = draw(st.lists(st.tuples(safe_names, header_text), max_size=3))
    if draw(st.integers(0, 9)) == 9:
        headers += [(f"x-many-{i}", "v") for i in range(150)]
    return Req(
        kind=kind,
        signature=draw(st.sampled_from(SIGNATURES)),
        when=draw(st.sampled_from(TIMES)),
        body=body or draw(st.sampled_from(BODIES)),
        content_type=draw(st.sampled_from(CONTENT_TYPES)),
        extra=draw(json_values),
        headers=tuple(headers),
        replays=draw(st.integers(0, 9)) // 8,
        fresh_id_replay=kind in ("github", "shopify") and draw(st.integers(0, 5)) == 5,
        depth=draw(st.sampled_from([64, 1000, 5000])),
    )


def covering_requests() -> st.SearchStrategy[list[Req]]:
    """Every provider kind with every body, so even the simplest example is hostile."""
    pinned = [requests(kind, body) for kind in KINDS for body in dict.fromkeys(BODIES)]
    pinned += [requests("nobody", "sample")]
    pinned += [requests(kind, "sample").map(lambda r: replace(r, fresh_id_replay=True)) for kind in FRESH_ID]
    pinned += [requests(kind, "sample").map(lambda r: replace(r, replays=1)) for kind in KINDS]
    return st.tuples(*pinned).map(list)


def _event_body(req: Req, event_id: str, now: int) -> tuple[bytes, bool]:
    """The body and whether it must be accepted when signed right (False: 202 or 400 both fine)."""
    kind = req.kind if req.kind in KINDS else "stripe"
    base: Any = json.loads(sample_body(kind, event_id=event_id, now=now))
    # Distinct events have distinct bodies (GitHub's and Shopify's samples are constant, and a body
    # seen again under a fresh delivery id is a replay): only a replay repeats one.
    for event in base if isinstance(base, list) else [base]:
        event["hostile_id"] = event_id
    if req.body == "not_json":
        return b"this is not json {", False
    if req.body == "empty":
        return b"", False
    marker = "__EXTRA__"
    extra: Any = req.extra
    if req.body in ("near_limit", "over_limit"):
        extra = "z" * (MAX_BODY - 4096 if req.body == "near_limit" else MAX_BODY + 4096)
    elif req.body != "extra_json" and req.body != "sample":
        extra = marker
    if req.body != "sample":
        if isinstance(base, list):
            for event in base:
                event["extra"] = extra
        else:
            base["extra"] = extra
    text = json.dumps(base, separators=(",", ":"))
    raw = {
        "deep": "[" * req.depth + "1" + "]" * req.depth,
        "nan": "NaN",
        "inf_literal": "1e999",
        "lone_surrogate": '"\\ud800 alone"',
        "non_utf8": '"\x00NONUTF8"',
        "bom": '"bom"',
    }.get(req.body)
    if raw is not None:
        text = text.replace(f'"{marker}"', raw)
    data = text.encode()
    if req.body == "non_utf8":
        data = data.replace(b"\x00NONUTF8", b"\xff\xfe bytes")
    if req.body == "bom":
        data = b"\xef\xbb\xbf" + data
    sure = req.body in ("sample", "extra_json", "near_limit")
    return data, sure


@dataclass
class Sent:
    req: Req
    group: str
    event_id: str
    status: int
    body: bytes
    expected: set[int]
    signature_values: list[str]
    accepted: list[tuple[str, str]] = field(default_factory=list)
    """(envelope id, event id) pairs a 202 named."""

    def events(self) -> list[tuple[str, str]]:
        return self.accepted


def build(req: Req, keys: Keys, event_id: str) -> tuple[str, bytes, dict[str, str], set[int]]:
    """Path, body, headers and the answers the README allows for this request."""
    now = int(time.time())
    ts = {"now": now, "stale": now - 3600, "future": now + 3600}[req.when]
    body, sure = _event_body(req, event_id, now)
    kind = req.kind
    headers: dict[str, str] = {}
    if kind in keys.hmac:
        current, previous = keys.hmac[kind]
        secret = {"current": current, "previous": previous}.get(req.signature, "not-a-configured-secret")
        if kind == "standard" and secret == "not-a-configured-secret":
            secret = _whsec(b"a stranger's key")
        if kind == "stripe":
            headers = sign_stripe(body, secret, ts)
        elif kind == "github":
            headers = sign_github(body, secret, delivery=event_id)
        elif kind == "shopify":
            headers = sign_shopify(body, secret, webhook_id=event_id)
        else:
            headers = sign_standard(body, secret, timestamp=ts, msg_id=event_id)
    elif kind == "sendgrid":
        index = 1 if req.signature == "previous" else 0
        private = keys.sendgrid[index][0] if req.signature != "wrong" else generate_sendgrid_key()[0]
        headers = sign_sendgrid(body, private, ts)
    elif kind == "paypal":
        from datetime import UTC, datetime

        private = keys.paypal[0] if req.signature != "wrong" else generate_paypal_certificate()[0]
        headers = sign_paypal(
            body,
            private,
            cert_url=CERT_URL,
            webhook_id=WEBHOOK_ID,
            transmission_id=event_id,
            transmission_time=datetime.fromtimestamp(ts, UTC),
        )
    else:
        headers = sign_stripe(body, "whatever", ts)
    signature_names = [n for n in headers if "sig" in n.lower() or "hmac" in n.lower()]
    if req.signature == "missing":
        for name in signature_names:
            headers.pop(name)
    elif req.signature == "garbled":
        for name in signature_names:
            headers[name] = "garbled," + headers[name][::-1]
    media = headers.pop("Content-Type", "application/json")
    content_type = {
        "default": media,
        "charset": f"{media}; charset=utf-8",
        "upper": media.upper(),
        "text_plain": "text/plain",
    }.get(req.content_type)
    if content_type is not None:
        headers["Content-Type"] = content_type
    for name, value in req.headers:
        headers.setdefault(name, value)
    timed = kind in ("stripe", "standard", "sendgrid", "paypal")
    if kind not in KINDS:
        expected = {404}
    elif content_type in (None, "text/plain"):
        expected = {415}
    elif len(body) > MAX_BODY:
        expected = {413}
    elif req.signature in ("wrong", "missing", "garbled") or (timed and req.when != "now"):
        expected = {401}
    elif sure:
        expected = {202}
    else:
        expected = {202, 400}
    return f"/webhooks/{kind}", body, headers, expected


def signature_values(headers: dict[str, str]) -> list[str]:
    """The signature digests sent: an answer must never echo one."""
    values = []
    for name, value in headers.items():
        if "sig" in name.lower() or "hmac" in name.lower():
            for part in value.replace(",", " ").replace("=", " ").split():
                if len(part) >= 16:
                    values.append(part)
    return values


def judge(sent: Sent, secrets: list[str]) -> list[str]:
    """What is wrong with one answer, by the README's edge table."""
    problems = []
    where = f"{sent.req.kind}/{sent.req.body}/{sent.req.signature}/{sent.req.when}/{sent.req.content_type}"
    if sent.status not in sent.expected:
        problems.append(
            f"{where} ({sent.event_id}): {sent.status}, want {sorted(sent.expected)}: {sent.body[:300]!r}"
        )
    if sent.status != 202:
        try:
            doc = json.loads(sent.body)
        except ValueError:
            doc = None
        codes = ALLOWED.get(sent.status)
        if (
            not isinstance(doc, dict)
            or set(doc) != {"error", "message"}
            or not isinstance(doc["message"], str)
        ):
            problems.append(f"{where}: error body is not {{error, message}}: {sent.body[:200]!r}")
        elif codes is not None and doc["error"] not in codes:
            problems.append(
                f"{where}: {sent.status} with error {doc['error']!r}, want one of {sorted(codes)}"
            )
    text = sent.body.decode("utf-8", "replace")
    for secret in secrets:
        if secret in text:
            problems.append(f"{where}: the answer shows a secret")
    for value in sent.signature_values:
        if value in text:
            problems.append(f"{where}: the answer echoes the signature {value[:12]}...")
    return problems


def account_events(sent: list[Sent], events: list[tuple[bytes | None, str | None]]) -> list[str]:
    """Every 202'd event is on webhooks.events exactly once (by key), and nothing else is.

    A *logical* event is a request's event at a batch index, with its exact replays and (GitHub,
    Shopify) its replays under a fresh delivery id: together they must reach downstream once.
    """
    problems = []
    keys_of: dict[tuple[str, int], set[str]] = defaultdict(set)
    ids_of: dict[tuple[str, int], set[str]] = defaultdict(set)
    for s in sent:
        for index, (envelope_id, event_id) in enumerate(s.accepted):
            provider = s.req.kind
            keys_of[(s.group, index)].add(f"{provider}:{event_id}")
            ids_of[(s.group, index)].add(envelope_id)
    counted: dict[str, int] = defaultdict(int)
    for key, _ in events:
        counted[(key or b"").decode("utf-8", "replace")] += 1
    known = {k for keys in keys_of.values() for k in keys}
    for logical, keys in keys_of.items():
        got = sum(counted[k] for k in keys)
        if got != 1:
            problems.append(f"accepted event {logical} {sorted(keys)}: {got} on webhooks.events, want 1")
    for name, count in counted.items():
        if name not in known:
            problems.append(f"{count} event(s) {name!r} on webhooks.events that no 202 named")
    return problems


def new_event_id(kind: str) -> str:
    return {"stripe": "evt_", "sendgrid": "sg_", "paypal": "WH-"}.get(kind, "") + uuid.uuid4().hex
