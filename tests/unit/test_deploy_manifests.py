"""The deployment files (deploy/compose, deploy/k8s) agree with the code, checked statically.

No Docker, no cluster, no broker: every YAML file parses; every ``BREAKWATER_*`` variable the manifests
set is a real field of the settings model; every TOML config loads through ``load_settings`` with the
environment each container gets; probes and health checks name real GET routes of the edge on its
port; each worker slot has its own id and a volume at ``pipeline.state_dir``; replication says 3/2.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from services.config import CONFIG_ENV, ENV_PREFIX, BreakwaterSettings, ConfigError, load_settings
from services.probes import create_probe_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
K8S_DIR = ROOT / "deploy" / "k8s"
COMPOSE = COMPOSE_DIR / "compose.yaml"
SPECIAL_ENV = {CONFIG_ENV, f"{ENV_PREFIX}KAFKA_BOOTSTRAP"}
SECRET_REF = re.compile(r"\"(env|file):([^\"]+)\"")
SAMPLE_POD_NAME = "breakwater-worker-0"  # what a fieldRef to metadata.name yields in the StatefulSet


# ---------------------------------------------------------------------------------------------------
# The checker: does an environment variable name a field of the settings model?


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types behind Optional/Union/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg) if t is not type(None)]
    return [annotation]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _resolves(parts: list[str], candidates: list[Any]) -> bool:
    """Whether ``parts`` (lower-cased, split on ``__``) walk down from one of ``candidates``."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    for tp in candidates:
        if _is_model(tp):
            if head in tp.model_fields and _resolves(rest, _unwrap(tp.model_fields[head].annotation)):
                return True
        # A map (BREAKWATER_PROVIDERS__STRIPE__TOLERANCE_SECONDS): any key, then the value's fields.
        elif typing.get_origin(tp) is dict and _resolves(rest, _unwrap(typing.get_args(tp)[1])):
            return True
    return False


def is_settings_env(name: str) -> bool:
    """True when pydantic-settings maps ``name`` onto a field of :class:`BreakwaterSettings`."""
    if name in SPECIAL_ENV:
        return True
    if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
        return False
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    return all(parts) and _resolves(parts, [BreakwaterSettings])


def unknown_settings_env(names: typing.Iterable[str]) -> list[str]:
    """Every ``BREAKWATER_*`` name in ``names`` that no settings field reads: a silent typo."""
    return sorted({n for n in names if n.startswith(ENV_PREFIX) and not is_settings_env(n)})


# ---------------------------------------------------------------------------------------------------
# Reading the manifests


@dataclass
class Container:
    """One Breakwater process as a manifest defines it."""

    where: str
    args: list[str]
    env: dict[str, str]
    mounts: dict[str, str] = field(default_factory=dict)  # mount path -> volume (or source) name
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return self.args[0] if self.args else ""


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """Every document of a manifest (each one a mapping: Kubernetes and compose files are)."""
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def yaml_files() -> list[Path]:
    return sorted(p for d in (COMPOSE_DIR, K8S_DIR) for p in d.rglob("*") if p.suffix in {".yaml", ".yml"})


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def compose_breakwater(doc: dict[str, Any], *, where: str = "compose") -> list[Container]:
    containers = []
    for name, service in doc["services"].items():
        if not str(service.get("image", "")).startswith("breakwater"):
            continue
        mounts = {}
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source, target = volume.split(":")[:2]
            else:
                source, target = volume["source"], volume["target"]
            mounts[target] = source
        args = service.get("command") or []
        containers.append(Container(f"{where}:{name}", list(args), compose_env(service), mounts, service))
    return containers


def kustomization() -> dict[str, Any]:
    return load_yaml(K8S_DIR / "kustomization.yaml")[0]


def k8s_documents() -> list[dict[str, Any]]:
    return [doc for resource in kustomization()["resources"] for doc in load_yaml(K8S_DIR / resource)]


