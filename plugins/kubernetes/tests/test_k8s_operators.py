"""Operators' surfaces: `bmo config show-kubernetes` and its --help example, the posture section, the docs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml
from bmo_kubernetes.config_show import EXAMPLE
from bmo_kubernetes.resources import KINDS
from bmo_kubernetes.tools import kubernetes_tools
from click.testing import CliRunner

from bmo.cli.main import cli

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "kubernetes.md"


def show(tmp_path, text: str, *args: str):
    path = tmp_path / "bmo.toml"
    path.write_text(text)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "BMO_LOAD_PLUGINS": None, "KUBECONFIG": None}
    return CliRunner(env=env).invoke(cli, ["config", "show-kubernetes", "--config", str(path), *args])


def test_show_kubernetes_prints_the_section_in_effect(tmp_path):
    result = show(tmp_path, '[kubernetes]\nenabled = true\ncontext = "prod"\nnamespaces = ["shop"]\nmax_attempts = 6\n')
    assert result.exit_code == 0, result.output
    body = tomllib.loads(result.output)["kubernetes"]
    assert body["context"] == "prod" and body["namespaces"] == ["shop"] and body["max_attempts"] == 6
    assert body["retry_budget_s"] == 20.0
    assert "k8s_pod_logs" in result.output and "cluster_read" in result.output
    as_json = json.loads(show(tmp_path, "[kubernetes]\nenabled = true\n", "--json").output)
    assert as_json["kubernetes"]["enabled"] is True


def test_show_kubernetes_says_how_to_turn_it_on_when_off(tmp_path):
    result = show(tmp_path, "")
    assert result.exit_code == 0 and "enabled = false" in result.output and "set enabled = true" in result.output


def test_the_help_example_is_what_show_prints_for_that_config(tmp_path):
    help_text = show(tmp_path, "", "--help").output
    assert "Example output" in help_text and "[kubernetes]" in help_text
    example_config = "\n".join(line for line in EXAMPLE.splitlines() if not line.startswith("#"))
    assert show(tmp_path, example_config).output.strip() == EXAMPLE.strip()


def test_a_wrong_retry_bound_is_a_config_error_naming_the_key(tmp_path):
    result = show(tmp_path, "[kubernetes]\nmax_attempts = 0\n")
    assert result.exit_code == 2 and "kubernetes" in result.output and "max_attempts" in result.output


async def test_the_posture_section_names_the_cluster_and_counts_what_happened(bmo, fake_upstream, kube):
    from k8s_support import ROUTE_CLEAR, ask, calls

    from bmo.testing.fake_upstream import reply

    server = await bmo(namespaces=["shop"])
    before = (await server.host.posture())["kubernetes"]
    assert before["reachable"] is None and before["inspections"] == 0
    fake_upstream.script(ROUTE_CLEAR, calls(("k8s_list", {"kind": "services", "namespace": "shop"}),
                                            ("k8s_list", {"kind": "pods", "namespace": "kube-system"})), reply("ok"))
    await ask(server, "services?")
    section = (await server.host.posture())["kubernetes"]
    assert section["context"] == "fake" and section["server"] == kube.url and section["reachable"] is True
    assert section["credentials"].startswith("kubeconfig ") and section["namespace_allow_list"] == ["shop"]
    assert section["inspections"] == 1 and section["attempts"] == 1 and section["retries"] == 0
    results = [m["content"] for m in fake_upstream.chat_requests[-1].body["messages"] if m["role"] == "tool"]
    assert "10.96.0.10" in results[0] and "not in [kubernetes] namespaces" in results[1]
    assert not [r for r in kube.requests if "kube-system" in r.path]  # refused before any request


def test_the_docs_are_linked_and_name_every_tool_and_setting():
    text = DOC.read_text()
    assert "docs/kubernetes.md" in (ROOT / "README.md").read_text()
    for tool in kubernetes_tools():
        assert f"`{tool.name}`" in text, tool.name
    for key in ("kubeconfig", "context", "namespaces", "max_attempts", "retry_budget_s", "request_timeout_s",
                "backoff_initial_s", "backoff_max_s", "k8s_retry_failed", "cluster_read", "show-kubernetes"):
        assert key in text, key


def test_the_documented_cluster_role_grants_exactly_what_the_tools_read_and_no_secret_or_write():
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S).group(1)
    [role] = [d for d in yaml.safe_load_all(block) if d["kind"] == "ClusterRole"]
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    needed = {("" if k.prefix == "/api/v1" else k.prefix.split("/")[2], k.plural) for k in KINDS.values()}
    assert granted == needed | {("", "pods/log")}
    assert {v for rule in role["rules"] for v in rule["verbs"]} == {"get", "list"}
