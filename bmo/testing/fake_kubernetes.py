"""A small fake Kubernetes API server for tests (aiohttp, a real socket): the Kubernetes plugin's only fake.

It serves the read endpoints the ``bmo_kubernetes`` tools use, in the API's JSON shapes (the
``*List`` envelopes, ``Status`` errors, plain-text pod logs; see ``api/openapi-spec/v3`` of
kubernetes/kubernetes), checks the bearer token, records every request (write verbs included,
answered 405), and can be told to fail the next requests: ``refuse`` (stop listening), ``reset``
(drop the connection), ``hang``, or a status (429 with ``Retry-After``, 5xx, 403, 401).
:meth:`FakeKubernetes.write_kubeconfig` writes a real kubeconfig pointing at it.

Usage::

    async with FakeKubernetes() as kube:
        kube.add(*sample_cluster())
        kube.fail("status", status=503, times=2)
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

# (API group path, plural) of each kind the fake serves, and its list kind.
_KINDS = {
    ("api/v1", "namespaces"): "NamespaceList", ("api/v1", "pods"): "PodList",
    ("api/v1", "services"): "ServiceList", ("api/v1", "nodes"): "NodeList", ("api/v1", "events"): "EventList",
    ("api/v1", "secrets"): "SecretList", ("api/v1", "configmaps"): "ConfigMapList",
    ("apis/apps/v1", "deployments"): "DeploymentList", ("apis/apps/v1", "replicasets"): "ReplicaSetList",
    ("apis/apps/v1", "statefulsets"): "StatefulSetList",
}
_CLUSTER_SCOPED = {"namespaces", "nodes"}
_PLURAL = {"Namespace": "namespaces", "Pod": "pods", "Service": "services", "Node": "nodes", "Event": "events",
           "Secret": "secrets", "ConfigMap": "configmaps", "Deployment": "deployments",
           "ReplicaSet": "replicasets", "StatefulSet": "statefulsets"}
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            429: "TooManyRequests", 500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable",
            504: "Timeout"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    authorization: str


@dataclass
class _Failure:
    mode: str  # refuse | reset | hang | status
    status: int = 503
    retry_after: float | None = None
    times: int = 1  # -1: for ever


def status_body(code: int, message: str, *, name: str = "", kind: str = "") -> dict:
    """A ``Status`` object (io.k8s.apimachinery.pkg.apis.meta.v1.Status) as the API sends with an error."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": _REASONS.get(code, "Unknown"), "code": code}
    if name or kind:
        body["details"] = {"name": name, "kind": kind}
    return body


