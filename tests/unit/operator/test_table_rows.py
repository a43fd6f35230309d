"""The integration tests read ``kubectl get``'s printer columns by header position (operator_harness)."""

from __future__ import annotations

from tests.integration.operator_harness import table_rows

# A StreamProcessor before the operator has measured lag: the LAG cell is blank.
TABLE = (
    "NAME     PHASE       MODE           DESIRED   READY   LAG   PAUSED   AGE\n"
    "frozen   Deploying   exactly_once   1         0             True     2s\n"
    "mdp      Running     exactly_once   2         2       17    False    3m10s\n"
)


def test_a_blank_cell_stays_in_its_column() -> None:
    frozen, mdp = table_rows(TABLE)
    assert frozen["LAG"] == "" and frozen["PAUSED"] == "True" and frozen["AGE"] == "2s"
    assert mdp == {"NAME": "mdp", "PHASE": "Running", "MODE": "exactly_once", "DESIRED": "2", "READY": "2",
                   "LAG": "17", "PAUSED": "False", "AGE": "3m10s"}


def test_no_output_is_no_rows() -> None:
    assert table_rows("") == [] and table_rows("NAME   AGE\n") == []
