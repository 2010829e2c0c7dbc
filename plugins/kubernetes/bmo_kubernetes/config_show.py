"""``bmo config show-kubernetes``: the ``[kubernetes]`` section as it is in effect."""

from __future__ import annotations

import json

import msgspec

from bmo_kubernetes.config import SECTION

HELP = ("Show [kubernetes]: the cluster the read-only inspection tools reach, the namespace allow-list "
        "and the retry bounds.")
EXAMPLE = """[kubernetes]
enabled = true
kubeconfig = "/home/ops/.kube/config"
context = "prod-readonly"
default_namespace = ""
namespaces = ["shop", "payments"]
request_timeout_s = 10.0
max_attempts = 4
backoff_initial_s = 0.25
backoff_max_s = 4.0
retry_budget_s = 20.0
max_rows = 50
max_output_bytes = 12000
log_tail_lines = 100
log_max_bytes = 16000
# tools: k8s_list_namespaces, k8s_list, k8s_get, k8s_events, k8s_pod_logs, k8s_describe (class cluster_read)"""


def render(config, as_json: bool) -> str:
    options = config.section(SECTION)
    value = msgspec.to_builtins(options)
    if as_json:
        return json.dumps({SECTION: value}, indent=2)
    from bmo.config.toml_text import to_toml

    text = to_toml(value, SECTION).rstrip()
    if not options.enabled:
        return text + "\n# off: set enabled = true to offer the Kubernetes tools"
    return text + ("\n# tools: k8s_list_namespaces, k8s_list, k8s_get, k8s_events, k8s_pod_logs, k8s_describe "
                   "(class cluster_read)")
