"""The ``[options.open_webui]`` section: which headers carry Open WebUI's chat id and user identity."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

SECTION = "options.open_webui"


class OpenWebUIOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What an operator may tune under ``[options.open_webui]``; the defaults match Open WebUI's own."""

    # Marks this as a client of the compat surface: show-openai-compat (and so show-open-webui) prints it.
    openai_compat_client: ClassVar[str] = "Open WebUI"

    # Headers that may carry the chat id, first present wins. Open WebUI sends X-OpenWebUI-Chat-Id
    # with ENABLE_FORWARD_USER_INFO_HEADERS=true; a custom header template ({{CHAT_ID}}) can use another name.
    chat_id_headers: list[str] = msgspec.field(default_factory=lambda: ["X-OpenWebUI-Chat-Id"])
    # Prepended to the chat id to form the BMO session id, so chats never collide with other sessions.
    session_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:@-]{0,64}$")] = "openwebui-"
    # Chat ids Open WebUI never saves: each request stays an ephemeral session.
    ephemeral_chat_prefixes: list[str] = msgspec.field(default_factory=lambda: ["temporary:", "local:", "channel:"])
    # Answer Open WebUI's "### Task:" requests (titles, tags, follow-ups, queries) with one direct model call.
    detect_tasks: bool = True
    # A header whose non-empty value marks a task outright: give the Open WebUI connection the custom
    # header {"X-OpenWebUI-Task": "{{TASK}}"} and every task kind is recognised, whatever its prompt.
    task_headers: list[str] = msgspec.field(default_factory=lambda: ["X-OpenWebUI-Task"])
    # Forwarded identity (Open WebUI's FORWARD_USER_INFO_HEADER_* names); trusted only from trusted proxies.
    user_email_header: str = "X-OpenWebUI-User-Email"
    user_name_header: str = "X-OpenWebUI-User-Name"
    user_id_header: str = "X-OpenWebUI-User-Id"
    user_role_header: str = "X-OpenWebUI-User-Role"


def options_of(config) -> OpenWebUIOptions:
    return config.section(SECTION)
