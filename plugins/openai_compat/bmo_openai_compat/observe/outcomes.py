"""The ``openai_compat.action`` outcome enum and the level each one is logged at."""

from __future__ import annotations

FINAL_ANSWER = "final_answer"
CLARIFICATION = "clarification"
QUEUED = "queued"
RESUMED = "resumed"
CANCELLED = "cancelled"
MODEL_OVERRIDE_APPLIED = "model_override_applied"
MODEL_OVERRIDE_REJECTED = "model_override_rejected"
AUTH_FAILED = "auth_failed"
RECOVERY_FAILED = "recovery_failed"
K8S_RETRY_FAILED = "k8s_retry_failed"  # a run ended by the Kubernetes plugin: its API retries ran out
PERSIST_FAILED = "persist_failed"
ERROR_500 = "error_500"

# Boundary outcomes operators graph are info; only real trouble is warn.
SEVERITY = {
    FINAL_ANSWER: "info",
    CLARIFICATION: "info",
    QUEUED: "info",
    RESUMED: "info",
    CANCELLED: "info",
    MODEL_OVERRIDE_APPLIED: "info",
    MODEL_OVERRIDE_REJECTED: "info",
    AUTH_FAILED: "info",
    RECOVERY_FAILED: "warn",
    K8S_RETRY_FAILED: "warn",
    PERSIST_FAILED: "warn",
    ERROR_500: "warn",
}
OUTCOMES = tuple(SEVERITY)

# Route labels: the ``route`` field of records and ledger rows.
CHAT_COMPLETIONS = "chat_completions"
MODELS_LIST = "models_list"
MODELS_GET = "models_get"
COMPLETIONS = "completions"
RUNS_LIST = "runs_list"
RUN_EVENTS_LIST = "run_events_list"
RESPONSES_CREATE = "responses_create"
RESPONSES_GET = "responses_get"
RESPONSES_DELETE = "responses_delete"
RESPONSES_INPUT_ITEMS = "responses_input_items"
RESPONSES_CANCEL = "responses_cancel"
ROUTES = (CHAT_COMPLETIONS, MODELS_LIST, RUNS_LIST, RUN_EVENTS_LIST, MODELS_GET, COMPLETIONS, RESPONSES_CREATE,
          RESPONSES_GET, RESPONSES_DELETE, RESPONSES_INPUT_ITEMS, RESPONSES_CANCEL)
