"""``bmo init``: find a model (a server on this machine, an API key, or a local GGUF) and write a commented bmo.toml."""

from __future__ import annotations

import datetime
import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import click

from bmo.cli import gguf_search

# The usual loopback ports of OpenAI-compatible model servers, and the provider name each gets.
KNOWN_SERVERS = ((11434, "ollama", "Ollama"), (8080, "llamacpp_server", "llama.cpp server"),
                 (1234, "lmstudio", "LM Studio"), (8000, "vllm", "vLLM"))
# Hosted APIs found through their usual environment variable; only the variable's name is written.
KNOWN_KEYS = (("OPENAI_API_KEY", "openai", "https://api.openai.com/v1", "gpt-4o-mini"),
              ("OPENROUTER_API_KEY", "openrouter", "https://openrouter.ai/api/v1", "openai/gpt-4o-mini"))
PROBE_PORTS_ENV = "BMO_INIT_PROBE_PORTS"


@dataclass
class Found:
    """One provider ``bmo init`` will write."""

    name: str
    what: str  # said to the person, and written as the table's comment
    lines: list[str]  # the table's keys, TOML
    models: list[str] = field(default_factory=list)


def probe(host: str, port: int, timeout: float) -> list[str] | None:
    """The model ids ``GET http://host:port/v1/models`` lists; None when nothing OpenAI-compatible answers."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/v1/models", timeout=timeout) as resp:
            body = json.loads(resp.read(1 << 20) or b"{}")
    except (OSError, ValueError, urllib.error.URLError):
        return None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


def probe_servers(host: str, ports: list[int], timeout: float) -> list[Found]:
    names = {port: (name, label) for port, name, label in KNOWN_SERVERS}
    with ThreadPoolExecutor(max(1, len(ports))) as pool:  # all at once: the slowest miss bounds the wait
        answers = list(pool.map(lambda p: probe(host, p, timeout), ports))
    found = []
    for port, models in zip(ports, answers):
        if models is None:
            continue
        name, label = names.get(port, (f"local_{port}", "an OpenAI-compatible server"))
        base_url = f"http://{host}:{port}/v1"
        shown = ", ".join(models[:5]) + (" ..." if len(models) > 5 else "") if models else "none listed yet"
        found.append(Found(name, f"{label} at {base_url} (models: {shown})", [
            'kind = "openai"', f"base_url = {_q(base_url)}",
            "# models are discovered at start with GET /models; list them here to skip that",
        ], models))
    return found


def keys_in_environment() -> list[Found]:
    found = []
    for var, name, base_url, model in KNOWN_KEYS:
        if os.environ.get(var):
            found.append(Found(name, f"{var} is set: {base_url}", [
                'kind = "openai"', f"base_url = {_q(base_url)}",
                f"api_key_env = {_q(var)}  # the key stays in the environment; BMO never writes it",
                f"models = [{_q(model)}]  # any model this API serves",
            ], [model]))
    return found


def local_model(path: str, found: gguf_search.LocalModel | None = None) -> Found:
    """The embedded local model on ``path`` (``found``: where ``bmo init`` found it, said in a comment)."""
    # The snapshot's own path (not repo + file): it needs neither huggingface_hub nor the cache's refs.
    where = [f"model_path = {_q(str(Path(path).expanduser().absolute()))}"]
    if found is not None and found.repo:
        where.append(f"# in the Hugging Face cache: repo = {_q(found.repo)}, file = {_q(found.file)}")
    return Found("local", f"the embedded local model {path}", [
        'kind = "llamacpp"  # needs the optional extra: pip install \'bmo[local]\'', *where,
        "context_size = 4096",
        "# threads = 2  # default: the CPUs this process may use",
    ], [found.name if found is not None else Path(path).stem])


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**28 else f"{size / 2**20:.0f} MiB"


def ggufs_hint(models: list[gguf_search.LocalModel]) -> str:
    """The GGUF files found on this machine, as comments: any of them can be the local model."""
    lines = [f"#   {m.path}  ({_gib(m.size)})" for m in models]
    return "# GGUF files found on this machine (bmo init --force --local-model FILE uses one):\n" + "\n".join(lines) + "\n"


LOCAL_MODEL_HINT = """\
# The embedded local model: a GGUF file run by llama.cpp inside BMO's lifecycle (pip install 'bmo[local]').
# [providers.local]
# kind = "llamacpp"
# model_path = "/path/to/model.gguf"     # or: repo = "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF" and file = "...gguf"
# context_size = 4096
"""

NOTHING_FOUND = """\
# Nothing was found when this file was written: no model server answered GET /v1/models on
# {host} ports {ports}, and neither OPENAI_API_KEY nor OPENROUTER_API_KEY was set.
# To finish: uncomment ONE provider table below and fill it in (or start a model server and run
# `bmo init --force` again). Until then `bmo serve` starts, says what is missing, and the API
# answers with the same advice.

# Any OpenAI-compatible server (llama.cpp, Ollama, vLLM, LM Studio ...):
# [providers.local]
# kind = "openai"
# base_url = "http://127.0.0.1:8080/v1"
# models = ["my-model"]                  # optional: else discovered with GET /models