def generated_configmaps() -> dict[str, dict[str, str]]:
    maps: dict[str, dict[str, str]] = {}
    for gen in kustomization().get("configMapGenerator", []):
        data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
        for file in gen.get("files", []):
            key, _, path = file.rpartition("=")
            data[key or Path(path).name] = (K8S_DIR / path).read_text()
        maps[gen["name"]] = data
    for doc in k8s_documents():
        if doc["kind"] == "ConfigMap":
            maps[doc["metadata"]["name"]] = doc.get("data", {})
    return maps


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in {"Deployment", "StatefulSet", "Job", "DaemonSet"}:
        return typing.cast(dict[str, Any], doc["spec"]["template"]["spec"])
    return None


def k8s_containers(docs: list[dict[str, Any]] | None = None) -> list[Container]:
    configmaps = generated_configmaps()
    containers = []
    for doc in k8s_documents() if docs is None else docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for c in spec["containers"]:
            env: dict[str, str] = {}
            for source in c.get("envFrom", []):
                env.update(configmaps[source["configMapRef"]["name"]])
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                env[var["name"]] = SAMPLE_POD_NAME if ref == "metadata.name" else str(var.get("value", ""))
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            where = f"k8s:{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
            containers.append(Container(where, list(c.get("args", [])), env, mounts, c))
    return containers


def all_containers() -> list[Container]:
    return compose_breakwater(load_yaml(COMPOSE)[0]) + k8s_containers()


def doc_of(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name)


# ---------------------------------------------------------------------------------------------------
# Loading the TOML configs with the environment each container gets


def config_path_for(container: Container) -> Path:
    """The host file behind the container's BREAKWATER_CONFIG."""
    target = container.env[CONFIG_ENV]
    if container.where.startswith("compose"):
        return COMPOSE_DIR / container.mounts[target].removeprefix("./")
    mount_dir, filename = target.rsplit("/", 1)
    assert container.mounts.get(mount_dir) == "config", f"{container.where}: {target} is not mounted"
    return K8S_DIR / filename


