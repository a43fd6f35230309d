"""Single-node KRaft Apache Kafka broker assembled from Maven Central.

The broker classpath comes from `tests/testbed/kafka/pom.xml` (`mvn dependency:copy-dependencies`) and is
cached under `<cache>/kafka-<version>/lib`; a user-provided distribution (`KAFKA_HOME` with `libs/`) wins.
Internal topics use replication factor / min ISR 1 so that transactions work on one node.
With the pod bridge up (network.py), a second listener `POD` is bound to and advertised as the bridge's
gateway (10.244.0.1) so pods on the test bed node reach the broker; the loopback listener stays for tests
on the host.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from . import network
from .common import (
    TestbedError,
    cache_dir,
    free_ports,
    logs_dir,
    port_open,
    progress,
    read_service,
    spawn,
    stop_service,
    testbed_dir,
    wait_for,
)

NAME = "kafka"
POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
READY_TIMEOUT = 60.0


def pinned_version() -> str:
    """The Kafka version pinned in the pom (single source of truth)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise TestbedError(f"no <kafka.version> in {POM}")
    return match.group(1)


def java_bin() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise TestbedError("no `java` on PATH (Kafka 4.x brokers need a JDK/JRE 17+); set JAVA_HOME")
    return found


def classpath() -> str:
    """Broker classpath: `KAFKA_HOME/libs`, else the Maven-assembled cache (fetched on first use)."""
    home = os.environ.get("KAFKA_HOME")
    if home:
        libs = Path(home).expanduser() / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise TestbedError(f"KAFKA_HOME={home} has no libs/kafka_2.13-*.jar")
        return f"{libs}/*"
    return f"{ensure_jars()}/*"


def ensure_jars() -> Path:
    """Populate `<cache>/kafka-<version>/lib` with Maven once; a stamp marks a complete copy."""
    version = pinned_version()
    home = cache_dir() / f"kafka-{version}"
    lib, stamp = home / "lib", home / ".complete"
    if stamp.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TestbedError(
            "Kafka jars are not cached and `mvn` is not on PATH (install Maven, or set KAFKA_HOME)"
        )
    progress(f"fetching Apache Kafka {version} jars from Maven Central into {lib}")
    started = time.monotonic()
    tmp = home / "lib.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
            f"-Dkafka.version={version}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise TestbedError(
            f"mvn failed to assemble Kafka {version}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    tmp.replace(lib)
    stamp.write_text(f"{version}\n")
    progress(f"Kafka jars ready ({len(list(lib.glob('*.jar')))} jars, {time.monotonic() - started:.1f}s)")
    return lib


