"""The agent core's config sections: ``[agent]``, its subsystems, and ``[providers.NAME]``."""

from __future__ import annotations

import ipaddress
from typing import Literal

import msgspec

from bmo.agent.sandbox.config import SandboxOptions

DEFAULT_SYSTEM_PROMPT = (
    "You are BMO, a careful coding and research agent. You work inside the workspace directory and "
    "can use the tools you are given to read, search and change files, run commands and fetch URLs. "
    "Use tools when they help, then answer the user directly and concisely."
)


class PermissionRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A standing decision: ``tool`` (name or glob) on a ``target`` glob (path, command or URL)."""

    tool: str = "*"
    target: str = "*"
    decision: str = "allow"  # allow | deny


class AgentOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    default_model: str = ""  # "NAME/model"; empty: the first model of the first provider
    workspace: str = "."  # root that the file and shell tools are confined to
    max_steps: int = 24
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    permission_timeout_s: float = 120.0  # an unanswered challenge is denied after this
    permission_rules: list[PermissionRule] = []
    # The most a native API request's permission_mode may ask for; "ask" keeps every challenge.
    max_permission_mode: Literal["ask", "auto_approve"] = "ask"
    max_tool_output_bytes: int = 64 * 1024  # what one tool result may hand the model
    shell_timeout_s: float = 30.0  # run_shell default time limit
    shell_max_timeout_s: float = 300.0  # the most a model may ask run_shell for
    web_fetch_timeout_s: float = 20.0
    web_fetch_max_bytes: int = 512 * 1024
    recovery_prompt: str = (
        "You ran tools but gave no answer. Using the tool results above, answer the user's request now."
    )


class FileToolsOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_read_bytes: int = 256 * 1024  # read_file returns at most this much, marked as truncated
    max_write_bytes: int = 1024 * 1024  # write_file/edit_file refuse larger content
    max_list_entries: int = 500
    max_search_matches: int = 200
    max_search_files: int = 5000
    ignore_dirs: list[str] = msgspec.field(default_factory=lambda: [".git", "node_modules", "__pycache__", ".venv"])


class WebFetchOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[agent.web_fetch]``: what web_fetch may reach beyond the public internet, and redirects."""

    allow_hosts: list[str] = []  # host names or globs ("intranet.example", "*.corp") opened whatever they resolve to
    allow_cidrs: list[str] = []  # networks opened although private, loopback or link-local ("10.1.0.0/16")
    max_redirects: int = 5

    def __post_init__(self) -> None:
        for cidr in self.allow_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"allow_cidrs: {cidr!r} is not an address or network (e.g. \"10.0.0.0/8\")") from None
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")


class LoopDetectionOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    max_identical_calls: int = 3  # the same tool with the same arguments, this many times in one run, stops it


class LengthRecoveryOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    max_continuations: int = 3
    continue_prompt: str = "Your answer was cut off. Continue exactly where you stopped, without repeating anything."


class SpawningOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    max_depth: int = 2  # a sub-agent of a sub-agent is depth 2
    max_per_run: int = 4  # spawn_agent calls one run may make
    max_steps: int = 12  # each sub-run's own step budget


class ProviderOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[providers.NAME]`` table."""

    kind: str = "openai"
    base_url: str = ""
    api_key_env: str = ""  # name of the environment variable holding the key
    models: list[str] = []  # empty: discovered with GET {base_url}/models at startup
    vision_models: list[str] = []  # globs of the models that take image parts; others get a note instead
    headers: dict[str, str] = {}
    timeout_s: float = 120.0  # connect + time between streamed bytes
    max_retries: int = 2  # connect errors, 429 and 5xx before the first byte
    retry_backoff_s: float = 0.5
    max_retry_wait_s: float = 30.0  # cap on honouring Retry-After
    max_connections: int = 0  # upstream connections open at once; 0: no limit
    max_sse_line_bytes: int = 512 * 1024  # longest streamed line read; a longer one is a 502
    # One answer's bounds, retries included: past them the turn ends as a 504 (time) or 502 (size).
    max_answer_s: float = 600.0  # the openai SDK's own default request timeout
    max_answer_bytes: int = 32 * 1024 * 1024  # as received, SSE framing included (~128k streamed tokens)
    # Content that is exactly a call of an offered tool as JSON becomes a tool call; None: the kind decides (llamacpp on).
    text_tool_calls: bool | None = None
    # Whether the compat API's first-turn ambiguity router asks this provider's models; None: the kind decides
    # (llamacpp: no, as a 0.5B model calls "What is 2+3?" ambiguous and asks it back).
    ambiguity_router: bool | None = None
    # The temperature of a request that names none; None: the kind decides (the upstream's own; llamacpp 0).
    temperature: float | None = None
    # kind = "llamacpp" (the embedded local model): a GGUF file, or a Hugging Face repo + file in the local cache.
    model_path: str = ""
    repo: str = ""
    file: str = ""
    context_size: int = 4096
    threads: int = 0  # 0: the CPUs this process may use
    start_timeout_s: float = 300.0  # loading the model: the server is not ready before
    # The BMO tools this provider's models are offered, as names or globs ("mcp__docs__*"); [] offers none.
    # None: the kind decides (all for openai; the file reads for llamacpp, as a 0.5B model is lost among ten).
    tools: list[str] | None = None
    # kind = "llamacpp": after this many tool rounds in a turn, the model answers without tools (0: no limit).
    tool_rounds: int = 1


from bmo.agent.context import ContextOptions  # noqa: E402 - the section lives with the code that applies it

SECTIONS = {
    "agent": AgentOptions,
    "agent.file_tools": FileToolsOptions,
    "agent.web_fetch": WebFetchOptions,
    "agent.loop_detection": LoopDetectionOptions,
    "agent.length_recovery": LengthRecoveryOptions,
    "agent.spawning": SpawningOptions,
    "agent.sandbox": SandboxOptions,
    "agent.context": ContextOptions,
}
