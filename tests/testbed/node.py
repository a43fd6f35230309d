"""A real Kubernetes node for the test bed: containerd, runc, CNI bridge, kubelet, kube-scheduler, kube-proxy.

containerd (Debian package) runs with its own socket, root and state under `.testbed/node/`, the pause image
`localhost/pause:3.10` (built from `pause/main.go`) and `restrict_oom_score_adj = true` (this kind of VM
refuses a negative oom_score_adj even to root; runc then fails with "can't get final child's PID from pipe").
Pods get addresses on the bridge `smc0` (10.244.0.0/24, gateway 10.244.0.1, see network.py), which is also
where Kafka's pod listener and the kubelet listen. kubelet, kube-scheduler and kube-proxy (iptables mode)
are built from the same pinned Kubernetes modules as the control plane (`build_k8s.sh`).

Teardown order matters: the scheduler stops first (nothing new lands), pods on the node are deleted while
the kubelet still runs (so it stops their containers and sandboxes), then the kubelet, containerd (and any
shim of our socket), kube-proxy with `--cleanup`, leftover KUBE-* chains and mounts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import images, kube, network
from .common import (
    TestbedError,
    free_ports,
    load_state,
    logs_dir,
    progress,
    read_service,
    spawn,
    stop_service,
    testbed_dir,
    wait_for,
)

NODE_NAME = "smc-testbed-node"
# The kubelet's cgroup root (kubepods below it), ours alone so teardown can remove it without guessing.
CGROUP_ROOT = "smc-testbed"
CGROUP_FS = Path("/sys/fs/cgroup")
SERVICES = ("containerd", "kubelet", "kube-proxy", "kube-scheduler")  # start order
READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class Layout:
    home: Path
    containerd_config: Path
    containerd_root: Path
    containerd_state: Path
    socket: Path
    cni_conf_dir: Path
    cni_data_dir: Path
    kubelet_config: Path
    kubelet_root: Path
    pod_logs: Path
    imported: Path

    @classmethod
    def current(cls) -> Layout:
        home = testbed_dir() / "node"
        return cls(
            home=home,
            containerd_config=home / "containerd" / "config.toml",
            containerd_root=home / "containerd" / "root",
            containerd_state=home / "containerd" / "state",
            socket=home / "run" / "containerd.sock",
            cni_conf_dir=home / "cni" / "net.d",
            cni_data_dir=home / "cni" / "ipam",
            kubelet_config=home / "kubelet" / "config.yaml",
            kubelet_root=home / "kubelet" / "root",
            pod_logs=home / "pod-logs",
            imported=home / "containerd" / "imported",
        )


def _containerd_config(layout: Layout) -> str:
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{layout.containerd_state}"

[grpc]
  address = "{layout.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.home / 'containerd' / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
"""


def _cni_conflist(layout: Layout) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "smc-testbed",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": network.BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": network.POD_CIDR, "gateway": network.GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.cni_data_dir),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def _kubelet_config(layout: Layout, ca: Path, port: int, healthz_port: int) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "failCgroupV1": False,  # this kind of VM has cgroup v1 hierarchies
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{layout.socket}",
        # The apiserver (logs/exec/port-forward) authenticates with a client certificate of the bed's CA.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "address": network.GATEWAY,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "enforceNodeAllocatable": [],
        "evictionHard": {"memory.available": "0%", "nodefs.available": "0%", "imagefs.available": "0%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False,
        "serializeImagePulls": False,
        "podLogsDir": str(layout.pod_logs),
        "containerLogMaxSize": "10Mi",
        "rotateCertificates": False,
        "nodeStatusReportFrequency": "10s",
    }
    return yaml.safe_dump(config, sort_keys=False)


def _cgroup_roots() -> list[Path]:
    """`<hierarchy>/smc-testbed` in every mounted cgroup v1 hierarchy, or the v2 unified tree."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [CGROUP_FS / CGROUP_ROOT]
    try:
        hierarchies = [p for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    return [h / CGROUP_ROOT for h in hierarchies if (h / "cgroup.procs").exists()]


def _make_cgroup_root() -> None:
    for root in _cgroup_roots():
        root.mkdir(exist_ok=True)


def _remove_cgroup_root() -> None:
    """rmdir the kubelet's cgroups, deepest first (only empty cgroups can go; the pods are gone by now)."""
    for root in _cgroup_roots():
        if not root.is_dir():
            continue
        for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                           reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


# --- binaries --------------------------------------------------------------------------------------------


def binaries() -> dict[str, Path]:
    """kubelet, kube-scheduler, kube-proxy: env override, cache, else built (niced) by build_k8s.sh."""
    return kube.node_binaries()


# --- probes ----------------------------------------------------------------------------------------------


def _k8s_state() -> dict[str, object]:
    return load_state().get("k8s", {})


