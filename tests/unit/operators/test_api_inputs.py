"""Whatever a client sends the operator API, the answer is 200, 400 or 401, and a 200 acts on nothing
the request did not ask for (issue #13, item 8).

The DLQ here is in memory (:class:`InMemoryOperators`): these tests are about reading requests, so the
service behind them only records what it was asked to act on. The same properties run against the real
broker in tests/integration/operators/test_api_inputs.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from schemas.topics import PipelineTopics
from services.cli.dlq import dlq_app
from services.cli.dlq import stats as stats_command
from services.config import load_settings
from services.operators.api import FIELDS, MAX_BODY_BYTES, create_operator_app
from services.operators.config import OperatorSettings
from services.operators.dlq_index import DlqIndex
from services.operators.filters import DlqFilter
from services.operators.replay import ActionReport
from services.operators.service import Operators, Selection
from services.operators.stats import HealthThresholds, PipelineStats
from tests.unit.operators.deadletters import dead_letter, dlq_records

TOKEN = "unit-operator-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DEAD = [
    dead_letter(provider, n, error_class=error, destination=dest, hours=n)
    for n, (provider, error, dest) in enumerate(
        [
            ("github", "http_500", "sink"),
            ("github", "http_400", "sink"),
            ("github", "timeout", "other"),
            ("stripe", "http_500", "sink"),
            ("stripe", "http_500", "other"),
        ]
    )
]


@dataclass(frozen=True)
class InMemoryOperators(Operators):
    """Operators over a fixed DLQ; replays and discards are recorded, never published."""

    acted: list[tuple[str, Selection]] = field(default_factory=list, compare=False)

    async def index(self) -> DlqIndex:
        return DlqIndex.build(dlq_records(DEAD), [])

    async def replay(self, selection: Selection, *, by: str, dry_run: bool = False, **_: Any) -> ActionReport:
        self.acted.append(("replay", selection))
        return ActionReport("replay", dry_run, done=[e.id for e in selection.entries])

    async def discard(
        self, selection: Selection, *, by: str, dry_run: bool = False, **_: Any
    ) -> ActionReport:
        self.acted.append(("discard", selection))
        return ActionReport("discard", dry_run, done=[e.id for e in selection.entries])

    async def stats(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        thresholds: HealthThresholds | None = None,
    ) -> PipelineStats:
        return PipelineStats(since, until, [], {}, {}, 100, thresholds or HealthThresholds())


OPS = InMemoryOperators(bootstrap="127.0.0.1:9", topics=PipelineTopics())
APP = create_operator_app(load_settings(), OperatorSettings(token=SecretStr(TOKEN)), operators=OPS)


class SyncClient:
    """The app in process, called from plain (hypothesis) tests; an unhandled error is a 500 answer."""

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=APP, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://operators") as http:
                return await http.request(method, path, **options)

        return asyncio.run(go())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)


HTTP = SyncClient()


def post(path: str, body: object) -> Any:
    """JSON as Python writes it, NaN and Infinity included (the API's parser reads them)."""
    return HTTP.post(path, content=json.dumps(body).encode(), headers=BEARER)


@pytest.mark.parametrize("path", ["/dlq/replay", "/dlq/discard"])
def test_the_cli_option_name_or_a_typo_is_refused_naming_it(path: str) -> None:
    OPS.acted.clear()
    for wrong in ("error", "eror_class", "Provider", "dry-run"):
        response = post(path, {"provider": "github", wrong: "http_500"})
        assert response.status_code == 400, (wrong, response.text)
        answer = response.json()
        assert wrong in answer["error"] and answer["unknown"] == [wrong]
        assert "error_class" in answer["accepted"] and "provider" in answer["accepted"]
    assert "did you mean 'error_class'" in post(path, {"provider": "github", "error": "x"}).json()["error"]
    assert OPS.acted == []  # nothing was replayed or discarded


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/dlq", {"since": "1000000d"}),
        ("GET", "/dlq", {"until": "9" * 400 + "s"}),
        ("GET", "/dlq/counts", {"since": "0001-01-01T00:00:00+01:00"}),
        ("GET", "/stats", {"since": "1000000d"}),
        ("POST", "/dlq/replay", {"provider": "github", "since": "1000000d"}),
        ("POST", "/dlq/discard", {"provider": "github", "until": "99999999999w"}),
    ],
)
def test_out_of_range_times_are_400_naming_the_field(method: str, path: str, params: dict[str, str]) -> None:
    response = HTTP.get(path, params=params, headers=BEARER) if method == "GET" else post(path, params)
    assert response.status_code == 400, response.text
    (name,) = set(params) - {"provider"}
    assert response.json()["field"] == name and response.json()["error"].startswith(f"{name}: ")


