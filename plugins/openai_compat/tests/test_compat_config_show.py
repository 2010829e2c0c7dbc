"""``bmo config show-openai-compat``: the resolved section, advertised ids, bind boundary, live pointers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from bmo.cli.main import cli

CONFIG = """
[options.http_server]
addr = "{addr}"

[options.openai_compat]
enabled = true
tool_policy = "auto_approve"
ambiguity_action = "research"

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
models = ["m1", "m2"]

[providers.remote]
kind = "openai"
base_url = "http://127.0.0.1:2/v1"
"""


def run(tmp_path, monkeypatch, *args, addr="127.0.0.1:9000", env=None):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(addr=addr))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BMO_AUTH_TOKEN", raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return CliRunner().invoke(cli, ["config", "show-openai-compat", "--config", str(cfg), *args])


def test_text_output_lists_policies_models_boundary_and_posture_pointers(tmp_path, monkeypatch):
    result = run(tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    out = result.output
    for line in ("enabled = true", 'tool_policy = "auto_approve"', 'ambiguity_action = "research"',
                 'model_override_policy = "reject"', "  local/m1", "  local/m2",
                 "remote/*: discovered from the provider at serve-time (check at serve-time)",
                 "addr: 127.0.0.1:9000 (loopback)", "auth token: (check at serve-time)",
                 "/openai-compat (TUI slash)", "GET /v1/openai-compat/posture", "get_openai_compat_status"):
        assert line in out, line
    assert "warning" not in out


def test_json_output_and_unsafe_bind_warning(tmp_path, monkeypatch):
    result = run(tmp_path, monkeypatch, "--json", addr="0.0.0.0:9000", env={"BMO_AUTH_TOKEN": "s3cret"})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["enabled"] is True and data["advertised_model_ids"] == ["local/m1", "local/m2"]
    assert data["bind"]["loopback"] is False and data["bind"]["auth_token"] == "set (BMO_AUTH_TOKEN)"
    assert "non-loopback" in data["bind"]["warning"]
    assert "s3cret" not in result.output


def test_help_shows_example_output(tmp_path, monkeypatch):
    result = CliRunner().invoke(cli, ["config", "show-openai-compat", "--help"])
    assert "Example output:" in result.output
    assert '  tool_policy = "auto_approve"' in result.output
    assert "  advertised model ids (what GET /v1/models returns):" in result.output
    assert "--json" in result.output


def test_a_wrong_value_is_a_config_error_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[options.openai_compat]\ntool_policy = "yolo"\n')
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run([sys.executable, "-m", "bmo", "config", "show-openai-compat", "--config", str(cfg)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "options.openai_compat.tool_policy" in proc.stderr and "yolo" in proc.stderr
