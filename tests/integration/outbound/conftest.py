"""Fixtures for the outbound and reliability tests against a real local HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.http_server import ScriptedServer, serve_scripted


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A fresh scriptable server on 127.0.0.1 and a free port, in the test's event loop."""
    async with serve_scripted() as scripted:
        yield scripted
