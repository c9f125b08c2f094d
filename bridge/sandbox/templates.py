"""Template-data validation against the scenario's template registry (zalo-api.md §3.2).

Registered templates check each declared parameter (``require``, ``maxLength``,
``minLength``); unregistered ones accept any string-valued data unless ``strict_templates``.
"""

from __future__ import annotations

from typing import Any

from bridge.sandbox.scenario import Scenario


def check_template(sc: Scenario, template_id: Any, template_data: Any) -> tuple[int, str | None]:
    """(0, None) when acceptable, else (Zalo code, message)."""
    if not isinstance(template_id, str) or not template_id:
        return -109, "Template ID invalid"
    spec = sc.templates.get(template_id)
    if spec is None and sc.strict_templates:
        return -109, f"Template ID invalid: {template_id} is not registered"
    if template_data is None or template_data == {}:
        # Only a registered template without parameters may be sent without data.
        return (0, None) if spec == {} else (-111, "Template data empty")
    if not isinstance(template_data, dict):
        return -112, "Template data invalid"
    for name, value in template_data.items():
        if not isinstance(value, str):
            return -1124, f"Parameter {name} has invalid format: values must be strings"
    for name, param in (spec or {}).items():
        value = template_data.get(name)
        if not value:
            if param.require:
                return -1122, f"Missing parameter {name}"
            continue
        if param.max_length is not None and len(value) > param.max_length:
            return -1121, f"Parameter {name} exceeds max length {param.max_length}"
        if param.min_length is not None and len(value) < param.min_length:
            return -1124, f"Parameter {name} is shorter than {param.min_length}"
    return 0, None