# A hosted API; the key stays in the environment variable named here:
# [providers.openai]
# kind = "openai"
# base_url = "https://api.openai.com/v1"
# api_key_env = "OPENAI_API_KEY"
# models = ["gpt-4o-mini"]
"""


def render(found: list[Found], *, host: str, ports: list[int], ggufs: list[gguf_search.LocalModel] = ()) -> str:
    """The commented bmo.toml for what was found (or the explanation of what to fill in)."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# bmo.toml, written by `bmo init` on {when}. BMO reads ./bmo.toml from the directory it starts in;",
        "# docs/configuration.md describes every key and `bmo config show` prints the merged result.",
        "",
        "[options.openai_compat]",
        "enabled = true  # serve the OpenAI-compatible routes: /v1/chat/completions, /v1/models ...",
        "",
    ]
    if not found:
        out.append(NOTHING_FOUND.format(host=host, ports=", ".join(map(str, ports)) or "(none probed)"))
        out.append(LOCAL_MODEL_HINT)
        if ggufs:
            out.append(ggufs_hint(ggufs))
        return "\n".join(out)
    for item in found:
        out += [f"# Found: {item.what}", f"[providers.{item.name}]", *item.lines, ""]
    if not any(item.name == "local" for item in found):
        out.append(LOCAL_MODEL_HINT)
        if ggufs:
            out.append(ggufs_hint(ggufs))
    default = next((f"{item.name}/{item.models[0]}" for item in found if item.models), "")
    out += ["[agent]"]
    if default:
        out.append(f"default_model = {_q(default)}  # requests may name any served model: GET /v1/models")
    out += ['workspace = "."  # the file and shell tools are confined to this directory', ""]
    return "\n".join(out)


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def probe_ports(option: tuple[int, ...]) -> list[int]:
    if option:
        return list(option)
    env = os.environ.get(PROBE_PORTS_ENV, "").strip()
    if env:
        try:
            return [int(p) for p in env.split(",") if p.strip()]
        except ValueError:
            raise click.BadParameter(f"{PROBE_PORTS_ENV}={env!r}: expected comma-separated ports, e.g. 8080,11434")
    return [port for port, _, _ in KNOWN_SERVERS]


@click.command("init")
@click.option("--path", "path", type=click.Path(dir_okay=False, path_type=Path), default=Path("bmo.toml"),
              show_default=True, help="Where to write the config.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing: write what was found (for scripts).")
@click.option("--probe-port", "ports", type=int, multiple=True,
              help=f"Loopback port to probe for a model server (repeatable; default 11434, 8080, 1234, 8000; "
                   f"env {PROBE_PORTS_ENV}=8080,11434).")
@click.option("--probe-host", default="127.0.0.1", show_default=True, help="Host the probes ask.")
@click.option("--probe-timeout", default=0.5, show_default=True, type=float, help="Seconds each probe waits.")
@click.option("--local-model", "gguf", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A GGUF file to serve with the embedded local model (kind = \"llamacpp\").")
def init(path: Path, force: bool, yes: bool, ports: tuple[int, ...], probe_host: str, probe_timeout: float,
         gguf: str | None) -> None:
    """Write a commented bmo.toml that enables the OpenAI-compatible API with a model found on this machine.

    It probes loopback for Ollama (11434), a llama.cpp server (8080), LM Studio (1234) and vLLM
    (8000) with GET /v1/models, looks for OPENAI_API_KEY and OPENROUTER_API_KEY (it writes the
    variable's name, never the key), and offers the embedded local model (--local-model, or a GGUF
    file it finds in the Hugging Face cache or LM Studio's models folder when nothing else answers).
    """
    if path.exists() and not force:
        click.echo(f"bmo init: {path} exists; pass --force to overwrite it (or --path to write elsewhere).", err=True)
        sys.exit(1)
    probed = probe_ports(ports)
    found = probe_servers(probe_host, probed, probe_timeout) + keys_in_environment()
    ggufs = gguf_search.find() if gguf is None else []
    chosen = None  # a GGUF found on this machine, used when nothing else was
    if gguf is None and not found and ggufs and (yes or not sys.stdin.isatty()):
        chosen = ggufs[0]
        gguf = str(chosen.path)
    elif gguf is None and not found and not yes and sys.stdin.isatty():
        answer = click.prompt("No model server found. Path to a GGUF file for the embedded local model (empty: skip)",
                              default=str(ggufs[0].path) if ggufs else "", show_default=bool(ggufs)).strip()
        gguf = answer or None
        if gguf and not Path(gguf).expanduser().is_file():
            click.echo(f"bmo init: {gguf} is not a file; leaving the local model commented out.", err=True)
            gguf = None
        chosen = next((m for m in ggufs if gguf and str(m.path) == gguf), None)
    if gguf:
        found.insert(0, local_model(gguf, chosen))
    click.echo(f"Probed {probe_host} ports {', '.join(map(str, probed)) or '(none)'} for model servers.")
    for item in found:
        click.echo(f"  found: {item.what}")
    if chosen is not None and len(ggufs) > 1:
        click.echo(f"  (the smallest of {len(ggufs)} GGUF files found; --local-model FILE picks another)")
    elif ggufs and chosen is None and not any(item.name == "local" for item in found):
        click.echo(f"  also found {len(ggufs)} GGUF file(s), listed in the file's comments for --local-model")
    if not found:
        click.echo("  found nothing: no model server answered and no API key variable is set.")
    if not yes and not click.confirm(f"Write {path}?", default=True):
        click.echo("bmo init: nothing written.")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(found, host=probe_host, ports=probed, ggufs=ggufs))
    click.echo(f"Wrote {path}" + (f" with provider(s) {', '.join(i.name for i in found)}." if found else
                                  ": it explains what to fill in (one [providers.NAME] table)."))
    config_arg = "" if path.resolve() == (Path.cwd() / "bmo.toml").resolve() else f" --config {path}"
    click.echo(f"Next: bmo serve --allow-no-auth{config_arg}   (then: curl -s localhost:9000/v1/models)")
