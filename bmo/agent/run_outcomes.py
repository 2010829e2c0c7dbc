"""How a run can end (``RunFinished.outcome``)."""

FINAL_ANSWER = "final_answer"  # the model produced its answer
CLIENT_TOOL_CALLS = "client_tool_calls"  # the model called a client-supplied tool; the turn ends with tool_calls
CANCELLED = "cancelled"  # client gone, operator cancel or shutdown
RECOVERY_FAILED = "recovery_failed"  # no text after tools, and none after the recovery prompt either
LOOP_DETECTED = "loop_detected"  # the same tool call repeated past [agent.loop_detection]
MAX_STEPS = "max_steps"  # [agent] max_steps reached without a final answer
ERROR = "error"  # upstream or internal failure; RunFinished.error and error_status say which
INVALID_OUTPUT = "invalid_output"  # the answer missed the run's answer format, even after one repair step
# A tool may end a run with an outcome of its own (bmo.agent.tools.base.ToolEndedRun), e.g. "k8s_retry_failed".
