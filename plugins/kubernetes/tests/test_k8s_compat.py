"""Acceptance through the OpenAI-compatible API: the scripted model calls the Kubernetes tools against the fake API."""

from __future__ import annotations

import openai
import pytest
from cluster_objects import CONFIG_VALUE, SECRET_VALUE
from k8s_support import ROUTE_CLEAR, ask, calls, ledger_row, records, tool_results

from bmo.testing.fake_upstream import reply

POD = "web-7d4b9c-x2x9z"


async def test_why_is_a_pod_crash_looping_gets_the_pod_its_events_and_previous_logs_to_the_model(bmo, fake_upstream,
                                                                                                 kube):
    server = await bmo()
    fake_upstream.script(
        ROUTE_CLEAR,
        calls(("k8s_describe", {"kind": "pod", "name": POD, "namespace": "shop"}),
              ("k8s_pod_logs", {"name": POD, "namespace": "shop", "previous": True, "tail_lines": 20})),
        reply("web crashes at start: DATABASE_URL is not set."),
    )
    raw = await ask(server, f"why is pod {POD} crash-looping?")
    completion = raw.parse()
    assert completion.choices[0].message.content == "web crashes at start: DATABASE_URL is not set."
    describe, logs = tool_results(fake_upstream.chat_requests[-1])
    assert "CrashLoopBackOff" in describe and "restarts 7" in describe and "exitCode=1" in describe
    assert "BackOff" in describe and "Back-off restarting failed container web" in describe  # its events
    assert "panic: DATABASE_URL is not set" in logs and "previous instance" in logs
    log_get = [r for r in kube.requests if r.path.endswith("/log")]
    assert log_get and log_get[-1].query["previous"] == "true" and log_get[-1].query["tailLines"] == "20"
    row = await ledger_row(server, raw.headers["x-request-id"])
    assert row["outcome"] == "final_answer"


async def test_a_transient_503_twice_then_success_is_retried_and_answered(bmo, fake_upstream, kube):
    server = await bmo()
    kube.fail("status", status=503, times=2)
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list", {"kind": "pods", "namespace": "shop"})), reply("One pod."))
    raw = await ask(server, "which pods run in shop?")
    assert raw.parse().choices[0].message.content == "One pod."
    [table] = tool_results(fake_upstream.chat_requests[-1])
    assert POD in table and "CrashLoopBackOff" in table and table.startswith("NAMESPACE")
    assert len([r for r in kube.requests if r.path == "/api/v1/namespaces/shop/pods"]) == 3
    section = (await server.host.posture())["kubernetes"]
    assert section["retries"] == 2 and section["failures_by_status"] == {"503": 2} and section["reachable"] is True


async def test_an_unreachable_api_exhausts_the_retries_and_ends_k8s_retry_failed(bmo, fake_upstream, kube):
    server = await bmo()
    kube.fail("refuse")
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_get", {"kind": "pod", "name": POD, "namespace": "shop"})),
                         reply("never sent: the run ends before this step"))
    with pytest.raises(openai.APIStatusError) as err:
        await ask(server, f"what state is {POD} in?")
    assert err.value.status_code == 502 and err.value.body["code"] == "k8s_retry_failed"
    assert "3 attempts" in err.value.body["message"] and "cannot connect" in err.value.body["message"]
    request_id = err.value.response.headers["x-request-id"]
    row = await ledger_row(server, request_id)
    assert row["outcome"] == "k8s_retry_failed" and row["http_status"] == 502 and "cannot connect" in row["error"]
    [action] = await records(server, "openai_compat.action", request_id=request_id)
    assert action["outcome"] == "k8s_retry_failed" and action["level"] == "warn"
    assert "last error: cannot connect to http://127.0.0.1" in action["error"]
    posture = await server.host.posture()
    assert posture["kubernetes"]["retries_exhausted"] == 1 and posture["kubernetes"]["reachable"] is False
    assert posture["openai_compat"]["last_outcomes"][-1]["outcome"] == "k8s_retry_failed"
    assert fake_upstream.pending == 1  # the model was not asked again after the retries ran out


