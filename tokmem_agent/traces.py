"""APIGen-style function-calling traces: reading, validating and writing them (no torch here).

Two record shapes are accepted, one JSON object per line:

* ours (``../shared/data``): ``tools`` and ``answers`` are lists; SGD records may add ``messages``,
  ``results``, ``between`` and ``response`` (the dialogue around the calls);
* the original xLAM (Salesforce/xlam-function-calling-60k): ``tools`` and ``answers`` are JSON strings and
  tool parameters use xLAM type strings (``"str"``, ``"int, optional"``, ``"List[int]"``…), converted to
  JSON Schema here.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from .errors import DataFormatError, SchemaError
from .registry import check_schema

Message = dict[str, Any]  # {"role": "user"|"assistant"|"system"|"tool", "content": str, ...}


class ConflictingToolsWarning(UserWarning):
    """One tool name with different parameter schemas in different records."""


def last_role(messages: list[Message] | tuple[Message, ...]) -> str | None:
    """``"user"`` or ``"tool"`` when the conversation ends with that role (the decision a turn makes), else None."""
    role = messages[-1].get("role") if messages else None
    return role if role in ("user", "tool") else None


@dataclass
class Call:
    """One tool call: a tool name and its JSON arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass
class Trace:
    """A user request, the candidate tools and the gold ordered calls.

    ``messages`` is the conversation before the first call (for APIGen records, one user turn holding
    ``query``). ``results``/``between``/``response`` exist for SGD-style records only.
    """

    id: str
    messages: list[Message]
    calls: list[Call]
    tools: list[dict[str, Any]] = field(default_factory=list)
    results: list[Any] | None = None
    between: list[list[Message]] | None = None
    response: str | None = None
    query: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tool_names(self) -> list[str]:
        return [c.name for c in self.calls]

    def compositional_context(self) -> list[Message]:
        """Reading 2 of the data README: ``messages + between[0] + …`` → all calls at once."""
        msgs = list(self.messages)
        for turns in self.between or []:
            msgs.extend(turns)
        return msgs

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"id": self.id, "query": self.query or _last_user(self.messages),
                               "tools": self.tools, "answers": [c.to_dict() for c in self.calls],
                               "n_calls": len(self.calls)}
        if self.source:
            rec["source"] = self.source
        if not (len(self.messages) == 1 and self.messages[0].get("content") == rec["query"]):
            rec["messages"] = self.messages
        for key in ("results", "between", "response"):
            if getattr(self, key) is not None:
                rec[key] = getattr(self, key)
        rec.update(self.extra)
        return rec