@dataclass
class FakeKubernetes:
    token: str = "fake-k8s-token"
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)  # (plural, namespace, name) -> object
    logs: dict[tuple[str, str, str, bool], str] = field(default_factory=dict)  # (ns, pod, container, previous)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = _free_port()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._hangs: set[asyncio.Future] = set()

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> FakeKubernetes:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()
        return self

    async def _listen(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()

    async def stop(self) -> None:
        for fut in self._hangs:
            fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKubernetes:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, *, token: str | None = None, context: str = "fake",
                         namespace: str = "default") -> Path:
        """A kubeconfig (JSON is YAML) whose context ``context`` reaches this server with ``token``."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context, "preferences": {},
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": token if token is not None else self.token}}],
            "contexts": [{"name": context, "context": {"cluster": "fake-cluster", "user": "fake-user",
                                                       "namespace": namespace}}],
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    # -- scripting ------------------------------------------------------------------
    def add(self, *objects: dict) -> FakeKubernetes:
        for obj in objects:
            meta = obj["metadata"]
            self.objects[(_PLURAL[obj["kind"]], meta.get("namespace", ""), meta["name"])] = obj
        return self

    def add_log(self, namespace: str, pod: str, container: str, text: str, *, previous: bool = False) -> None:
        self.logs[(namespace, pod, container, previous)] = text

    def fail(self, mode: str, *, status: int = 503, retry_after: float | None = None, times: int = 1) -> None:
        """Fail the next ``times`` requests (-1: all of them) with ``mode``; ``refuse`` stops listening at once."""
        if mode not in ("refuse", "reset", "hang", "status"):
            raise ValueError(f"unknown failure mode {mode!r}")
        if mode == "refuse":
            asyncio.get_running_loop().create_task(self._site.stop())
            return
        self.failures.append(_Failure(mode, status, retry_after, times))

    async def recover(self) -> None:
        """Clear scripted failures and listen again after a ``refuse``."""
        self.failures.clear()
        if self._runner is not None and not self._runner.sites:
            await self._listen()

    def verbs(self) -> set[str]:
        return {r.method for r in self.requests}

    # -- serving --------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      request.headers.get("Authorization", "")))
        failure = self._next_failure()
        if failure is not None:
            return await self._fail(request, failure)
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            return _status(401, "Unauthorized")
        if request.method != "GET":
            return _status(405, f"the fake serves reads only, not {request.method}")
        return self._read(request)

    def _next_failure(self) -> _Failure | None:
        if not self.failures:
            return None
        failure = self.failures[0]
        if failure.times > 0:
            failure.times -= 1
            if failure.times == 0:
                self.failures.pop(0)
        return failure

    async def _fail(self, request: web.Request, failure: _Failure) -> web.StreamResponse:
        if failure.mode == "reset":
            request.transport.abort()  # the client sees the connection dropped, no response
            return web.Response()
        if failure.mode == "hang":
            fut = asyncio.get_running_loop().create_future()
            self._hangs.add(fut)
            try:
                await fut
            finally:
                self._hangs.discard(fut)
        headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
        return _status(failure.status, f"scripted failure {failure.status}", headers=headers)

    def _read(self, request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")
        group = "/".join(parts[:2]) if parts[:1] == ["api"] else "/".join(parts[:3])
        rest = parts[len(group.split("/")):]
        namespace = ""
        if len(rest) >= 2 and rest[0] == "namespaces" and (len(rest) > 2 or (group, "namespaces") not in _KINDS):
            namespace, rest = rest[1], rest[2:]
        if not rest or (group, rest[0]) not in _KINDS:
            return _status(404, f"the server could not find the requested resource ({request.path})")
        plural = rest[0]
        if len(rest) == 1:
            return self._list(group, plural, namespace, request.query)
        name = rest[1]
        if plural == "namespaces" and not namespace and len(rest) == 2:
            key = ("namespaces", "", name)
        else:
            key = (plural, "" if plural in _CLUSTER_SCOPED else namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            return _status(404, f'{plural} "{name}" not found', name=name, kind=plural)
        if len(rest) == 3 and rest[2] == "log" and plural == "pods":
            return self._log(namespace, obj, request.query)
        if len(rest) > 2:
            return _status(404, f"the server could not find the requested resource ({request.path})")
        return web.json_response(obj)

    def _list(self, group: str, plural: str, namespace: str, query) -> web.Response:
        items = [o for (p, ns, _), o in self.objects.items() if p == plural and (not namespace or ns == namespace)]
        for clause in filter(None, query.get("fieldSelector", "").split(",")):
            path, _, want = clause.partition("=")
            items = [o for o in items if _field(o, path) == want]
        for clause in filter(None, query.get("labelSelector", "").split(",")):
            key, _, want = clause.partition("=")
            items = [o for o in items if o["metadata"].get("labels", {}).get(key) == want]
        meta = {"resourceVersion": "4711"}
        if "limit" in query and len(items) > int(query["limit"]):
            items = items[: int(query["limit"])]
            meta["continue"] = "opaque-continue-token"  # as the API does when a limit cut the list
        return web.json_response({"kind": _KINDS[(group, plural)], "apiVersion": group.split("/", 1)[1],
                                  "metadata": meta, "items": items})

    def _log(self, namespace: str, pod: dict, query) -> web.Response:
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container") or (containers[0] if len(containers) == 1 else "")
        if not container:
            return _status(400, f"a container name must be specified for pod {pod['metadata']['name']}, "
                                f"choose one of: [{' '.join(containers)}]")
        previous = query.get("previous") == "true"
        text = self.logs.get((namespace, pod["metadata"]["name"], container, previous))
        if text is None:
            which = "previous terminated container" if previous else "container"
            return _status(400, f'{which} "{container}" in pod "{pod["metadata"]["name"]}" not found')
        lines = text.splitlines(keepends=True)
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]):] if int(query["tailLines"]) > 0 else []
        body = "".join(lines).encode()
        if "limitBytes" in query:
            body = body[: int(query["limitBytes"])]
        return web.Response(body=body, content_type="text/plain")


def _field(obj: dict, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return value if isinstance(value, str) else ""


def _status(code: int, message: str, *, name: str = "", kind: str = "", headers: dict | None = None) -> web.Response:
    return web.json_response(status_body(code, message, name=name, kind=kind), status=code, headers=headers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
