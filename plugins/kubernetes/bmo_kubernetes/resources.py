"""The kinds the tools may read and the only requests they can build: GETs of allow-listed paths.

There is no verb parameter anywhere: :class:`Read` always means GET. Secrets and config maps are
not in :data:`KINDS`, so no name, namespace or alias a model sends can produce a path to them; names
are checked against the API's own DNS-label rules, so they cannot carry ``/``, ``..`` or a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bmo.agent.tools.base import ToolFailed


@dataclass(frozen=True)
class Kind:
    plural: str
    prefix: str  # API group path
    namespaced: bool
    kind: str  # as events name it in involvedObject.kind


KINDS = {k.plural: k for k in (
    Kind("namespaces", "/api/v1", False, "Namespace"),
    Kind("pods", "/api/v1", True, "Pod"),
    Kind("services", "/api/v1", True, "Service"),
    Kind("nodes", "/api/v1", False, "Node"),
    Kind("events", "/api/v1", True, "Event"),
    Kind("deployments", "/apis/apps/v1", True, "Deployment"),
    Kind("replicasets", "/apis/apps/v1", True, "ReplicaSet"),
    Kind("statefulsets", "/apis/apps/v1", True, "StatefulSet"),
)}
# What a model may name a kind by (kubectl's names and short names).
ALIASES = {
    "namespace": "namespaces", "ns": "namespaces", "pod": "pods", "po": "pods", "service": "services",
    "svc": "services", "node": "nodes", "no": "nodes", "event": "events", "ev": "events",
    "deployment": "deployments", "deploy": "deployments", "replicaset": "replicasets", "rs": "replicasets",
    "statefulset": "statefulsets", "sts": "statefulsets",
}
INSPECTABLE = ("pods", "deployments", "replicasets", "statefulsets", "services", "nodes")

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SELECTOR = re.compile(r"^[A-Za-z0-9_./=!,-]*$")


@dataclass(frozen=True)
class Read:
    """One GET: ``path`` under the API server and its query."""

    path: str
    query: dict[str, str] = field(default_factory=dict)
    text: bool = False  # a plain-text answer (pod logs) rather than JSON


def kind_of(value: object, allowed: tuple[str, ...] = INSPECTABLE) -> Kind:
    name = str(value or "").strip().lower()
    plural = ALIASES.get(name, name)
    if plural not in allowed:
        raise ToolFailed(f"kind {value!r} cannot be read here; use one of: {', '.join(allowed)}")
    return KINDS[plural]


def check_name(value: object, what: str = "name") -> str:
    name = str(value or "").strip()
    if not name or len(name) > 253 or not _NAME.match(name):
        raise ToolFailed(f"{what} {value!r} is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')")
    return name


def check_selector(value: object) -> str:
    selector = str(value or "").strip()
    if len(selector) > 500 or not _SELECTOR.match(selector):
        raise ToolFailed(f"label_selector {value!r} is not a label selector like 'app=web,tier!=db'")
    return selector


def collection(kind: Kind, namespace: str = "") -> str:
    """The list path of ``kind``, in ``namespace`` when given (every namespace when empty)."""
    if kind.namespaced and namespace:
        return f"{kind.prefix}/namespaces/{check_name(namespace, 'namespace')}/{kind.plural}"
    return f"{kind.prefix}/{kind.plural}"


def item(kind: Kind, name: str, namespace: str = "") -> str:
    return f"{collection(kind, namespace)}/{check_name(name)}"


def list_read(kind: Kind, namespace: str = "", *, limit: int, label_selector: str = "",
              field_selector: str = "") -> Read:
    query = {"limit": str(limit)}
    if label_selector:
        query["labelSelector"] = check_selector(label_selector)
    if field_selector:
        query["fieldSelector"] = field_selector
    return Read(collection(kind, namespace), query)


def log_read(pod: str, namespace: str, *, container: str, tail_lines: int, limit_bytes: int,
             previous: bool) -> Read:
    query = {"tailLines": str(tail_lines), "limitBytes": str(limit_bytes)}
    if container:
        query["container"] = check_name(container, "container")
    if previous:
        query["previous"] = "true"
    return Read(item(KINDS["pods"], pod, namespace) + "/log", query, text=True)