def node_object(api_port: int, name: str = NODE_NAME) -> dict[str, object] | None:
    status, body = kube.api_get(api_port, f"/api/v1/nodes/{name}")
    if status != 200:
        return None
    data = json.loads(body)
    return data if isinstance(data, dict) else None


def node_ready(api_port: int) -> bool:
    """Ready condition True and the not-ready taint gone (the node-lifecycle controller removes it)."""
    node = node_object(api_port)
    if node is None:
        return False
    status = node.get("status")
    spec = node.get("spec")
    conditions = status.get("conditions", []) if isinstance(status, dict) else []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = spec.get("taints", []) if isinstance(spec, dict) else []
    not_ready = any(str(t.get("key", "")).startswith("node.kubernetes.io/") for t in taints or [])
    return ready and not not_ready


def _containerd_up(layout: Layout) -> bool:
    if not layout.socket.exists():
        return False
    result = subprocess.run(
        images.ctr_argv(layout.socket, "version"), capture_output=True, text=True, check=False, timeout=10
    )
    return result.returncode == 0


def healthy(state: dict[str, object]) -> bool:
    k8s = _k8s_state()
    port = k8s.get("apiserver_port")
    return (
        all(read_service(name) is not None for name in SERVICES)
        and state.get("server") == k8s.get("server")
        and isinstance(port, int)
        and node_ready(port)
    )


# --- lifecycle -------------------------------------------------------------------------------------------


def start() -> dict[str, object]:
    """Start containerd, the kubelet, kube-proxy and the scheduler against the running control plane."""
    network.ensure_packages()
    if os.geteuid() != 0:
        raise TestbedError("the test bed node (containerd, kubelet, iptables) needs root")
    if not network.ensure_bridge():
        raise TestbedError(f"pod bridge {network.BRIDGE} could not be created")
    k8s = _k8s_state()
    if not k8s:
        raise TestbedError("the node needs the Kubernetes control plane (component k8s) running")
    other = network.other_owner()
    if other is not None:
        raise TestbedError(
            f"the node of the test bed in {other} runs on this machine; one node per machine "
            "(shared bridge and iptables): stop it there with `python -m tests.testbed down`"
        )
    api_port = int(str(k8s["apiserver_port"]))
    kubeconfig = Path(str(k8s["kubeconfig"]))
    ca = kube.Layout.current().home / "pki" / "ca.crt"
    bins = binaries()
    pause = images.build_pause()

    layout = Layout.current()
    _unmount_under(layout.home)
    shutil.rmtree(layout.home, ignore_errors=True)
    for directory in (layout.containerd_root, layout.containerd_state, layout.socket.parent,
                      layout.cni_conf_dir, layout.cni_data_dir, layout.kubelet_root, layout.pod_logs):
        directory.mkdir(parents=True, exist_ok=True)
    layout.containerd_config.write_text(_containerd_config(layout))
    (layout.cni_conf_dir / "10-smc-testbed.conflist").write_text(_cni_conflist(layout))
    kubelet_port, healthz_port, proxy_metrics, proxy_healthz = free_ports(4)
    layout.kubelet_config.write_text(_kubelet_config(layout, ca, kubelet_port, healthz_port))

    logs = logs_dir()
    for name in SERVICES:
        (logs / f"{name}.log").unlink(missing_ok=True)
    started = time.monotonic()

    containerd_log = logs / "containerd.log"
    spawn("containerd", [network.tool("containerd"), "--config", str(layout.containerd_config)],
          containerd_log)
    wait_for("containerd", lambda: _containerd_up(layout), 30, interval=0.2,
             alive=lambda: read_service("containerd") is not None, log=containerd_log)
    images.import_archive(layout.socket, pause, layout.imported)
    # A restarted node starts from empty storage: bring back the images built before (the `smc_images`
    # fixture of a running session imported them once and will not again). New builds are imported on top.
    for name in images.DOCKERFILES:
        previous = images.last_built(name)
        if previous is not None:
            images.import_archive(layout.socket, previous, layout.imported)

    kubelet_log = logs / "kubelet.log"
    _make_cgroup_root()
    kubelet = spawn(
        "kubelet",
        [
            str(bins["kubelet"]),
            f"--config={layout.kubelet_config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={layout.kubelet_root}",
            f"--cert-dir={layout.kubelet_root / 'pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={network.GATEWAY}",
            "--v=1",
        ],
        kubelet_log,
    )
    network.claim(kubelet.pid)
    proxy_log = logs / "kube-proxy.log"
    spawn(
        "kube-proxy",
        [
            str(bins["kube-proxy"]),
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            f"--cluster-cidr={network.POD_CIDR}",
            "--proxy-mode=iptables",
            "--conntrack-max-per-core=0",
            f"--metrics-bind-address=127.0.0.1:{proxy_metrics}",
            f"--healthz-bind-address=127.0.0.1:{proxy_healthz}",
            "--v=1",
        ],
        proxy_log,
    )
    scheduler_log = logs / "kube-scheduler.log"
    spawn(
        "kube-scheduler",
        [
            str(bins["kube-scheduler"]),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=1",
        ],
        scheduler_log,
    )
    wait_for(
        f"node {NODE_NAME} Ready (no not-ready taint)",
        lambda: node_ready(api_port),
        READY_TIMEOUT,
        interval=0.5,
        alive=lambda: all(read_service(name) is not None for name in SERVICES),
        log=kubelet_log,
    )
    progress(f"node {NODE_NAME} Ready in {time.monotonic() - started:.1f}s")
    return {
        "server": k8s["server"],
        "node_name": NODE_NAME,
        "containerd_socket": str(layout.socket),
        "kubelet_port": kubelet_port,
        "gateway": network.GATEWAY,
        "pod_cidr": network.POD_CIDR,
        "imported_dir": str(layout.imported),
        "binaries": {name: str(path) for name, path in bins.items()},
    }


