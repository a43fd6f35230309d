"""Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager, used via kubectl.

Binaries come from `ETCD_BIN`/`KUBE_APISERVER_BIN`/`KUBE_CONTROLLER_MANAGER_BIN`/`KUBECTL_BIN`, else the
cache built by `build_k8s.sh` (pinned versions), else version-compatible ones on PATH, else a fresh build.
The node (kubelet, containerd, kube-scheduler, kube-proxy) is a separate component (node.py) started after
this one; its binaries come from the same pinned build. The controller manager runs only the controllers
tests and the node need (workloads, garbage collector, namespace, service accounts, node lifecycle,
endpoints, root CA publisher, disruption budgets). RBAC is enforced: the
admin uses a client certificate in `system:masters`, the operator a bearer token for the
`smc-system/smc-operator` ServiceAccount identity, so RBAC that manifests/ binds to that ServiceAccount
really applies.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import network, pki
from .common import (
    TestbedError,
    cache_dir,
    free_ports,
    logs_dir,
    progress,
    read_service,
    spawn,
    stop_service,
    testbed_dir,
    wait_for,
)

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_k8s.sh"
SERVICES = ("etcd", "kube-apiserver", "kube-controller-manager")  # start order; stopped in reverse
BINARY_ENV = {
    "etcd": "ETCD_BIN",
    "kube-apiserver": "KUBE_APISERVER_BIN",
    "kube-controller-manager": "KUBE_CONTROLLER_MANAGER_BIN",
    "kubectl": "KUBECTL_BIN",
}
# Node binaries: built from the same modules, only when the node component needs them.
NODE_BINARY_ENV = {
    "kubelet": "KUBELET_BIN",
    "kube-scheduler": "KUBE_SCHEDULER_BIN",
    "kube-proxy": "KUBE_PROXY_BIN",
}
MIN_K8S_MINOR = 33
MIN_ETCD = (3, 5)
# Override with SMC_KCM_CONTROLLERS (e.g. add statefulset-controller) if a test needs more.
CONTROLLERS = (
    "deployment-controller,replicaset-controller,statefulset-controller,"
    "garbage-collector-controller,namespace-controller,"
    # for the node: default ServiceAccounts (pods need one), the not-ready taint removed, Service endpoints,
    # the kube-root-ca.crt ConfigMap of projected token volumes
    "serviceaccount-controller,node-lifecycle-controller,endpoints-controller,endpointslice-controller,"
    "root-ca-certificate-publisher-controller,"
    # PodDisruptionBudget status (the Eviction API refuses evictions a budget does not allow)
    "disruption-controller"
)
OPERATOR_USER = "system:serviceaccount:smc-system:smc-operator"
OPERATOR_GROUPS = "system:serviceaccounts,system:serviceaccounts:smc-system,system:authenticated"
READY_TIMEOUT = 90.0


def _pinned(variable: str) -> str:
    """Versions are pinned once, in build_k8s.sh (`VAR="${VAR:-vX.Y.Z}"`); the environment may override."""
    match = re.search(rf'^{variable}="\$\{{{variable}:-([^}}]+)\}}"', BUILD_SCRIPT.read_text(), re.M)
    if match is None:
        raise TestbedError(f"{variable} not pinned in {BUILD_SCRIPT}")
    return os.environ.get(variable) or match.group(1)


def k8s_version() -> str:
    return _pinned("K8S_VERSION")


def etcd_version() -> str:
    return _pinned("ETCD_VERSION")


def cache_bin_dir() -> Path:
    return cache_dir() / f"k8s-{k8s_version()}" / "bin"


# --- binaries --------------------------------------------------------------------------------------------


def _version_output(binary: str, name: str) -> str:
    args = ["version", "--client", "-o", "json"] if name == "kubectl" else ["--version"]
    try:
        result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout


def compatible(binary: str, name: str) -> bool:
    """Whether a binary found on PATH is new enough to stand in for the pinned build."""
    out = _version_output(binary, name)
    if name == "etcd":
        match = re.search(r"etcd Version: (\d+)\.(\d+)", out)
        return match is not None and (int(match.group(1)), int(match.group(2))) >= MIN_ETCD
    if name == "kubectl":
        try:
            minor = json.loads(out)["clientVersion"]["minor"]
        except (ValueError, KeyError):
            return False
        return int(re.sub(r"\D", "", minor) or 0) >= MIN_K8S_MINOR
    match = re.search(r"Kubernetes v1\.(\d+)\.", out)
    return match is not None and int(match.group(1)) >= MIN_K8S_MINOR


def _find(name: str) -> Path | None:
    variable = {**BINARY_ENV, **NODE_BINARY_ENV}[name]
    explicit = os.environ.get(variable)
    if explicit:
        path = Path(explicit).expanduser()
        if not os.access(path, os.X_OK):
            raise TestbedError(f"{variable}={explicit} is not an executable file")
        return path
    cached = cache_bin_dir() / name
    if os.access(cached, os.X_OK):
        return cached
    on_path = shutil.which(name)
    if on_path and compatible(on_path, name):
        return Path(on_path)
    return None


def cached_binary(name: str) -> Path | None:
    """A binary of the pinned build if present (env override or cache), without building anything."""
    try:
        return _find(name)
    except TestbedError:
        return None


def binaries() -> dict[str, Path]:
    """Resolve the control plane binaries, building missing ones from Go modules (slow, once per cache)."""
    return _resolve(tuple(BINARY_ENV))


def node_binaries() -> dict[str, Path]:
    """kubelet, kube-scheduler, kube-proxy from the same pinned modules (built `nice`d when missing)."""
    return _resolve(tuple(NODE_BINARY_ENV), nice=True)


def _resolve(names: tuple[str, ...], nice: bool = False) -> dict[str, Path]:
    found = {name: _find(name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        if shutil.which("go") is None:
            raise TestbedError(
                f"{', '.join(missing)} not found (cache, env or PATH) and `go` is not installed"
            )
        # build_k8s.sh serialises concurrent builds itself (flock on the cache).
        progress(
            f"building {', '.join(missing)} (Kubernetes {k8s_version()}, etcd {etcd_version()}) "
            f"with {BUILD_SCRIPT.name}; a cold build takes a long while"
        )
        started = time.monotonic()
        env = {
            **os.environ,
            "K8S_VERSION": k8s_version(),
            "ETCD_VERSION": etcd_version(),
            "SMC_K8S_BINARIES": " ".join(missing),
        }
        argv = ["bash", str(BUILD_SCRIPT)]
        if nice and shutil.which("nice"):
            argv = ["nice", "-n", "10", *argv]
        result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise TestbedError(f"{BUILD_SCRIPT} failed with exit code {result.returncode} (output above)")
        progress(f"build finished in {time.monotonic() - started:.0f}s")
        found = {name: _find(name) for name in names}
        still = [name for name, path in found.items() if path is None]
        if still:
            raise TestbedError(f"{', '.join(still)} still missing after the build")
    return {name: path for name, path in found.items() if path is not None}


# --- configuration ---------------------------------------------------------------------------------------


def _kubeconfig(server: str, ca: Path, user: str, credentials: dict[str, str]) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "smc-testbed", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "smc-testbed", "context": {"cluster": "smc-testbed", "user": user}}],
        "current-context": "smc-testbed",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


@dataclass(frozen=True)
class Layout:
    """Where the control plane's files live under `.testbed/`."""

    home: Path
    kubeconfig: Path
    operator_kubeconfig: Path
    kcm_kubeconfig: Path
    kubectl_link: Path

    @classmethod
    def current(cls) -> Layout:
        root = testbed_dir()
        home = root / "k8s"
        return cls(
            home=home,
            kubeconfig=root / "kubeconfig",
            operator_kubeconfig=root / "kubeconfig-operator",
            kcm_kubeconfig=home / "controller-manager.kubeconfig",
            kubectl_link=root / "bin" / "kubectl",
        )


