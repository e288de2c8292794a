"""Tools and the tool registry (no torch here).

A :class:`Tool` is a name, a description, a JSON schema of its arguments and, optionally, the Python
callable that runs it. Tools can be built from a typed Python function (schema from the signature and
the Google-style docstring, via pydantic), from a pydantic model, from a raw JSON schema, or from an
OpenAI-style tool dict.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jsonschema
import pydantic

from .errors import SchemaError, ToolNotFoundError

F = TypeVar("F", bound=Callable[..., Any])

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


def check_schema(schema: Any, *, tool: str = "?") -> dict[str, Any]:
    """Check that *schema* is a valid JSON schema for an object of arguments; return it."""
    if not isinstance(schema, dict):
        raise SchemaError(f"tool '{tool}': parameters must be a JSON schema object (dict), got {type(schema).__name__}")
    if schema.get("type", "object") != "object":
        raise SchemaError(f"tool '{tool}': parameters schema must have type 'object', got {schema.get('type')!r}")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path) or "<root>"
        raise SchemaError(f"tool '{tool}': invalid JSON schema at {path}: {exc.message}") from None
    props = schema.get("properties", {})
    missing = [r for r in schema.get("required", []) if r not in props]
    if missing:
        raise SchemaError(f"tool '{tool}': required names {missing} are not in properties")
    return schema


def schema_hash(name: str, parameters: dict[str, Any]) -> str:
    """Stable hash of a tool's identity (name + argument schema); descriptions do not count."""
    blob = json.dumps({"name": name, "parameters": parameters}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_ANNOTATIONS = ("title", "description", "examples", "$comment")


def normalized_schema(schema: dict[str, Any]) -> Any:
    """A schema without cosmetic keys (titles, descriptions…), ``$defs`` inlined, ``required`` sorted.

    The one definition of "the same schema" (:meth:`Tool.same_schema`): two schemas that normalise equal
    accept the same arguments, so a LangChain ``@tool`` (no argument descriptions) matches the bank's tool
    built from the same function.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k in _ANNOTATIONS and not isinstance(v, dict):
                    continue
                if k in ("properties", "patternProperties", "$defs", "definitions") and isinstance(v, dict):
                    out[k] = {name: walk(sub) for name, sub in v.items()}
                elif k == "required" and isinstance(v, list):
                    out[k] = sorted(v)
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    cleaned = _clean_schema(copy.deepcopy(schema))
    if not cleaned.get("required"):
        cleaned.pop("required", None)
    return walk(cleaned)


@dataclass
class Tool:
    """One tool: what the model sees (name, description, schema) and what runs (``fn``)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    #: calling it changes nothing (a pure computation or a lookup), so registration may run it on sampled
    #: arguments to learn from real results (:func:`read_only`, MCP's ``annotations.readOnlyHint``)
    read_only: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise SchemaError(f"invalid tool name {self.name!r}: use letters, digits, '_', '.', '-' (max 128)")
        self.parameters = check_schema(self.parameters, tool=self.name)

    @property
    def hash(self) -> str:
        """Hash of the exact name + schema, stored with a bank to detect an edited or corrupt config (tool
        identity is :meth:`same_schema`)."""
        return schema_hash(self.name, self.parameters)

    def same_schema(self, other: Tool) -> bool:
        """Same name and a schema that accepts the same arguments (:func:`normalized_schema`)."""
        return self.name == other.name and normalized_schema(self.parameters) == normalized_schema(other.parameters)

    def to_dict(self) -> dict[str, Any]:
        """The tool as an APIGen/OpenAI-function dict (name, description, parameters)."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def to_openai(self) -> dict[str, Any]:
        return {"type": "function", "function": self.to_dict()}

    # ----- constructors -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any], fn: Callable[..., Any] | None = None) -> Tool:
        """From ``{"name", "description", "parameters"}`` or ``{"type": "function", "function": {...}}``."""
        if d.get("type") == "function" and isinstance(d.get("function"), dict):
            d = d["function"]
        if "name" not in d:
            raise SchemaError(f"tool dict has no 'name': {str(d)[:120]}")
        params = d.get("parameters", d.get("input_schema", {"type": "object", "properties": {}}))
        hints = d.get("annotations") if isinstance(d.get("annotations"), dict) else {}
        ro = bool(d.get("read_only", hints.get("readOnlyHint", False)))
        return cls(name=d["name"], description=d.get("description", "") or "", parameters=params, fn=fn,
                   read_only=ro)

    @classmethod
    def from_pydantic(cls, model: type[pydantic.BaseModel], fn: Callable[..., Any] | None = None,
                      name: str | None = None, description: str | None = None) -> Tool:
        schema = _clean_schema(model.model_json_schema())
        desc = description if description is not None else inspect.getdoc(model) or ""
        return cls(name=name or model.__name__, description=desc, parameters=schema, fn=fn)

    @classmethod
    def from_function(cls, fn: Callable[..., Any], name: str | None = None,
                      description: str | None = None) -> Tool:
        """Schema from the type hints and the Google-style docstring (``Args:`` section) of *fn*."""
        doc = inspect.getdoc(fn) or ""
        summary, arg_docs = _parse_docstring(doc)
        sig = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:  # unresolvable forward refs
            raise SchemaError(f"tool '{fn.__name__}': cannot resolve type hints: {exc}") from None
        fields: dict[str, Any] = {}
        for pname, p in sig.parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            ann = hints.get(pname, Any)
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[pname] = (ann, pydantic.Field(default, description=arg_docs.get(pname)))
        try:
            model = pydantic.create_model(f"{fn.__name__}_args", **fields)
            schema = _clean_schema(model.model_json_schema())
        except Exception as exc:
            raise SchemaError(f"tool '{fn.__name__}': cannot build a JSON schema from its signature: {exc}") from None
        return cls(name=name or fn.__name__, description=summary if description is None else description,
                   parameters=schema, fn=fn, read_only=bool(getattr(fn, READ_ONLY_ATTR, False)))

    @classmethod
    def coerce(cls, obj: Any) -> Tool:
        """Turn a Tool, a plain function, a pydantic model class or a tool dict into a Tool."""
        if isinstance(obj, Tool):
            return obj
        if isinstance(obj, dict):
            return cls.from_dict(obj)
        if isinstance(obj, type) and issubclass(obj, pydantic.BaseModel):
            return cls.from_pydantic(obj)
        if callable(obj):
            return cls.from_function(obj)
        raise SchemaError(f"cannot make a tool from {type(obj).__name__}: pass a function, pydantic model, "
                          "dict or Tool")


READ_ONLY_ATTR = "__tokmem_read_only__"


def read_only(fn: F) -> F:
    """Mark a tool function as free of side effects (a computation or a lookup): registering it from its
    schema alone may then call it on sampled arguments, so the synthetic traces carry real results and
    answers (:attr:`RegisterConfig.run_tools`). Use it as a decorator."""
    setattr(fn, READ_ONLY_ATTR, True)
    return fn


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (summary, {arg: description})."""
    lines = doc.splitlines()
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section = None
    current: str | None = None
    indent = -1  # indentation of the argument names in the Args section
    for line in lines:
        stripped = line.strip()
        if re.match(r"^(Args|Arguments|Parameters)\s*:\s*$", stripped):
            section, current, indent = "args", None, -1
            continue
        if re.match(r"^(Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$", stripped):
            section, current = "other", None
            continue
        if section is None:
            if stripped or summary_lines:
                summary_lines.append(stripped)
        elif section == "args" and stripped:
            level = len(line) - len(line.lstrip())
            m = re.match(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            if m and (indent < 0 or level <= indent):
                current, indent = m.group(1), level
                args[current] = m.group(2).strip()
            elif current:
                args[current] = (args[current] + " " + stripped).strip()
    summary = " ".join(s for s in summary_lines if s).strip()
    return summary, args


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's cosmetic ``title`` keys and inline simple ``$defs`` references."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                target = defs.get(node["$ref"].split("/")[-1], {})
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**target, **rest})
            return {k: walk(v) for k, v in node.items() if k != "title" or not isinstance(v, str)}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out = walk(schema)
    out.setdefault("type", "object")
    out.setdefault("properties", {})
    return out


class ToolRegistry:
    """Ordered name → :class:`Tool` mapping."""

    def __init__(self, tools: Iterable[Any] = ()):
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Any, *, replace: bool = False) -> Tool:
        t = Tool.coerce(tool)
        if t.name in self._tools and not replace:
            existing = self._tools[t.name]
            if not existing.same_schema(t):
                raise SchemaError(f"tool '{t.name}' is already registered with a different schema "
                                  f"({existing.hash} vs {t.hash}); pass replace=True to replace it")
            if t.fn is not None:
                existing.fn = t.fn
            return existing
        self._tools[t.name] = t
        return t

    def remove(self, name: str) -> Tool:
        """Unregister a tool; returns it."""
        tool = self.get(name)
        del self._tools[name]
        return tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolNotFoundError(f"unknown tool '{name}'; registered: {', '.join(self._tools) or '(none)'}") from None

    def __getitem__(self, name: str) -> Tool:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)
