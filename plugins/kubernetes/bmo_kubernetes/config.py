"""The ``[kubernetes]`` section: where the cluster is, what the tools may read, how hard they retry."""

from __future__ import annotations

import msgspec

SECTION = "kubernetes"


class KubernetesOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Off until ``enabled = true``: the tools are offered to the model only then."""

    enabled: bool = False
    kubeconfig: str = ""  # empty: $KUBECONFIG, else the in-cluster service account, else ~/.kube/config
    context: str = ""  # empty: the kubeconfig's current-context
    default_namespace: str = ""  # empty: the context's namespace, else "default"
    namespaces: list[str] = []  # allow-list of namespaces the tools may read; empty: all
    request_timeout_s: float = 10.0  # one API request, connect to last byte
    max_attempts: int = 4  # per inspection, the first try included
    backoff_initial_s: float = 0.25  # the first retry's delay; doubles each retry, with jitter
    backoff_max_s: float = 4.0
    retry_budget_s: float = 20.0  # total time an inspection may spend, retries and waits included
    max_rows: int = 50  # rows of a table the model sees
    max_output_bytes: int = 12000  # one tool result
    log_tail_lines: int = 100  # pod logs: default tail
    log_max_bytes: int = 16000  # pod logs: the most read from the API

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("`max_attempts` must be at least 1")
        for key in ("request_timeout_s", "backoff_initial_s", "backoff_max_s", "retry_budget_s"):
            if getattr(self, key) <= 0:
                raise ValueError(f"`{key}` must be greater than 0")
        for key in ("max_rows", "max_output_bytes", "log_tail_lines", "log_max_bytes"):
            if getattr(self, key) < 1:
                raise ValueError(f"`{key}` must be at least 1")
