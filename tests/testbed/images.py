"""Container images for the test bed node, built without Docker or a registry.

- base `localhost/smc-python:3.11-bookworm`: a Debian bookworm root file system made by mmdebstrap from
  Debian packages (python3 is 3.11 there), cached as a tarball keyed on its inputs;
- `localhost/pause:3.10`: a static Go pause binary (`pause/main.go`) in a FROM-scratch image;
- `localhost/smc-runtime:dev`, `localhost/smc-operator:dev`: `Dockerfile.runtime` / `Dockerfile.operator`
  exactly as a user builds them with `docker build`, built by `buildah bud --isolation chroot` with
  `--build-arg PYTHON_IMAGE=<base>`.

Each image is rebuilt only when its inputs change (a key hashed over the Dockerfile, every file its COPY
lines name, the base image and the build args). Images are handed to the node's containerd as OCI archives
(`buildah push oci-archive:` then `ctr images import` into namespace k8s.io). buildah's storage lives in
the cache (`<cache>/containers`), so the host's own container storage is never touched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import network
from .common import REPO_ROOT, TestbedError, cache_dir, progress

SUITE = "bookworm"
MIRROR = os.environ.get("SMC_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BASE_IMAGE = "localhost/smc-python:3.11-bookworm"
PAUSE_IMAGE = "localhost/pause:3.10"
RUNTIME_IMAGE = "localhost/smc-runtime:dev"
OPERATOR_IMAGE = "localhost/smc-operator:dev"
DOCKERFILES = {RUNTIME_IMAGE: "Dockerfile.runtime", OPERATOR_IMAGE: "Dockerfile.operator"}
PAUSE_SOURCE = Path(__file__).resolve().parent / "pause"
# The package proxy here terminates TLS with a CA only the host's bundle trusts: builds see the host's certs.
HOST_CERTS = "/etc/ssl/certs"
CTR_NAMESPACE = "k8s.io"


@dataclass(frozen=True)
class Built:
    """An image in buildah's storage and the OCI archive containerd imports."""

    name: str
    image_id: str
    archive: Path
    key: str
    seconds: float  # build time of this call (0 when it was cached)


def images_dir() -> Path:
    path = cache_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _lock() -> Iterator[None]:
    """One image build per cache at a time (parallel pytest sessions would race on buildah's storage)."""
    with open(images_dir() / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str], what: str, timeout: float = 1800, cwd: Path | None = None) -> str:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise TestbedError(
            f"{what} failed ({result.returncode}): {shlex.join(argv)}\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def buildah_argv(*args: str) -> list[str]:
    """buildah with storage in the cache (overlay driver), never the host's /var/lib/containers."""
    store = cache_dir() / "containers"
    return [
        network.tool("buildah"),
        "--root", str(store / "storage"),
        "--runroot", str(store / "run"),
        "--storage-driver", "overlay",
        *args,
    ]


def _image_id(name: str) -> str | None:
    result = subprocess.run(
        buildah_argv("inspect", "--type", "image", "--format", "{{.FromImageID}}", name),
        capture_output=True, text=True, check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _stamp_path(name: str) -> Path:
    safe = name.replace("/", "_").replace(":", "_")
    return images_dir() / "stamps" / f"{safe}.json"


def _cached(name: str, key: str) -> Built | None:
    """The recorded build of `name` if its key matches and buildah still has that image and archive."""
    try:
        stamp = json.loads(_stamp_path(name).read_text())
    except (OSError, ValueError):
        return None
    archive = Path(stamp.get("archive", ""))
    if stamp.get("key") != key or not archive.is_file() or _image_id(name) != stamp.get("image_id"):
        return None
    return Built(name, str(stamp["image_id"]), archive, key, 0.0)


def last_built(name: str) -> Built | None:
    """The most recent build of `name` whose archive still exists (whatever its inputs were)."""
    try:
        stamp = json.loads(_stamp_path(name).read_text())
    except (OSError, ValueError):
        return None
    archive = Path(stamp.get("archive", ""))
    return Built(name, str(stamp["image_id"]), archive, str(stamp["key"]), 0.0) if archive.is_file() else None


def _record(name: str, key: str, started: float) -> Built:
    """Export a freshly built image as an OCI archive and stamp it with its input key."""
    image_id = _image_id(name)
    if image_id is None:
        raise TestbedError(f"buildah has no image {name} right after building it")
    archives = images_dir() / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    safe = name.rsplit("/", 1)[-1].replace(":", "_")
    for old in archives.glob(f"{safe}-*.tar"):
        old.unlink()
    archive = archives / f"{safe}-{image_id[:12]}.tar"
    tmp = archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    _run(buildah_argv("push", "--quiet", name, f"oci-archive:{tmp}:{name}"), f"exporting {name}")
    tmp.replace(archive)
    stamp = _stamp_path(name)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"key": key, "image_id": image_id, "archive": str(archive)}) + "\n")
    seconds = time.monotonic() - started
    progress(f"image {name} built in {seconds:.0f}s ({image_id[:12]})")
    return Built(name, image_id, archive, key, seconds)


