"""Open WebUI's registration with the host and with the openai_compat plugin's extension hooks.

Nothing here re-implements a compat surface: the ``/openwebui`` slash command and
``bmo config show-open-webui`` hand the host the very functions ``/openai-compat`` and
``show-openai-compat`` use, and the posture stays the compat plugin's one snapshot.
"""

from __future__ import annotations

from bmo.hookspecs import hookimpl
from bmo.server.app import get_host
from bmo_open_webui.chat_sessions import session_key
from bmo_open_webui.config import SECTION, OpenWebUIOptions, options_of
from bmo_open_webui.identity import forwarded_identity, requester_label
from bmo_open_webui.tasks import is_background_task, task_named_in_headers
from bmo_openai_compat import config_show as compat_config_show
from bmo_openai_compat.observe import posture as compat_posture

STATE_KEY = "open_webui"
SLASH_ALIAS = "openwebui"
SHOW_ALIAS = "open-webui"


def _options(request) -> OpenWebUIOptions:
    host = get_host(request)
    options = host.state.get(STATE_KEY)
    if options is None:
        options = host.state[STATE_KEY] = options_of(host.config)
    return options


@hookimpl
def bmo_config_sections(register):
    register(SECTION, OpenWebUIOptions)


@hookimpl
def bmo_config_show(register):
    # The same render, help and example as show-openai-compat: one output, two names.
    register(
        SHOW_ALIAS, compat_config_show.render,
        help=compat_config_show.HELP + " (Alias of show-openai-compat, named after the client.)",
        example=compat_config_show.EXAMPLE,
    )


@hookimpl
def bmo_slash_commands(register):
    register(SLASH_ALIAS, compat_posture.slash_openai_compat,
             help="Alias of /openai-compat: the OpenAI-compat posture report Open WebUI traffic lands in.")


@hookimpl
def bmo_openai_compat_session_key(request, body):
    model = body.get("model") if isinstance(body, dict) else None
    return session_key(request.headers, _options(request), model if isinstance(model, str) else "")


@hookimpl
def bmo_openai_compat_classify(request, body):
    options = _options(request)
    if not options.detect_tasks:
        return None
    if task_named_in_headers(request.headers, options.task_headers) or is_background_task(body):
        return "task"
    return None


@hookimpl
def bmo_openai_compat_requester(request):
    return requester_label(forwarded_identity(request.headers, _options(request))) or None
