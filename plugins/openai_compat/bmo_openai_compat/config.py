"""The ``[options.openai_compat]`` section and the names its values may take."""

from __future__ import annotations

from typing import Literal

import msgspec

SECTION = "options.openai_compat"

ToolPolicy = Literal["chat_only", "auto_approve"]
AmbiguityAction = Literal["ask", "research", "code"]
ModelOverridePolicy = Literal["reject", "allow_ephemeral"]


class OpenAICompatOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What an operator sets in ``bmo.toml`` under ``[options.openai_compat]``."""

    enabled: bool = False
    tool_policy: ToolPolicy = "chat_only"
    ambiguity_action: AmbiguityAction = "ask"
    model_override_policy: ModelOverridePolicy = "reject"
    # Empty: every model the providers serve.
    advertised_models: list[str] = []
    # An SSE comment goes out after this many silent seconds so proxies keep the stream open.
    keepalive_interval_s: float = 15.0
    # chat_only: how long a BMO permission challenge waits for a native answer before it is denied.
    permission_timeout_s: float = 120.0
    # auto_approve: which tools a client sends reach the model ("all", "none", or names and globs).
    client_tools: Literal["all", "none"] | list[str] = "all"


def options_of(config) -> OpenAICompatOptions:
    return config.section(SECTION)
