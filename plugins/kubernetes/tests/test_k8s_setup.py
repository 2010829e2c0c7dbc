"""Where credentials come from, what a missing one tells the model, the permission class, and streamed endings."""

from __future__ import annotations

import openai
import pytest
from k8s_support import MODEL, ROUTE_CLEAR, ask, calls, ledger_row, tool_results
from openai import AsyncOpenAI

from bmo.testing.fake_upstream import reply


async def test_kubeconfig_comes_from_the_KUBECONFIG_variable_when_the_section_names_none(bmo, fake_upstream, kube,
                                                                                        tmp_path):
    path = kube.write_kubeconfig(tmp_path / "from-env.yaml")
    server = await bmo(kubeconfig="", env={"KUBECONFIG": str(path)})
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list", {"kind": "nodes"})), reply("One node."))
    raw = await ask(server, "nodes?")
    assert raw.parse().choices[0].message.content == "One node."
    [table] = tool_results(fake_upstream.chat_requests[-1])
    assert "node-1" in table and "Ready" in table and "v1.31.2" in table
    assert (await server.host.posture())["kubernetes"]["credentials"] == f"kubeconfig {path}"


async def test_a_missing_kubeconfig_is_an_error_the_model_can_explain_not_a_failed_server(bmo, fake_upstream, tmp_path):
    missing = tmp_path / "no-such-kubeconfig"
    server = await bmo(kubeconfig=str(missing))
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list_namespaces", {})), reply("BMO has no cluster credentials."))
    raw = await ask(server, "namespaces?")
    assert raw.parse().choices[0].message.content == "BMO has no cluster credentials."
    [result] = tool_results(fake_upstream.chat_requests[-1])
    assert f"cannot load Kubernetes credentials from {missing}" in result and "[kubernetes] kubeconfig" in result


async def test_cluster_reads_are_challenged_without_a_rule_and_denied_when_nobody_answers(bmo, fake_upstream, kube):
    server = await bmo(rules=False, compat="permission_timeout_s = 1\n")
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list", {"kind": "pods", "namespace": "shop"})),
                         reply("I was not allowed to look."))
    raw = await ask(server, "pods?")
    content = raw.parse().choices[0].message.content  # issue 12: the wait is also said in the answer
    assert content.endswith("I was not allowed to look.") and "waiting up to" in content
    [result] = tool_results(fake_upstream.chat_requests[-1])
    assert result.startswith("Permission denied: k8s_list") and "in time" in result
    assert kube.requests == []


async def test_a_streamed_request_whose_retries_run_out_ends_with_a_k8s_retry_failed_error_event(bmo, fake_upstream,
                                                                                                 kube):
    server = await bmo()
    kube.fail("status", status=504, times=-1)
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_events", {"namespace": "shop"})))
    sdk = AsyncOpenAI(base_url=server.api, api_key=server.token, max_retries=0)
    try:
        raw = await sdk.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "what happened in shop?"}], stream=True)
        with pytest.raises(openai.APIError) as err:
            async for _ in raw.parse():
                pass
    finally:
        await sdk.close()
    assert "HTTP 504" in str(err.value.message)
    row = await ledger_row(server, raw.headers["x-request-id"])
    assert row["outcome"] == "k8s_retry_failed" and "HTTP 504" in row["error"]
