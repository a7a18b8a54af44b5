"""A small flood end to end on the run's broker: every request answered, every webhook accounted for."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from services.flood.report import REQUIRED_FIELDS
from services.flood.runner import FloodOptions, run_flood
from services.flood.scenario import default_scenario

pytestmark = pytest.mark.kafka


def test_small_flood_accounts_for_every_webhook(kafka_bootstrap: str, tmp_path: Path) -> None:
    scenario = default_scenario(scale=0.02, duration=9, drain=20, connections=16)
    report_path = tmp_path / "flood-report.json"
    options = FloodOptions(scenario, report_path, bootstrap=kafka_bootstrap, show_progress=False)

    with (tmp_path / "console.txt").open("w") as console:
        report = run_flood(options, Console(file=console))

    assert json.loads(report_path.read_text()) == report
    assert set(REQUIRED_FIELDS) <= set(report)
    requests = report["requests"]
    assert requests["dropped"] == 0
    assert sum(requests["statuses"].values()) == requests["sent"] >= 300
    assert set(requests["statuses"]) <= {"202", "401", "429", "503"}
    assert report["accounting"]["passed"], json.dumps(report["accounting"], indent=2)
    accepted = report["accepted"]
    assert accepted["unique"] > 0 and report["delivered"]["events"] == accepted["unique"]
    assert report["duplicates_dropped"] >= accepted["responses"] - accepted["unique"]
    unacknowledged = report["accounting"]["stored_unacknowledged"]
    assert report["dedup"]["passed"] == accepted["unique"] + unacknowledged  # counted in = counted out
    stale = report["requests"]["by_kind"].get("stale", {})
    assert stale.get("202", 0) == 0  # hours-late resends are refused...
    assert (
        report["rejected_by_reason"].get("401 stale_timestamp", 0) == stale.get("401", 0) > 0
    )  # ...as stale
    assert report["edge_latency_ms"]["p99"] is not None and report["end_to_end_latency_ms"]["p50"] is not None
    assert report["peak_consumer_lag"] is not None
    assert {"edge", "worker", "simulator"} <= set(report["peak_rss_mb"] or {})
    dedup = report["worker_dedup_memory_mb"]  # read from the worker's /metrics while it ran
    assert dedup["peak"] is not None and 0 < dedup["peak"] <= dedup["budget"]
    assert report["plot"] and Path(report["plot"]).is_file()


def _flood_command(bootstrap: str, report: Path) -> tuple[list[str], dict[str, str]]:
    command = [
        sys.executable,
        "-m",
        "services.cli.main",
        "flood",
        "--bootstrap",
        bootstrap,
        "--scale",
        "0.02",
    ]
    return command + ["--duration", "120", "--report", str(report)], dict(os.environ)


def _soak_command(bootstrap: str, report: Path) -> tuple[list[str], dict[str, str]]:
    """The soak runs the flood as its child: pointed at the run's broker, its kept temp dirs in the test's."""
    command = [sys.executable, "-m", "benchmarks.soak", "--minutes", "2", "--rate", "50"]
    return command, {**os.environ, "BREAKWATER_KAFKA__BOOTSTRAP": bootstrap, "TMPDIR": str(report.parent)}


@pytest.mark.parametrize("launch", [_flood_command, _soak_command], ids=["flood", "soak"])
def test_a_terminated_flood_stops_every_process_it_started(
    launch: Callable[[str, Path], tuple[list[str], dict[str, str]]], kafka_bootstrap: str, tmp_path: Path
) -> None:
    """``kill`` (SIGTERM), as from a CI timeout, must not leave an edge, worker or generator behind.

    Run directly or under the soak, which must pass the signal on rather than leave its flood running.
    """
    command, env = launch(kafka_bootstrap, tmp_path / "report.json")
    top = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: dict[str, psutil.Process] = {}
    try:
        parent = psutil.Process(top.pid)
        deadline = time.monotonic() + 120
        while not {"loadgen", "worker", "edge", "simulator"} <= set(started):  # until it is sending
            assert top.poll() is None, f"{command[2]} exited before it was terminated"
            assert time.monotonic() < deadline, f"only {sorted(started)} started"
            for child in parent.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    name = _role(" ".join(child.cmdline()))
                    if name:
                        started[name] = child
            time.sleep(0.2)  # processes announce nothing: poll, bounded by the deadline
        top.send_signal(signal.SIGTERM)
        assert top.wait(timeout=90) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(list(started.values()), timeout=10)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if top.poll() is None:
            top.kill()
        for process in started.values():  # a failing run must not leave them behind either
            with contextlib.suppress(psutil.Error):
                process.kill()


def _role(cmdline: str) -> str | None:
    for module, name in [
        ("services.cli.main flood", "flood"),  # under the soak
        ("services.flood.loadgen", "loadgen"),
        ("streams.worker", "worker"),
        ("services.cli.main edge", "edge"),
        ("services.flood.simulator", "simulator"),
    ]:
        if module in cmdline:
            return name
    return None