# --- probes ----------------------------------------------------------------------------------------------


def _ssl_context(layout: Layout, client: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(layout.home / "pki" / "ca.crt"))
    if client:
        ctx.load_cert_chain(str(layout.home / "pki" / "admin.crt"), str(layout.home / "pki" / "admin.key"))
    return ctx


def _get(port: int, path: str, ctx: ssl.SSLContext, timeout: float = 3.0) -> tuple[int, str]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return 0, ""
    finally:
        conn.close()


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        return '"health":"true"' in conn.getresponse().read().decode().replace(" ", "")
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def apiserver_ready(port: int, layout: Layout | None = None) -> bool:
    status, body = _get(port, "/readyz", _ssl_context(layout or Layout.current()))
    return status == 200 and body.strip() == "ok"


def api_get(port: int, path: str) -> tuple[int, str]:
    """GET on the apiserver as the admin; (0, "") when it does not answer."""
    return _get(port, path, _ssl_context(Layout.current()))


def healthy(state: dict[str, object]) -> bool:
    port = state.get("apiserver_port")
    return (
        all(read_service(name) is not None for name in SERVICES)
        and isinstance(port, int)
        and apiserver_ready(port)
    )


# --- lifecycle -------------------------------------------------------------------------------------------


def start() -> dict[str, object]:
    """Generate PKI and identities, start etcd, the apiserver and the controller manager, wait until ready."""
    bins = binaries()
    layout = Layout.current()
    shutil.rmtree(layout.home, ignore_errors=True)
    layout.home.mkdir(parents=True)
    certs = pki.generate(layout.home / "pki")
    etcd_port, etcd_peer, api_port, kcm_port = free_ports(4)
    # With the pod bridge up, pods reach the apiserver through the `kubernetes` Service, which kube-proxy
    # routes to the advertised address: listen on all addresses and advertise the bridge's gateway.
    on_bridge = network.gateway_present()
    bind, advertise = ("0.0.0.0", network.GATEWAY) if on_bridge else ("127.0.0.1", "127.0.0.1")
    server = f"https://127.0.0.1:{api_port}"

    token = secrets.token_hex(24)
    tokens = layout.home / "tokens.csv"
    _write_private(tokens, f'{token},{OPERATOR_USER},smc-operator-uid,"{OPERATOR_GROUPS}"\n')
    _write_private(
        layout.kubeconfig,
        _kubeconfig(
            server,
            certs.ca.cert,
            "admin",
            {"client-certificate": str(certs.admin.cert), "client-key": str(certs.admin.key)},
        ),
    )
    _write_private(
        layout.operator_kubeconfig, _kubeconfig(server, certs.ca.cert, "smc-operator", {"token": token})
    )
    _write_private(
        layout.kcm_kubeconfig,
        _kubeconfig(
            server,
            certs.ca.cert,
            "kube-controller-manager",
            {
                "client-certificate": str(certs.controller_manager.cert),
                "client-key": str(certs.controller_manager.key),
            },
        ),
    )
    layout.kubectl_link.parent.mkdir(parents=True, exist_ok=True)
    layout.kubectl_link.unlink(missing_ok=True)
    layout.kubectl_link.symlink_to(bins["kubectl"])

    logs = logs_dir()
    for name in SERVICES:
        (logs / f"{name}.log").unlink(missing_ok=True)

    started = time.monotonic()
    etcd_log = logs / "etcd.log"
    spawn(
        "etcd",
        [
            str(bins["etcd"]),
            "--name=smc-testbed",
            f"--data-dir={layout.home / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=smc-testbed=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ],
        etcd_log,
    )
    wait_for(
        "etcd",
        lambda: _etcd_healthy(etcd_port),
        READY_TIMEOUT,
        alive=lambda: read_service("etcd") is not None,
        log=etcd_log,
    )

    api_log = logs / "kube-apiserver.log"
    spawn(
        "kube-apiserver",
        [
            str(bins["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--bind-address={bind}",
            f"--advertise-address={advertise}",
            f"--secure-port={api_port}",
            f"--cert-dir={layout.home / 'pki'}",
            f"--tls-cert-file={certs.serving.cert}",
            f"--tls-private-key-file={certs.serving.key}",
            f"--client-ca-file={certs.ca.cert}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # logs/exec reach the kubelet by its InternalIP, authenticated with the admin certificate
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={certs.admin.cert}",
            f"--kubelet-client-key={certs.admin.key}",
            f"--service-account-issuer=https://127.0.0.1:{api_port}/",
            f"--service-account-key-file={certs.sa_public}",
            f"--service-account-signing-key-file={certs.sa_private}",
            "--profiling=false",
            "--v=1",
        ],
        api_log,
    )
    wait_for(
        "kube-apiserver /readyz",
        lambda: apiserver_ready(api_port, layout),
        READY_TIMEOUT,
        alive=lambda: read_service("kube-apiserver") is not None,
        log=api_log,
    )
    ctx = _ssl_context(layout)
    wait_for(
        "namespace default",
        lambda: _get(api_port, "/api/v1/namespaces/default", ctx)[0] == 200,
        READY_TIMEOUT,
        log=api_log,
    )

    kcm_log = logs / "kube-controller-manager.log"
    spawn(
        "kube-controller-manager",
        [
            str(bins["kube-controller-manager"]),
            f"--kubeconfig={layout.kcm_kubeconfig}",
            f"--authentication-kubeconfig={layout.kcm_kubeconfig}",
            f"--authorization-kubeconfig={layout.kcm_kubeconfig}",
            "--leader-elect=false",
            f"--controllers={os.environ.get('SMC_KCM_CONTROLLERS') or CONTROLLERS}",
            "--use-service-account-credentials=false",
            f"--root-ca-file={certs.ca.cert}",
            f"--service-account-private-key-file={certs.sa_private}",
            "--bind-address=127.0.0.1",
            f"--secure-port={kcm_port}",
            f"--cert-dir={layout.home / 'kcm-certs'}",
            "--v=1",
        ],
        kcm_log,
    )
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    wait_for(
        "kube-controller-manager /healthz",
        lambda: _get(kcm_port, "/healthz", insecure)[0] == 200,
        READY_TIMEOUT,
        alive=lambda: read_service("kube-controller-manager") is not None,
        log=kcm_log,
    )
    progress(f"kubernetes control plane ready at {server} in {time.monotonic() - started:.1f}s")
    return {
        "server": server,
        "apiserver_port": api_port,
        "etcd_port": etcd_port,
        "kcm_port": kcm_port,
        "kubeconfig": str(layout.kubeconfig),
        "operator_kubeconfig": str(layout.operator_kubeconfig),
        "kubectl": str(layout.kubectl_link),
        "kubectl_target": str(bins["kubectl"]),
        "version": k8s_version(),
        "binaries": {name: str(path) for name, path in bins.items()},
    }


def stop() -> bool:
    """Stop in reverse order: controller manager, apiserver, etcd. True if anything was running."""
    stopped = False
    for name in reversed(SERVICES):
        stopped = stop_service(name, grace=15.0) or stopped
    return stopped