# --- base image (mmdebstrap) -----------------------------------------------------------------------------


def base_key() -> str:
    inputs = {"suite": SUITE, "mirror": MIRROR, "variant": "minbase", "packages": list(BASE_PACKAGES), "v": 1}
    return _digest(json.dumps(inputs, sort_keys=True).encode())


def base_tarball() -> Path:
    """The bookworm root file system tarball, made by mmdebstrap once per input key."""
    key = base_key()
    tarball = images_dir() / f"base-{SUITE}-{key[:16]}.tar"
    if tarball.is_file():
        return tarball
    progress(f"making the {SUITE} base file system with mmdebstrap ({', '.join(BASE_PACKAGES)})")
    started = time.monotonic()
    tmp = images_dir() / f"partial-{tarball.name}"  # mmdebstrap picks the format from the suffix
    tmp.unlink(missing_ok=True)
    _run(
        [
            network.tool("mmdebstrap"),
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            "--aptopt=Acquire::Retries \"3\"",
            SUITE,
            str(tmp),
            MIRROR,
        ],
        "mmdebstrap",
    )
    for old in images_dir().glob(f"base-{SUITE}-*.tar"):
        old.unlink()
    tmp.replace(tarball)
    size = tarball.stat().st_size >> 20
    progress(f"base file system ready in {time.monotonic() - started:.0f}s ({size} MiB)")
    return tarball


def ensure_base() -> Built:
    key = base_key()
    cached = _cached(BASE_IMAGE, key)
    if cached is not None:
        return cached
    tarball = base_tarball()
    started = time.monotonic()
    container = _run(buildah_argv("from", "scratch"), "buildah from scratch").strip()
    try:
        _run(buildah_argv("add", container, str(tarball), "/"), "adding the base file system")
        _run(
            buildah_argv(
                "config",
                "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env", "LANG=C.UTF-8",
                "--cmd", "python3",
                "--label", f"io.smc-stream.inputs={key}",
                container,
            ),
            "configuring the base image",
        )
        _run(buildah_argv("commit", "--quiet", container, BASE_IMAGE), "committing the base image")
    finally:
        subprocess.run(buildah_argv("rm", container), capture_output=True, check=False)
    return _record(BASE_IMAGE, key, started)


# --- pause image (static Go) -----------------------------------------------------------------------------


def pause_key() -> str:
    go = shutil.which("go")
    go_version = _run([go, "env", "GOVERSION"], "go env").strip() if go else "no-go"
    files = sorted(p for p in PAUSE_SOURCE.iterdir() if p.is_file())
    return _digest(go_version.encode(), *(f.name.encode() + b"\0" + f.read_bytes() for f in files))


def ensure_pause() -> Built:
    key = pause_key()
    cached = _cached(PAUSE_IMAGE, key)
    if cached is not None:
        return cached
    go = shutil.which("go")
    if go is None:
        raise TestbedError("the pause image is built from Go source and `go` is not installed")
    started = time.monotonic()
    binary = images_dir() / "pause" / "pause"
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOCACHE": os.environ.get("GOCACHE", str(cache_dir() / "go" / "build")),
        "GOFLAGS": "",
    }
    result = subprocess.run(
        [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), "."],
        cwd=PAUSE_SOURCE, env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise TestbedError(f"building the pause binary failed:\n{result.stderr[-2000:]}")
    container = _run(buildah_argv("from", "scratch"), "buildah from scratch").strip()
    try:
        _run(buildah_argv("copy", "--chmod", "0755", container, str(binary), "/pause"), "copying pause")
        _run(
            buildah_argv(
                "config", "--entrypoint", '["/pause"]', "--label", f"io.smc-stream.inputs={key}", container
            ),
            "configuring pause",
        )
        _run(buildah_argv("commit", "--quiet", container, PAUSE_IMAGE), "committing pause")
    finally:
        subprocess.run(buildah_argv("rm", container), capture_output=True, check=False)
    return _record(PAUSE_IMAGE, key, started)


