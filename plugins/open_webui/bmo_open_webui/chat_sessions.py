"""Open WebUI's chat id and model → one BMO session per chat pane.

A chat that compares models side by side sends one chat id for every pane, so the model is
part of the key: the panes never share a session, and a model switch continues in the new
model's session, seeded from the transcript Open WebUI sends.
"""

from __future__ import annotations

import hashlib
import re

from bmo_open_webui.config import OpenWebUIOptions

# What the compat surface accepts as a session id; a chat id that would not fit is hashed instead.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


def chat_id_of(headers, options: OpenWebUIOptions) -> str:
    """The chat id from the first configured header that carries one, else ``""``."""
    for name in options.chat_id_headers:
        value = (headers.get(name) or "").strip()
        if value:
            return value
    return ""


def is_ephemeral_chat(chat_id: str, options: OpenWebUIOptions) -> bool:
    """Temporary (``temporary:``/``local:``) and channel chats are never kept by Open WebUI, so not by BMO."""
    return any(chat_id.startswith(prefix) for prefix in options.ephemeral_chat_prefixes)


def session_id_for_chat(chat_id: str, options: OpenWebUIOptions, model: str = "") -> str:
    """The BMO session id a saved chat's pane maps to: ``<prefix><chat id>@<model>``, "/" written ":".

    Stable, prefixed, and safe in logs and URLs; a key that would not fit is hashed instead.
    """
    suffix = "@" + model.replace("/", ":") if model else ""
    candidate = options.session_prefix + chat_id + suffix
    if _SAFE_ID.fullmatch(candidate):
        return candidate
    digest = hashlib.sha256(f"{chat_id}\x00{model}".encode()).hexdigest()[:32]
    return f"{options.session_prefix}sha256-{digest}"


def session_key(headers, options: OpenWebUIOptions, model: str = "") -> str | None:
    """The session for a request's chat and model, or None (no chat id, or an ephemeral chat)."""
    chat_id = chat_id_of(headers, options)
    if not chat_id or is_ephemeral_chat(chat_id, options):
        return None
    return session_id_for_chat(chat_id, options, model)
