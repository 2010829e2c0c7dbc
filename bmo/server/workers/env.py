"""What the supervisor tells each worker it starts, through the environment."""

from __future__ import annotations

# The listening socket's descriptor, inherited through pass_fds; its presence makes a process a worker.
LISTEN_FD_ENV = "BMO_LISTEN_FD"
# The pipe's write end on which the worker says it is serving.
READY_FD_ENV = "BMO_READY_FD"
# The supervisor's pid: a worker whose parent is no longer it exits.
SUPERVISOR_PID_ENV = "BMO_SUPERVISOR_PID"
# The supervisor's records go beside the workers' own, under this name.
SUPERVISOR_NAME = "supervisor"
# Worker records are written under <log dir>/workers/<worker id>/.
WORKER_LOGS_DIR = "workers"
