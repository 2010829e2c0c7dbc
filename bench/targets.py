"""The servers under test, and how to start each one against the shared fake upstream.

- ``direct``: the fake upstream itself (the limit).
- ``bmo``: ``bmo serve`` with auth, ledger and records on, OTLP off.
- ``bmo-otlp``: the same with OTLP export to the bench's sink.
- ``bmo-noledger``: the same as ``bmo`` with ``BMO_TEST_NO_LEDGER=1`` (ledger on/off pair).
- ``litellm``: LiteLLM proxy from ``bench/.venv-litellm``, no database, no callbacks.
- ``bmo-base``: ``bmo`` from another build (``--baseline PATH``), for a before/after in one run.
- ``bmo-w2``: ``bmo`` as ``bmo serve --workers 2`` over one SQLite data dir (``python -m bench.workers``).
- ``bmo-pg``: ``bmo`` (one worker) on a throw-away PostgreSQL the bench starts (``start_postgres``);
  ``bmo-pg-noledger`` its ledger on/off pair (``bench/run --store``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import BenchError, Proc, free_port

BMO_TOKEN = "bench-token"
LITELLM_KEY = "sk-bench"
UPSTREAM_KEY = "bench-upstream-key"
REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


@dataclass
class Target:
    """One server the load goes to."""

    name: str
    kind: str  # direct | bmo | litellm
    base_url: str  # .../v1
    headers: dict[str, str]
    model_prefix: str
    proc: Proc | None
    data_dir: Path | None = None
    notes: dict = field(default_factory=dict)

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    def model(self, profile: str) -> str:
        return self.model_prefix + profile


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment without OTEL_*/BMO_* settings that would change what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BMO_", "LITELLM_"))}
    env.update(extra or {})
    return env


def find_bmo() -> Path:
    """The ``bmo`` executable: $BMO_BENCH_BMO, the repo's .venv, /tmp/venv, then PATH."""
    candidates = [os.environ.get("BMO_BENCH_BMO", ""), str(REPO / ".venv/bin/bmo"), "/tmp/venv/bin/bmo",
                  shutil.which("bmo") or ""]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    raise BenchError("cannot find bmo: set BMO_BENCH_BMO=/path/to/bmo, or create the repo's .venv (scripts/setup)")


def litellm_binary() -> Path:
    path = BENCH / ".venv-litellm/bin/litellm"
    if not path.exists():
        raise BenchError("LiteLLM is not installed: run bench/run --setup (or pass --no-litellm)")
    return path


def start_upstream(python: str, work: Path, profiles: list[str], env: dict[str, str]) -> tuple[Proc, int]:
    argv = [python, "-m", "bench.upstream", "--port", "0"]
    for p in profiles:
        argv += ["--profile", p]
    proc = Proc("upstream", argv, log=work / "upstream.log", env=env, cwd=REPO, stdout_pipe=True)
    return proc, proc.read_ready_port()


def start_sink(python: str, work: Path, env: dict[str, str]) -> tuple[Proc, int]:
    proc = Proc("otlp-sink", [python, "-m", "bench.otlp_sink", "--port", "0"], log=work / "otlp-sink.log",
                env=env, cwd=REPO, stdout_pipe=True)
    return proc, proc.read_ready_port()


def direct_target(upstream: Proc, port: int) -> Target:
    return Target("direct", "direct", f"http://127.0.0.1:{port}/v1",
                  {"Authorization": f"Bearer {UPSTREAM_KEY}"}, "", upstream)


def bmo_config(upstream_port: int, models: list[str], otlp_port: int | None, workspace: Path) -> str:
    lines = [
        "[options.openai_compat]",
        "enabled = true",
        "",
        "[providers.up]",
        'kind = "openai"',
        f'base_url = "http://127.0.0.1:{upstream_port}/v1"',
        f"models = {json.dumps(models)}",
        'api_key_env = "BENCH_UPSTREAM_KEY"',
        "",
        "[agent]",
        f'default_model = "up/{models[0]}"',
        f'workspace = "{workspace}"',
        "",
        "[tracing]",
        f'otlp_endpoint = "http://127.0.0.1:{otlp_port}"' if otlp_port else 'otlp_endpoint = ""',
    ]
    return "\n".join(lines) + "\n"