def _last_user(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


# ----- xLAM type strings → JSON Schema ---------------------------------------------------------------
_XLAM_SCALARS = {"str": "string", "string": "string", "int": "integer", "integer": "integer",
                 "float": "number", "number": "number", "bool": "boolean", "boolean": "boolean"}


def xlam_type_to_schema(type_str: str) -> tuple[dict[str, Any], bool]:
    """Convert an xLAM type string to a JSON schema; also return whether it says optional."""
    t = (type_str or "").strip()
    optional = bool(re.search(r"optional|default\s*=", t, re.IGNORECASE))
    t = re.sub(r",?\s*(optional|default\s*=.*)$", "", t, flags=re.IGNORECASE).strip()
    m = re.match(r"^Optional\[(.*)\]$", t)
    if m:
        optional, t = True, m.group(1).strip()
    low = t.lower()
    if low in _XLAM_SCALARS:
        return {"type": _XLAM_SCALARS[low]}, optional
    m = re.match(r"^(list|set|tuple|sequence)(\[(.*)\])?$", t, re.IGNORECASE)
    if m:
        inner = (m.group(3) or "").split(",")[0].strip()
        schema: dict[str, Any] = {"type": "array"}
        if inner and inner.lower() in _XLAM_SCALARS:
            schema["items"] = {"type": _XLAM_SCALARS[inner.lower()]}
        return schema, optional
    if low.startswith("dict"):
        return {"type": "object"}, optional
    if re.match(r"^union\[(int|float), ?(int|float)\]$", low):
        return {"type": "number"}, optional
    return {"type": "string"}, optional  # Callable[...] and unknown types are passed as text


def xlam_tool_to_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """An original xLAM tool (``parameters: {name: {type, description, default}}``) → our tool dict."""
    params = tool.get("parameters") or {}
    if isinstance(params.get("type"), str) or isinstance(params.get("properties"), dict):
        return tool  # JSON Schema (checked by parse_record), not xLAM's {name: {type, …}} shape
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, spec in params.items():
        spec = spec if isinstance(spec, dict) else {"type": str(spec)}
        schema, optional = xlam_type_to_schema(str(spec.get("type", "str")))
        if spec.get("description"):
            schema["description"] = spec["description"]
        if "default" in spec and spec["default"] not in ("", None):
            schema["default"] = spec["default"]
            optional = True
        props[pname] = schema
        if not optional:
            required.append(pname)
    return {"name": tool.get("name"), "description": tool.get("description", ""),
            "parameters": {"type": "object", "properties": props, "required": required}}


# ----- parsing -----------------------------------------------------------------------------------------
_VALIDATORS: dict[str, Any] = {}


def _validator(tool: dict[str, Any], path: str | None, line: int | None, fld: str) -> Any:
    """A jsonschema validator for a tool definition's parameters (cached by schema), or a clear error."""
    params = tool.get("parameters", {"type": "object", "properties": {}})
    key = json.dumps(params, sort_keys=True, default=str)
    v = _VALIDATORS.get(key)
    if v is None:
        try:
            check_schema(params, tool=tool["name"])
        except SchemaError as exc:
            raise DataFormatError(str(exc), path=path, line=line, field=fld) from None
        if len(_VALIDATORS) > 4096:
            _VALIDATORS.clear()
        v = _VALIDATORS[key] = jsonschema.validators.validator_for(params)(params)
    return v


def _maybe_json(value: Any, fld: str, path: str | None, line: int | None) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON string: {exc.msg}", path=path, line=line, field=fld) from None
    return value


def _check_messages(msgs: Any, fld: str, path: str | None, line: int | None) -> list[Message]:
    if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
        raise DataFormatError("must be a list of {role, content} objects", path=path, line=line, field=fld)
    for i, m in enumerate(msgs):
        if m.get("role") not in ("system", "user", "assistant", "tool"):
            raise DataFormatError(f"unknown role {m.get('role')!r}", path=path, line=line, field=f"{fld}[{i}].role")
        if not isinstance(m.get("content", ""), str):
            raise DataFormatError("content must be a string", path=path, line=line, field=f"{fld}[{i}].content")
    return msgs


def parse_record(obj: Any, *, path: str | None = None, line: int | None = None,
                 index: int = 0) -> Trace:
    """Validate one record (either shape) and return a :class:`Trace`."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"record must be a JSON object, got {type(obj).__name__}", path=path, line=line)
    tools = _maybe_json(obj.get("tools", []), "tools", path, line)
    answers = _maybe_json(obj.get("answers", obj.get("calls")), "answers", path, line)
    if answers is None:
        raise DataFormatError("missing", path=path, line=line, field="answers")
    if not isinstance(tools, list):
        raise DataFormatError("must be a list of tool definitions", path=path, line=line, field="tools")
    if not isinstance(answers, list):
        raise DataFormatError("must be a list of calls", path=path, line=line, field="answers")
    tools = [xlam_tool_to_schema(t) if isinstance(t, dict) else t for t in tools]
    validators: dict[str, Any] = {}
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise DataFormatError("tool definition needs a string 'name'", path=path, line=line, field=f"tools[{i}]")
        validators[t["name"]] = _validator(t, path, line, f"tools[{i}].parameters")
    known = {t["name"] for t in tools}
    calls: list[Call] = []
    for i, a in enumerate(answers):
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise DataFormatError("call needs a string 'name'", path=path, line=line, field=f"answers[{i}].name")
        args = _maybe_json(a.get("arguments", a.get("args", {})), f"answers[{i}].arguments", path, line)
        if not isinstance(args, dict):
            raise DataFormatError("must be an object", path=path, line=line, field=f"answers[{i}].arguments")
        if known and a["name"] not in known:
            raise DataFormatError(f"calls tool '{a['name']}' which is not in the record's tools",
                                  path=path, line=line, field=f"answers[{i}].name")
        validator = validators.get(a["name"])
        if validator is not None:
            err = min(validator.iter_errors(args), key=lambda e: list(e.path), default=None)
            if err is not None:
                where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.path)
                raise DataFormatError(f"arguments violate the schema of '{a['name']}': {err.message}",
                                      path=path, line=line, field=f"answers[{i}].arguments{where}")
        calls.append(Call(a["name"], args))
    query = obj.get("query", "")
    if not isinstance(query, str):
        raise DataFormatError("must be a string", path=path, line=line, field="query")
    if "messages" in obj:
        messages = _check_messages(obj["messages"], "messages", path, line)
    elif query:
        messages = [{"role": "user", "content": query}]
    else:
        raise DataFormatError("record needs 'query' or 'messages'", path=path, line=line, field="query")
    if not messages:
        raise DataFormatError("must not be empty", path=path, line=line, field="messages")
    between = obj.get("between")
    if between is not None:
        if not isinstance(between, list):
            raise DataFormatError("must be a list of message lists", path=path, line=line, field="between")
        between = [_check_messages(b, f"between[{i}]", path, line) for i, b in enumerate(between)]
        if len(between) != max(len(calls) - 1, 0):
            raise DataFormatError(f"has {len(between)} entries for {len(calls)} calls (needs n_calls - 1)",
                                  path=path, line=line, field="between")
    results = obj.get("results")
    if results is not None and (not isinstance(results, list) or len(results) != len(calls)):
        raise DataFormatError("must be a list with one entry per call", path=path, line=line, field="results")
    response = obj.get("response")
    if response is not None and not isinstance(response, str):
        raise DataFormatError("must be a string", path=path, line=line, field="response")
    rid = obj.get("id", f"{Path(path).stem if path else 'record'}-{index}")
    return Trace(id=str(rid), messages=messages, calls=calls, tools=tools, results=results, between=between,
                 response=response, query=query, source=str(obj.get("source", "")))


def iter_jsonl(path: str | os.PathLike[str], *,
               on_error: Callable[[DataFormatError], None] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, parsed_object)`` for each non-empty line; bad JSON names file and line (raised,
    or passed to ``on_error`` and the line skipped)."""
    p = str(path)
    if Path(p).is_dir():
        raise DataFormatError("is a directory, not a JSONL file", path=p)
    lineno = 0
    try:
        with open(p, encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    err = DataFormatError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=p, line=lineno)
                    if on_error is None:
                        raise err from None
                    on_error(err)
                    continue
                yield lineno, obj
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r})", path=p,
                              line=lineno + 1) from None
    except OSError as exc:
        raise DataFormatError(f"cannot read: {exc.strerror or exc}", path=p) from None