# --- images from our Dockerfiles -------------------------------------------------------------------------


def _copy_sources(dockerfile: Path) -> list[str]:
    """Context paths named by the Dockerfile's COPY/ADD lines (not `--from=` stage copies)."""
    sources: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]) or len(args) < 2:
            continue
        sources.extend(args[:-1])
    return sources


def _context_files(paths: Sequence[str]) -> list[Path]:
    """Files under `paths` that a build context holds: tracked or untracked, not git-ignored.

    Without git (an exported source tree) every file under them counts, minus bytecode caches."""
    result = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z", "--", *paths],
        capture_output=True, text=True, check=False, cwd=REPO_ROOT,
    )
    if result.returncode == 0:
        names = [REPO_ROOT / p for p in result.stdout.split("\0") if p]
    else:
        names = []
        for path in paths:
            root = REPO_ROOT / path
            tree = [root] if root.is_file() else list(root.rglob("*"))
            names += [f for f in tree if "__pycache__" not in f.parts]
    return sorted({f for f in names if f.is_file()})


def dockerfile_key(name: str, base: Built) -> str:
    dockerfile = REPO_ROOT / DOCKERFILES[name]
    files = _context_files([DOCKERFILES[name], ".dockerignore", *_copy_sources(dockerfile)])
    parts = [f"PYTHON_IMAGE={BASE_IMAGE}@{base.image_id}".encode()]
    parts += [str(f.relative_to(REPO_ROOT)).encode() + b"\0" + f.read_bytes() for f in files]
    return _digest(*parts)


def ensure_dockerfile_image(name: str, base: Built) -> Built:
    key = dockerfile_key(name, base)
    cached = _cached(name, key)
    if cached is not None:
        return cached
    progress(f"building {name} from {DOCKERFILES[name]} with buildah")
    started = time.monotonic()
    _run(
        buildah_argv(
            "bud",
            "--quiet",
            "--isolation", "chroot",
            "--layers",
            "-v", f"{HOST_CERTS}:{HOST_CERTS}:ro",
            "--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}",
            "--label", f"io.smc-stream.inputs={key}",
            "-f", DOCKERFILES[name],
            "-t", name,
            ".",
        ),
        f"buildah bud {DOCKERFILES[name]}",
        cwd=REPO_ROOT,
    )
    return _record(name, key, started)


def build_all() -> dict[str, Built]:
    """Build (or reuse) the base, pause, runtime and operator images; returns them by name."""
    network.ensure_packages()
    with _lock():
        base = ensure_base()
        built = {BASE_IMAGE: base, PAUSE_IMAGE: ensure_pause()}
        for name in DOCKERFILES:
            built[name] = ensure_dockerfile_image(name, base)
        return built


def build_pause() -> Built:
    with _lock():
        return ensure_pause()


# --- containerd ------------------------------------------------------------------------------------------


def ctr_argv(socket: Path, *args: str) -> list[str]:
    return [network.tool("ctr"), "--address", str(socket), "--namespace", CTR_NAMESPACE, *args]


def import_archive(socket: Path, built: Built, marker_dir: Path) -> bool:
    """Import an image archive into containerd unless this containerd already has that build."""
    marker = marker_dir / f"{built.archive.name}.imported"
    if marker.exists():
        return False
    started = time.monotonic()
    _run(ctr_argv(socket, "images", "import", str(built.archive)), f"ctr import {built.name}", timeout=600)
    marker_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{built.name} {built.image_id}\n")
    progress(f"loaded {built.name} into containerd in {time.monotonic() - started:.1f}s")
    return True


def loaded_images(socket: Path) -> list[str]:
    out = _run(ctr_argv(socket, "images", "ls", "-q"), "ctr images ls")
    return [line.strip() for line in out.splitlines() if line.strip()]
