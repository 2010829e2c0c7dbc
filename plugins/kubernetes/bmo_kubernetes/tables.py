"""Objects shaped for a model: kubectl-like compact tables and short summaries, never raw JSON."""

from __future__ import annotations

from datetime import datetime, timezone


def age(stamp: str | None, now: datetime | None = None) -> str:
    """``3d``, ``5h``, ``12m``, ``40s`` since an RFC 3339 time; ``?`` without one."""
    if not stamp:
        return "?"
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = int(((now or datetime.now(timezone.utc)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def table(header: list[str], rows: list[list[str]], *, max_rows: int, more: bool = False) -> str:
    """Aligned columns; at most ``max_rows`` rows, and a line saying how many were left out."""
    shown = rows[:max_rows]
    cells = [header] + [[_cell(c) for c in row] for row in shown]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    if len(rows) > max_rows or more:
        lines.append(f"[{'more' if more else len(rows) - max_rows} rows not shown; narrow with a namespace or label_selector]")
    if not shown:
        lines.append("(none)")
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = " ".join(str(value if value not in (None, "") else "-").split())
    return text if len(text) <= 80 else text[:79] + "…"


def pod_status(pod: dict) -> str:
    status = pod.get("status", {})
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    for cs in status.get("containerStatuses", []) or []:
        state = cs.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            return state["waiting"]["reason"]
        if "terminated" in state and state["terminated"].get("reason"):
            return state["terminated"]["reason"]
    return status.get("phase", "Unknown")


def _ready(pod: dict) -> str:
    statuses = pod.get("status", {}).get("containerStatuses", []) or []
    total = len(pod.get("spec", {}).get("containers", []) or statuses)
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _restarts(pod: dict) -> int:
    return sum(c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses", []) or [])


def _ports(svc: dict) -> str:
    ports = svc.get("spec", {}).get("ports", []) or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports)


def _node_ready(node: dict) -> str:
    for cond in node.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return "Ready" if cond.get("status") == "True" else "NotReady"
    return "Unknown"


def _roles(node: dict) -> str:
    prefix = "node-role.kubernetes.io/"
    return ",".join(k[len(prefix):] for k in node["metadata"].get("labels", {}) if k.startswith(prefix)) or "<none>"


COLUMNS = {
    "namespaces": (["NAME", "STATUS", "AGE"], lambda o, m: [m["name"], o.get("status", {}).get("phase"),
                                                           age(m.get("creationTimestamp"))]),
    "pods": (["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE"],
             lambda o, m: [m.get("namespace"), m["name"], _ready(o), pod_status(o), _restarts(o),
                           age(m.get("creationTimestamp")), o.get("spec", {}).get("nodeName")]),
    "deployments": (["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                    lambda o, m: [m.get("namespace"), m["name"],
                                  f"{o.get('status', {}).get('readyReplicas', 0)}/{o.get('spec', {}).get('replicas', 0)}",
                                  o.get("status", {}).get("updatedReplicas", 0),
                                  o.get("status", {}).get("availableReplicas", 0), age(m.get("creationTimestamp"))]),
    "replicasets": (["NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "AGE"],
                    lambda o, m: [m.get("namespace"), m["name"], o.get("spec", {}).get("replicas", 0),
                                  o.get("status", {}).get("replicas", 0), o.get("status", {}).get("readyReplicas", 0),
                                  age(m.get("creationTimestamp"))]),
    "statefulsets": (["NAMESPACE", "NAME", "READY", "AGE"],
                     lambda o, m: [m.get("namespace"), m["name"],
                                   f"{o.get('status', {}).get('readyReplicas', 0)}/{o.get('spec', {}).get('replicas', 0)}",
                                   age(m.get("creationTimestamp"))]),
    "services": (["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORTS", "AGE"],
                 lambda o, m: [m.get("namespace"), m["name"], o.get("spec", {}).get("type"),
                               o.get("spec", {}).get("clusterIP"), _ports(o), age(m.get("creationTimestamp"))]),
    "nodes": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
              lambda o, m: [m["name"], _node_ready(o), _roles(o), age(m.get("creationTimestamp")),
                            o.get("status", {}).get("nodeInfo", {}).get("kubeletVersion")]),
}


def list_table(plural: str, listing: dict, *, max_rows: int) -> str:
    header, row = COLUMNS[plural]
    items = listing.get("items", []) or []
    more = bool(listing.get("metadata", {}).get("continue"))  # the API cut the list at our limit
    return table(header, [row(o, o.get("metadata", {})) for o in items], max_rows=max_rows, more=more)


def events_table(listing: dict, *, max_rows: int) -> str:
    """Most recent first: when, type, reason, object, count, message."""
    items = sorted(listing.get("items", []) or [], key=_event_time, reverse=True)
    rows = [[age(_event_time(e) or None), e.get("type"), e.get("reason"),
             f"{e.get('involvedObject', {}).get('kind', '?')}/{e.get('involvedObject', {}).get('name', '?')}",
             e.get("count", 1), e.get("message")] for e in items]
    return table(["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"], rows, max_rows=max_rows)


def _event_time(event: dict) -> str:
    return event.get("lastTimestamp") or event.get("eventTime") or event.get("metadata", {}).get("creationTimestamp") or ""


def summary(plural: str, obj: dict) -> str:
    """A describe-like text of one object: identity, state, and what usually explains trouble."""
    meta = obj.get("metadata", {})
    lines = [f"{plural[:-1].capitalize()}: {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}"
             f"{meta.get('name')}", f"Age: {age(meta.get('creationTimestamp'))}"]
    labels = meta.get("labels") or {}
    if labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in list(labels.items())[:10]))
    owners = meta.get("ownerReferences") or []
    if owners:
        lines.append("Owned by: " + ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in owners))
    spec, status = obj.get("spec", {}) or {}, obj.get("status", {}) or {}
    if plural == "pods":
        lines += [f"Status: {pod_status(obj)} (phase {status.get('phase')})", f"Node: {spec.get('nodeName', '-')}",
                  f"Pod IP: {status.get('podIP', '-')}"]
        images = {c["name"]: c.get("image") for c in spec.get("containers", []) or []}
        for cs in status.get("containerStatuses", []) or []:
            lines.append(f"Container {cs.get('name')}: image {images.get(cs.get('name'), cs.get('image'))}, "
                         f"ready {cs.get('ready')}, restarts {cs.get('restartCount', 0)}")
            lines.append(f"  State: {_state(cs.get('state'))}")
            if cs.get("lastState"):
                lines.append(f"  Last state: {_state(cs.get('lastState'))}")
    else:
        for key in ("replicas", "type", "clusterIP", "serviceName", "selector", "podCIDR", "unschedulable"):
            if key in spec:
                lines.append(f"Spec {key}: {_flat(spec[key])}")
        for key in ("phase", "replicas", "readyReplicas", "availableReplicas", "updatedReplicas", "currentReplicas"):
            if key in status:
                lines.append(f"Status {key}: {status[key]}")
        containers = spec.get("template", {}).get("spec", {}).get("containers", []) or []
        if containers:
            lines.append("Images: " + ", ".join(f"{c.get('name')}={c.get('image')}" for c in containers))
    for cond in status.get("conditions", []) or []:
        detail = " ".join(filter(None, [cond.get("reason"), cond.get("message")]))
        lines.append(f"Condition {cond.get('type')}={cond.get('status')}" + (f": {detail}" if detail else ""))
    return "\n".join(lines)


def _state(state: dict | None) -> str:
    if not state:
        return "-"
    (name, detail), = list(state.items())[:1] or [("unknown", {})]
    parts = [name]
    for key in ("reason", "exitCode", "message", "startedAt", "finishedAt"):
        if detail.get(key) not in (None, ""):
            parts.append(f"{key}={detail[key]}")
    return " ".join(str(p) for p in parts)


def _flat(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    return str(value)