@pytest.mark.parametrize(
    ("path", "body", "field_name"),
    [
        ("/dlq/replay", {"provider": "github", "dry_run": "false"}, "dry_run"),
        ("/dlq/replay", {"provider": "github", "all": 1}, "all"),
        ("/dlq/replay", {"provider": ["github"]}, "provider"),
        ("/dlq/replay", {"provider": "github", "limit": True}, "limit"),
        ("/dlq/replay", {"provider": "github", "limit": 1.5}, "limit"),
        ("/dlq/replay", {"provider": "github", "limit": -3}, "limit"),
        ("/dlq/replay", {"provider": "github", "limit": "1e9"}, "limit"),
        ("/dlq/discard", {"provider": "github", "notes": {"why": "x"}}, "notes"),
        ("/dlq/discard", {"ids": ["a", 1]}, "ids"),
        ("/dlq/discard", {"provider": "github", "by": 7}, "by"),
    ],
)
def test_values_of_the_wrong_type_are_400_naming_the_field(path: str, body: object, field_name: str) -> None:
    OPS.acted.clear()
    response = post(path, body)
    assert response.status_code == 400 and response.json()["field"] == field_name, response.text
    assert OPS.acted == []


def test_query_strings_are_checked_like_bodies() -> None:
    def get(path: str, query: str) -> Any:
        return HTTP.get(f"{path}?{query}", headers=BEARER)

    assert get("/dlq", "colour=red").json()["unknown"] == ["colour"]
    assert get("/dlq", "error=http_500").status_code == 400
    assert get("/dlq/counts", "limit=3").json()["unknown"] == ["limit"]  # counts are totals
    assert get("/dlq", "provider=a&provider=b").json()["field"] == "provider"
    assert get("/stats", "lag_warn=-1").json()["field"] == "lag_warn"
    assert get("/stats", "provider=github").json()["unknown"] == ["provider"]
    assert get("/stats", "lag_warn=5&dead_critical=7").json()["thresholds"]["dead_critical"] == 7
    assert get("/dlq", "limit=2&provider=github").json()["count"] == 2


def test_bodies_that_are_no_object_too_deep_or_too_large() -> None:
    for content in (b"[1]", b"null", b"[" * 100_000, b"\xff\xfe", b'{"provider": "x"'):
        assert HTTP.post("/dlq/replay", content=content, headers=BEARER).status_code == 400, content[:10]
    huge = b'{"notes": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert HTTP.post("/dlq/discard", content=huge, headers=BEARER).status_code == 413


def test_bodies_that_only_a_lax_parser_reads_are_400_not_500() -> None:
    """A lone surrogate in ``by`` or ``notes`` (encoded later), a NaN, a BOM: refused, as the edge does."""
    for path, content in [
        ("/dlq/replay", rb'{"ids": ["x"], "by": "\ud800"}'),
        ("/dlq/discard", rb'{"ids": ["x"], "notes": "\udfff"}'),
        ("/dlq/replay", b'{"limit": NaN}'),
        ("/dlq/replay", b'\xef\xbb\xbf{"all": true}'),
    ]:
        answer = HTTP.post(path, content=content, headers=BEARER)
        assert answer.status_code == 400, (path, content, answer.text)
        assert answer.json()["error"].startswith("body is not strict JSON"), answer.json()


