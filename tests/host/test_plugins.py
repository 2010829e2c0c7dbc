"""The plugin framework seen from outside: ``bmo plugins``, the hello example, BMO_LOAD_PLUGINS, broken plugins."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bmo.plugins import DEFAULT_PLUGINS
from bmo.testing.harness import clean_env, spawn_serve

HOST_DEFAULTS = set(DEFAULT_PLUGINS)
HELLO_HOOKS = ["bmo_config_sections", "bmo_config_show", "bmo_migrations", "bmo_routes", "bmo_sidebar_indicators",
               "bmo_slash_commands"]


def http(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def throwaway_distribution(root: Path, name: str, source: str) -> Path:
    """A distribution ``bmo-<name>-plugin`` 0.0.1 with entry point ``name`` in group bmo, findable on PYTHONPATH=root."""
    module = f"bmo_{name}_plugin"
    info = root / f"{module}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bmo-{name}-plugin\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[bmo]\n{name} = {module}\n")
    (root / f"{module}.py").write_text(source)
    return root


@pytest.fixture
def broken_plugin_path(tmp_path) -> Path:
    """A throwaway distribution whose plugin module fails to import, findable by importlib.metadata."""
    return throwaway_distribution(tmp_path / "broken-site", "broken", "import a_module_that_does_not_exist_anywhere\n")


TYPO_PLUGIN = """
from bmo.hookspecs import hookimpl

@hookimpl
def bmo_rouets(register):
    register("GET", "/v1/typo", None)

@hookimpl
def bmo_sidebar_indicators(register):
    register("Typo", lambda host: "loaded")
