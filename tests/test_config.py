"""Settings: one typed object, read per cold start, changed in tests without patching globals,
and the documented variables kept in step with it."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from chalicelib import config
from chalicelib.errors import RATE_LIMITED

ROOT = Path(__file__).resolve().parents[1]
# Read by Powertools itself (service name, log level), not by the app: no field of ours.
POWERTOOLS_OWN = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"}
KNOWN = set(config.variables()) | set(config.SECRET_VARIABLES) | POWERTOOLS_OWN


def test_every_setting_is_a_typed_field_with_its_default_and_variable() -> None:
    fields = dataclasses.fields(config.Settings)
    assert len(fields) >= 30
    for field in fields:
        # the annotation is the type the variable is parsed as (the default's)
        assert field.type in ("str", "int", "float"), field.name
        assert type(field.default).__name__ == field.type, field.name
        assert re.fullmatch(r"[A-Z][A-Z0-9_]+", field.metadata["env"]), field.name
    assert len(config.variables()) == len(fields)  # one variable per field, none read twice
    defaults = config.Settings()
    assert defaults.mail_dlq_name == f"{defaults.mail_queue_name}-dlq"
    assert (defaults.messages_per_second, defaults.retention_days) == (5, 365)


def test_nothing_else_reads_the_settings_variables() -> None:
    """Module globals frozen at import are gone: no upper-case setting left in config, and no
    module of the app reads a setting's variable from the environment itself."""
    frozen = {name for name in vars(config) if name.isupper()}
    assert frozen == {"SERVICE", "CONNECTION_TTL_SECONDS", "SECRET_VARIABLES"}
    for path in [ROOT / "app.py", *(ROOT / "chalicelib").glob("*.py")]:
        if path.name == "config.py":
            continue
        read = set(re.findall(r"environ(?:\.get)?[(\[]\s*[\"']([A-Z0-9_]+)[\"']", path.read_text()))
        assert not read & set(config.variables()), (path.name, read & set(config.variables()))


def test_a_change_in_the_environment_is_read_at_the_next_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with config.override():  # whatever this test loads is put back afterwards
        before = config.settings().digest_quiet_seconds
        monkeypatch.setenv("DIGEST_QUIET_SECONDS", str(before + 7))
        assert config.settings().digest_quiet_seconds == before  # read once per cold start
        assert config.reload().digest_quiet_seconds == before + 7  # a new cold start reads it
        assert config.settings().digest_quiet_seconds == before + 7
        monkeypatch.setenv("TABLE_NAME", "another-table")
        config.reload()
        # PynamoDB asks the model's Meta at each request: no table name frozen into a class
        from chalicelib.models import ALL_MODELS

        assert {m.Meta.table_name for m in ALL_MODELS} == {"another-table"}
    assert config.settings().digest_quiet_seconds == before


def test_bad_values_fail_at_load_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="MESSAGES_PER_SECOND must be an integer, not '5/s'"):
        config.Settings.from_env({"MESSAGES_PER_SECOND": "5/s"})
    with pytest.raises(ValueError, match="HOUSEKEEPING_SITE_SECONDS must be a number"):
        config.Settings.from_env({"HOUSEKEEPING_SITE_SECONDS": "half a minute"})
    assert config.Settings.from_env({"HOUSEKEEPING_SITE_SECONDS": "0.5"}).housekeeping_site_seconds == 0.5
    with config.override():
        monkeypatch.setenv("RETENTION_DAYS", "a year")
        with pytest.raises(ValueError, match="RETENTION_DAYS"):
            config.reload()
    # an override is typed as well: a wrong type fails where it is made, not in a handler
    with pytest.raises(TypeError, match="retention_days"), config.override(retention_days="7"):
        pass
    with pytest.raises(TypeError), config.override(no_such_setting=1):
        pass


def test_an_override_is_seen_by_a_real_handler_and_put_back(visitor) -> None:
    """The handlers run in the gateway stand-in's threads: they see the override at once."""
    guest = visitor()
    usual = config.settings()
    with config.override(conversations_per_visitor_per_hour=0) as changed:
        assert config.settings() is changed and changed.conversations_per_visitor_per_hour == 0
        guest.send({"action": "start", "ref": "none-allowed"})
        refusal = guest.expect("error")
        assert refusal["code"] == RATE_LIMITED and refusal["ref"] == "none-allowed"
    assert config.settings() is usual
    assert guest.start()  # the usual limit again


def test_the_app_settings_fixture_changes_and_restores(app_settings) -> None:
    usual = config.settings()
    app_settings(retention_days=7)
    app_settings(messages_per_second=0)  # a second change keeps the first
    assert (config.settings().retention_days, config.settings().messages_per_second) == (7, 0)
    assert usual.retention_days != 7


# ---- the documented variables and Settings, in step -------------------------------------------


def _first_column(path: Path, header: str) -> set[str]:
    """Backticked names in the first column of every table whose header's first cell has ``header``."""
    names: set[str] = set()
    in_table = False
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            in_table = False
        elif header in cells[0]:
            in_table = True
        elif in_table:
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]))
    return names


def test_every_documented_variable_is_a_setting_and_the_readme_lists_them_all() -> None:
    readme = _first_column(ROOT / "README.md", "variable")
    assert readme == set(config.variables()) | set(config.SECRET_VARIABLES), (
        "README's Configuration table and chalicelib.config.Settings differ")
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        named = _first_column(doc, "variable")
        assert named <= KNOWN, (doc.name, named - KNOWN)
    assert _first_column(ROOT / "docs" / "deploy.md", "variable") >= {"TABLE_NAME", "WEBSOCKET_STAGE"}


def test_every_deployed_variable_is_a_setting() -> None:
    chalice = json.loads((ROOT / ".chalice" / "config.json").read_text())
    deployed = set(chalice.get("environment_variables", {}))
    for stage in chalice["stages"].values():
        deployed |= set(stage.get("environment_variables", {}))
        for function in stage.get("lambda_functions", {}).values():
            deployed |= set(function.get("environment_variables", {}))
    assert {"TABLE_NAME", "MAIL_QUEUE_NAME", "WEBSOCKET_STAGE"} <= deployed
    assert deployed <= KNOWN, deployed - KNOWN
    template = (ROOT / "infra" / "template.yaml").read_text()
    for block in re.findall(r"^(\s+)Variables:\s*\n((?:\1\s+[A-Za-z0-9_]+:.*\n)+)", template, re.M):
        named = set(re.findall(r"^\s+([A-Za-z0-9_]+):", block[1], re.M))
        assert named <= KNOWN, named - KNOWN
