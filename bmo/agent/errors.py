"""Typed failures a route maps to an HTTP status."""

from __future__ import annotations

from bmo.guidance import no_provider_message


class AgentError(Exception):
    """``str()`` is what a client may read; ``detail`` (when set) is the full story for records and the ledger."""

    status = 500
    code: str | None = None  # the error envelope's ``code``; None: the status's default
    detail: str | None = None


class NoProviderConfigured(AgentError):
    status = 503

    def __init__(self) -> None:
        super().__init__(no_provider_message())


class UnknownModel(AgentError):
    status = 404

    def __init__(self, model: str, known: list[str]):
        self.model = model
        hint = ", ".join(known[:10]) or "none configured"
        super().__init__(f"The model '{model}' does not exist. Models served here: {hint} (GET /v1/models lists them).")


class UpstreamError(AgentError):
    """The upstream answered with an error or a broken answer; 4xx passes on with its message."""

    def __init__(self, status: int, message: str, *, detail: str | None = None, code: str | None = None):
        self.status = status if 400 <= status < 500 else 502
        self.upstream_status = status
        self.detail = detail
        self.code = code
        super().__init__(message)


class UpstreamUnreachable(AgentError):
    status = 502
    code = "upstream_unreachable"

    def __init__(self, message: str, *, detail: str | None = None):
        self.detail = detail
        super().__init__(message)


class UpstreamTimeout(AgentError):
    status = 504
    code = "upstream_timeout"

    def __init__(self, message: str, *, detail: str | None = None):
        self.detail = detail
        super().__init__(message)


def error_detail(exc: BaseException) -> str:
    """The full text of a failure for records and ledgers: an AgentError's ``detail``, else its message."""
    detail = getattr(exc, "detail", None)
    return detail or (f"{type(exc).__name__}: {exc}" if not isinstance(exc, AgentError) else str(exc))


class SessionBusy(AgentError):
    """The session already has a run going."""

    status = 409

    def __init__(self, session_id: str, run_id: str):
        self.session_id = session_id
        self.run_id = run_id
        super().__init__(f"Session {session_id} is busy with run {run_id}.")


class AgentNotStarted(AgentError):
    """The agent core is not running on this host (its plugin has not started, or it failed to)."""

    status = 503

    def __init__(self) -> None:
        super().__init__("The agent core is not running on this server: the bmo.agent.plugin startup has not run "
                         "or failed (see the bmo.plugin_failed and agent.* records).")
