"""Typed failures a route maps to an HTTP status."""

from __future__ import annotations

from bmo.guidance import no_provider_message


class AgentError(Exception):
    status = 500


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
    """The upstream answered with an error; 4xx passes on with its message."""

    def __init__(self, status: int, message: str):
        self.status = status if 400 <= status < 500 else 502
        self.upstream_status = status
        super().__init__(message)


class UpstreamUnreachable(AgentError):
    status = 502


class UpstreamTimeout(AgentError):
    status = 504


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
