"""Host plumbing for the node: Debian packages, the pod bridge `smc0` and iptables clean-up.

The bridge and its gateway address exist before Kafka starts, so the broker can bind a listener that pods
reach (`10.244.0.1:<port>`). Everything here needs root; without it the bed still runs Kafka and the
control plane, and only the node refuses to start, saying why.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from .common import TestbedError, progress, testbed_dir

# One node per machine: the bridge, 10.244.0.1 and the KUBE-* chains are machine-wide. The bed whose node runs
# records itself here; other beds neither start a node nor clean up the shared plumbing meanwhile.
CLAIM = Path("/run/smc-testbed/node-owner.json")
BRIDGE = "smc0"
GATEWAY = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
PREFIX = 24

# command (or file) -> Debian package providing it
REQUIRED: dict[str, str] = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "iptables": "iptables",
    "iptables-save": "iptables",
    "ip6tables": "iptables",
    "ip": "iproute2",
    "buildah": "buildah",
    "mmdebstrap": "mmdebstrap",
}


def _present(item: str) -> bool:
    if item.startswith("/"):
        return os.access(item, os.X_OK)
    return shutil.which(item) is not None or any(
        os.access(Path(d) / item, os.X_OK) for d in ("/usr/sbin", "/sbin")
    )


def tool(name: str) -> str:
    """Absolute path of a system tool (root's sbin directories are not always on PATH)."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in ("/usr/sbin", "/sbin") if os.access(Path(d) / name, os.X_OK)), None
    )
    if found is None:
        raise TestbedError(f"`{name}` not found (Debian package {REQUIRED.get(name, name)})")
    return found


def missing_packages() -> list[str]:
    return sorted({pkg for item, pkg in REQUIRED.items() if not _present(item)})


