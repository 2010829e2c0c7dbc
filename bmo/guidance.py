"""What to tell a person whose BMO has no usable model: one paragraph, shared by the CLI and the API."""

from __future__ import annotations

from typing import Any

# The two settings a bmo.toml needs before the OpenAI-compatible routes can answer.
TWO_KEYS = ('[options.openai_compat] enabled = true, and a [providers.NAME] table with '
            'base_url = "http://127.0.0.1:8080/v1" (any OpenAI-compatible server: llama.cpp, Ollama, vLLM, '
            'LM Studio, OpenAI)')

NO_MODEL = (
    "BMO has no usable model yet. Run `bmo init` in the directory you serve from: it looks for a model "
    "server on this machine and for OPENAI_API_KEY / OPENROUTER_API_KEY, and writes ./bmo.toml. "
    f"Or add the two settings yourself: {TWO_KEYS}. Then restart `bmo serve`."
)


def speaks_at_startup(env: Any = None) -> bool:
    """False in the workers of ``bmo serve --workers N`` but the first: start-up advice is printed once per server."""
    import os

    from bmo.cluster.identity import WORKER_ID_ENV

    worker = (os.environ if env is None else env).get(WORKER_ID_ENV)
    supervised = bool(worker) and worker[0] == "w" and worker[1:].isdigit()  # the supervisor names them w1, w2 ...
    return not supervised or worker == "w1"


def disabled_message() -> str:
    """The answer of a compat route while ``[options.openai_compat] enabled`` is false."""
    return f"The OpenAI-compatible API is disabled on this BMO server. {NO_MODEL}"


def no_provider_message() -> str:
    """The answer of a model route when no ``[providers.NAME]`` table is configured."""
    return f"No model provider is configured. {NO_MODEL}"


def config_problems(config: Any) -> list[str]:
    """Why this configuration cannot answer a chat, read from the config alone (empty: nothing known wrong)."""
    problems = []
    try:
        enabled = bool(config.section("options.openai_compat").enabled)
    except (KeyError, AttributeError):  # the compat plugin is not loaded: nothing to enable
        enabled = True
    if not enabled:
        problems.append("the OpenAI-compatible API is disabled ([options.openai_compat] enabled = false)")
    if not config.section("providers"):
        problems.append("no [providers.NAME] table is configured")
    return problems


def startup_paragraph(config: Any) -> str | None:
    """The one paragraph ``bmo serve`` prints at start when the config cannot answer a chat."""
    problems = config_problems(config)
    if not problems:
        return None
    return f"bmo serve: not ready to answer chats: {'; '.join(problems)}. {NO_MODEL}"


def unreachable_paragraph(coordinator: Any) -> str | None:
    """The paragraph to print at start when providers are configured but none lists a model (all unreachable)."""
    providers = getattr(coordinator, "providers", {}) or {}
    if not providers or any(getattr(p, "models", None) for p in providers.values()):
        return None
    names = ", ".join(sorted(providers))
    return (f"bmo serve: not ready to answer chats: no configured provider ({names}) answered with a model list "
            f"at start; check that its model server runs and its base_url (bmo logs --msg "
            f"agent.provider.discovery_failed says why). {NO_MODEL}")


def readiness(config: Any, coordinator: Any) -> dict:
    """The posture's ``readiness`` view: whether a chat can be answered now, and if not, why and what to do."""
    reasons = config_problems(config)
    providers = getattr(coordinator, "providers", {}) if coordinator is not None else {}
    if coordinator is None:
        reasons.append("the agent core is not running")
    served = {name: list(getattr(p, "models", [])) for name, p in providers.items()}
    if providers and not any(served.values()):
        reasons.append("no provider lists a model: the model servers were unreachable at start or list none "
                       "(bmo logs --msg agent.provider.discovery_failed says why)")
    view: dict[str, Any] = {"ready": not reasons, "reasons": reasons, "providers": served}
    if reasons:
        view["what_to_do"] = NO_MODEL
    return view
