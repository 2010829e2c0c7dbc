"""Who may reach a session or a run: one rule for every route that looks one up.

Identities exist only when a trusted proxy forwards them (``X-Auth-Request-*``, or a client
plugin's headers such as Open WebUI's). A caller without a forwarded identity holds the
server's token itself: the operator, who reaches everything. A forwarded requester reaches
only what carries their name; everything else looks to them as if it did not exist (404).
"""

from __future__ import annotations


def may_reach(owner: str, requester: str) -> bool:
    """Whether ``requester`` ("" = the operator) may see or act on what ``owner`` created."""
    return not requester or requester == owner


def owner_filter(requester: str) -> str | None:
    """The owner a listing is limited to: None (everything) for the operator, else the requester."""
    return requester or None