def _kubectl(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str] | None:
    k8s = _k8s_state()
    if not k8s or read_service("kube-apiserver") is None:
        return None
    argv = [str(k8s["kubectl"]), f"--kubeconfig={k8s['kubeconfig']}", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None


def _delete_pods() -> None:
    """Delete every pod bound to the node while the kubelet still runs, so it tears them down properly."""
    if read_service("kubelet") is None:
        return
    selector = f"--field-selector=spec.nodeName={NODE_NAME}"
    result = _kubectl("delete", "pods", "--all-namespaces", selector, "--grace-period=5",
                      "--wait=true", "--timeout=60s")
    if result is not None and result.returncode != 0:
        progress(f"deleting pods on the node: {result.stderr.strip()[:300]}")
    # The kubelet removes the sandboxes asynchronously after the API objects are gone.
    layout = Layout.current()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _running_tasks(layout):
        time.sleep(0.5)


def _tasks(layout: Layout) -> dict[str, str]:
    """containerd tasks (container id -> status: RUNNING, STOPPED, ...) in namespace k8s.io."""
    if not layout.socket.exists() or read_service("containerd") is None:
        return {}
    result = subprocess.run(
        images.ctr_argv(layout.socket, "tasks", "ls"), capture_output=True, text=True, check=False, timeout=15
    )
    if result.returncode != 0:
        return {}
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    return {row[0]: row[-1] for row in rows if len(row) >= 3}


def _running_tasks(layout: Layout) -> list[str]:
    return [task for task, status in _tasks(layout).items() if status != "STOPPED"]


def _kill_tasks(layout: Layout) -> None:
    """After the kubelet: kill what still runs and delete every task, so no containerd-shim outlives us."""
    for task, status in _tasks(layout).items():
        if status != "STOPPED":
            subprocess.run(images.ctr_argv(layout.socket, "tasks", "kill", "--signal", "SIGKILL", task),
                           capture_output=True, check=False, timeout=15)
        subprocess.run(images.ctr_argv(layout.socket, "tasks", "delete", "--force", task),
                       capture_output=True, check=False, timeout=15)


def shim_pids(layout: Layout | None = None) -> list[int]:
    """containerd-shim processes serving our socket (they run in their own sessions, outside containerd's)."""
    socket = str((layout or Layout.current()).socket)
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and socket.encode() in argv:
            pids.append(int(entry.name))
    return pids


def _unmount_under(root: Path) -> None:
    """Unmount whatever the kubelet/containerd left mounted below `root` (deepest first)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(root.resolve()) + "/"
    points = {line.split()[4] for line in lines if line.split()[4].startswith(prefix)}
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def stop() -> bool:
    """Tear the node down; True if any of its processes ran."""
    layout = Layout.current()
    stopped = stop_service("kube-scheduler", grace=10.0)
    _delete_pods()
    stopped = stop_service("kubelet", grace=20.0) or stopped
    _kill_tasks(layout)
    stopped = stop_service("containerd", grace=20.0) or stopped
    for pid in shim_pids(layout):
        progress(f"killing leftover containerd-shim {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stopped = stop_service("kube-proxy", grace=10.0) or stopped
    if os.geteuid() == 0 and network.other_owner() is None:  # never touch another bed's running node
        proxy = kube.cached_binary("kube-proxy")
        if proxy is not None and network.kube_chains():
            subprocess.run([str(proxy), "--cleanup", "--proxy-mode=iptables"], capture_output=True,
                           check=False, timeout=60)
        if network.kube_chains():
            network.remove_kube_chains()
        _remove_cgroup_root()
        network.unclaim()
    _unmount_under(layout.home)
    return stopped
