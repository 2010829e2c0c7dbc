"""The agent's Kubernetes tools: read-only, class ``cluster_read``, results as compact tables.

Every tool builds its requests with :mod:`bmo_kubernetes.resources` (GET, allow-listed kinds) and
sends them through :class:`bmo_kubernetes.api.ClusterApi`; none takes a verb, a path or a kind
outside that list, so no argument reaches secrets, config maps or a write.
"""

from __future__ import annotations

from typing import Any

from bmo.agent.tools.base import CLUSTER_READ, Tool, ToolContext, ToolFailed
from bmo.agent.tools.targets import Target
from bmo_kubernetes import resources as res
from bmo_kubernetes.api import ClusterApi
from bmo_kubernetes.tables import events_table, list_table, summary

STATE_KEY = "kubernetes"

_KIND = {"type": "string", "enum": list(res.INSPECTABLE), "description": "the kind of object"}
_NS = {"type": "string", "description": "namespace; omitted: the configured default namespace"}


def cluster_of(host: Any) -> ClusterApi:
    api = getattr(host, "state", {}).get(STATE_KEY)
    if api is None:
        raise ToolFailed("the Kubernetes plugin is not started on this server ([kubernetes] enabled = true?)")
    return api


class KubernetesTool(Tool):
    tool_class = CLUSTER_READ

    def permission_target(self, args: dict) -> str:
        """``namespace/kind/name`` (parts left out when absent): what a permission rule's target glob matches."""
        parts = [str(args.get(k) or "") for k in ("namespace", "kind", "name")]
        return "/".join(p for p in parts if p) or "*"

    def permission_scope(self, args: dict, workspace) -> Target:
        return Target.plain(self.permission_target(args))

    async def run(self, args: dict, ctx: ToolContext) -> str:
        api = cluster_of(ctx.host)
        return _bound(await self.inspect(api, args), api.options.max_output_bytes)

    async def inspect(self, api: ClusterApi, args: dict) -> str:
        raise NotImplementedError


def namespace_of(api: ClusterApi, args: dict, kind: res.Kind | None = None, *, all_allowed: bool = False) -> str:
    """The namespace a call reads: the argument, else the default; "" (all) only where allowed."""
    if kind is not None and not kind.namespaced:
        return ""
    given = str(args.get("namespace") or "").strip()
    if given in ("*", "all") and all_allowed and not api.options.namespaces:
        return ""
    namespace = res.check_name(given or api.default_namespace(), "namespace")
    allowed = api.options.namespaces
    if allowed and namespace not in allowed:
        raise ToolFailed(f"namespace {namespace!r} is not in [kubernetes] namespaces; readable: {', '.join(allowed)}")
    return namespace


class ListNamespaces(KubernetesTool):
    name = "k8s_list_namespaces"
    description = "List the cluster's namespaces (name, status, age)."
    parameters = {"type": "object", "properties": {}}

    async def inspect(self, api, args):
        listing = await api.read(res.list_read(res.KINDS["namespaces"], limit=api.options.max_rows + 1))
        allowed = api.options.namespaces
        if allowed:
            listing = {**listing, "items": [n for n in listing.get("items", []) if n["metadata"]["name"] in allowed]}
        return list_table("namespaces", listing, max_rows=api.options.max_rows)


class ListObjects(KubernetesTool):
    name = "k8s_list"
    description = ("List pods, deployments, replicasets, statefulsets, services or nodes as a table "
                   "(like kubectl get). namespace \"*\" lists every namespace.")
    parameters = {"type": "object", "properties": {
        "kind": _KIND, "namespace": _NS,
        "label_selector": {"type": "string", "description": "e.g. app=web,tier!=db"}}, "required": ["kind"]}

    async def inspect(self, api, args):
        kind = res.kind_of(args.get("kind"))
        namespace = namespace_of(api, args, kind, all_allowed=True)
        listing = await api.read(res.list_read(kind, namespace, limit=api.options.max_rows + 1,
                                               label_selector=args.get("label_selector") or ""))
        return list_table(kind.plural, listing, max_rows=api.options.max_rows)


