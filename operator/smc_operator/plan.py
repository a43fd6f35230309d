"""What one reconcile of a StreamProcessor should do, decided from the spec and what was observed; pure.

``plan`` answers, without touching the API: which children to apply (and which to delete), how many
replicas and who sets them (the template, or the autoscaler's field manager), whether reconciliation or
the replica count is paused by annotation, and which problem stops the reconcile, if any. The apply step
(``reconcile.py``) only carries a ``Plan`` out; every refusal is a ``Problem`` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smc_operator.crd import GROUP
from smc_operator.render import ChildNames, Owner, Rendered, RenderProblem, render
from smc_operator.spec import StreamProcessorSpec

PAUSE_RECONCILIATION = f"{GROUP}/pause-reconciliation"
PAUSED_REPLICAS = f"{GROUP}/paused-replicas"
SECRET_NOT_ALLOWED = "SecretNotAllowed"
SECRET_MISSING = "SecretMissing"

# (apiVersion, kind, name) of a child.
ChildRef = tuple[str, str, str]


def child_refs(cr_name: str) -> dict[str, ChildRef]:
    """Every child the operator may own, by role (the PDB only exists while enabled)."""
    names = ChildNames.of(cr_name)
    return {
        "config_map": ("v1", "ConfigMap", names.config_map),
        "service": ("v1", "Service", names.service),
        "workload": ("apps/v1", "StatefulSet", names.workload),
        "pdb": ("policy/v1", "PodDisruptionBudget", names.pdb),
    }


def ref_of(obj: Mapping[str, Any]) -> ChildRef:
    return (str(obj["apiVersion"]), str(obj["kind"]), str(obj["metadata"]["name"]))


@dataclass(frozen=True, slots=True)
class Problem:
    """Why the reconcile stops. ``permanent``: only a spec change helps (no retry)."""

    reason: str
    message: str
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class Pause:
    """The pause annotations: no reconcile at all, and/or a fixed replica count (no autoscaling)."""

    reconciliation: bool = False
    replicas: int | None = None

    @property
    def active(self) -> bool:
        return self.reconciliation or self.replicas is not None

    @property
    def reason(self) -> str | None:
        """The ``Paused`` condition's reason (None: not paused)."""
        if self.reconciliation:
            return "ReconciliationPaused"
        return "ReplicasPaused" if self.replicas is not None else None

    def describe(self) -> str:
        parts = []
        if self.reconciliation:
            parts.append(f"reconciliation paused ({PAUSE_RECONCILIATION})")
        if self.replicas is not None:
            parts.append(f"replicas fixed at {self.replicas} ({PAUSED_REPLICAS})")
        return "; ".join(parts) or "not paused"


def pause_of(annotations: Mapping[str, Any] | None) -> Pause | Problem:
    """Read the pause annotations; a replica count that is not a non-negative integer is a problem."""
    annotations = annotations or {}
    paused = str(annotations.get(PAUSE_RECONCILIATION, "")).strip().lower() == "true"
    raw = annotations.get(PAUSED_REPLICAS)
    if raw is None:
        return Pause(paused, None)
    text = str(raw).strip()
    if not text.isdigit():
        return Problem("InvalidAnnotation", f"{PAUSED_REPLICAS} must be a non-negative integer, got {raw!r}")
    return Pause(paused, int(text))


@dataclass(frozen=True, slots=True)
class Observed:
    """What the apply step read before planning."""

    children: Mapping[ChildRef, Mapping[str, Any] | None]  # live object, None when absent
    missing_secrets: tuple[str, ...] = ()
    secret_refusals: tuple[Problem, ...] = ()  # per referenced Secret: not found, not granted, key missing
    remembered_desired: int | None = None  # status.desiredReplicas


@dataclass(frozen=True, slots=True)
class Plan:
    desired: int
    pause: Pause
    rendered: Rendered | None = None  # None: reconciliation paused, nothing is applied
    apply: tuple[dict[str, Any], ...] = ()
    delete: tuple[ChildRef, ...] = ()
    scale_before: int | None = None  # replicas set by the scaler's field manager before the template
    scale_after: int | None = None  # ... and after it (a new autoscaled StatefulSet)


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def _replicas(spec: StreamProcessorSpec, pause: Pause, observed: Observed, existing: int | None) -> int:
    if pause.replicas is not None:
        return pause.replicas
    auto = spec.autoscaling
    if not auto.enabled:
        return spec.replicas
    initial = existing if existing is not None else observed.remembered_desired
    start = int(initial if initial is not None else auto.min_replicas)
    return min(max(start, auto.min_replicas), auto.max_replicas)