def ensure_packages() -> None:
    """Install the node's Debian packages with apt-get when missing; otherwise say exactly what is missing."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise TestbedError(
            "the test bed node needs these Debian packages, which are not installed: "
            + " ".join(missing)
            + (" (run as root so the test bed can apt-get install them)" if os.geteuid() != 0 else
               " (no apt-get on this machine: install the equivalents)")
        )
    progress(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise TestbedError(
                f"`{' '.join(argv)}` failed ({result.returncode}); missing: {' '.join(missing)}\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
    still = missing_packages()
    if still:
        raise TestbedError(f"still missing after apt-get install: {' '.join(still)}")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([tool("ip"), *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise TestbedError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def gateway_present() -> bool:
    """Whether `smc0` is up and carries the gateway address (so listeners can bind it)."""
    if shutil.which("ip") is None and not Path("/usr/sbin/ip").exists() and not Path("/sbin/ip").exists():
        return False
    out = _ip("-o", "-4", "addr", "show", "dev", BRIDGE, check=False)
    return out.returncode == 0 and f"inet {GATEWAY}/{PREFIX}" in out.stdout


def ensure_bridge() -> bool:
    """Create `smc0` with the gateway address (idempotent). False (with a note) when not possible."""
    if gateway_present():
        return True
    if os.geteuid() != 0:
        progress(f"not root: no pod bridge {BRIDGE}; Kafka gets no pod listener and the node cannot start")
        return False
    if _ip("link", "show", BRIDGE, check=False).returncode != 0:
        _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "replace", f"{GATEWAY}/{PREFIX}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    progress(f"pod bridge {BRIDGE} {GATEWAY}/{PREFIX} up")
    return True


def gateway_listeners(proc_net_tcp: str) -> list[int]:
    """Ports listening on the gateway address in a ``/proc/net/tcp`` or ``tcp6`` text (addresses are
    little-endian hex there: 10.244.0.1 is ``0100F40A``, or IPv4-mapped in ``tcp6`` as a JVM binds it;
    state ``0A`` is LISTEN)."""
    packed = "".join(f"{int(octet):02X}" for octet in reversed(GATEWAY.split(".")))
    addresses = {packed, "0000000000000000FFFF0000" + packed}
    ports = []
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":
            address, _, port = fields[1].partition(":")
            if address in addresses:
                ports.append(int(port, 16))
    return ports


def remove_bridge() -> bool:
    """Delete `smc0` unless a node runs or another bed still serves pods on it: a Kafka-only bed of another
    checkout keeps its pod listener on the gateway, and its pods (or a later node) would lose the address."""
    if os.geteuid() != 0 or other_owner() is not None:
        return False
    listeners: list[int] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            listeners += gateway_listeners(Path(table).read_text())
        except OSError:
            continue
    if listeners:
        progress(f"pod bridge {BRIDGE} kept: another bed listens on {GATEWAY} (ports {listeners})")
        return False
    if _ip("link", "show", BRIDGE, check=False).returncode != 0:
        return False
    _ip("link", "del", BRIDGE, check=False)
    return True


FAMILIES = ("iptables", "ip6tables")  # kubelet and kube-proxy set up both


def _save(family: str, table: str) -> str:
    try:
        save = tool(f"{family}-save")
    except TestbedError:
        return ""
    return subprocess.run([save, "-t", table], capture_output=True, text=True, check=False).stdout


def kube_chains() -> dict[tuple[str, str], list[str]]:
    """KUBE-* chains per (iptables family, table), left by kube-proxy and the kubelet."""
    chains: dict[tuple[str, str], list[str]] = {}
    for family in FAMILIES:
        for table in ("filter", "nat", "mangle"):
            out = _save(family, table)
            names = [line[1:].split()[0] for line in out.splitlines() if line.startswith(":KUBE-")]
            if names:
                chains[(family, table)] = names
    return chains


def remove_kube_chains() -> int:
    """Delete every rule jumping to a KUBE-* chain, then the chains; returns how many chains went."""
    removed = 0
    for (family, table), names in kube_chains().items():
        binary = tool(family)
        # rules in other chains that jump to KUBE-* chains, e.g. "-A OUTPUT ... -j KUBE-SERVICES"
        for line in _save(family, table).splitlines():
            parts = shlex.split(line)
            if (
                len(parts) > 2
                and parts[0] == "-A"
                and not parts[1].startswith("KUBE-")
                and "-j" in parts
                and parts[parts.index("-j") + 1].startswith("KUBE-")
            ):
                subprocess.run([binary, "-t", table, "-D", *parts[1:]], capture_output=True, check=False)
        for name in names:
            subprocess.run([binary, "-t", table, "-F", name], capture_output=True, check=False)
        for name in names:
            result = subprocess.run([binary, "-t", table, "-X", name], capture_output=True, check=False)
            removed += result.returncode == 0
    return removed


def _claim_owner() -> str | None:
    """The test bed directory whose node holds the machine's node plumbing, if that node still runs."""
    try:
        data = json.loads(CLAIM.read_text())
        owner, pid = str(data["testbed"]), int(data["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return owner if owner in cmdline else None


def other_owner() -> str | None:
    """Another test bed (directory) whose node runs on this machine, else None."""
    owner = _claim_owner()
    return owner if owner is not None and owner != str(testbed_dir()) else None


def claim(pid: int) -> None:
    """Record this bed's node (its kubelet's pid) as the owner of the machine's node plumbing."""
    other = other_owner()
    if other is not None:
        raise TestbedError(
            f"the node of the test bed in {other} runs on this machine (one node per machine: the bridge "
            f"{BRIDGE} and the KUBE-* iptables chains are shared); stop it there with "
            "`python -m tests.testbed down`"
        )
    CLAIM.parent.mkdir(parents=True, exist_ok=True)
    CLAIM.write_text(json.dumps({"testbed": str(testbed_dir()), "pid": pid}) + "\n")


def unclaim() -> None:
    try:
        data = json.loads(CLAIM.read_text())
    except (OSError, ValueError):
        return
    if data.get("testbed") == str(testbed_dir()):
        CLAIM.unlink(missing_ok=True)
