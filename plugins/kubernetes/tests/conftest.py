"""Fixtures: the fake Kubernetes API with a small cluster, and BMO serving on the fake upstream with the plugin on."""

from __future__ import annotations

import pytest_asyncio
from cluster_objects import CRASH_LOG, objects
from k8s_support import RETRIES

from bmo.testing.fake_kubernetes import FakeKubernetes
from bmo.testing.fixtures import fake_upstream, provider_toml  # noqa: F401
from bmo.testing.harness import start_server


@pytest_asyncio.fixture
async def kube():
    async with FakeKubernetes() as fake:
        fake.add(*objects())
        fake.add_log("shop", "web-7d4b9c-x2x9z", "web", CRASH_LOG, previous=True)
        fake.add_log("shop", "web-7d4b9c-x2x9z", "web", "starting web 1.4.2\nloading config\n")
        yield fake


@pytest_asyncio.fixture
async def bmo(tmp_path, fake_upstream, kube):  # noqa: F811
    """``await bmo(**kubernetes_options)``: BMO with [kubernetes] pointing at the fake; stopped after the test."""
    started = []

    async def start(*, compat: str = "", rules: bool = True, env: dict | None = None, kubeconfig: str | None = None,
                    **options):
        if kubeconfig is None:
            kubeconfig = str(kube.write_kubeconfig(tmp_path / f"kubeconfig{len(started)}"))
        workspace = tmp_path / "ws"
        workspace.mkdir(exist_ok=True)
        settings = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in {**RETRIES, **options}.items())
        allow = '[[agent.permission_rules]]\ntool = "k8s_*"\ndecision = "allow"\n' if rules else ""
        text = (f'[agent]\nworkspace = "{workspace}"\npermission_timeout_s = 2\n{allow}\n'
                f'[options.openai_compat]\nenabled = true\n{compat}\n'
                f'[kubernetes]\nenabled = true\nkubeconfig = "{kubeconfig}"\ncontext = "fake"\n{settings}\n'
                f'{provider_toml(fake_upstream)}')
        server = await start_server(tmp_path / f"data{len(started)}", config_toml=text, env=env,
                                    load_plugins="kubernetes,openai_compat")
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop()
