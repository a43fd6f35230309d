"""Both images: multi-stage, slim pinned base, non-root user, HEALTHCHECK, the project's entry points.

No Docker engine runs here, so the Dockerfiles are parsed and checked instead of built.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize(
    ("dockerfile", "command"),
    [("Dockerfile.operator", "smc-operator"), ("Dockerfile.runtime", "smc-runtime")],
)
def test_dockerfile(dockerfile: str, command: str) -> None:
    ins = instructions(REPO / dockerfile)
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    args = dict(a.split("=", 1) for w, a in ins if w == "ARG" and "=" in a)
    base = args.get("PYTHON_IMAGE", "")
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), f"slim, fully pinned base expected: {base}"

    final_stage = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    users = [a for w, a in final_stage if w == "USER"]
    assert users, "the final stage must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(w == "HEALTHCHECK" and "CMD" in a for w, a in final_stage)

    entrypoint = json.loads(next(a for w, a in final_stage if w == "ENTRYPOINT"))
    assert entrypoint == [command]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert command in scripts, f"{command} is not a console script of the project"

    installs = " ".join(a for w, a in ins if w == "RUN" and "pip install" in a)
    for requirement in re.findall(r'"([A-Za-z0-9_.-]+[^"]*)"', installs):
        assert "==" in requirement, f"unpinned dependency {requirement}"
