"""The cluster connection on its own, against the fake API through a real kubeconfig: retries, refresh, bounds."""

from __future__ import annotations

import pytest
from bmo_kubernetes import resources as res
from bmo_kubernetes.api import ClusterApi, RetriesExhausted
from bmo_kubernetes.config import KubernetesOptions
from bmo_kubernetes.tables import list_table
from k8s_support import RETRIES

from bmo.agent.tools.base import ToolFailed

NAMESPACES = res.Read("/api/v1/namespaces")


@pytest.fixture
async def api_for(kube, tmp_path):
    opened = []

    def make(**options) -> ClusterApi:
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")
        api = ClusterApi(KubernetesOptions(enabled=True, kubeconfig=str(path), **{**RETRIES, **options}), env={})
        opened.append(api)
        return api

    yield make
    for api in opened:
        await api.close()


async def test_an_expired_token_is_retried_once_when_reloading_the_kubeconfig_gives_a_new_one(api_for, kube, tmp_path):
    api = api_for()
    assert (await api.read(NAMESPACES))["kind"] == "NamespaceList"
    kube.token = "rotated-token"  # the old token expires; the credential source now holds a new one
    kube.write_kubeconfig(tmp_path / "kubeconfig", token="rotated-token")
    assert (await api.read(NAMESPACES))["kind"] == "NamespaceList"
    assert [r.authorization for r in kube.requests[1:]] == ["Bearer fake-k8s-token", "Bearer rotated-token"]
    assert api.stats.retries == 1


async def test_a_401_that_no_reload_can_fix_is_permanent(api_for, kube):
    api = api_for()
    kube.token = "someone-elses"
    with pytest.raises(ToolFailed) as err:
        await api.read(NAMESPACES)
    assert not isinstance(err.value, RetriesExhausted) and "HTTP 401" in str(err.value)
    assert len(kube.requests) == 1


async def test_a_retry_after_beyond_the_budget_gives_up_at_once_with_the_last_error(api_for, kube):
    api = api_for(retry_budget_s=1)
    kube.fail("status", status=429, retry_after=30)
    with pytest.raises(RetriesExhausted) as err:
        await api.read(NAMESPACES)
    assert err.value.outcome == "k8s_retry_failed" and "HTTP 429" in err.value.last_error
    assert "1 attempts" in str(err.value) and len(kube.requests) == 1


async def test_5xx_statuses_are_retried_up_to_max_attempts(api_for, kube):
    api = api_for(max_attempts=4)
    kube.fail("status", status=502, times=-1)
    with pytest.raises(RetriesExhausted):
        await api.read(NAMESPACES)
    assert len(kube.requests) == 4 and api.stats.by_status == {"502": 4}


async def test_a_404_is_permanent_and_names_the_object(api_for, kube):
    api = api_for()
    with pytest.raises(ToolFailed) as err:
        await api.read(res.Read(res.item(res.KINDS["pods"], "gone", "shop")))
    assert 'pods "gone" not found' in str(err.value) and len(kube.requests) == 1


def test_requests_can_only_name_allow_listed_kinds_and_valid_names():
    for kind in ("secrets", "secret", "configmaps", "cm", "clusterroles", "pods/exec", ""):
        with pytest.raises(ToolFailed):
            res.kind_of(kind)
    for name in ("../x", "a/b", "a?b", "A", "-a", "a" * 254, ""):
        with pytest.raises(ToolFailed):
            res.item(res.KINDS["pods"], name, "shop")
    assert not hasattr(res.Read("/x"), "method")  # a Read is a GET; there is no verb to set


def test_tables_are_bounded_to_max_rows_and_say_what_was_left_out():
    listing = {"items": [{"metadata": {"name": f"ns-{i}"}, "status": {"phase": "Active"}} for i in range(30)]}
    text = list_table("namespaces", listing, max_rows=5)
    assert text.count("ns-") == 5 and "25 rows not shown" in text