def start_postgres(work: Path, env: dict[str, str], databases: list[str]) -> tuple[Proc, int]:
    """A throw-away PostgreSQL (``bmo.testing.postgres``, run by bmo's own Python) with ``databases``; its port."""
    python = find_bmo().parent / "python"
    proc = Proc("postgres", [str(python), "-m", "bmo.testing.postgres", *databases], log=work / "postgres.log",
                env=env, cwd=REPO, stdout_pipe=True)
    return proc, proc.read_ready_port(timeout=120)


def start_bmo(name: str, work: Path, upstream_port: int, models: list[str], *,
              otlp_port: int | None = None, no_ledger: bool = False, binary: Path | None = None,
              workers: int = 1, store_url: str = "") -> Target:
    """``bmo serve`` in its own data dir with auth on; ledger and records on unless ``no_ledger``.

    ``workers`` > 1 runs it as ``bmo serve --workers N`` (target ``bmo-w2``); ``store_url``: PostgreSQL.
    """
    home = work / name
    if home.exists():
        shutil.rmtree(home)
    data, workspace = home / "data", home / "workspace"
    data.mkdir(parents=True)
    workspace.mkdir()
    config = home / "bench-bmo.toml"
    config.write_text(bmo_config(upstream_port, models, otlp_port, workspace))
    port = free_port()
    env = clean_env({"XDG_CONFIG_HOME": str(home / "xdg"), "XDG_STATE_HOME": str(home / "state"),
                     "BENCH_UPSTREAM_KEY": UPSTREAM_KEY})
    if no_ledger:
        env["BMO_TEST_NO_LEDGER"] = "1"
    if store_url:
        env["BMO_STORE_URL"] = store_url
    argv = [str(binary or find_bmo()), "serve", "--addr", f"127.0.0.1:{port}", "--auth-token", BMO_TOKEN,
            "--config", str(config), "--data-dir", str(data)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    proc = Proc(name, argv, log=home / "serve.log", env=env, cwd=home)
    proc.wait_log(r"BMO serving on (http://\S+)/v1", timeout=60)
    target = Target(name, "bmo", f"http://127.0.0.1:{port}/v1", {"Authorization": f"Bearer {BMO_TOKEN}"}, "up/", proc, data)
    target.notes = {"otlp": bool(otlp_port), "ledger": not no_ledger, "binary": str(binary or find_bmo()),
                    "workers": workers, "store": "postgresql" if store_url else "sqlite"}
    return target


def litellm_config(upstream_port: int, models: list[str]) -> str:
    out = ["model_list:"]
    for m in models:
        out += [
            f"  - model_name: {m}",
            "    litellm_params:",
            f"      model: openai/{m}",
            f"      api_base: http://127.0.0.1:{upstream_port}/v1",
            f"      api_key: {UPSTREAM_KEY}",
        ]
    out += [
        "general_settings:",
        f"  master_key: {LITELLM_KEY}",
        "litellm_settings:",
        "  telemetry: false",
        "  set_verbose: false",
    ]
    return "\n".join(out) + "\n"


def start_litellm(work: Path, upstream_port: int, models: list[str]) -> Target:
    """LiteLLM proxy, one uvicorn worker, master key auth, no DB, no callbacks."""
    home = work / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(litellm_config(upstream_port, models))
    port = free_port()
    env = clean_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                     "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"})
    env.pop("DATABASE_URL", None)
    argv = [str(litellm_binary()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]
    proc = Proc("litellm", argv, log=home / "proxy.log", env=env, cwd=home)
    target = Target("litellm", "litellm", f"http://127.0.0.1:{port}/v1", {"Authorization": f"Bearer {LITELLM_KEY}"}, "", proc)
    return target


def wait_litellm(target: Target) -> None:
    target.proc.wait_http(target.base_url.rsplit("/v1", 1)[0] + "/health/liveliness", timeout=120)