# What clients send: real names, near misses, random names; values of every JSON type, ages of any size.
NAMES = st.sampled_from(sorted({n for names in FIELDS.values() for n in names} | {"error", "state", "x"}))
AGES = st.from_regex(r"\A[0-9]{1,25}(\.[0-9]{1,4})?[smhdw]\Z")
TIMES = st.one_of(AGES, st.just("now"), st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither: refused whole, listed above
    st.text(max_size=20),
    st.sampled_from(["github", "stripe", "http_500", "sink", "all", "dead", "active", "0", "5"]),
    TIMES,
)
VALUES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=2)
)
BODIES = st.dictionaries(st.one_of(NAMES, st.text(max_size=12)), VALUES, max_size=6)


def _fits(criteria: dict[str, Any], entry: Any) -> bool:
    """Whether an entry an action touched matches every filter the body set (as text)."""
    dead = entry.dead
    for name, attribute in (
        ("provider", dead.envelope.provider),
        ("event_type", dead.envelope.event_type),
        ("error_class", dead.final_error.error_class),
        ("destination", dead.destination),
    ):
        if criteria.get(name) not in (None, "") and criteria[name] != attribute:
            return False
    return (
        not criteria.get("ids")
        or entry.id in criteria["ids"]
        or any(entry.id.startswith(i) for i in criteria["ids"])
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["/dlq/replay", "/dlq/discard"]), body=BODIES)
def test_any_action_body_is_200_or_400_and_acts_only_on_what_it_names(
    path: str, body: dict[str, Any]
) -> None:
    OPS.acted.clear()
    response = post(path, body)
    assert response.status_code in (200, 400), (response.status_code, response.text)
    accepted = FIELDS["replay" if path == "/dlq/replay" else "discard"]
    unknown = sorted(set(body) - set(accepted))
    if unknown:
        assert response.status_code == 400 and response.json()["unknown"] == unknown
    if response.status_code == 400:
        assert isinstance(response.json()["error"], str) and OPS.acted == []
        return
    ((_, selection),) = OPS.acted
    assert all(_fits(body, entry) for entry in selection.entries), body


ROUTE_COMMAND = {"/dlq": "list", "/dlq/counts": "counts", "/stats": "stats"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(["/dlq", "/dlq/counts", "/stats"]),
    query=st.lists(st.tuples(st.one_of(NAMES, st.text(max_size=8)), st.one_of(TIMES, st.text())), max_size=5),
    token=st.sampled_from([TOKEN, TOKEN, TOKEN, "wrong"]),
)
def test_any_query_string_is_200_400_or_401(path: str, query: list[tuple[str, str]], token: str) -> None:
    response = HTTP.get(path, params=query, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 400, 401), (response.status_code, response.text)
    if token != TOKEN:
        assert response.status_code == 401
    elif {name for name, _ in query} - set(FIELDS[ROUTE_COMMAND[path]]):
        assert response.status_code == 400


def _cli_names(command: Any) -> set[str]:
    """The API name each option stands for: its first long flag, ``--error-class`` → ``error_class``."""
    names = set()
    for param in command.params:
        if param.param_type_name == "argument":
            names.add(param.name or "")
            continue
        flag = next(o for o in param.opts if o.startswith("--"))
        if flag not in ("--json", "--help"):
            names.add(flag.removeprefix("--").replace("-", "_"))
    return names


def test_cli_options_and_api_names_are_one_to_one() -> None:
    group: Any = typer.main.get_command(dlq_app)  # typer's own click: a group with .commands
    for command in ("list", "counts", "replay", "discard"):
        assert _cli_names(group.commands[command]) == set(FIELDS[command]), command
    app = typer.Typer(add_completion=False)
    app.command()(stats_command)
    assert _cli_names(typer.main.get_command(app)) == set(FIELDS["stats"])


def test_the_cli_keeps_error_as_a_short_alias() -> None:
    group: Any = typer.main.get_command(dlq_app)  # typer's own click: a group with .commands
    error_class = next(p for p in group.commands["list"].params if p.name == "error_class")
    assert error_class.opts == ["--error-class", "--error"]


def test_the_filter_parses_what_the_api_passes() -> None:
    assert DlqFilter.parse({"limit": " 7 "}).limit == 7
