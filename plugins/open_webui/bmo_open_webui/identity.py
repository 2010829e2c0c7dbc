"""The requester Open WebUI forwards in ``X-OpenWebUI-User-*`` headers."""

from __future__ import annotations

from urllib.parse import unquote

from bmo_open_webui.config import OpenWebUIOptions


def forwarded_identity(headers, options: OpenWebUIOptions) -> dict[str, str] | None:
    """The forwarded user as a dict (``email``, ``name``, ``id``, ``role``), or None when absent.

    The caller decides whether to believe it: only a trusted proxy's word counts.
    """
    fields = {
        "email": options.user_email_header,
        "name": options.user_name_header,
        "id": options.user_id_header,
        "role": options.user_role_header,
    }
    # Open WebUI percent-encodes the display name so any Unicode survives as a header.
    identity = {k: unquote(headers.get(h, "").strip()) for k, h in fields.items() if headers.get(h, "").strip()}
    return identity or None


def requester_label(identity: dict[str, str] | None) -> str:
    """One string for who asked: the email (what operators search for), else the name, else the id."""
    if not identity:
        return ""
    return identity.get("email") or identity.get("name") or identity.get("id") or ""
