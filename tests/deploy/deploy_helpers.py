"""Shared helpers of the deploy/ tests: paths, metric names, PromQL names, setting names."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from bridge import metrics
from bridge.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "onestop.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "onestop.test.yml"
DASHBOARD = DEPLOY / "grafana" / "onestop-bridge.json"
RUNBOOK = ROOT / "docs" / "runbook.md"

# Sample names each metric type exposes (prometheus_client, text format 0.0.4).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
# Series Prometheus itself attaches to every scrape.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def exposed_metric_names() -> set[str]:
    """Every sample name bridge/metrics.py REGISTRY can expose."""
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not functions or keywords)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub("", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _KEYWORDS}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]
            if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]
            if "record" in rule]


def _walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, Any]]:
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        yield env, name, field
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, env + "__")


def settings_fields() -> list[tuple[str, str, Any]]:
    """(env var, dotted key, pydantic field) for every setting, sections and leaves."""
    out: list[tuple[str, str, Any]] = []
    for env, _name, field in _walk(Settings, "ONESTOP_"):
        dotted = env.removeprefix("ONESTOP_").lower().replace("__", ".")
        out.append((env, dotted, field))
    return out


def settings_env_names() -> set[str]:
    return {env for env, _dotted, _field in settings_fields()}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a docker/systemd environment file (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        values[key.strip()] = value.strip()
    return values


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed; `make system-deps` installs it (Debian: prometheus)")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def assert_engines_build(settings: Settings) -> None:
    """The ledger and the lookup database open with the drivers this install has: building
    an engine loads its driver, so a URL naming an absent one fails here, not at start-up."""
    from bridge.citizen.dossiers import read_only_engine
    from bridge.ledger.engine import make_engine

    make_engine(settings.ledger.url).dispose()
    if settings.oa.lookup_dsn is not None:
        read_only_engine(settings.oa.lookup_dsn.get_secret_value()).dispose()
