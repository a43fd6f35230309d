"""Which Secrets a CR may use, and the operator's own Kafka client settings for a CR.

A CR may use a Secret only if the Secret says so: the annotation ``ALLOWED_ANNOTATION`` lists the
StreamProcessor names (comma-separated) in the Secret's namespace that may use it, or ``*`` for all of
them. Without it, naming a Secret in a CR would be a way to read it: the operator would mount it into pods
the CR author controls and send it to a bootstrap address the CR author chose. The grant lives on the
Secret, so only someone who can already write the Secret can give it away.

Only the Secrets and keys the CR names, only in the CR's namespace; and never a clear-text password over
an unencrypted connection unless the CR explicitly allows it (the CRD refuses such a spec too; this
check covers CRs stored before that rule existed). ``secret_refusal`` is pure; the rest reads the API.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from smc_operator import kube
from smc_operator.crd import GROUP
from smc_operator.lag import client_config
from smc_operator.plan import SECRET_MISSING as MISSING
from smc_operator.plan import SECRET_NOT_ALLOWED as NOT_ALLOWED
from smc_operator.plan import Problem
from smc_operator.spec import StreamProcessorSpec

ALLOWED_ANNOTATION = f"{GROUP}/allowed-streamprocessors"


def allowed_names(secret: Mapping[str, Any]) -> frozenset[str]:
    """The StreamProcessor names the Secret's annotation grants (``*``: all); empty when absent."""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    raw = str(annotations.get(ALLOWED_ANNOTATION, ""))
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def secret_refusal(
    secret_name: str, secret: Mapping[str, Any] | None, keys: list[str], cr_name: str
) -> Problem | None:
    """Why ``cr_name`` must not use this Secret (absent, not granted, a key missing); None: it may.

    The grant is checked before the keys, so a CR without the grant learns nothing about the Secret's
    content (not even which keys it has)."""
    if secret is None:
        return Problem(MISSING, f"Secret {secret_name!r} not found")
    granted = allowed_names(secret)
    if "*" not in granted and cr_name not in granted:
        return Problem(
            NOT_ALLOWED,
            f"Secret {secret_name!r} does not allow StreamProcessor {cr_name!r}: its owner must add "
            f"{cr_name!r} (or '*') to the annotation {ALLOWED_ANNOTATION}",
        )
    data = secret.get("data") or {}
    missing = [key for key in keys if key not in data]
    if missing:
        return Problem(MISSING, "; ".join(f"Secret {secret_name!r} has no key {key!r}" for key in missing))
    return None


def kafka_client_config(namespace: str, cr_name: str, spec: StreamProcessorSpec) -> dict[str, str] | Problem:
    """The operator's AdminClient settings, credentials from the Secrets the CR may use; else a Problem
    (then nothing is sent to any broker)."""
    sec = spec.kafka.security
    insecure = sec.insecure_credentials()
    if insecure is not None:
        return Problem("InsecureCredentials", insecure, permanent=True)
    secrets: dict[str, Mapping[str, Any] | None] = {}

    def read(secret_name: str, keys: list[str]) -> list[str] | Problem:
        if secret_name not in secrets:
            secrets[secret_name] = kube.get("v1", "Secret", namespace, secret_name)
        secret = secrets[secret_name]
        refusal = secret_refusal(secret_name, secret, keys, cr_name)
        if refusal is not None:
            return refusal
        data = (secret or {}).get("data") or {}
        return [base64.b64decode(data[key]).decode("utf-8") for key in keys]

    sasl = None
    ca_pem = None
    if sec.sasl is not None:
        creds = read(sec.sasl.secret_name, [sec.sasl.username_key, sec.sasl.password_key])
        if isinstance(creds, Problem):
            return creds
        sasl = (sec.sasl.mechanism, creds[0], creds[1])
    if sec.ca_secret is not None:
        ca = read(sec.ca_secret.name, [sec.ca_secret.key])
        if isinstance(ca, Problem):
            return ca
        ca_pem = ca[0]
    return client_config(spec.kafka.bootstrap_servers, sec.protocol, sasl, ca_pem)
