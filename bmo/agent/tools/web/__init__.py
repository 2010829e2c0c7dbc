"""web_fetch and what keeps it inside the network boundary: address checks, pinned resolution, decoding."""

from __future__ import annotations

from bmo.agent.tools.web.fetch import WebFetch

__all__ = ["WebFetch"]
