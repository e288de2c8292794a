"""Parsing and validating generated argument text (no torch here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema


@dataclass
class ArgCheck:
    """Outcome of checking one argument text: ``kind`` is "ok", "empty", "invalid_json" or "schema"."""

    kind: str
    arguments: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def parse_arguments(text: str) -> ArgCheck:
    """Parse argument text as one JSON object."""
    if not text.strip():
        return ArgCheck("empty", error="the tool token was followed by no arguments")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return ArgCheck("invalid_json", error=f"arguments are not valid JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(value, dict):
        return ArgCheck("invalid_json", error=f"arguments must be a JSON object, got {type(value).__name__}")
    return ArgCheck("ok", value)


def schema_errors(schema: dict[str, Any], arguments: Any, limit: int = 3) -> list[str]:
    """Human-readable schema violations (field path first), at most ``limit``."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    out = []
    for err in sorted(validator.iter_errors(arguments), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in err.path) or "<arguments>"
        out.append(f"{where}: {err.message}")
        if len(out) >= limit:
            break
    return out


def check_arguments(text: str, schema: dict[str, Any]) -> ArgCheck:
    """Parse and validate; undeclared properties count as violations unless the schema allows them."""
    parsed = parse_arguments(text)
    if not parsed.ok:
        return parsed
    strict = dict(schema)
    strict.setdefault("additionalProperties", False)
    errors = schema_errors(strict, parsed.arguments)
    if errors:
        return ArgCheck("schema", parsed.arguments, "arguments do not match the schema: " + "; ".join(errors))
    return parsed
