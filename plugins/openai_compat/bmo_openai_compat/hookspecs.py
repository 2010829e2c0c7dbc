"""Hooks this plugin adds to the host's plugin manager, for client-specific plugins (e.g. Open WebUI).

All three are ``firstresult``: the first plugin that answers with something other than None wins.
"""

from __future__ import annotations

import sys

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


HOOK_NAMES = ("bmo_openai_compat_session_key", "bmo_openai_compat_classify", "bmo_openai_compat_requester")


def ensure_hookspecs(pm) -> None:
    """Add the specs once per plugin manager (implementations registered earlier are verified then)."""
    caller = getattr(pm.hook, HOOK_NAMES[0], None)
    if caller is not None and getattr(caller, "spec", None) is not None:
        return
    pm.add_hookspecs(sys.modules[__name__])
