"""Fallback chains and ServiceRegistry.call: order, provenance, cache age, and when not to fall back."""

from __future__ import annotations

import pytest

from services.errors import PermanentError, RetryableError
from services.reliability.alerts import AlertManager
from services.reliability.config import ServiceSettings
from services.reliability.fallback import (
    Alternative,
    DefaultValue,
    Degraded,
    FallbackChain,
    FallbackContext,
    FallbacksExhausted,
    LastGood,
)
from services.reliability.monitor import ProbeResult
from services.reliability.registry import ServiceRegistry, ServiceUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def context(key: object = "k") -> FallbackContext:
    return FallbackContext(service="rates", key=key, error=RetryableError("boom"))


async def failing_alternative(_context: FallbackContext) -> str:
    raise RetryableError("alternative is down too")


async def test_chain_tries_in_order_and_says_where_the_answer_came_from() -> None:
    clock = Clock()
    cache: LastGood[str] = LastGood(10, clock=clock)
    chain: FallbackChain[str] = FallbackChain(
        [cache, Alternative("backup", failing_alternative), DefaultValue("default")]
    )
    first = await chain.resolve(context())
    assert (first.value, first.source, first.degraded) == ("default", "default", True)
    cache.remember("k", "cached")
    clock.now += 4
    second = await chain.resolve(context())
    assert (second.value, second.source, second.degraded, second.age) == ("cached", "cache", True, 4)
    assert second.fallback and isinstance(second.error, RetryableError)


async def test_cache_older_than_max_age_is_skipped() -> None:
    clock = Clock()
    cache: LastGood[str] = LastGood(10, clock=clock)
    cache.remember("k", "cached")
    clock.now += 11

    async def backup(_context: FallbackContext) -> str:
        return "from backup"

    outcome = await FallbackChain[str]([cache, Alternative("backup", backup)]).resolve(context())
    assert (outcome.value, outcome.source, outcome.degraded) == ("from backup", "service:backup", False)


async def test_cache_is_per_key_and_bounded() -> None:
    cache: LastGood[int] = LastGood(10, max_entries=2)
    for key in "abc":
        cache.remember(key, ord(key))
    assert (await cache.resolve(context("c"))).value == ord("c")
    with pytest.raises(Exception, match="no cached answer for 'a'"):
        await cache.resolve(context("a"))


async def test_degraded_builder_sync_or_async_and_nested_chains() -> None:
    async def build(ctx: FallbackContext) -> str:
        return f"partial ({ctx.error})"

    inner: FallbackChain[str] = FallbackChain([Alternative("x", failing_alternative)])
    outcome = await FallbackChain[str]([inner, Degraded(build)]).resolve(context())
    assert (outcome.value, outcome.source, outcome.degraded) == ("partial (boom)", "degraded", True)
    sync = await Degraded(lambda ctx: "reduced").resolve(context())
    assert sync.value == "reduced"


async def test_exhausted_chain_lists_every_reason() -> None:
    with pytest.raises(FallbacksExhausted) as error:
        await FallbackChain[str]([LastGood(1), Alternative("x", failing_alternative)]).resolve(context())
    assert len(error.value.reasons) == 2
    assert "alternative is down too" in str(error.value)


def registry(**settings: object) -> ServiceRegistry:
    service = ServiceSettings.model_validate(
        {"health_check": {"url": "http://h.test/health", "failures_to_down": 2}} | settings
    )
    return ServiceRegistry({"rates": service}, alerts=AlertManager(sinks=[]), min_samples=1)


async def test_registry_call_primary_then_cache_after_failure() -> None:
    reg = registry()
    cache: LastGood[str] = LastGood(60)
    chain: FallbackChain[str] = FallbackChain([cache, DefaultValue("default")])

    async def good() -> str:
        return "fresh"

    async def bad() -> str:
        raise RetryableError("503")

    primary = await reg.call("rates", good, key="EUR", fallbacks=chain)
    assert (primary.value, primary.source, primary.degraded, primary.fallback) == (
        "fresh",
        "primary",
        False,
        False,
    )
    cached = await reg.call("rates", bad, key="EUR", fallbacks=chain)
    assert (cached.value, cached.source) == ("fresh", "cache")
    other_key = await reg.call("rates", bad, key="USD", fallbacks=chain)
    assert other_key.source == "default"
    snap = reg.monitors["rates"].snapshot()
    assert (snap.calls, snap.fallbacks) == (3, 2) and snap.fallback_rate == pytest.approx(2 / 3)


async def test_permanent_errors_do_not_fall_back() -> None:
    reg = registry()

    async def bad_request() -> str:
        raise PermanentError("400: your request is wrong")

    with pytest.raises(PermanentError):
        await reg.call("rates", bad_request, fallbacks=FallbackChain([DefaultValue("x")]))


async def test_when_every_fallback_fails_the_primary_error_is_raised() -> None:
    reg = registry()

    async def bad() -> str:
        raise RetryableError("503", retry_after=3)

    with pytest.raises(RetryableError) as error:
        await reg.call("rates", bad, fallbacks=FallbackChain([LastGood(5)]))
    assert error.value.retry_after == 3
    assert isinstance(error.value.__cause__, FallbacksExhausted)


async def test_down_by_health_checks_skips_the_primary() -> None:
    reg = registry()
    for _ in range(2):
        await reg.record_probe("rates", ProbeResult(ok=False, latency=0.01, detail="refused"))
    called = False

    async def primary() -> str:
        nonlocal called
        called = True
        return "fresh"

    outcome = await reg.call("rates", primary, fallbacks=FallbackChain([DefaultValue("default")]))
    assert not called
    assert outcome.source == "default" and isinstance(outcome.error, ServiceUnavailable)


async def test_registered_chain_is_used_by_default() -> None:
    reg = registry()
    reg.set_fallbacks("rates", FallbackChain([DefaultValue("registered")]))

    async def bad() -> str:
        raise RetryableError("503")

    assert (await reg.call("rates", bad)).value == "registered"
