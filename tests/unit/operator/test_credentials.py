"""Secret access: a CR may use a Secret only when the Secret's annotation grants it (pure decision), the
reconcile refuses (nothing rendered) and the operator's own Kafka client never gets the credentials."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from smc_operator import credentials
from smc_operator.credentials import ALLOWED_ANNOTATION, allowed_names, kafka_client_config, secret_refusal
from smc_operator.plan import SECRET_MISSING, SECRET_NOT_ALLOWED, Observed, Plan, Problem, child_refs, plan
from smc_operator.render import Owner
from smc_operator.spec import parse_spec

OWNER = Owner(name="mdp", namespace="trading", uid="uid-1")


def secret(grant: str | None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "creds"}
    if grant is not None:
        meta["annotations"] = {ALLOWED_ANNOTATION: grant}
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": meta, "data": encoded}


def sasl_spec(**security: Any) -> dict[str, Any]:
    return {
        "processorName": "p",
        "image": "img",
        "kafka": {
            "bootstrapServers": "attacker.example:9093",
            "security": {
                "protocol": "SASL_SSL",
                "sasl": {"mechanism": "SCRAM-SHA-512", "secretName": "creds"},
                **security,
            },
        },
        "processor": {"consumerGroup": "g", "inputTopics": ["t"]},
    }


@pytest.mark.parametrize(
    ("grant", "allowed"),
    [
        (None, False),
        ("", False),
        ("other", False),
        ("mdp-2, other", False),
        ("MDP", False),  # names are exact (Kubernetes names are lower case)
        ("mdp", True),
        ("other, mdp ", True),
        ("*", True),
        (" * ", True),
    ],
)
def test_only_a_secret_that_names_the_cr_or_star_grants_it(grant: str | None, allowed: bool) -> None:
    stored = secret(grant, username="u", password="p")
    refusal = secret_refusal("creds", stored, ["username", "password"], "mdp")
    assert (refusal is None) is allowed
    if not allowed:
        assert refusal is not None and refusal.reason == SECRET_NOT_ALLOWED and not refusal.permanent
        assert ALLOWED_ANNOTATION in refusal.message and "'mdp'" in refusal.message


def test_grant_is_checked_before_keys_so_a_refused_cr_learns_nothing_about_them() -> None:
    refusal = secret_refusal("creds", secret(None, token="x"), ["username", "password"], "mdp")
    assert refusal is not None and refusal.reason == SECRET_NOT_ALLOWED and "username" not in refusal.message
    missing = secret_refusal("creds", secret("mdp", username="u"), ["username", "password"], "mdp")
    assert missing is not None and missing.reason == SECRET_MISSING and "'password'" in missing.message
    absent = secret_refusal("creds", None, ["username"], "mdp")
    assert absent is not None and absent.reason == SECRET_MISSING and "not found" in absent.message


def test_allowed_names_ignores_empty_parts() -> None:
    assert allowed_names(secret("a,,b , ")) == frozenset({"a", "b"})
    assert allowed_names({"metadata": {}}) == frozenset()


def test_plan_refuses_and_renders_nothing_when_a_secret_does_not_grant_the_cr() -> None:
    nothing = {ref: None for ref in child_refs("mdp").values()}
    not_allowed = Problem(SECRET_NOT_ALLOWED, "Secret 'creds' does not allow StreamProcessor 'mdp'")
    missing = Problem(SECRET_MISSING, "Secret 'ca' not found")
    out = plan(OWNER, parse_spec(sasl_spec()), {}, Observed(nothing, secret_refusals=(missing, not_allowed)))
    assert isinstance(out, Problem) and out.reason == SECRET_NOT_ALLOWED and "ca" not in out.message
    out = plan(OWNER, parse_spec(sasl_spec()), {}, Observed(nothing, secret_refusals=(missing,)))
    assert isinstance(out, Problem) and out.reason == SECRET_MISSING
    assert isinstance(plan(OWNER, parse_spec(sasl_spec()), {}, Observed(nothing)), Plan)


def test_operator_kafka_client_gets_no_credentials_without_the_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = {
        "creds": secret(None, username="alice", password="s3cret"),
        "ca": secret("*", **{"ca.crt": "PEM"}),
    }
    monkeypatch.setattr(credentials.kube, "get", lambda _a, _k, _ns, name: stored.get(name))
    ca = {"caSecret": {"name": "ca", "key": "ca.crt"}}
    refused = kafka_client_config("trading", "mdp", parse_spec(sasl_spec(**ca)))
    assert isinstance(refused, Problem) and refused.reason == SECRET_NOT_ALLOWED
    assert "s3cret" not in repr(refused) and "alice" not in repr(refused)

    stored["creds"] = secret("mdp", username="alice", password="s3cret")
    config = kafka_client_config("trading", "mdp", parse_spec(sasl_spec(**ca)))
    assert isinstance(config, dict)
    assert config["sasl.username"] == "alice" and config["sasl.password"] == "s3cret"
    assert kafka_client_config("trading", "someone-else", parse_spec(sasl_spec(**ca))) == Problem(
        SECRET_NOT_ALLOWED,
        f"Secret 'creds' does not allow StreamProcessor 'someone-else': its owner must add 'someone-else' "
        f"(or '*') to the annotation {ALLOWED_ANNOTATION}",
    )
