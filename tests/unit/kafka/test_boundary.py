"""Only the Kafka boundary builds aiokafka clients and touches aiokafka's internals (read from source).

The boundary is :mod:`services.kafka.clients` (construction), :mod:`services.kafka.internals` and
:mod:`services.kafka.group_fencing` (private members, checked by ``test_internals.py``). Anywhere else
a client built by hand would miss the connection options (TLS, SASL), and a private member would
escape the check that catches an aiokafka upgrade moving it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BOUNDARY = {
    "services/kafka/clients.py",
    "services/kafka/internals.py",
    "services/kafka/group_fencing.py",
    "services/kafka/acl_protocol.py",
}
PRODUCT = sorted(
    path
    for package in ("services", "streams", "schemas")
    for path in (ROOT / package).rglob("*.py")
    if path.relative_to(ROOT).as_posix() not in BOUNDARY
)
CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}
PUBLIC_MODULES = {
    "aiokafka",
    "aiokafka.errors",
    "aiokafka.structs",
    "aiokafka.admin",
    "aiokafka.admin.config_resource",
    "aiokafka.abc",  # AbstractTokenProvider (OAUTHBEARER), ConsumerRebalanceListener: documented API
}
PRIVATE_MEMBERS = {
    "_coordinator",
    "_client",
    "_txn_manager",
    "_message_accumulator",
    "_sender",
    "_send_request",
}
"""Private members of aiokafka's clients the boundary uses; nobody else may (``self._client`` of
Breakwater's own classes is fine: the check skips attributes of ``self``)."""
INTERNAL_METHODS = {"fetch_all_metadata", "force_metadata_update", "fetch_committed_offsets", "fail_all"}
"""Methods of aiokafka's internal objects (its ``AIOKafkaClient``, coordinator, accumulator)."""


def _on_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id == "self"


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aiokafka"):
            if node.module not in PUBLIC_MODULES:
                found.append(f"{where} imports aiokafka's internal module {node.module}")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in CLIENTS:
                found.append(f"{where} builds {name} (use services.kafka.clients)")
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_MEMBERS and not _on_self(node):
            found.append(f"{where} touches .{node.attr} (use services.kafka.internals)")
        elif isinstance(node, ast.Attribute) and node.attr in INTERNAL_METHODS:
            found.append(f"{where} calls .{node.attr} (use services.kafka.internals)")
    return found


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_client_or_internal_outside_the_boundary(path: Path) -> None:
    assert offences(path) == []


def test_the_check_sees_what_it_forbids() -> None:
    sample = ROOT / "services" / "kafka" / "clients.py"
    assert any("builds AIOKafkaProducer" in line for line in offences(sample))
    internals = offences(ROOT / "services" / "kafka" / "group_fencing.py")
    assert any("internal module aiokafka.protocol.api" in line for line in internals)
    assert any("touches ._sender" in line for line in internals)
    assert any(
        "calls .fetch_committed_offsets" in line for line in offences(ROOT / "services/kafka/internals.py")
    )
