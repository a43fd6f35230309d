"""The reconcile's I/O: observe (children, Secrets), plan (pure, ``plan.py``), carry the plan out.

``reconcile_once`` is shared by the kopf create/update/resume handler and the periodic full reconcile
(drift repair); it never raises for an API error: every failure comes back as one ``Problem``, so both
callers have a single failure path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from smc_operator import kube
from smc_operator.credentials import secret_refusal
from smc_operator.plan import ChildRef, Observed, Plan, Problem, child_refs, plan, ref_of, repairs
from smc_operator.render import Owner, referenced_secrets
from smc_operator.spec import StreamProcessorSpec, parse_spec


@dataclass(frozen=True, slots=True)
class Applied:
    """A plan carried out: the StatefulSet as the API returned it and what had to be repaired."""

    plan: Plan
    workload: dict[str, Any] | None
    repaired: list[str] = field(default_factory=list)


def secret_refusals(namespace: str, cr_name: str, spec: StreamProcessorSpec) -> list[Problem]:
    """Each referenced Secret that is missing, lacks a key, or does not grant this CR (``credentials``)."""
    refusals = []
    for secret_name, keys in referenced_secrets(spec):
        secret = kube.get("v1", "Secret", namespace, secret_name)
        refusal = secret_refusal(secret_name, secret, keys, cr_name)
        if refusal is not None:
            refusals.append(refusal)
    return refusals


def observe(owner: Owner, spec: StreamProcessorSpec, status: Mapping[str, Any]) -> Observed:
    refs = child_refs(owner.name).values()
    children = {ref: kube.get(ref[0], ref[1], owner.namespace, ref[2]) for ref in refs}
    remembered = status.get("desiredReplicas")
    return Observed(
        children=children,
        secret_refusals=tuple(secret_refusals(owner.namespace, owner.name, spec)),
        remembered_desired=int(remembered) if remembered is not None else None,
    )


def execute(owner: Owner, planned: Plan, before: Mapping[ChildRef, Mapping[str, Any] | None]) -> Applied:
    """Apply (server-side) and delete as planned; a paused plan touches nothing."""
    if planned.rendered is None:
        workload = before.get(child_refs(owner.name)["workload"])
        return Applied(planned, dict(workload) if workload is not None else None)
    if planned.scale_before is not None:
        kube.scale_workload(owner.namespace, owner.name, planned.scale_before)
    after: dict[ChildRef, Mapping[str, Any] | None] = {}
    for obj in planned.apply:
        after[ref_of(obj)] = kube.apply(obj)
    if planned.scale_after is not None:
        kube.scale_workload(owner.namespace, owner.name, planned.scale_after)
    for api_version, kind, name in planned.delete:
        kube.delete(api_version, kind, owner.namespace, name)
    workload = after.get(child_refs(owner.name)["workload"])
    return Applied(planned, dict(workload) if workload is not None else None, repairs(before, after))


def reconcile_once(
    owner: Owner, raw_spec: Mapping[str, Any], status: Mapping[str, Any], annotations: Mapping[str, Any]
) -> Applied | Problem:
    """Observe, plan, apply. API errors become ``Problem("ApplyFailed")``."""
    parsed = parse_spec(dict(raw_spec))
    try:
        observed = observe(owner, parsed, status)
        planned = plan(owner, parsed, annotations, observed)
        if isinstance(planned, Problem):
            return planned
        return execute(owner, planned, observed.children)
    except ApiException as exc:
        return Problem("ApplyFailed", kube.api_error_message(exc))
