"""status: conditions follow API conventions; phase summarises workload and problems."""

from __future__ import annotations

from smc_operator.status import (
    DEGRADED,
    READY,
    WorkloadState,
    health_conditions,
    iso,
    merge_conditions,
    phase_of,
    workload_state,
)


def by_type(conditions: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {c["type"]: c for c in conditions}


def test_transition_time_moves_only_when_status_flips() -> None:
    w = WorkloadState(desired=2, replicas=2, ready=0, updated=2, rolled_out=True)
    first = merge_conditions([], health_conditions(w, None), now=1000.0, generation=3)
    again = merge_conditions(first, health_conditions(w, None), now=2000.0, generation=3)
    assert by_type(again)[READY]["lastTransitionTime"] == iso(1000.0)
    ready = WorkloadState(desired=2, replicas=2, ready=2, updated=2, rolled_out=True)
    flipped = merge_conditions(again, health_conditions(ready, None), now=3000.0, generation=4)
    assert by_type(flipped)[READY]["status"] == "True"
    assert by_type(flipped)[READY]["lastTransitionTime"] == iso(3000.0)
    assert by_type(flipped)[DEGRADED]["lastTransitionTime"] == iso(1000.0)
    assert all(c["observedGeneration"] == 4 for c in flipped)


def test_problem_sets_degraded_with_reason_and_message_and_unready() -> None:
    w = WorkloadState(desired=1, replicas=1, ready=1, updated=1, rolled_out=True)
    conds = by_type(
        merge_conditions([], health_conditions(w, ("KafkaUnreachable", "no broker")), now=0, generation=1)
    )
    assert conds[DEGRADED]["status"] == "True"
    assert conds[DEGRADED]["reason"] == "KafkaUnreachable" and conds[DEGRADED]["message"] == "no broker"
    assert conds[READY]["status"] == "False"
    assert phase_of(w, ("KafkaUnreachable", "no broker"), scaling=False) == "Degraded"


def test_phase_summarises_the_workload() -> None:
    running = WorkloadState(desired=2, replicas=2, ready=2, updated=2, rolled_out=True)
    pending = WorkloadState(desired=2, replicas=2, ready=1, updated=2, rolled_out=True)
    assert phase_of(running, None, scaling=False) == "Running"
    assert phase_of(pending, None, scaling=False) == "Deploying"
    assert phase_of(running, None, scaling=True) == "Scaling"


def test_workload_state_reads_a_statefulset() -> None:
    sts = {
        "metadata": {"generation": 3},
        "status": {
            "observedGeneration": 3,
            "replicas": 3,
            "readyReplicas": 2,
            "updatedReplicas": 3,
            "currentRevision": "r2",
            "updateRevision": "r2",
        },
    }
    s = workload_state(sts, desired=3)
    assert (s.replicas, s.ready, s.updated, s.rolled_out) == (3, 2, 3, True)
    stale = workload_state({**sts, "metadata": {"generation": 4}}, desired=3)
    assert stale.rolled_out is False
    assert workload_state(None, desired=2) == WorkloadState(2, 0, 0, 0, rolled_out=False)
