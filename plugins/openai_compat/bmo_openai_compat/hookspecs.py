"""Hooks this plugin adds to the host's plugin manager, for client-specific plugins (e.g. Open WebUI).

All three are ``firstresult``: the first plugin that answers with something other than None wins.
The plugin adds them through ``bmo_addhooks`` as it is registered, so they exist before any route.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("bmo")


@hookspec(firstresult=True)
def bmo_openai_compat_session_key(request, body):
    """A session id for a chat request that has no ``X-BMO-Session-Id`` header, or None.

    ``request`` is the aiohttp request, ``body`` the decoded JSON object as the client sent it.
    """


@hookspec(firstresult=True)
def bmo_openai_compat_classify(request, body):
    """``"task"`` for a background task (one direct model call: no session, loop, tools or router), or None for a chat."""


@hookspec(firstresult=True)
def bmo_openai_compat_requester(request):
    """The requester from client-specific identity headers, or None; asked only when the peer is a trusted proxy."""