"""


def test_bmo_plugins_lists_the_hello_example_with_version_and_hooks(run_bmo):
    result = run_bmo("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["hello"] == {"name": "hello", "distribution": "bmo-hello-plugin", "version": "0.1.0", "hooks": HELLO_HOOKS}
    assert HOST_DEFAULTS <= set(rows)
    text = run_bmo("plugins").stdout
    assert "hello  bmo-hello-plugin 0.1.0" in text
    assert "hooks: " + ", ".join(HELLO_HOOKS) in text


def test_empty_bmo_load_plugins_loads_only_the_host(run_bmo):
    result = run_bmo("plugins", "--json", env={"BMO_LOAD_PLUGINS": ""})
    assert {row["name"] for row in json.loads(result.stdout)} == HOST_DEFAULTS


def test_bmo_load_plugins_can_name_one_plugin(run_bmo):
    result = run_bmo("plugins", "--json", env={"BMO_LOAD_PLUGINS": "bmo-hello-plugin"})  # by distribution name
    assert {row["name"] for row in json.loads(result.stdout)} == HOST_DEFAULTS | {"hello"}


def test_config_show_hello_runs_with_its_own_section(run_bmo, tmp_path):
    (tmp_path / "bmo.toml").write_text('[options.hello]\ngreeting = "Ahoy"\n')
    result = run_bmo("config", "show-hello", env={"BMO_OPTIONS__HELLO__NAME": "Ada"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[options.hello]", 'greeting = "Ahoy"', 'name = "Ada"', "# says: Ahoy, Ada!"]
    as_json = json.loads(run_bmo("config", "show-hello", "--json").stdout)
    assert (as_json["greeting"], as_json["example"]) == ("Ahoy", "Ahoy, world!")
    help_text = run_bmo("config", "show-hello", "--help").stdout
    assert "Example output:" in help_text and "# says: Hello, world!" in help_text
    # The section is typed: a typo is an error naming the key.
    (tmp_path / "bmo.toml").write_text('[options.hello]\ngreting = "Ahoy"\n')
    bad = run_bmo("config", "show-hello")
    assert bad.returncode != 0 and "options.hello.greting" in bad.stderr


def test_the_hello_route_slash_and_sidebar_answer_through_bmo_serve(tmp_path):
    server = spawn_serve(["--auth-token", "tok", "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data",
                         env=clean_env(tmp_path, BMO_LOAD_PLUGINS="hello"))
    try:
        assert server.url, server.stderr()
        assert http("GET", server.url + "/v1/hello?name=Ada", "tok") == (
            200, {"object": "hello", "message": "Hello, Ada!", "requester": "", "visit": 1})
        status, body = http("GET", server.url + "/v1/hello")
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        status, body = http("POST", server.url + "/v1/bmo/slash", "tok", {"command": "/hello Bob"})
        assert (status, body["text"]) == (200, "Hello, Bob!")
        status, body = http("GET", server.url + "/v1/bmo/sidebar", "tok")
        assert {"label": "Hello", "value": "Hello"} in body["data"]
    finally:
        assert server.terminate() == 0


def test_a_plugin_that_fails_to_import_is_reported_by_name(run_bmo, broken_plugin_path):
    result = run_bmo("plugins", "--json", env={"PYTHONPATH": str(broken_plugin_path)})
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert "a_module_that_does_not_exist_anywhere" in rows["broken"]["error"]
    assert (rows["broken"]["distribution"], rows["broken"]["version"]) == ("bmo-broken-plugin", "0.0.1")
    assert "hello" in rows  # the others still load
    assert "broken  FAILED: ModuleNotFoundError" in run_bmo("plugins", env={"PYTHONPATH": str(broken_plugin_path)}).stdout


def test_the_server_starts_despite_a_broken_plugin(tmp_path, broken_plugin_path):
    server = spawn_serve(["--auth-token", "tok", "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data",
                         env=clean_env(tmp_path, PYTHONPATH=str(broken_plugin_path)))
    try:
        assert server.url, server.stderr()
        assert "plugin 'broken' failed to load: ModuleNotFoundError" in server.stderr()
        status, body = http("GET", server.url + "/v1/bmo/plugins", "tok")
        assert status == 200
        assert any(row["name"] == "broken" and "error" in row for row in body["data"])
        assert http("GET", server.url + "/v1/hello", "tok")[0] == 200
    finally:
        assert server.terminate() == 0
    records = [json.loads(line) for line in (tmp_path / "data" / "logs" / "bmo.jsonl").read_text().splitlines()]
    assert any(r["msg"] == "bmo.plugin_failed" and r["plugin"] == "broken" for r in records)


def test_a_plugin_whose_registration_hook_raises_is_reported_not_fatal():
    from bmo.config import load_config
    from bmo.hookspecs import hookimpl
    from bmo.host import ServeSettings
    from bmo.plugins import create_plugin_manager
    from bmo.server.app import build_host

    class Raises:
        @hookimpl
        def bmo_routes(self, register):
            raise RuntimeError("boom in routes")

    pm = create_plugin_manager("")
    pm.register(Raises(), name="test-raises")
    try:
        config = load_config(pm, env={}, cwd="/nonexistent")
        host = build_host(config, pm, ServeSettings(addr="127.0.0.1:0", auth_token="t"), env={})
        assert [(f.name, f.error) for f in pm.failures] == [("test-raises", "bmo_routes: RuntimeError: boom in routes")]
        assert any(r.path == "/v1/bmo/plugins" for r in host.registry.routes)
    finally:
        pm.unregister(name="test-raises")


def test_a_bmo_load_plugins_name_that_matches_nothing_is_reported(run_bmo):
    result = run_bmo("plugins", "--json", env={"BMO_LOAD_PLUGINS": "hello,helo"})
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert "hello" in rows and "error" not in rows["hello"]
    assert rows["helo"]["error"].startswith("not installed")


def test_a_misspelt_hook_is_reported_by_bmo_plugins_naming_plugin_and_hook(run_bmo, tmp_path):
    path = throwaway_distribution(tmp_path / "typo-site", "typo", TYPO_PLUGIN)
    result = run_bmo("plugins", "--json", env={"PYTHONPATH": str(path), "BMO_LOAD_PLUGINS": "typo"})
    assert result.returncode == 0, result.stderr
    rows = [row for row in json.loads(result.stdout) if row["name"] == "typo"]
    assert rows[0]["hooks"] == ["bmo_rouets", "bmo_sidebar_indicators"]  # it loaded; its other hooks work
    assert rows[1] == {
        "name": "typo", "hook": "bmo_rouets", "distribution": "bmo-typo-plugin", "version": "0.0.1", "hooks": [],
        "error": "bmo_rouets: no loaded plugin declares this hook, so it is never called; did you mean bmo_routes?",
    }
    text = run_bmo("plugins", env={"PYTHONPATH": str(path), "BMO_LOAD_PLUGINS": "typo"}).stdout
    assert "typo  FAILED: bmo_rouets: no loaded plugin declares this hook" in text


def test_bmo_serve_starts_with_a_misspelt_hook_and_names_it(tmp_path):
    path = throwaway_distribution(tmp_path / "typo-site", "typo", TYPO_PLUGIN)
    server = spawn_serve(["--auth-token", "tok", "--addr", "127.0.0.1:0"], data_dir=tmp_path / "data",
                         env=clean_env(tmp_path, PYTHONPATH=str(path), BMO_LOAD_PLUGINS="typo"))
    try:
        assert server.url, server.stderr()
        assert "bmo: plugin 'typo' has a failed hook: bmo_rouets: no loaded plugin declares this hook" in server.stderr()
        status, body = http("GET", server.url + "/v1/bmo/sidebar", "tok")
        assert status == 200 and {"label": "Typo", "value": "loaded"} in body["data"]
    finally:
        assert server.terminate() == 0


def test_a_plugin_whose_bmo_addhooks_raises_is_reported_and_left_out(run_bmo, tmp_path):
    source = ("from bmo.hookspecs import hookimpl\n\n@hookimpl\ndef bmo_addhooks(pluginmanager):\n"
              "    raise RuntimeError('specs not ready')\n\n@hookimpl\ndef bmo_routes(register):\n    pass\n")
    path = throwaway_distribution(tmp_path / "addhooks-site", "badspecs", source)
    result = run_bmo("plugins", "--json", env={"PYTHONPATH": str(path), "BMO_LOAD_PLUGINS": "badspecs"})
    assert result.returncode == 0, result.stderr
    rows = [row for row in json.loads(result.stdout) if row["name"] == "badspecs"]
    assert rows == [{"name": "badspecs", "error": "RuntimeError: specs not ready", "hooks": [],
                     "distribution": "bmo-badspecs-plugin", "version": "0.0.1"}]  # not half-registered


def test_bmo_trace_plugins_prints_each_hook_call_to_stderr(run_bmo):
    # `bmo config --help` lists the show-<name> subcommands, so it calls bmo_config_show (`bmo plugins` no longer does).
    traced = run_bmo("config", "--help", env={"BMO_LOAD_PLUGINS": "openai_compat", "BMO_TRACE_PLUGINS": "1"})
    assert traced.returncode == 0, traced.stderr
    lines = traced.stderr.splitlines()
    assert "bmo trace: bmo_addhooks(pluginmanager) -> openai_compat" in lines
    assert "bmo trace: bmo_config_show(register) -> bmo.agent.plugin" in lines
    assert "bmo trace: bmo_config_show(register) -> openai_compat" in lines
    assert "bmo trace:" not in run_bmo("plugins", env={"BMO_LOAD_PLUGINS": "openai_compat"}).stderr
