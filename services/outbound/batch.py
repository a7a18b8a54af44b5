"""Run many calls with at most N in flight, results in input order.

A fixed pool of workers pulls the next index, so a batch of 100,000 never holds 100,000 tasks.
Failures that Breakwater raises on purpose are results (or, with ``fail_fast``, stop the batch);
anything else is a bug and always propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from services.errors import BreakwaterError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One call of a batch, as :meth:`APIClient.request` takes it."""

    method: str
    url: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    params: dict[str, str] | None = None
    idempotency_key: str | None = None


async def run_bounded(
    items: Sequence[T],
    call: Callable[[T], Awaitable[R]],
    *,
    concurrency: int,
    fail_fast: bool = False,
) -> list[R | BreakwaterError]:
    """``call`` each item with at most ``concurrency`` at once.

    Without ``fail_fast`` every item gets its result or its :class:`BreakwaterError`; with it, the first
    error cancels the calls in flight, starts no more, and is raised.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    results: list[R | BreakwaterError | None] = [None] * len(items)
    next_index = iter(range(len(items)))

    async def worker() -> None:
        for index in next_index:
            try:
                results[index] = await call(items[index])
            except BreakwaterError as exc:
                if fail_fast:
                    raise
                results[index] = exc

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(items))):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        if len(group_error.exceptions) == 1 or isinstance(first, BreakwaterError):
            raise first from None
        raise
    return results  # type: ignore[return-value]  # every slot is filled once the group ends