def _server_properties(data: Path, port: int, controller_port: int, pod_port: int | None = None) -> str:
    listeners = f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
    advertised = f"PLAINTEXT://127.0.0.1:{port}"
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if pod_port is not None:
        listeners += f",POD://{network.GATEWAY}:{pod_port}"
        advertised += f",POD://{network.GATEWAY}:{pod_port}"
        protocols += ",POD:PLAINTEXT"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters: the quorum is defined by config, so formatting needs no --standalone.
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": listeners,
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        "log.dirs": str(data),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Small segments/indexes keep the single-node footprint low.
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.index.size.max.bytes": str(1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _log_config(log: Path) -> tuple[str, str]:
    """log4j2 config (Kafka 4.x) and a log4j 1 one (for a 3.9 `KAFKA_HOME`), both writing to `log`."""
    log4j2 = (
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {log}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = file\n"
        "logger.state.name = state.change.logger\n"
        "logger.state.level = WARN\n"
    )
    log4j1 = (
        "log4j.rootLogger=INFO, file\n"
        "log4j.appender.file=org.apache.log4j.FileAppender\n"
        f"log4j.appender.file.File={log}\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )
    return log4j2, log4j1


# Heap and collector of the broker JVM. The default is small and single-threaded for a 2-core CI host.
# SMC_KAFKA_JVM_OPTS replaces it (split on spaces), e.g. Kafka's own defaults from
# kafka-server-start.sh / kafka-run-class.sh: "-Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20
# -XX:InitiatingHeapOccupancyPercent=35". SMC_KAFKA_GC_LOG=1 writes the collector's pauses to
# .testbed/logs/kafka-gc.log (young pauses of 25-40 ms about once a second at 10,000 msgs/s with
# the default: latency every client sees).
DEFAULT_JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC")


def jvm_options() -> list[str]:
    custom = os.environ.get("SMC_KAFKA_JVM_OPTS", "").split()
    options = custom or list(DEFAULT_JVM_OPTS)
    if os.environ.get("SMC_KAFKA_GC_LOG") == "1":
        options.append(f"-Xlog:gc:file={logs_dir() / 'kafka-gc.log'}:uptime")
    return options


def start() -> dict[str, object]:
    """Format fresh storage and start the broker; returns its state once an AdminClient call works."""
    cp, java = classpath(), java_bin()
    home = testbed_dir() / "kafka"
    data = home / "data"
    shutil.rmtree(home, ignore_errors=True)
    data.mkdir(parents=True)
    port, controller_port, pod_port_free = free_ports(3)
    pod_port = pod_port_free if network.gateway_present() else None
    log, stdout_log = logs_dir() / "kafka.log", logs_dir() / "kafka.stdout.log"
    for path in (log, stdout_log):
        path.unlink(missing_ok=True)
    props = home / "server.properties"
    props.write_text(_server_properties(data, port, controller_port, pod_port))
    log4j2, log4j1 = _log_config(log)
    (home / "log4j2.properties").write_text(log4j2)
    (home / "log4j.properties").write_text(log4j1)
    jvm = [
        java,
        *jvm_options(),
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        f"-Dlog4j.configuration=file:{home / 'log4j.properties'}",
        f"-Dkafka.logs.dir={logs_dir()}",
        "-cp",
        cp,
    ]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    # `--cluster-id=...` keeps an id that starts with "-" from being parsed as an option; the short-lived
    # format JVM starts faster with C1 only.
    fmt = subprocess.run(
        [
            *jvm[:1],
            "-XX:TieredStopAtLevel=1",
            *jvm[1:],
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "--config",
            str(props),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise TestbedError(f"formatting Kafka storage failed:\n{fmt.stdout[-2000:]}{fmt.stderr[-2000:]}")
    service = spawn(NAME, [*jvm, "kafka.Kafka", str(props)], stdout_log)
    progress(f"kafka starting on 127.0.0.1:{port} (pid {service.pid})")
    started = time.monotonic()
    wait_for(
        "kafka",
        lambda: probe(port, timeout=2.0),
        READY_TIMEOUT,
        interval=0.25,
        alive=lambda: read_service(NAME) is not None,
        log=log if log.exists() else stdout_log,
    )
    progress(f"kafka ready in {time.monotonic() - started:.1f}s")
    return {
        "bootstrap": f"127.0.0.1:{port}",
        "pod_bootstrap": f"{network.GATEWAY}:{pod_port}" if pod_port is not None else None,
        "port": port,
        "controller_port": controller_port,
        "version": pinned_version() if not os.environ.get("KAFKA_HOME") else "KAFKA_HOME",
        "pid": service.pid,
    }


def _quiet_logger() -> logging.Logger:
    """librdkafka logs every refused connection; probes should not spam the console."""
    logger = logging.getLogger("smc.testbed.kafka-probe")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def probe(port: int, timeout: float = 5.0) -> bool:
    """True when the broker answers an AdminClient metadata request with itself as a live broker."""
    if not port_open(port):
        return False
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": int(timeout * 1000)},
        logger=_quiet_logger(),
    )
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(metadata.brokers)


def healthy(state: dict[str, object]) -> bool:
    """Alive and answering; a busy broker gets three tries before it is declared dead (and restarted)."""
    port = state.get("port")
    if read_service(NAME) is None or not isinstance(port, int):
        return False
    if network.gateway_present() and not state.get("pod_bootstrap"):
        return False  # started before the pod bridge existed: restart it with the pod listener
    return any(probe(port) for _ in range(3))


def stop() -> bool:
    return stop_service(NAME, grace=20.0)
