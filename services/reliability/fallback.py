"""What to answer when a service fails: tried in order, and every answer says where it came from.

    LastGood      the last good answer for the same key, if younger than max_age     degraded
    Alternative   the same call made to another service                              not degraded
    DefaultValue  a fixed value                                                      degraded
    Degraded      a reduced answer built from the failure                            degraded
    FallbackChain any of the above (chains too), first that answers wins

A fallback that cannot answer raises :class:`NoFallback`; the chain then tries the next one, and
raises :class:`FallbacksExhausted` (carrying every reason) when none could.
"""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from services.errors import BreakwaterError

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """An answer and its provenance: ``source`` is ``primary``, ``cache``, ``service:<name>``,
    ``default`` or ``degraded``; ``error`` is why the primary call was not used."""

    value: T
    source: str
    degraded: bool
    error: BaseException | None = None
    age: float | None = None
    """For ``cache``: seconds since the answer was fresh."""

    @property
    def fallback(self) -> bool:
        return self.source != "primary"


@dataclass(frozen=True)
class FallbackContext:
    """What a fallback knows: which service failed, for which key and request, and why."""

    service: str
    key: Hashable
    error: BaseException
    request: object = None


class NoFallback(BreakwaterError):
    """This fallback has no answer for this context."""


class FallbacksExhausted(BreakwaterError):
    """No fallback could answer; ``reasons`` says why, in order."""

    def __init__(self, service: str, reasons: Sequence[BaseException]) -> None:
        detail = "; ".join(f"{type(r).__name__}: {r}" for r in reasons) or "no fallbacks"
        super().__init__(f"{service}: every fallback failed ({detail})")
        self.reasons = list(reasons)


class Fallback(Protocol[T]):
    async def resolve(self, context: FallbackContext) -> Outcome[T]: ...


class LastGood(Generic[T]):
    """Remembers good answers per key (LRU, ``max_entries``) and serves one younger than ``max_age``."""

    def __init__(
        self, max_age: float, *, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic
    ):
        self.max_age = max_age
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()

    def remember(self, key: Hashable, value: T) -> None:
        self._entries[key] = (self._clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def resolve(self, context: FallbackContext) -> Outcome[T]:
        entry = self._entries.get(context.key)
        if entry is None:
            raise NoFallback(f"no cached answer for {context.key!r}")
        age = self._clock() - entry[0]
        if age > self.max_age:
            raise NoFallback(f"cached answer for {context.key!r} is {age:.1f}s old (max {self.max_age}s)")
        return Outcome(entry[1], "cache", degraded=True, error=context.error, age=age)


@dataclass
class DefaultValue(Generic[T]):
    value: T
    degraded: bool = True

    async def resolve(self, context: FallbackContext) -> Outcome[T]:
        return Outcome(self.value, "default", degraded=self.degraded, error=context.error)


@dataclass
class Alternative(Generic[T]):
    """Ask another service; its failure is this fallback's failure."""

    name: str
    call: Callable[[FallbackContext], Awaitable[T]]
    degraded: bool = False
    catch: tuple[type[BaseException], ...] = (Exception,)

    async def resolve(self, context: FallbackContext) -> Outcome[T]:
        try:
            value = await self.call(context)
        except self.catch as exc:
            raise NoFallback(f"alternative {self.name} failed: {exc}") from exc
        return Outcome(value, f"service:{self.name}", degraded=self.degraded, error=context.error)


@dataclass
class Degraded(Generic[T]):
    """A reduced answer built from the context (sync or async builder)."""

    build: Callable[[FallbackContext], T | Awaitable[T]]

    async def resolve(self, context: FallbackContext) -> Outcome[T]:
        value = self.build(context)
        if inspect.isawaitable(value):
            value = await value
        return Outcome(value, "degraded", degraded=True, error=context.error)


@dataclass
class FallbackChain(Generic[T]):
    """Tries each fallback in order; itself a fallback, so chains nest."""

    fallbacks: list[Fallback[T]] = field(default_factory=list)

    async def resolve(self, context: FallbackContext) -> Outcome[T]:
        reasons: list[BaseException] = []
        for fallback in self.fallbacks:
            try:
                return await fallback.resolve(context)
            except (NoFallback, FallbacksExhausted) as exc:
                reasons.append(exc)
        raise FallbacksExhausted(context.service, reasons)

    def cache(self) -> LastGood[T] | None:
        """The first :class:`LastGood` in the chain, which the caller feeds with good answers."""
        for fallback in self.fallbacks:
            if isinstance(fallback, LastGood):
                return fallback
            if isinstance(fallback, FallbackChain) and (inner := fallback.cache()) is not None:
                return inner
        return None

    def __bool__(self) -> bool:
        return bool(self.fallbacks)
