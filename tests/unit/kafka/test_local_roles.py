"""Commands on this machine reach the secure local broker as their role, reading only its home."""

from __future__ import annotations

from pathlib import Path

from services.cli.kafka import as_local_role, local_node
from services.config import load_settings
from services.kafka.tls import generate_broker_tls


def test_commands_use_their_roles_credentials_once_the_node_is_secure(tmp_path: Path) -> None:
    settings = load_settings(kafka={"local": {"home": str(tmp_path), "cache_dir": str(tmp_path / "nowhere")}})
    assert as_local_role(settings) is settings  # a plain (or not yet formatted) node: nothing changes
    node = local_node(settings, tmp_path, secure=True)
    generate_broker_tls(node.tls.folder)
    node._make_credentials()
    worker = as_local_role(settings, "worker").kafka
    assert (worker.security_protocol, worker.sasl_mechanism, worker.sasl_username) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "worker",
    )
    assert worker.sasl_password is not None and worker.sasl_password.get_secret_value() == node.password(
        "worker"
    )
    assert worker.bootstrap is None and worker.servers == node.bootstrap  # still the local node
    assert worker.ssl_cafile == node.tls.ca
    assert not (tmp_path / "nowhere").exists()  # no jars fetched


def test_a_configured_cluster_or_security_is_left_alone(tmp_path: Path) -> None:
    local = {"home": str(tmp_path)}
    node = local_node(load_settings(kafka={"local": local}), tmp_path, secure=True)
    generate_broker_tls(node.tls.folder)
    node._make_credentials()
    external = load_settings(kafka={"local": local, "bootstrap": "kafka:9092"})
    assert as_local_role(external) is external


def test_operator_commands_connect_as_the_operator_not_the_super_user() -> None:
    import typer.main

    from services.cli.main import ROLE_OF_COMMAND, app

    group = typer.main.get_group(app)
    assert set(ROLE_OF_COMMAND) <= set(group.commands)  # every mapped name is a real command
    for command in ("dlq", "stats", "operators", "services"):
        assert ROLE_OF_COMMAND[command] == "operator"
    assert {ROLE_OF_COMMAND.get(name, "admin") for name in ("kafka", "topics", "acls", "up")} == {"admin"}