@pytest.fixture
def settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``settings_for(container)``: its settings as it would load them, secrets replaced by dummies."""

    def load(container: Container, toml_text: str | None = None) -> BreakwaterSettings:
        source = config_path_for(container)
        text = source.read_text() if toml_text is None else toml_text
        secrets = tmp_path / "secrets"
        secrets.mkdir(exist_ok=True)

        def dummy(match: re.Match[str]) -> str:
            kind, ref = match.groups()
            if kind == "env":
                monkeypatch.setenv(ref, f"dummy-{ref}")
                return match.group(0)
            local = secrets / ref.strip("/").replace("/", "__")
            local.write_text(f"dummy-{ref}\n")
            return f'"file:{local}"'

        copy = tmp_path / source.name
        copy.write_text(SECRET_REF.sub(dummy, text))
        for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(name)
        for name, value in container.env.items():
            if name.startswith(ENV_PREFIX):
                monkeypatch.setenv(name, str(copy) if name == CONFIG_ENV else value)
        return load_settings()

    yield load


# ---------------------------------------------------------------------------------------------------
# The checker itself can fail


def test_checker_accepts_real_settings_and_rejects_typos() -> None:
    good = [
        "BREAKWATER_CONFIG",
        "BREAKWATER_KAFKA_BOOTSTRAP",
        "BREAKWATER_KAFKA__BOOTSTRAP",
        "BREAKWATER_KAFKA__LOCAL__PORT",
        "BREAKWATER_EDGE__PORT",
        "BREAKWATER_PIPELINE__WORKER_ID",
        "BREAKWATER_TOPICS__MIN_INSYNC_REPLICAS",
        "BREAKWATER_LOG_LEVEL",
        "BREAKWATER_PROVIDERS__STRIPE__TOLERANCE_SECONDS",
    ]
    bad = [
        "BREAKWATER_PIPELINE__WORKERID",
        "BREAKWATER_EDGE_PORT",  # single underscore: no such top-level field
        "BREAKWATER_KAFKA__BOOTSTRAPS",
        "BREAKWATER_EDGE__PORT__NUMBER",  # below a scalar
        "BREAKWATER_TOPICS__",
        "BREAKWATER_PROVIDERS__STRIPE__SECRET",
    ]
    assert unknown_settings_env(good) == []
    assert unknown_settings_env(bad) == sorted(bad)
    assert unknown_settings_env(["PATH", "KAFKA_NODE_ID"]) == []  # not ours: not checked


def test_a_misspelt_variable_in_a_copy_of_compose_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "compose.yaml"
    shutil.copy(COMPOSE, copy)
    text = copy.read_text()
    assert "BREAKWATER_PIPELINE__WORKER_ID" in text
    copy.write_text(text.replace("BREAKWATER_PIPELINE__WORKER_ID", "BREAKWATER_PIPELINE__WORKERID", 1))
    names = {n for c in compose_breakwater(load_yaml(copy)[0]) for n in c.env}
    assert unknown_settings_env(names) == ["BREAKWATER_PIPELINE__WORKERID"]


def test_a_typo_in_a_copy_of_the_config_fails_to_load(settings_for: Any) -> None:
    edge = next(c for c in all_containers() if c.role == "edge")
    text = config_path_for(edge).read_text()
    assert "replication_factor" in text
    with pytest.raises(ConfigError, match="replication_factr"):
        settings_for(edge, text.replace("replication_factor", "replication_factr"))


# ---------------------------------------------------------------------------------------------------
# The manifests


def test_every_yaml_file_parses() -> None:
    files = yaml_files()
    assert COMPOSE in files and K8S_DIR / "kustomization.yaml" in files
    for path in files:
        assert load_yaml(path), f"{path} is empty"


def test_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    kinds = {d["kind"] for d in k8s_documents()}
    assert {
        "Namespace",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "StatefulSet",
        "Job",
    } <= kinds
    assert {"breakwater-config", "breakwater-env"} <= set(generated_configmaps())


def test_every_breakwater_variable_is_a_settings_field() -> None:
    containers = all_containers()
    assert {c.role for c in containers} == {"edge", "worker", "topics"}
    names = {n for c in containers for n in c.env}
    names |= {k for data in generated_configmaps().values() for k in data}
    assert unknown_settings_env(names) == []
    for c in containers:
        assert CONFIG_ENV in c.env, f"{c.where} does not name its config file"
        assert "BREAKWATER_KAFKA__BOOTSTRAP" in c.env, f"{c.where} does not name the Kafka cluster"


def test_every_config_loads_with_each_containers_environment(settings_for: Any) -> None:
    for c in all_containers():
        settings = settings_for(c)
        assert settings.environment == "prod", c.where
        assert settings.providers, c.where
        assert settings.kafka.bootstrap, c.where
        # Workers create their changelog topics too, so every process must agree on 3/2.
        assert (settings.topics.replication_factor, settings.topics.min_insync_replicas) == (3, 2), c.where


def test_secrets_are_references_to_mounted_files_never_values() -> None:
    compose = load_yaml(COMPOSE)[0]
    configs = {
        COMPOSE_DIR / "breakwater.toml": "/run/secrets/",
        K8S_DIR / "breakwater.toml": "/run/secrets/breakwater/",
    }
    for path, prefix in configs.items():
        config = tomllib.loads(path.read_text())
        values = [s for p in config["providers"].values() for s in p.get("secrets", [])]
        values += list(config["signing"]["keys"].values())
        assert values and all(v.startswith(f"file:{prefix}") for v in values), f"{path}: {values}"
    compose_refs = {
        m[1].removeprefix("/run/secrets/")
        for m in SECRET_REF.findall((COMPOSE_DIR / "breakwater.toml").read_text())
    }
    assert compose_refs <= set(compose["secrets"])
    for c in compose_breakwater(compose):
        assert compose_refs <= set(c.raw.get("secrets", [])), f"{c.where} lacks a secret it loads"
    secret = doc_of("Secret", "breakwater-secrets")
    k8s_refs = {
        m[1].removeprefix("/run/secrets/breakwater/")
        for m in SECRET_REF.findall((K8S_DIR / "breakwater.toml").read_text())
    }
    assert k8s_refs <= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for doc in k8s_documents():
        spec = pod_spec(doc)
        if spec is None:
            continue
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            mounted = {m["mountPath"]: volumes.get(m["name"], {}) for m in c["volumeMounts"]}
            assert mounted["/run/secrets/breakwater"]["secret"]["secretName"] == "breakwater-secrets"
            assert mounted["/etc/breakwater"]["configMap"]["name"] == "breakwater-config"
            assert all(
                m.get("readOnly") for m in c["volumeMounts"] if m["mountPath"].startswith(("/etc", "/run"))
            )
    for data in generated_configmaps().values():  # no secret values in plain ConfigMaps
        for text in data.values():
            assert not re.search(r"whsec_|BEGIN [A-Z ]*PRIVATE KEY", text)


def _edge_get_routes(settings: BreakwaterSettings) -> set[str]:
    from services.edge.app import create_app

    app = create_app(settings)
    return get_paths(app.routes)


def get_paths(routes: list[BaseRoute]) -> set[str]:
    """The paths an app answers GET on (a ``Route``: mounts and websockets have no methods)."""
    return {route.path for route in routes if isinstance(route, Route) and "GET" in (route.methods or ())}


def _port(value: Any, container: dict[str, Any]) -> int:
    if isinstance(value, int):
        return value
    port: int = next(p["containerPort"] for p in container["ports"] if p["name"] == value)
    return port


def test_k8s_probes_name_real_edge_routes_on_its_port(settings_for: Any) -> None:
    edge = next(c for c in k8s_containers() if c.role == "edge")
    settings = settings_for(edge)
    routes = _edge_get_routes(settings)
    assert {"/healthz", "/readyz"} <= routes
    probes = {k: edge.raw[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in edge.raw}
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for kind, probe in probes.items():
        assert probe["httpGet"]["path"] in routes, kind
        assert _port(probe["httpGet"]["port"], edge.raw) == settings.edge.port, kind
    assert settings.edge.host == "0.0.0.0"
    service = doc_of("Service", "breakwater-edge")
    for port in service["spec"]["ports"]:
        assert _port(port["targetPort"], edge.raw) == settings.edge.port
    assert doc_of("Deployment", "breakwater-edge")["spec"]["replicas"] == 2


def test_k8s_worker_probes_name_real_probe_routes_on_its_port(settings_for: Any) -> None:
    worker = next(c for c in k8s_containers() if c.role == "worker")
    settings = settings_for(worker)
    assert settings.pipeline.probe_port is not None and settings.pipeline.probe_host == "0.0.0.0"
    app = create_probe_app("worker", _never_ready)
    routes = get_paths(app.routes)
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = worker.raw[kind]["httpGet"]
        assert probe["path"] in routes, kind
        assert _port(probe["port"], worker.raw) == settings.pipeline.probe_port, kind


async def _never_ready() -> tuple[bool, dict[str, object]]:
    return False, {}


def test_compose_healthchecks_and_load_balancer_use_real_edge_routes(settings_for: Any) -> None:
    compose = load_yaml(COMPOSE)[0]
    edge = next(c for c in compose_breakwater(compose) if c.role == "edge")
    settings = settings_for(edge)
    routes = _edge_get_routes(settings)
    port = int(edge.args[edge.args.index("--port") + 1]) if "--port" in edge.args else settings.edge.port
    assert edge.raw["deploy"]["replicas"] == 2
    assert settings.edge.host == "0.0.0.0"
    check = " ".join(edge.raw["healthcheck"]["test"])
    urls = re.findall(r"http://[\w.-]+:(\d+)(/[\w/.-]*)", check)
    assert urls, check
    for url_port, path in urls:
        assert (int(url_port), path) == (port, "/readyz") and path in routes
    haproxy = (COMPOSE_DIR / "haproxy.cfg").read_text()
    checks = re.findall(r"http-check send meth GET uri (\S+)|option httpchk GET (\S+)", haproxy)
    assert checks and all((a or b) in routes for a, b in checks)
    servers = re.findall(r"^\s*server(?:-template)?\s+\S+\s+(?:\d+\s+)?([\w.-]+):(\d+)", haproxy, re.M)
    assert servers and all(host == "edge" and int(p) == port for host, p in servers)
    assert "edge" in compose["services"]["lb"]["depends_on"]


def test_every_long_running_compose_service_has_a_healthcheck_and_limits() -> None:
    compose = load_yaml(COMPOSE)[0]
    for name, service in compose["services"].items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= set(limits), name
        if service.get("restart") == "no":  # one-shot: others wait for it to complete instead
            assert name == "topics"
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_compose_kafka_is_three_combined_nodes_with_rf3_min_isr2() -> None:
    services = load_yaml(COMPOSE)[0]["services"]
    kafka = {n: s for n, s in services.items() if str(s.get("image", "")).startswith("apache/kafka")}
    assert len(kafka) == 3
    assert {s["image"] for s in kafka.values()} == {"apache/kafka:4.1.1"}
    envs = [{k: str(v) for k, v in s["environment"].items()} for s in kafka.values()]
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs}
    assert len(voters) == 1
    voter_ids = {v.split("@")[0] for v in voters.pop().split(",")}
    assert voter_ids == {e["KAFKA_NODE_ID"] for e in envs} and len(voter_ids) == 3
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    for e in envs:
        assert e["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert e["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert e["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3"
        assert e["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    brokers = {f"{e['KAFKA_ADVERTISED_LISTENERS'].split('://')[1]}" for e in envs}
    for c in compose_breakwater(load_yaml(COMPOSE)[0]):
        assert set(c.env["BREAKWATER_KAFKA__BOOTSTRAP"].split(",")) == brokers, c.where
    topics = services["topics"]
    assert topics["command"] == ["topics", "ensure"]
    assert topics["environment"]["BREAKWATER_TOPICS__REPLICATION_FACTOR"] == "3"
    assert topics["environment"]["BREAKWATER_TOPICS__MIN_INSYNC_REPLICAS"] == "2"


def test_compose_workers_have_their_own_id_and_state_volume(settings_for: Any) -> None:
    compose = load_yaml(COMPOSE)[0]
    workers = [c for c in compose_breakwater(compose) if c.role == "worker"]
    assert len(workers) == 3
    ids, volumes = set(), set()
    for w in workers:
        settings = settings_for(w)
        state = str(settings.pipeline.state_dir)
        assert state in w.mounts, f"{w.where}: nothing mounted at {state}"
        assert w.mounts[state] in compose["volumes"], f"{w.where}: {state} is not a named volume"
        ids.add(settings.pipeline.worker_id)
        volumes.add(w.mounts[state])
    assert len(ids) == len(volumes) == 3


def test_k8s_worker_statefulset_ids_and_state(settings_for: Any) -> None:
    sts = doc_of("StatefulSet", "breakwater-worker")
    assert sts["spec"]["replicas"] == 3
    [worker] = k8s_containers([sts])
    [id_var] = [v for v in worker.raw["env"] if v["name"] == "BREAKWATER_PIPELINE__WORKER_ID"]
    assert id_var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    settings = settings_for(worker)
    assert settings.pipeline.worker_id == SAMPLE_POD_NAME
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    state = str(settings.pipeline.state_dir)
    assert worker.mounts.get(state) in claims, f"no volumeClaimTemplate mounted at {state}"
    job = doc_of("Job", "breakwater-topics")
    [topics] = k8s_containers([job])
    assert topics.args == ["topics", "ensure"]
    assert topics.env["BREAKWATER_TOPICS__REPLICATION_FACTOR"] == "3"
    assert topics.env["BREAKWATER_TOPICS__MIN_INSYNC_REPLICAS"] == "2"


def test_k8s_pods_are_non_root_and_bounded() -> None:
    for doc in k8s_documents():
        spec = pod_spec(doc)
        if spec is None:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for c in spec["containers"]:
            resources = c["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), doc["metadata"]["name"]
            assert {"cpu", "memory"} <= set(resources["limits"]), doc["metadata"]["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_images_are_pinned() -> None:
    pinned = {i["name"]: i for i in kustomization().get("images", [])}
    images = [c["image"] for d in k8s_documents() if (s := pod_spec(d)) for c in s["containers"]]
    for image in images:
        if image in pinned:
            tag = pinned[image].get("newTag") or pinned[image].get("digest")
        else:
            tag = image.rpartition(":")[2] if ":" in image else None
        assert tag and tag != "latest", image
    for name, service in load_yaml(COMPOSE)[0]["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), name
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"pip install \.", dockerfile)
    assert re.search(r"^USER (?!0\b|root\b)\S+", dockerfile, re.M)
    assert 'ENTRYPOINT ["breakwater"]' in dockerfile
