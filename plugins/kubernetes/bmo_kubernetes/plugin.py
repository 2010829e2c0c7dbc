"""The plugin's registration: the ``[kubernetes]`` section, its show command, and (when enabled) tools and posture."""

from __future__ import annotations

from bmo.hookspecs import hookimpl
from bmo_kubernetes.config import SECTION, KubernetesOptions

# The client library loads on the first tool call, so `bmo` commands start without it.


def _enabled(host) -> bool:
    return host is not None and host.config.section(SECTION).enabled


@hookimpl
def bmo_config_sections(register):
    register(SECTION, KubernetesOptions, KubernetesOptions)


@hookimpl
def bmo_config_show(register):
    from bmo_kubernetes import config_show

    register("kubernetes", config_show.render, help=config_show.HELP, example=config_show.EXAMPLE)


@hookimpl
def bmo_tools(register, host):
    if _enabled(host):
        from bmo_kubernetes.tools import kubernetes_tools

        for tool in kubernetes_tools():
            register(tool)


@hookimpl
def bmo_posture(register, host):
    if not _enabled(host):
        return
    from bmo_kubernetes.posture import posture
    from bmo_kubernetes.tools import STATE_KEY

    def build(host):
        api = host.state.get(STATE_KEY)
        return posture(api) if api is not None else {"enabled": True, "started": False}

    register("kubernetes", build)


@hookimpl
def bmo_startup(host):
    if _enabled(host):
        from bmo_kubernetes.api import ClusterApi
        from bmo_kubernetes.tools import STATE_KEY

        host.state[STATE_KEY] = ClusterApi(host.config.section(SECTION), env=host.plan.env)


@hookimpl
async def bmo_shutdown(host):
    from bmo_kubernetes.tools import STATE_KEY

    api = host.state.pop(STATE_KEY, None)
    if api is not None:
        await api.close()