class GetObject(KubernetesTool):
    name = "k8s_get"
    description = "Get one pod, deployment, replicaset, statefulset, service or node: a short summary of its state."
    parameters = {"type": "object", "properties": {
        "kind": _KIND, "name": {"type": "string"}, "namespace": _NS}, "required": ["kind", "name"]}

    async def inspect(self, api, args):
        kind = res.kind_of(args.get("kind"))
        obj = await api.read(res.Read(res.item(kind, args.get("name"), namespace_of(api, args, kind))))
        return summary(kind.plural, obj)


async def _events(api: ClusterApi, namespace: str, kind: res.Kind | None = None, name: str = "") -> str:
    selector = ""
    if kind is not None and name:
        selector = f"involvedObject.kind={kind.kind},involvedObject.name={res.check_name(name)}"
    listing = await api.read(res.list_read(res.KINDS["events"], namespace, limit=200, field_selector=selector))
    return events_table(listing, max_rows=api.options.max_rows)


class RecentEvents(KubernetesTool):
    name = "k8s_events"
    description = ("Recent events of a namespace, or of one object when kind and name are given "
                   "(most recent first: type, reason, count, message).")
    parameters = {"type": "object", "properties": {
        "namespace": _NS, "kind": _KIND, "name": {"type": "string"}}}

    async def inspect(self, api, args):
        kind = res.kind_of(args["kind"]) if args.get("kind") else None
        namespace = namespace_of(api, args)
        return await _events(api, namespace, kind, str(args.get("name") or ""))


class PodLogs(KubernetesTool):
    name = "k8s_pod_logs"
    description = ("The last lines of a pod container's log; previous=true reads the previous (crashed) "
                   "instance, which is what explains a crash loop.")
    parameters = {"type": "object", "properties": {
        "name": {"type": "string", "description": "the pod"}, "namespace": _NS,
        "container": {"type": "string", "description": "needed when the pod has several"},
        "tail_lines": {"type": "integer", "minimum": 1}, "previous": {"type": "boolean"}}, "required": ["name"]}

    async def inspect(self, api, args):
        opts = api.options
        try:
            tail = int(args.get("tail_lines") or opts.log_tail_lines)
        except (TypeError, ValueError):
            raise ToolFailed(f"tail_lines must be a whole number, got {args.get('tail_lines')!r}") from None
        tail = max(1, min(tail, opts.log_tail_lines * 10))
        previous = args.get("previous") is True or str(args.get("previous")).lower() == "true"
        text = await api.read(res.log_read(args.get("name"), namespace_of(api, args, res.KINDS["pods"]),
                                           container=str(args.get("container") or ""), tail_lines=tail,
                                           limit_bytes=opts.log_max_bytes, previous=previous))
        which = "previous instance" if previous else "current instance"
        return f"Logs of pod {args.get('name')} ({which}, last {tail} lines at most):\n{text or '(empty)'}"


class DescribeObject(KubernetesTool):
    name = "k8s_describe"
    description = "Describe an object like kubectl describe: its summary joined with its recent events."
    parameters = GetObject.parameters

    async def inspect(self, api, args):
        kind = res.kind_of(args.get("kind"))
        namespace = namespace_of(api, args, kind)
        obj = await api.read(res.Read(res.item(kind, args.get("name"), namespace)))
        # A node's events live in the default namespace; a namespaced object's in its own.
        events = await _events(api, namespace or "default", kind, args.get("name"))
        return f"{summary(kind.plural, obj)}\n\nEvents:\n{events}"


def kubernetes_tools() -> list[KubernetesTool]:
    return [ListNamespaces(), ListObjects(), GetObject(), RecentEvents(), PodLogs(), DescribeObject()]


def _bound(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore") + f"\n[cut: {len(data) - limit} more bytes; narrow the request]"
