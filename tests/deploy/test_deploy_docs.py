"""docs/runbook.md covers every alert and procedure; docs/configuration.md every setting."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from bridge.settings import Settings
from deploy_helpers import DEPLOY, ROOT, RUNBOOK, alert_rules, settings_fields

CONFIGURATION = ROOT / "docs" / "configuration.md"


def github_anchor(heading: str) -> str:
    """The anchor GitHub generates for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", markdown, re.M)}


@pytest.fixture(scope="module")
def runbook() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def configuration() -> str:
    return CONFIGURATION.read_text(encoding="utf-8")


def section(markdown: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def test_every_alert_has_its_runbook_section(runbook: str) -> None:
    present = anchors(runbook)
    for rule in alert_rules():
        fragment = rule["annotations"]["runbook_url"].partition("#")[2]
        assert fragment in present, f"{rule['alert']}: no heading for #{fragment}"
        body = section(runbook, rule["alert"])
        assert len(body.split()) >= 40, f"{rule['alert']}: section too thin to act on"


def test_runbook_links_resolve(runbook: str) -> None:
    present = anchors(runbook)
    for target in re.findall(r"\]\(#([^)]+)\)", runbook):
        assert target in present, f"broken link #{target}"


def test_runbook_has_the_procedures_operators_need(runbook: str) -> None:
    for command in ("onestop-bridge dlq list", "onestop-bridge dlq show", "onestop-bridge dlq replay",
                    "--dry-run", "pg_replication_slots", "pg_drop_replication_slot",
                    "max_slot_wal_keep_size", "oauth.zaloapp.com/v4/oa/access_token",
                    "ONESTOP_ZALO__REFRESH_TOKEN"):
        assert command in runbook, command
    privileges = section(runbook, "Database roles and least privilege")
    for grant in ("LOGIN REPLICATION", "GRANT SELECT ON public.dossiers TO onestop_capture",
                  "CREATE PUBLICATION onestop_bridge FOR TABLE public.dossiers",
                  "default_transaction_read_only", "onestop_lookup"):
        assert grant in privileges, grant


def test_runbook_dlq_reasons_are_the_ones_the_bridge_emits(runbook: str) -> None:
    from bridge.dlq.headers import REASONS

    body = section(runbook, "OnestopDLQReceivingRecords")
    documented = set(re.findall(r"^\| `(\w+)` \|", body, re.M)) - {"reason"}  # header row
    assert documented == set(REASONS)


def rendered_default(value: Any) -> str:
    """How configuration.md writes a default: TOML-like literals, `none` for None."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(rendered_default(v) for v in value) + "]"
    if isinstance(value, dict):
        assert not value, "document non-empty dict defaults by hand"
        return "{}"
    return repr(value)


def config_rows(markdown: str) -> dict[str, tuple[str, str]]:
    """env var → (key cell, default cell) from the reference tables."""
    rows: dict[str, tuple[str, str]] = {}
    for match in re.finditer(r"^\| `([^`]+)`[^|]*\| `(ONESTOP_[A-Z0-9_<>]+)` \| ([^|]+) \|",
                             markdown, re.M):
        rows[match.group(2)] = (match.group(1), match.group(3).strip())
    return rows


def test_configuration_documents_every_setting_with_its_default(configuration: str) -> None:
    rows = config_rows(configuration)
    for env, dotted, field in settings_fields():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            continue  # a section; its leaves are checked
        if ".columns." in dotted:
            assert "ONESTOP_SOURCE__COLUMNS__<FIELD>" in rows, env
            assert dotted.rsplit(".", 1)[1] in rows["ONESTOP_SOURCE__COLUMNS__<FIELD>"][1] or \
                f"`{dotted.rsplit('.', 1)[1]}`" in configuration
            continue
        assert env in rows, f"docs/configuration.md has no row for {env} ({dotted})"
        key, default = rows[env]
        assert key == dotted.split(".", 1)[1], f"{env}: key cell {key!r}"
        if dotted == "oa.centres":
            continue  # a list of objects, described in words
        assert default == f"`{rendered_default(field.default)}`" or \
            (field.default is None and default == "none"), f"{env}: documented {default}"


def test_configuration_lists_no_setting_that_does_not_exist(configuration: str) -> None:
    known = {env for env, _d, _f in settings_fields()} | {"ONESTOP_SOURCE__COLUMNS__<FIELD>"}
    documented = set(config_rows(configuration))
    assert documented <= known, sorted(documented - known)


def test_configuration_example_is_valid_toml_for_the_settings(configuration: str) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", configuration, re.S)
    assert blocks, "no example TOML"
    for block in blocks:
        Settings(**tomllib.loads(block))
    Settings(**tomllib.loads((DEPLOY / "config" / "onestop-bridge.toml").read_text("utf-8")))


def test_deploy_readme_says_compose_is_only_validated_structurally() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert "no Docker daemon" in readme and "structurally" in readme
