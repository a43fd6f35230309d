"""The operator's own Kafka client settings for a CR, with credentials read from the CR's Secrets.

Only the Secrets and keys the CR names, only in the CR's namespace; and never a clear-text password over
an unencrypted connection unless the CR explicitly allows it (the CRD refuses such a spec too; this
check covers CRs stored before that rule existed).
"""

from __future__ import annotations

import base64

from smc_operator import kube
from smc_operator.lag import client_config
from smc_operator.spec import StreamProcessorSpec


def kafka_client_config(namespace: str, spec: StreamProcessorSpec) -> dict[str, str] | str:
    """The operator's AdminClient settings, credentials from the CR's Secrets; a str is a problem."""
    sec = spec.kafka.security
    insecure = sec.insecure_credentials()
    if insecure is not None:
        return insecure
    sasl = None
    ca_pem = None

    def read(secret_name: str, key: str) -> str | None:
        secret = kube.get("v1", "Secret", namespace, secret_name)
        raw = ((secret or {}).get("data") or {}).get(key)
        return base64.b64decode(raw).decode("utf-8") if raw is not None else None

    if sec.sasl is not None:
        user = read(sec.sasl.secret_name, sec.sasl.username_key)
        password = read(sec.sasl.secret_name, sec.sasl.password_key)
        if user is None or password is None:
            return f"Secret {sec.sasl.secret_name!r} with SASL credentials not found or incomplete"
        sasl = (sec.sasl.mechanism, user, password)
    if sec.ca_secret is not None:
        ca_pem = read(sec.ca_secret.name, sec.ca_secret.key)
        if ca_pem is None:
            return f"Secret {sec.ca_secret.name!r} has no key {sec.ca_secret.key!r}"
    return client_config(spec.kafka.bootstrap_servers, sec.protocol, sasl, ca_pem)
