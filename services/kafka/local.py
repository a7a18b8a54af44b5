"""The embedded default: a single-node Apache Kafka (KRaft, broker and controller in one JVM).

The official jars come from Maven Central through ``deploy/kafka/pom.xml`` and are cached outside git
(``~/.cache/breakwater/kafka-{version}``, with Maven's own downloads kept in ``m2/`` beside them, so a
fresh machine needs nothing but Java and Maven). The node is formatted on its first start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from services.config import KafkaSettings, LocalKafkaSettings
from services.errors import BreakwaterError
from services.kafka.admin import broker_answers
from services.kafka.clients import KafkaTarget
from services.kafka.tls import BROKER_PRINCIPAL, BrokerTls, generate_broker_tls, write_private

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"


# Brokers this process started: kept so they are reaped on stop (no zombies, no ResourceWarning).
_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}
_LOG_START: dict[int, int] = {}  # pid -> size of its log when launched: what it writes comes after
STARTED_MARKER = b"Kafka Server started"
ROLES = ("admin", "edge", "worker", "operator", "consumer")
"""The SCRAM users of a secure local broker: ``admin`` is the super user, the others get ACLs."""
SCRAM_MECHANISM = "SCRAM-SHA-512"
SECURE_LISTENER = "SASL_SSL"
LOOPBACK = "127.0.0.1"


class LocalKafkaError(BreakwaterError, RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


def fetch_jars(version: str, cache_dir: Path, *, quiet: bool = True) -> Path:
    """Download Kafka ``version`` and its runtime dependencies once; return the folder of jars."""
    libs = cache_dir / f"kafka-{version}" / "libs"
    done = libs / ".complete"
    if done.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven (mvn) is not on PATH; it fetches the Kafka jars from Maven Central")
    if not POM.is_file():
        raise LocalKafkaError(f"{POM} is missing; run breakwater from a checkout of the repository")
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        "-f",
        str(POM),
        f"-Dmaven.repo.local={cache_dir / 'm2'}",
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise LocalKafkaError(f"mvn could not fetch Kafka {version}:\n{tail}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    done.write_text(version)
    return libs


@dataclass(frozen=True)
class LocalKafka:
    """One KRaft node rooted at ``home`` (config, data, log and pid file live there)."""

    libs: Path
    home: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "1g"
    node_id: int = 1
    data: Path | None = None
    log: Path | None = None
    voters: str | None = None
    """``id@host:port,...`` of every controller; None means this node alone."""
    cluster_id: str | None = None
    """Every node of one cluster is formatted with the same id; None means a fresh one."""
    replication: int = 1
    """Replicas of Kafka's internal topics (offsets, transactions): the cluster's size, at most 3."""
    secure: bool = False
    """SASL_SSL (SCRAM-SHA-512) for clients, mutual TLS to the controller, the StandardAuthorizer."""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def credentials_dir(self) -> Path:
        """One ``{role}.password`` per role (mode 0600), and ``{role}.env`` naming it for a process."""
        return self.home / "credentials"

    @property
    def tls(self) -> BrokerTls:
        return BrokerTls(self.home / "tls")

    @property
    def target(self) -> KafkaTarget:
        """How this process reaches the broker: as ``admin`` when it is secure."""
        return self.client_settings("admin") if self.secure else self.bootstrap

    def password(self, role: str) -> str:
        return (self.credentials_dir / f"{role}.password").read_text().strip()

    def client_settings(self, role: str, base: KafkaSettings | None = None) -> KafkaSettings:
        """``base`` (default: the defaults) pointed at this secure broker as ``role``."""
        return (base or KafkaSettings()).model_copy(update=self.role_options(role))

    def role_options(self, role: str) -> dict[str, object]:
        return {
            "bootstrap": self.bootstrap,
            "security_protocol": SECURE_LISTENER,
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_username": role,
            "sasl_password": SecretStr(self.password(role)),
            "ssl_cafile": self.tls.ca,
        }

    def role_environment(self, role: str) -> dict[str, str]:
        """The environment that makes a Breakwater process connect as ``role`` (the password by reference)."""
        password = (self.credentials_dir / f"{role}.password").resolve()
        return {
            "BREAKWATER_KAFKA__BOOTSTRAP": self.bootstrap,
            "BREAKWATER_KAFKA__SECURITY_PROTOCOL": SECURE_LISTENER,
            "BREAKWATER_KAFKA__SASL_MECHANISM": SCRAM_MECHANISM,
            "BREAKWATER_KAFKA__SASL_USERNAME": role,
            "BREAKWATER_KAFKA__SASL_PASSWORD": f"file:{password}",
            "BREAKWATER_KAFKA__SSL_CAFILE": str(self.tls.ca.resolve()),
        }

    def _make_credentials(self) -> None:
        """A random password per role, once, each readable by its owner only; and each role's env file."""
        self.credentials_dir.mkdir(parents=True, exist_ok=True)
        self.credentials_dir.chmod(0o700)
        for role in ROLES:
            path = self.credentials_dir / f"{role}.password"
            if not path.is_file():
                write_private(path, secrets.token_hex(24).encode())
            env = "".join(f"{key}={value}\n" for key, value in self.role_environment(role).items())
            write_private(self.credentials_dir / f"{role}.env", env.encode())

    @property
    def data_dir(self) -> Path:
        return self.data or self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.log or self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    def _security_properties(self) -> dict[str, str]:
        """Clients on SASL_SSL with SCRAM; the controller on mutual TLS, on loopback only.

        The controller's listener cannot use SCRAM (its credentials live in the metadata the controller
        serves), and PLAINTEXT would make whoever connects ``User:ANONYMOUS``, which the broker's own
        calls need as a super user. So it takes only a client certificate signed by the broker's CA,
        which only the broker holds: ``User:CN=breakwater-broker`` is the other super user.
        """
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{self.password("admin")}";'
        )
        return {
            "listener.security.protocol.map": f"{SECURE_LISTENER}:SASL_SSL,CONTROLLER:SSL",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.{SECURE_LISTENER.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.tls.keystore.resolve()),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.tls.ca.resolve()),
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:admin;{BROKER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _properties(self) -> str:
        plain = "SASL_SSL" if self.secure else "PLAINTEXT"
        controller = LOOPBACK if self.secure else self.host  # secure: only this machine reaches it
        listeners = f"{plain}://{self.host}:{self.port},CONTROLLER://{controller}:{self.controller_port}"
        min_isr = max(1, self.replication - 1)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters or f"{self.node_id}@{controller}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"{plain}://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": plain,
            "log.dirs": str(self.data_dir),
            "num.partitions": "8",
            # Internal topics cannot have more replicas than there are brokers.
            "offsets.topic.replication.factor": str(self.replication),
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": str(self.replication),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "default.replication.factor": str(self.replication),
            "min.insync.replicas": str(min_isr),
            # A single machine has no stragglers to wait for before the first rebalance.
            "group.initial.rebalance.delay.ms": "0",
            # Topics come from the catalogue (breakwater topics ensure), never by accident.
            "auto.create.topics.enable": "false",
            "log.retention.check.interval.ms": "60000",
        }
        if self.secure:
            settings.update(self._security_properties())
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, main_class: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise LocalKafkaError("java is not on PATH; the local broker runs on the JVM")
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    def format_once(self) -> None:
        """Write the config and format the storage on first use; later starts reuse the data."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        scram: list[str] = []
        formatted = (self.data_dir / "meta.properties").exists()
        if self.secure and formatted and not self._has_credentials():
            raise LocalKafkaError(
                f"{self.data_dir} was formatted without users (a plain node); a secure node needs a fresh "
                "one: another kafka.local.home, or remove that data"
            )
        if self.secure:
            generate_broker_tls(
                self.tls.folder, hosts=tuple(dict.fromkeys((self.host, LOOPBACK, "localhost")))
            )
            self._make_credentials()
            for role in ROLES:
                scram += ["--add-scram", f"{SCRAM_MECHANISM}=[name={role},password={self.password(role)}]"]
        write_private(self.config_file, self._properties().encode())  # it holds the admin's password
        if formatted:
            return
        cluster_id = self.cluster_id or _kraft_cluster_id()
        command = self._java(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_file), *scram
        )
        # The SCRAM passwords must not be on a command line (any local user reads /proc/<pid>/cmdline):
        # the whole command, past the launcher, goes in an argument file only its owner can read. The
        # launcher expands @files only before the main class, and not the class path's `*`: so all of it.
        argfile = self.home / "format.args"
        java, *rest = command
        rest[rest.index("-cp") + 1] = ":".join(str(jar) for jar in sorted(self.libs.glob("*.jar")))
        write_private(argfile, "\n".join(f'"{arg}"' for arg in rest).encode())
        try:
            result = subprocess.run([java, f"@{argfile}"], capture_output=True, text=True, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            output = re.sub(r"password=[^\],\s]*", "password=***", f"{result.stdout}{result.stderr}")
            raise LocalKafkaError(f"formatting {self.data_dir} failed:\n{output}")

    def _has_credentials(self) -> bool:
        return (self.credentials_dir / "admin.password").is_file()

    def pid(self) -> int | None:
        """The broker's pid if it is running."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        if pid in _SPAWNED:  # ours: between fork and exec its cmdline is still Python's
            return pid if _alive(pid) else None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        with contextlib.suppress(OSError):  # a pid file from an earlier run, its pid since reused?
            if b"kafka.Kafka" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return None
        return pid

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker in the background and return once it answers a metadata request.

        True when this call launched it. False when this node already runs (another ``breakwater up``
        or ``kafka start`` launched it): the caller uses it and must leave it running, since a process
        stops only what it started.
        """
        if (pid := self.pid()) is not None:
            if broker_answers(self.target):
                return False
            raise LocalKafkaError(f"a broker process (pid {pid}) runs but does not answer")
        if broker_answers(self.bootstrap) or (
            self.secure and self._has_credentials() and broker_answers(self.target)
        ):
            raise LocalKafkaError(
                f"something else already answers on {self.bootstrap}; no broker of {self.home} runs"
            )
        self.launch()
        self.wait_ready(timeout)
        return True

    def launch(self) -> None:
        """Spawn the JVM and return at once (a cluster launches every node before any can answer)."""
        self.format_once()
        with self.log_file.open("ab") as log:
            log_start = log.tell()
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI that started it; stopped by `kafka stop`
            )
        _SPAWNED[process.pid] = process
        _LOG_START[process.pid] = log_start
        self.pid_file.write_text(str(process.pid))

    def wait_ready(self, timeout: float) -> None:
        """Return once the broker answers; fail with the log's tail if it dies or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is None:
                raise LocalKafkaError(f"broker on {self.bootstrap} exited:\n{self.log_tail()}")
            if self._started(pid) and broker_answers(self.target, timeout=2.0):
                return
            time.sleep(0.25)
        self.kill()
        raise LocalKafkaError(
            f"broker did not answer on {self.bootstrap} within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def _started(self, pid: int) -> bool:
        """Whether the process we launched says it serves (a port answering may be someone else's).

        Free ports are picked before the JVM binds them; another broker (a second test run's, a
        restarted cluster node's) can take one meanwhile and answer in our place while ours fails.
        """
        start = _LOG_START.get(pid)
        if start is None:  # launched by another process (``breakwater kafka start`` earlier)
            return True
        try:
            with self.log_file.open("rb") as log:
                log.seek(start)
                return STARTED_MARKER in log.read()
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop cleanly (SIGTERM: controlled shutdown), SIGKILL after ``timeout``. False if not running."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> bool:
        """SIGKILL: the broker dies as in a crash (tests use it)."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"


@dataclass(frozen=True)
class LocalCluster:
    """Several KRaft nodes on loopback, each broker and controller, sharing one quorum.

    For scale-out tests on one machine: topics with replication factor 3 and ``min.insync.replicas=2``
    keep accepting writes with one node stopped.
    """

    nodes: tuple[LocalKafka, ...]

    @classmethod
    def create(cls, libs: Path, home: Path, size: int = 3, heap: str = "512m") -> LocalCluster:
        ports = list(free_ports(2 * size))
        broker_ports, controller_ports = ports[:size], ports[size:]
        voters = ",".join(f"{i + 1}@127.0.0.1:{controller_ports[i]}" for i in range(size))
        cluster_id = _kraft_cluster_id()
        nodes = tuple(
            LocalKafka(
                libs=libs,
                home=home / f"node-{i + 1}",
                port=broker_ports[i],
                controller_port=controller_ports[i],
                heap=heap,
                node_id=i + 1,
                voters=voters,
                cluster_id=cluster_id,
                replication=min(size, 3),
            )
            for i in range(size)
        )
        return cls(nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def start(self, timeout: float = 120.0) -> None:
        for node in self.nodes:
            if node.pid() is None:
                node.launch()
        for node in self.nodes:
            node.wait_ready(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _alive(pid: int) -> bool:
    child = _SPAWNED.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _SPAWNED[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True


def _kraft_cluster_id() -> str:
    """KRaft wants a base64url UUID without padding, as ``kafka-storage random-uuid`` prints."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def free_ports(count: int) -> Iterator[int]:
    """Ports the OS says are free now (tests start brokers on them)."""
    import socket

    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        ports = [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    return iter(ports)


def start_fresh_broker(
    home: Path, *, attempts: int = 3, heap: str = "768m", secure: bool = False
) -> LocalKafka:
    """A new single-node broker on free ports under ``home``, for one run: a test session, a flood, a
    benchmark. The caller owns its whole life and stops it.

    A port the OS called free can be taken by another process before the JVM binds it; then the
    broker exits at once and the next attempt takes other ports.
    """
    defaults = LocalKafkaSettings()
    libs = fetch_jars(defaults.version, defaults.cache_dir)
    for attempt in range(1, attempts + 1):
        port, controller_port = free_ports(2)
        broker = LocalKafka(
            libs=libs,
            home=home / f"attempt-{attempt}",
            port=port,
            controller_port=controller_port,
            heap=heap,
            secure=secure,
        )
        try:
            broker.start(timeout=defaults.start_timeout_seconds)
            return broker
        except LocalKafkaError:
            broker.kill()  # never leave a half-started JVM behind
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


async def wait_until_answers(bootstrap: str, timeout: float) -> None:
    """Await a broker answering (used after restarting one in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(broker_answers, bootstrap, 2.0):
            return
        await asyncio.sleep(0.2)
    raise LocalKafkaError(f"no broker answered on {bootstrap} within {timeout:.0f}s")