def load_traces(source: str | os.PathLike[str] | Iterable[dict[str, Any]], *, limit: int | None = None,
                split: str = "train", skipped: list[DataFormatError] | None = None) -> list[Trace]:
    """Load traces from a JSONL file, a list of records, or (when online) a Hugging Face dataset id.

    A bad record raises :class:`DataFormatError` naming file, line and field — unless ``skipped`` is a list:
    then each bad record's error is appended to it and the record left out (``tokmem train --skip-invalid``).
    """
    out: list[Trace] = []

    def parse(obj: Any, **where: Any) -> None:
        try:
            out.append(parse_record(obj, index=len(out), **where))
        except DataFormatError as exc:
            if skipped is None:
                raise
            skipped.append(exc)

    on_error = skipped.append if skipped is not None else None
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.exists():
            for lineno, obj in iter_jsonl(p, on_error=on_error):
                parse(obj, path=str(p), line=lineno)
                if limit and len(out) >= limit:
                    break
            return out
        if re.match(r"^[\w.\-]+/[\w.\-]+$", str(source)) and not str(source).endswith((".jsonl", ".json")):
            return _load_hub(str(source), split=split, limit=limit)
        raise DataFormatError(f"no such file: {source}", path=str(source))
    for i, obj in enumerate(source):
        parse(obj, line=i + 1)
        if limit and len(out) >= limit:
            break
    return out


def _load_hub(dataset_id: str, *, split: str, limit: int | None) -> list[Trace]:
    try:
        import datasets  # optional dependency (extra "eval")
    except ImportError:
        raise DataFormatError(f"'{dataset_id}' is not a local file; loading a Hugging Face dataset needs "
                              "`pip install datasets`", path=dataset_id) from None
    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:
        raise DataFormatError(f"could not load Hugging Face dataset '{dataset_id}' (offline?): {exc}",
                              path=dataset_id) from None
    records = ds if limit is None else ds.select(range(min(limit, len(ds))))
    return [parse_record(dict(r), path=dataset_id, line=i + 1, index=i) for i, r in enumerate(records)]


def write_jsonl(traces: Iterable[Trace | dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """Write traces (or raw records) as JSONL, atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for t in traces:
            rec = t.to_record() if isinstance(t, Trace) else t
            fh.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    os.replace(tmp, p)


def tools_in(traces: Iterable[Trace]) -> dict[str, dict[str, Any]]:
    """Tool definitions by name, from the records' ``tools`` (the first definition wins) and calls. Names defined
    with different parameters in different records (xLAM has many) are reported as a
    :class:`ConflictingToolsWarning`."""
    defs: dict[str, dict[str, Any]] = {}
    first: dict[str, str] = {}
    conflicts: dict[str, tuple[str, str]] = {}
    called: list[str] = []
    for t in traces:
        for d in t.tools:
            name = d["name"]
            if name not in defs:
                defs[name], first[name] = d, t.id
            elif d.get("parameters") != defs[name].get("parameters") and name not in conflicts:
                conflicts[name] = (first[name], t.id)
        called.extend(c.name for c in t.calls)
    if conflicts:
        shown = "; ".join(f"'{n}' (records {a!r} and {b!r})" for n, (a, b) in list(conflicts.items())[:5])
        warnings.warn(f"{len(conflicts)} tool name(s) have different parameters in different records; the first "
                      f"definition of each is used: {shown}", ConflictingToolsWarning, stacklevel=2)
    for name in called:
        defs.setdefault(name, {"name": name, "description": "", "parameters": {"type": "object", "properties": {}}})
    return defs
