"""The real ``breakwater edge`` (a subprocess on a free 127.0.0.1 port, on the run's broker) against
hostile clients: endless headers, slowloris heads, stalled bodies and more connections than it takes.

Every case is bounded in count and time (at most 200 slow clients, each test well under 30 s), and
every case checks that ordinary signed webhooks still get their 202 (Kafka acknowledged) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from services.cli.sample import signed_sample
from services.config import load_settings
from services.flood.shutdown import stop_process
from services.kafka.admin import ensure_topics
from services.kafka.local import free_ports

pytestmark = pytest.mark.kafka

SECRET = "whsec_slow_clients"


@dataclass(frozen=True)
class EdgeProcess:
    port: int
    process: psutil.Process

    def open_connections(self) -> int:
        """HTTP connections the edge holds open (its Kafka connections are not on its port)."""
        return sum(
            1
            for c in self.process.net_connections("tcp")
            if c.laddr and c.laddr.port == self.port and c.status == psutil.CONN_ESTABLISHED
        )


@pytest.fixture
def start_edge(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., EdgeProcess]]:
    """Start ``breakwater edge`` with ``BREAKWATER_EDGE__*`` overrides; stopped when the test ends."""
    config = tmp_path / "edge.toml"
    config.write_text(f'[providers.stripe]\nsecrets = ["{SECRET}"]\n')
    settings = load_settings(config, kafka={"bootstrap": kafka_bootstrap})
    asyncio.run(ensure_topics(kafka_bootstrap, settings.topic_catalogue()))
    children: list[subprocess.Popen[bytes]] = []

    def start(**edge: object) -> EdgeProcess:
        (port,) = free_ports(1)
        env = {
            **os.environ,
            "BREAKWATER_CONFIG": str(config),
            "BREAKWATER_KAFKA__BOOTSTRAP": kafka_bootstrap,
            "BREAKWATER_LOG_LEVEL": "WARNING",
            "BREAKWATER_EDGE__HOST": "127.0.0.1",
            "BREAKWATER_EDGE__PORT": str(port),
            **{f"BREAKWATER_EDGE__{name.upper()}": str(value) for name, value in edge.items()},
        }
        child = subprocess.Popen([sys.executable, "-m", "services.cli.main", "edge"], env=env)
        children.append(child)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return EdgeProcess(port, psutil.Process(child.pid))
            assert child.poll() is None, f"the edge exited with {child.returncode}"
            assert time.monotonic() < deadline, "the edge did not become ready"
            time.sleep(0.2)

    yield start
    for child in children:
        stop_process(child, grace=10)


def signed_request(*, close: bool = True) -> tuple[bytes, bytes]:
    """A Stripe-signed webhook's head and body, as raw HTTP/1.1."""
    body, headers = signed_sample("stripe", SECRET)
    lines = ["POST /webhooks/stripe HTTP/1.1", "host: edge", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


async def read_answer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What the server sends until it closes (a reset after the answer counts as closed)."""
    chunks = []
    with contextlib.suppress(ConnectionError):  # reset or broken pipe after the answer
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


async def post_signed(port: int, timeout: float = 10) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head, body = signed_request()
    writer.write(head + body)
    try:
        return await read_answer(reader, timeout)
    finally:
        writer.close()


class PeakRss:
    """The edge's highest resident set size while the block runs, sampled every 20 ms."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


async def test_unterminated_64_mb_headers_are_cut_at_max_header_bytes_and_rss_stays_bounded(
    start_edge: Callable[..., EdgeProcess],
) -> None:
    edge = start_edge()  # the defaults: 64 KiB of head
    assert status(await post_signed(edge.port)) == 202
    before = edge.process.memory_info().rss

    async def flood() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(b"POST /webhooks/stripe HTTP/1.1\r\nhost: edge\r\nx-flood: ")
        sent = 0
        chunk = b"a" * 65536
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(20):
                while sent < 64 * 1024 * 1024:
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
        answer = await read_answer(reader, timeout=10)
        writer.close()
        return sent, answer

    with PeakRss(edge.process) as rss:
        results = await asyncio.gather(*(flood() for _ in range(4)))
    for sent, answer in results:
        # Cut off after the head limit and a bounded drain, nowhere near 64 MB. A client that keeps
        # writing may see the reset before the 431 (its stream raises the reset first).
        assert sent < 16 * 1024 * 1024, f"the edge read {sent} bytes of one head"
        assert answer == b"" or status(answer) == 431
    assert rss.peak - before < 32 * 1024 * 1024, f"RSS grew {(rss.peak - before) >> 20} MB"

    # A client that sends its oversized head and then listens reads the 431.
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
    writer.write(b"POST /webhooks/stripe HTTP/1.1\r\nhost: edge\r\nx-big: " + b"a" * (512 * 1024))
    writer.write_eof()
    answer = await read_answer(reader, timeout=10)
    writer.close()
    assert status(answer) == 431
    assert b"exceed 65536 bytes" in answer
    assert status(await post_signed(edge.port)) == 202


async def test_200_slowloris_clients_are_dropped_after_header_timeout_while_new_clients_are_served(
    start_edge: Callable[..., EdgeProcess],
) -> None:
    header_timeout = 3.0
    edge = start_edge(header_timeout_seconds=header_timeout)
    baseline = edge.open_connections()

    async def slowloris() -> tuple[float, bytes]:
        # Taken before connecting: the edge's clock starts when it accepts, which on a loaded machine
        # can be long before this coroutine resumes after the connect (CI once measured 1.9 s of 3).
        start = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(b"POST /webhooks/stripe HTTP/1.1\r\nhost: edge\r\n")
        read = asyncio.ensure_future(read_answer(reader, timeout=header_timeout + 10))
        with contextlib.suppress(ConnectionError):
            while not read.done():  # a byte a second, until the edge answers
                writer.write(b"x")
                await asyncio.wait([read], timeout=1)
        answer = await read
        writer.close()
        return time.monotonic() - start, answer

    slow = [asyncio.ensure_future(slowloris()) for _ in range(200)]
    served = 0
    while not all(task.done() for task in slow):  # meanwhile, signed webhooks are accepted
        assert status(await post_signed(edge.port, timeout=5)) == 202
        served += 1
        await asyncio.sleep(0.2)
    results = [task.result() for task in slow]
    assert served >= 5
    for elapsed, answer in results:
        assert status(answer) == 408
        assert b"request head not received in time" in answer
        assert header_timeout * 0.9 <= elapsed < header_timeout + 8
    async with httpx.AsyncClient() as client:
        scrape = (await client.get(f"http://127.0.0.1:{edge.port}/metrics", timeout=5)).text
    dropped = [line for line in scrape.splitlines() if line.startswith("breakwater_http_dropped_total")]
    assert any('reason="header_timeout"' in line and float(line.split()[-1]) >= 200 for line in dropped)
    deadline = time.monotonic() + 5
    while edge.open_connections() > baseline:
        assert time.monotonic() < deadline, f"{edge.open_connections()} connections still open"
        await asyncio.sleep(0.1)


async def test_connections_past_max_connections_get_503_and_established_requests_complete(
    start_edge: Callable[..., EdgeProcess],
) -> None:
    limit = 20
    edge = start_edge(max_connections=limit, retry_after_seconds=3)
    held = []
    for _ in range(limit):  # fill every place with a request whose body is half sent
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        head, body = signed_request()
        writer.write(head + body[: len(body) // 2])
        held.append((reader, writer, body[len(body) // 2 :]))
    deadline = time.monotonic() + 5
    while edge.open_connections() < limit:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    start = time.monotonic()
    refused = await asyncio.gather(*(post_signed(edge.port, timeout=5) for _ in range(30)))
    assert time.monotonic() - start < 5  # answered at once, never left hanging
    for answer in refused:
        assert status(answer) == 503
        assert b"\r\nretry-after: 3\r\n" in answer

    for _, writer, rest in held:  # the established requests complete, all of them
        writer.write(rest)
    answers = await asyncio.gather(*(read_answer(reader, timeout=10) for reader, _, _ in held))
    for _, writer, _ in held:
        writer.close()
    assert [status(answer) for answer in answers] == [202] * limit
    assert status(await post_signed(edge.port)) == 202  # and the places are free again


async def test_stalled_and_trickled_bodies_get_408(start_edge: Callable[..., EdgeProcess]) -> None:
    edge = start_edge(body_idle_timeout_seconds=1.5, body_timeout_seconds=4)

    async def slow_body(trickle: bool) -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        head, body = signed_request()
        writer.write(head + body[:10])
        start = time.monotonic()
        read = asyncio.ensure_future(read_answer(reader, timeout=15))
        with contextlib.suppress(ConnectionError):
            for byte in body[10:]:
                if read.done() or not trickle:
                    break
                writer.write(bytes([byte]))  # one byte every 0.5 s: never idle for long
                await asyncio.wait([read], timeout=0.5)
        answer = await read
        writer.close()
        return time.monotonic() - start, answer

    (stalled_after, stalled), (trickled_after, trickled) = await asyncio.gather(
        slow_body(trickle=False), slow_body(trickle=True)
    )
    assert status(stalled) == 408 and b"request body stalled" in stalled
    assert 1.3 <= stalled_after < 6
    assert status(trickled) == 408 and b"request body not received in time" in trickled
    assert 3.6 <= trickled_after < 9
    assert status(await post_signed(edge.port)) == 202
