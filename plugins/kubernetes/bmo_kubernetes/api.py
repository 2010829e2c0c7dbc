"""The cluster connection: credentials from kubeconfig or the service account, GETs with bounded retries.

:meth:`ClusterApi.read` is the only way a tool reaches the cluster, and it only sends GET.
Transient failures (refused, reset, timeout, 429, 500/502/503/504, a 401 whose credentials
reload to new ones) are retried within ``max_attempts`` and ``retry_budget_s``; when those run
out the inspection raises :class:`RetriesExhausted`, which ends the run (``k8s_retry_failed``).
Permanent failures (403, 404, 400, 422, ...) raise ``ToolFailed`` for the model to reason about.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bmo.agent.tools.base import ToolEndedRun, ToolFailed
from bmo_kubernetes.config import KubernetesOptions
from bmo_kubernetes.resources import Read
from bmo_kubernetes.retry import TRANSIENT_STATUS, ApiFailure, backoff, retry_after

K8S_RETRY_FAILED = "k8s_retry_failed"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class RetriesExhausted(ToolEndedRun):
    def __init__(self, message: str, last_error: str):
        super().__init__(message, outcome=K8S_RETRY_FAILED)
        self.last_error = last_error


@dataclass
class ApiStats:
    """Counted for the posture section."""

    requests: int = 0  # inspections (each may take several attempts)
    attempts: int = 0
    retries: int = 0
    permanent_failures: int = 0
    exhausted: int = 0
    reachable: bool | None = None  # the last attempt reached the API server (None: never tried)
    last_error: str = ""
    last_error_at: float | None = None
    last_ok_at: float | None = None
    by_status: dict[str, int] = field(default_factory=dict)


class ClusterApi:
    def __init__(self, options: KubernetesOptions, env: dict[str, str] | None = None):
        self.options = options
        self.env = dict(os.environ if env is None else env)
        self.stats = ApiStats()
        self.source = ""  # where the credentials came from, for the posture
        self.context = ""
        self.server = ""
        self.namespace = ""
        self._client = None
        self._lock = asyncio.Lock()

    # -- connection -----------------------------------------------------------------
    def kubeconfig_path(self) -> str:
        return self.options.kubeconfig or self.env.get("KUBECONFIG", "")

    async def _connect(self, *, reload: bool = False):
        async with self._lock:
            if self._client is not None and not reload:
                return self._client
            from kubernetes_asyncio import client, config  # imported on first use: the CLI stays light

            configuration = client.Configuration()
            path = self.kubeconfig_path()
            try:
                if path or not self.env.get("KUBERNETES_SERVICE_HOST"):
                    path = path or str(Path.home() / ".kube" / "config")
                    loader = await config.load_kube_config(config_file=path, context=self.options.context or None,
                                                           client_configuration=configuration, persist_config=False)
                    self.source, self.context = f"kubeconfig {path}", loader.current_context.get("name", "")
                    self.namespace = loader.current_context.get("context", {}).get("namespace", "") or ""
                else:
                    config.load_incluster_config(client_configuration=configuration)
                    self.source, self.context = f"in-cluster service account ({SERVICE_ACCOUNT_TOKEN})", "in-cluster"
            except (config.ConfigException, OSError, ValueError) as exc:
                raise ToolFailed(f"cannot load Kubernetes credentials from {path or 'the in-cluster service account'}: "
                                 f"{exc}. Set [kubernetes] kubeconfig (and context) or KUBECONFIG.") from None
            configuration.retries = None  # ours, below, not the client's
            self.server = configuration.host
            old, self._client = self._client, client.ApiClient(configuration)
            if old is not None:
                await old.close()
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def default_namespace(self) -> str:
        return self.options.default_namespace or self.namespace or "default"

    # -- reads ----------------------------------------------------------------------
    async def read(self, request: Read) -> dict | str:
        """The decoded JSON (or text) of one GET, retried as the module docstring says."""
        opts, stats = self.options, self.stats
        stats.requests += 1
        client = await self._connect()
        deadline = time.monotonic() + opts.retry_budget_s
        attempt, refreshed, started = 0, False, time.monotonic()
        while True:
            attempt += 1
            stats.attempts += 1
            left = deadline - time.monotonic()
            try:
                result = await self._attempt(client, request, min(opts.request_timeout_s, max(left, 0.05)))
            except ApiFailure as failure:
                self._note(failure)
                if failure.status == 401 and not refreshed:
                    refreshed = True
                    before = client.configuration.api_key.get("BearerToken")
                    client = await self._connect(reload=True)
                    if client.configuration.api_key.get("BearerToken") != before:  # new credentials: worth a try
                        stats.retries += 1
                        continue
                if not failure.transient:
                    stats.permanent_failures += 1
                    raise ToolFailed(f"the Kubernetes API refused GET {request.path}: {failure}. "
                                     "This is not retried; reason about it or ask the user.") from None
                delay = backoff(attempt, opts.backoff_initial_s, opts.backoff_max_s, failure)
                if attempt >= opts.max_attempts or time.monotonic() + delay >= deadline:
                    stats.exhausted += 1
                    spent = time.monotonic() - started
                    raise RetriesExhausted(
                        f"the Kubernetes API could not be reached for GET {request.path}: {attempt} attempts in "
                        f"{spent:.1f}s ([kubernetes] max_attempts = {opts.max_attempts}, retry_budget_s = "
                        f"{opts.retry_budget_s:g}); last error: {failure}", str(failure)) from None
                stats.retries += 1
                await asyncio.sleep(delay)
                continue
            stats.reachable, stats.last_ok_at = True, time.time()
            return result

    def _note(self, failure: ApiFailure) -> None:
        stats = self.stats
        stats.reachable = failure.status is not None
        stats.last_error, stats.last_error_at = str(failure), time.time()
        key = str(failure.status) if failure.status is not None else "unreachable"
        stats.by_status[key] = stats.by_status.get(key, 0) + 1

    async def _attempt(self, client, request: Read, timeout: float) -> dict | str:
        limit = self.options.log_max_bytes if request.text else 4 * 1024 * 1024
        try:
            # GET is the only verb this module sends; the generated per-verb methods are never used.
            response = await client.call_api(
                request.path, "GET", query_params=list(request.query.items()),
                header_params={"Accept": "text/plain" if request.text else "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout)
            try:
                body = b""
                while len(body) <= limit:  # bounded: a huge answer is cut, never held whole
                    chunk = await response.content.read(limit + 1 - len(body))
                    if not chunk:
                        break
                    body += chunk
            finally:
                response.release()
        except asyncio.TimeoutError:
            raise ApiFailure(f"no answer within {timeout:.1f}s", transient=True) from None
        except aiohttp.ClientConnectorError as exc:
            raise ApiFailure(f"cannot connect to {self.server}: {exc.os_error or exc}", transient=True) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ApiFailure(f"connection to {self.server} lost: {type(exc).__name__}: {exc}", transient=True) from None
        status = response.status
        if status >= 400:
            raise ApiFailure(f"HTTP {status}: {_status_message(body)}", transient=status in TRANSIENT_STATUS,
                             status=status, retry_after=retry_after(response.headers.get("Retry-After")))
        if not request.text and len(body) > limit:
            raise ApiFailure(f"the answer is over {limit} bytes; narrow it (a namespace, a label_selector)",
                             transient=False, status=status)
        if request.text:
            return body[:limit].decode("utf-8", errors="replace")
        try:
            return json.loads(body)
        except ValueError:
            raise ApiFailure("the API server sent a body that is not JSON", transient=True, status=status) from None


def _status_message(body: bytes) -> str:
    """The ``message`` of a Status body, else the start of the body."""
    try:
        status = json.loads(body)
        if isinstance(status, dict) and status.get("message"):
            reason = f" ({status['reason']})" if status.get("reason") else ""
            return f"{status['message']}{reason}"
    except ValueError:
        pass
    return body[:200].decode("utf-8", errors="replace") or "no message"
