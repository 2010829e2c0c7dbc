"""Layered configuration: precedence of every layer, errors naming file and key, redacted secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bmo.config import ConfigError, load_config
from bmo.plugins import create_plugin_manager
from bmo.testing.harness import clean_env, free_port, spawn_serve


def shown(run_bmo, *args, **kw) -> dict:
    result = run_bmo("config", "show", "--json", *args, **kw)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def body_limit(doc: dict) -> int:
    return doc["config"]["options"]["http_server"]["max_body_bytes"]


def toml_limit(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[options.http_server]\nmax_body_bytes = {value}\n")
    return path


@pytest.fixture
def layers(tmp_path):
    """user file (1), ./bmo.toml (2), two --config files (3, 4), env (5)."""
    user = toml_limit(tmp_path / "xdg-config" / "bmo" / "bmo.toml", 1111)
    project = toml_limit(tmp_path / "bmo.toml", 2222)
    extra_a = toml_limit(tmp_path / "a.toml", 3333)
    extra_b = toml_limit(tmp_path / "b.toml", 4444)
    return user, project, extra_a, extra_b


def test_defaults_apply_with_no_files(run_bmo):
    doc = shown(run_bmo)
    assert body_limit(doc) == 4 * 1024 * 1024
    assert doc["sources"] == ["defaults"]


def test_the_user_file_overrides_defaults(run_bmo, layers):
    user, project, *_ = layers
    project.unlink()
    doc = shown(run_bmo)
    assert body_limit(doc) == 1111 and doc["sources"] == ["defaults", str(user)]


def test_the_project_file_overrides_the_user_file(run_bmo, layers):
    user, project, *_ = layers
    doc = shown(run_bmo)
    assert body_limit(doc) == 2222 and doc["sources"] == ["defaults", str(user), str(project)]


def test_config_files_override_the_project_file_in_order(run_bmo, layers):
    *_, extra_a, extra_b = layers
    assert body_limit(shown(run_bmo, "--config", str(extra_a))) == 3333
    assert body_limit(shown(run_bmo, "--config", str(extra_b), "--config", str(extra_a))) == 3333
    assert body_limit(shown(run_bmo, "--config", str(extra_a), "--config", str(extra_b))) == 4444
    # BMO_CONFIG names files too, merged before the --config ones.
    assert body_limit(shown(run_bmo, env={"BMO_CONFIG": str(extra_b)})) == 4444
    assert body_limit(shown(run_bmo, "--config", str(extra_a), env={"BMO_CONFIG": str(extra_b)})) == 3333


def test_environment_overrides_every_file(run_bmo, layers):
    *_, extra_b = layers
    doc = shown(run_bmo, "--config", str(extra_b), env={"BMO_OPTIONS__HTTP_SERVER__MAX_BODY_BYTES": "5555"})
    assert body_limit(doc) == 5555
    assert doc["sources"][-1] == "BMO_OPTIONS__HTTP_SERVER__MAX_BODY_BYTES"


def test_cli_flags_override_the_environment(tmp_path):
    flag_dir, env_dir = tmp_path / "from-flag", tmp_path / "from-env"
    (tmp_path / "bmo.toml").write_text('[options.http_server]\naddr = "127.0.0.1:1"\n[storage]\ndata_dir = "from-file"\n')
    server = spawn_serve(["--allow-no-auth", "--addr", "127.0.0.1:0", "--data-dir", str(flag_dir)],
                         data_dir=tmp_path / "unused", cwd=tmp_path,
                         env=clean_env(tmp_path, BMO_LOAD_PLUGINS="", BMO_DATA_DIR=str(env_dir),
                                       BMO_ADDR=f"127.0.0.1:{free_port()}"))
    try:
        assert server.url, server.stderr()
        # --addr 127.0.0.1:0 won over BMO_ADDR and the file: the kernel picked the port.
        assert f"data: {flag_dir}" in server.stderr()
    finally:
        assert server.terminate() == 0
    assert (flag_dir / "logs" / "bmo.jsonl").exists() and not env_dir.exists()


def test_env_shortcuts_and_values_are_typed():
    pm = create_plugin_manager("")
    env = {"BMO_ADDR": "127.0.0.1:7", "BMO_TRACING__LOG_STDERR": "true",
           "BMO_OPTIONS__HTTP_SERVER__REQUESTER_TRUSTED_PROXIES": '["10.0.0.1"]',
           "BMO_SOMETHING_ELSE": "ignored: no __, not a config key"}
    config = load_config(pm, env=env, cwd="/nonexistent")
    assert config.section("options.http_server").addr == "127.0.0.1:7"
    assert config.section("options.http_server").requester_trusted_proxies == ["10.0.0.1"]
    assert config.section("tracing").log_stderr is True


@pytest.mark.parametrize("command", [["config", "show"], ["serve", "--allow-no-auth"]])
def test_an_unknown_key_exits_non_zero_naming_key_and_file(run_bmo, tmp_path, command):
    bad = tmp_path / "bad.toml"
    bad.write_text("[options.http_server]\nmax_body_byts = 10\n")
    result = run_bmo(*command, "--config", str(bad), env={"BMO_LOAD_PLUGINS": ""})
    assert result.returncode != 0
    assert "options.http_server.max_body_byts" in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["config", "show"], ["serve", "--allow-no-auth"]])
def test_a_wrong_type_exits_non_zero_naming_key_value_and_expectation(run_bmo, tmp_path, command):
    (tmp_path / "bmo.toml").write_text('[tracing]\nlog_backups = "many"\n')
    result = run_bmo(*command, env={"BMO_LOAD_PLUGINS": ""})
    assert result.returncode != 0
    assert "tracing.log_backups" in result.stderr and str(tmp_path / "bmo.toml") in result.stderr
    assert "'many'" in result.stderr and "int" in result.stderr


def test_an_unknown_section_lists_the_known_ones(run_bmo, tmp_path):
    (tmp_path / "bmo.toml").write_text("[tracin]\notlp_endpoint = 'x'\n")
    result = run_bmo("config", "show", env={"BMO_LOAD_PLUGINS": ""})
    assert result.returncode != 0 and "tracin.otlp_endpoint" in result.stderr and "[tracing]" in result.stderr


def test_a_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="BMO_TRACING__LOG_BACKUPS"):
        load_config(create_plugin_manager(""), env={"BMO_TRACING__LOG_BACKUPS": "lots"}, cwd="/nonexistent")


def test_invalid_toml_and_missing_files_are_reported(run_bmo, tmp_path):
    (tmp_path / "broken.toml").write_text("[options\n")
    result = run_bmo("config", "show", "--config", str(tmp_path / "broken.toml"))
    assert result.returncode != 0 and "not valid TOML" in result.stderr
    missing = run_bmo("config", "show", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode != 0 and "not found" in missing.stderr


@pytest.fixture
def secretive_plugin(tmp_path) -> Path:
    """A throwaway distribution declaring a section with secrets in it."""
    root = tmp_path / "secretive-site"
    info = root / "bmo_secretive-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bmo-secretive\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[bmo]\nsecretive = bmo_secretive\n")
    (root / "bmo_secretive.py").write_text(
        "import msgspec\nfrom bmo.hookspecs import hookimpl\n\n"
        "class Opts(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):\n"
        "    api_key: str = ''\n    api_key_env: str = ''\n    auth_token: str = ''\n    client_secret: str = ''\n"
        "    headers: dict[str, str] = {}\n    url: str = ''\n\n"
        "@hookimpl\ndef bmo_config_sections(register):\n    register('options.secretive', Opts)\n"
    )
    return root


def test_config_show_redacts_secrets(run_bmo, tmp_path, secretive_plugin):
    (tmp_path / "bmo.toml").write_text(
        "[options.secretive]\napi_key = 'sk-live-123'\napi_key_env = 'MY_KEY'\nclient_secret = 'hunter2'\n"
        "headers = { X-Api-Key = 'hdr-secret' }\nurl = 'http://example.test'\n"
    )
    env = {"PYTHONPATH": str(secretive_plugin), "BMO_LOAD_PLUGINS": "secretive"}
    text = run_bmo("config", "show", env=env)
    assert text.returncode == 0, text.stderr
    for secret in ("sk-live-123", "hunter2", "hdr-secret"):
        assert secret not in text.stdout
    section = shown(run_bmo, env=env)["config"]["options"]["secretive"]
    assert section == {"api_key": "set", "api_key_env": "MY_KEY", "auth_token": "unset", "client_secret": "set",
                       "headers": {"X-Api-Key": "set"}, "url": "http://example.test"}


def test_config_show_prints_toml_that_reads_back_as_the_json_view(run_bmo, tmp_path, secretive_plugin):
    import tomllib

    (tmp_path / "bmo.toml").write_text("[options.secretive]\nheaders = { 'Odd Key.x' = 'v' }\n")
    env = {"PYTHONPATH": str(secretive_plugin)}
    text = run_bmo("config", "show", env=env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("# sources, later wins: defaults, ")
    assert tomllib.loads(text.stdout) == shown(run_bmo, env=env)["config"]


def test_env_text_that_looks_like_a_number_stays_text_for_string_keys(run_bmo):
    doc = shown(run_bmo, env={"BMO_OPTIONS__HELLO__NAME": "2024", "BMO_OPTIONS__HELLO__GREETING": "true",
                              "BMO_TRACING__LOG_BACKUPS": "7"})
    assert doc["config"]["options"]["hello"] == {"greeting": "true", "name": "2024"}
    assert doc["config"]["tracing"]["log_backups"] == 7