def _secret_problem(observed: Observed) -> Problem | None:
    """A Secret the CR may not use outranks one that is missing (the grant is what the owner must fix)."""
    refusals = list(observed.secret_refusals) + [
        Problem(SECRET_MISSING, message) for message in observed.missing_secrets
    ]
    first = [p for p in refusals if p.reason == SECRET_NOT_ALLOWED] or refusals
    return Problem(first[0].reason, "; ".join(p.message for p in first)) if first else None


def plan(
    owner: Owner, spec: StreamProcessorSpec, annotations: Mapping[str, Any], observed: Observed
) -> Plan | Problem:
    """The reconcile for ``spec`` given ``observed``; a ``Problem`` when it must not go ahead."""
    pause = pause_of(annotations)
    if isinstance(pause, Problem):
        return pause
    refs = child_refs(owner.name)
    workload = observed.children.get(refs["workload"])
    existing = ((workload or {}).get("spec") or {}).get("replicas")
    desired = _replicas(spec, pause, observed, existing)
    if pause.reconciliation:
        return Plan(desired=existing if existing is not None else desired, pause=pause)
    insecure = spec.kafka.security.insecure_credentials()
    if insecure is not None:
        return Problem("InsecureCredentials", insecure, permanent=True)

    autoscaled = spec.autoscaling.enabled and pause.replicas is None
    rendered = render(owner, spec, replicas=None if autoscaled and workload is not None else desired)
    if isinstance(rendered, RenderProblem):
        return Problem("InvalidConfig", rendered.message(), permanent=True)
    wanted = {ref_of(child) for child in rendered.children()}
    foreign = [
        f"{kind} {name!r}"
        for (api, kind, name), obj in observed.children.items()
        if obj is not None and (api, kind, name) in wanted and not owned_by(obj, owner.uid)
    ]
    if foreign:
        return Problem(
            "OwnershipConflict",
            f"{', '.join(foreign)} already exist(s) and is not owned by this StreamProcessor; delete or "
            "rename it (the operator does not take over objects it did not create)",
        )
    secret_problem = _secret_problem(observed)
    if secret_problem is not None:
        return secret_problem
    # A disabled budget is deleted if this CR owns one; someone else's is none of our business.
    budget = observed.children.get(refs["pdb"])
    delete = (refs["pdb"],) if rendered.pdb is None and budget and owned_by(budget, owner.uid) else ()
    scale_before = scale_after = None
    if autoscaled and workload is not None and existing is not None:
        scale_before = int(existing)  # the scaler co-owns replicas before the template stops listing them
    elif autoscaled and workload is None:
        scale_after = desired
    elif pause.replicas is not None and spec.autoscaling.enabled and workload is not None:
        scale_before = desired  # the scaler's field manager keeps owning replicas while paused
    return Plan(
        desired=desired,
        pause=pause,
        rendered=rendered,
        apply=tuple(rendered.children()),
        delete=delete,
        scale_before=scale_before,
        scale_after=scale_after,
    )


def fingerprint(obj: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """What changes when someone edits an object's spec, data, labels or annotations (status updates by
    controllers bump ``resourceVersion`` but not ``generation``, so objects with a generation use that)."""
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    version = meta.get("generation") or meta.get("resourceVersion")
    return (version, dict(meta.get("labels") or {}), dict(meta.get("annotations") or {}))


def repairs(
    before: Mapping[ChildRef, Mapping[str, Any] | None], after: Mapping[ChildRef, Mapping[str, Any] | None]
) -> list[str]:
    """Children an apply had to recreate or restore, as ``Kind/name recreated|restored`` lines."""
    out = []
    for ref, new in after.items():
        old = before.get(ref)
        _, kind, name = ref
        if old is None and new is not None:
            out.append(f"{kind}/{name} recreated")
        elif old is not None and new is not None and fingerprint(old) != fingerprint(new):
            out.append(f"{kind}/{name} restored")
    return out
