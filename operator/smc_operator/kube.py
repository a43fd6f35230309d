"""Kubernetes API adapter: server-side apply, reads, status patches (the only module that calls the API
besides kopf itself). Synchronous: kopf runs sync handlers in its thread pool."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from smc_operator.crd import GROUP, PLURAL, VERSION

FIELD_MANAGER = "smc-operator"
SCALER_FIELD_MANAGER = "smc-operator-autoscaler"

_PATHS = {
    ("v1", "ConfigMap"): "/api/v1/namespaces/{ns}/configmaps/{name}",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services/{name}",
    ("v1", "Secret"): "/api/v1/namespaces/{ns}/secrets/{name}",
    ("apps/v1", "StatefulSet"): "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    ("policy/v1", "PodDisruptionBudget"): "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}",
}


def load() -> None:
    """In-cluster service-account credentials, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def _api() -> client.ApiClient:
    return client.ApiClient()


def _path(api_version: str, kind: str, namespace: str, name: str) -> str:
    return _PATHS[(api_version, kind)].format(ns=namespace, name=name)


def apply(obj: dict[str, Any], *, field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """Server-side apply (idempotent; ``force`` because the operator owns what it renders)."""
    meta = obj["metadata"]
    path = _path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    result = _api().call_api(
        path,
        "PATCH",
        query_params=[("fieldManager", field_manager), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        body=obj,  # the client JSON-encodes it; JSON is valid YAML for apply-patch+yaml
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )
    out: dict[str, Any] = result
    return out


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object, or None if it does not exist."""
    try:
        result = _api().call_api(
            _path(api_version, kind, namespace, name),
            "GET",
            header_params={"Accept": "application/json"},
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    out: dict[str, Any] = result
    return out


def delete(api_version: str, kind: str, namespace: str, name: str) -> None:
    """Delete an object; already gone is fine."""
    try:
        _api().call_api(
            _path(api_version, kind, namespace, name),
            "DELETE",
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body={"propagationPolicy": "Background"},
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def patch_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    """JSON-merge-patch ``status`` through the status subresource."""
    client.CustomObjectsApi().patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}
    )


def scale_workload(namespace: str, name: str, replicas: int) -> None:
    """Set the StatefulSet's replicas under the autoscaler's own field manager (template untouched)."""
    apply(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        },
        field_manager=SCALER_FIELD_MANAGER,
    )


def api_error_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)