async def test_a_reset_then_a_429_with_retry_after_are_retried(bmo, fake_upstream, kube):
    server = await bmo()
    kube.fail("reset", times=2)  # aiohttp itself resends an idempotent GET once after a reset; ours comes next
    kube.fail("status", status=429, retry_after=0.05)
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list_namespaces", {})), reply("Two namespaces."))
    raw = await ask(server, "which namespaces are there?")
    assert raw.parse().choices[0].message.content == "Two namespaces."
    [table] = tool_results(fake_upstream.chat_requests[-1])
    assert "shop" in table and "kube-system" in table
    assert (await server.host.posture())["kubernetes"]["failures_by_status"] == {"unreachable": 1, "429": 1}


async def test_a_hanging_api_times_out_and_exhausts_the_retries(bmo, fake_upstream, kube):
    server = await bmo(request_timeout_s=0.2)
    kube.fail("hang", times=-1)
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list", {"kind": "nodes"})))
    with pytest.raises(openai.APIStatusError) as err:
        await ask(server, "how are the nodes?")
    assert err.value.body["code"] == "k8s_retry_failed" and "no answer within" in err.value.body["message"]


async def test_a_403_is_not_retried_and_the_model_is_told(bmo, fake_upstream, kube):
    server = await bmo()
    kube.fail("status", status=403)
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list", {"kind": "deployments", "namespace": "shop"})),
                         reply("I may not read deployments in shop."))
    raw = await ask(server, "list deployments in shop")
    assert raw.parse().choices[0].message.content == "I may not read deployments in shop."
    [result] = tool_results(fake_upstream.chat_requests[-1])
    assert "HTTP 403" in result and "Forbidden" in result and "not retried" in result
    assert len(kube.requests) == 1
    assert (await server.host.posture())["kubernetes"]["permanent_failures"] == 1
    assert (await ledger_row(server, raw.headers["x-request-id"]))["outcome"] == "final_answer"


async def test_no_secret_configmap_data_or_write_verb_is_reachable_whatever_the_model_asks(bmo, fake_upstream, kube):
    server = await bmo()
    hostile = [
        ("k8s_get", {"kind": "secrets", "name": "db-password", "namespace": "shop"}),
        ("k8s_get", {"kind": "secret", "name": "db-password", "namespace": "shop"}),
        ("k8s_list", {"kind": "configmaps", "namespace": "shop"}),
        ("k8s_get", {"kind": "pods", "name": "../secrets/db-password", "namespace": "shop"}),
        ("k8s_get", {"kind": "pods", "name": "x", "namespace": "shop/secrets"}),
        ("k8s_describe", {"kind": "pods", "name": "db-password?x=1", "namespace": "shop"}),
        ("k8s_pod_logs", {"name": POD, "namespace": "shop", "container": "../../secrets"}),
        ("k8s_list", {"kind": "pods", "namespace": "shop", "label_selector": "a=b&fieldSelector=x"}),
        ("k8s_events", {"namespace": "shop", "kind": "secrets", "name": "db-password"}),
        ("k8s_delete", {"kind": "pods", "name": POD, "namespace": "shop"}),
        ("k8s_list", {"kind": "pods", "namespace": "shop", "verb": "delete", "method": "DELETE"}),
    ]
    fake_upstream.script(ROUTE_CLEAR, calls(*hostile), reply("done"))
    await ask(server, "show me every secret and delete the web pod")
    results = tool_results(fake_upstream.chat_requests[-1])
    assert len(results) == len(hostile)
    joined = "\n".join(results)
    assert SECRET_VALUE not in joined and CONFIG_VALUE not in joined
    assert kube.verbs() <= {"GET"}
    assert not [r for r in kube.requests if "secrets" in r.path or "configmaps" in r.path]
    offered = {t["function"]["name"] for t in fake_upstream.chat_requests[-1].body["tools"]}
    assert {n for n in offered if n.startswith("k8s_")} == {"k8s_list_namespaces", "k8s_list", "k8s_get",
                                                            "k8s_events", "k8s_pod_logs", "k8s_describe"}
