"""Evaluation datasets as lists of :class:`~tokmem_agent.traces.Trace` (no torch).

* :func:`load_apigen` — any APIGen-style JSONL file (ours or the original xLAM shape);
* :func:`sgd`, :func:`xlam` — the shared files under ``<shared>/data/`` (``<shared>`` is
  ``$TOKMEM_SHARED_DIR``, else ``<repo>/../shared``);
* :func:`filter_by_tools`, :func:`top_tools`, :func:`cap_per_tool` — subsetting;
* :func:`bfcl` — single-turn BFCL categories from the installed ``bfcl-eval`` package, and
  :func:`bfcl_ast_check` — BFCL's own AST checker, imported offline.

Records are validated by :func:`tokmem_agent.traces.parse_record`; a bad record raises
:class:`~tokmem_agent.errors.DataFormatError` whose message starts with ``file:line``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import sys
import types
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tokmem_agent.errors import DataFormatError, TokMemError
from tokmem_agent.traces import Call, Trace, iter_jsonl, parse_record

__all__ = [
    "BFCL_CATEGORIES", "DatasetNotFoundError", "MissingDependencyError", "bfcl", "bfcl_ast_check",
    "bfcl_check_trace", "bfcl_data_dir", "bfcl_schema", "cap_per_tool", "filter_by_tools", "load_apigen",
    "sgd", "shared_dir", "top_tools", "xlam",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV = "TOKMEM_SHARED_DIR"


class DatasetNotFoundError(TokMemError, FileNotFoundError):
    """A dataset file or directory is absent."""


class MissingDependencyError(TokMemError, ImportError):
    """An optional package needed for this dataset/checker is not installed."""


# ----- APIGen JSONL -------------------------------------------------------------------------------------
# Fields parse_record turns into Trace attributes; any other field of a record is kept in Trace.extra
# (so Trace.to_record() round-trips it): n_calls, dialogue_id, ungrounded_args, fixes, …
_TRACE_FIELDS = {"id", "query", "tools", "answers", "calls", "messages", "results", "between", "response",
                 "source"}


def load_apigen(path: str | os.PathLike[str], *, limit: int | None = None) -> list[Trace]:
    """Load an APIGen-style JSONL file (ours, or the original xLAM shape with JSON-string fields).

    Every record is validated by :func:`~tokmem_agent.traces.parse_record` (line numbers from
    :func:`~tokmem_agent.traces.iter_jsonl`); in addition a record's ``n_calls``, when present, must
    equal its number of answers. Fields that are not Trace attributes go to ``Trace.extra``.
    Raises :class:`DataFormatError` (``"<file>:<line>: <problem> (field '<field>')"``) on the first bad
    record, :class:`DatasetNotFoundError` if the file does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(f"no such dataset file: {p}")
    out: list[Trace] = []
    for lineno, obj in iter_jsonl(p):
        trace = parse_record(obj, path=str(p), line=lineno, index=len(out))
        n_calls = obj.get("n_calls")
        if n_calls is not None and n_calls != len(trace.calls):
            raise DataFormatError(f"is {n_calls!r} but the record has {len(trace.calls)} answers",
                                  path=str(p), line=lineno, field="n_calls")
        trace.extra.update({k: v for k, v in obj.items() if k not in _TRACE_FIELDS})
        out.append(trace)
        if limit is not None and len(out) >= limit:
            break
    return out


def shared_dir() -> Path:
    """The shared directory: ``$TOKMEM_SHARED_DIR`` if set, else ``<repo>/../shared``."""
    env = os.environ.get(SHARED_ENV)
    d = Path(env).expanduser() if env else REPO_ROOT.parent / "shared"
    if not d.is_dir():
        how = f"${SHARED_ENV}={env!r}" if env else f"default {d} (set ${SHARED_ENV} to override)"
        raise DatasetNotFoundError(f"shared data directory not found: {how}")
    return d


def _shared_split(corpus: str, split: str, limit: int | None) -> list[Trace]:
    d = shared_dir() / "data" / corpus
    f = d / f"{split}.jsonl"
    if not f.is_file():
        have = sorted(x.stem for x in d.glob("*.jsonl")) if d.is_dir() else []
        raise DatasetNotFoundError(f"{corpus} split {split!r} not found at {f}; available: {have or 'none'}")
    return load_apigen(f, limit=limit)


#: The day SGD's dialogues take place: relative dates in its calls resolve against it (of the 88 dev records
#: whose user says "today" and names no other day, 82 call with 2019-03-01). The harness passes it as
#: ``ControllerConfig.today`` for ``sgd:*`` data unless ``--controller today=…`` says otherwise.
SGD_TODAY = "2019-03-01"


def sgd(split: str = "dev", *, limit: int | None = None) -> list[Trace]:
    """SGD traces from ``<shared>/data/sgd/<split>.jsonl`` (``train`` or ``dev``; held-out splits if
    present). Record fields beyond the Trace attributes (``dialogue_id``, ``ungrounded_args``,
    ``query_ungrounded_args``, ``n_results`` …) are in ``Trace.extra``."""
    return _shared_split("sgd", split, limit)


def xlam(split: str = "test", *, limit: int | None = None) -> list[Trace]:
    """xLAM traces from ``<shared>/data/xlam/<split>.jsonl`` (``train`` or ``test``)."""
    return _shared_split("xlam", split, limit)


# ----- filters ------------------------------------------------------------------------------------------
def filter_by_tools(traces: Iterable[Trace], tool_names: Iterable[str]) -> list[Trace]:
    """Traces whose calls all use tools in ``tool_names`` (order kept; a trace with no call is kept)."""
    allowed = set(tool_names)
    return [t for t in traces if all(c.name in allowed for c in t.calls)]


def top_tools(traces: Iterable[Trace], k: int) -> list[str]:
    """The ``k`` most frequently called tool names (counting every call), most frequent first; ties by
    name."""
    counts = Counter(c.name for t in traces for c in t.calls)
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def _rank(seed: int, trace_id: str) -> str:
    return hashlib.sha1(f"{seed}|{trace_id}".encode()).hexdigest()


def cap_per_tool(traces: Sequence[Trace], n: int, seed: int = 0) -> list[Trace]:
    """At most ``n`` traces per tool, deterministic, keeping both single- and multi-call traces.

    A trace counts once towards each distinct tool it calls and is kept only while all of those tools
    are below ``n``. Candidates are visited in a seeded order that does not depend on the input order
    (``sha1(f"{seed}|{id}")``), with single- and multi-call traces interleaved in proportion to their
    numbers, so the kept set keeps roughly the input's single/multi mix (a plain shuffle would let the
    single-call traces fill the caps first). Traces without calls are dropped. The result keeps the
    input order.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    single = sorted((i for i, t in enumerate(traces) if len(t.calls) == 1),
                    key=lambda i: (_rank(seed, traces[i].id), i))
    multi = sorted((i for i, t in enumerate(traces) if len(t.calls) > 1),
                   key=lambda i: (_rank(seed, traces[i].id), i))
    order = sorted([((r + 0.5) / len(single), 0, i) for r, i in enumerate(single)]
                   + [((r + 0.5) / len(multi), 1, i) for r, i in enumerate(multi)])
    used: Counter[str] = Counter()
    keep: list[int] = []
    for _, _, i in order:
        names = {c.name for c in traces[i].calls}
        if all(used[name] < n for name in names):
            used.update(names)
            keep.append(i)
    return [traces[i] for i in sorted(keep)]


# ----- BFCL ---------------------------------------------------------------------------------------------
BFCL_INSTALL = ("pip install bfcl-eval  (or, without its many API-client dependencies: "
                "pip install --no-deps bfcl-eval)")

#: Single-turn BFCL categories loadable as traces. ``simple`` is an alias of ``simple_python`` (BFCL v3+).
BFCL_CATEGORIES = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel",
                   "parallel_multiple", "irrelevance", "live_simple", "live_multiple", "live_parallel",
                   "live_parallel_multiple", "live_irrelevance", "live_relevance")
_BFCL_ALIASES = {"simple": "simple_python", "java": "simple_java", "javascript": "simple_javascript"}
_NO_CALL_CATEGORIES = {"irrelevance", "live_irrelevance"}

# BFCL's type names (Python-ish, Java, JavaScript) → JSON Schema types; the same table as BFCL's
# GORILLA_TO_OPENAPI, plus the few type names that occur in the data but not in it.
_BFCL_TYPES = {
    "integer": "integer", "number": "number", "float": "number", "string": "string", "boolean": "boolean",
    "bool": "boolean", "array": "array", "list": "array", "dict": "object", "object": "object",
    "tuple": "array", "any": "string", "byte": "integer", "short": "integer", "long": "integer",
    "double": "number", "char": "string", "ArrayList": "array", "Array": "array", "HashMap": "object",
    "Hashtable": "object", "Queue": "array", "Stack": "array", "Any": "string", "String": "string",
    "Bigint": "integer", "Boolean": "boolean", "Set": "array", "": "string",
}
_BFCL_DROP_KEYS = {"optional"}  # non-standard; "required" already says it


def _canonical_category(category: str) -> str:
    cat = _BFCL_ALIASES.get(category, category)
    if cat not in BFCL_CATEGORIES:
        raise ValueError(f"unsupported BFCL category {category!r}; single-turn categories: "
                         f"{', '.join(BFCL_CATEGORIES)} (alias: simple)")
    return cat


def _bfcl_language(category: str) -> str:
    return {"simple_java": "java", "simple_javascript": "javascript"}.get(category, "python")


def bfcl_data_dir() -> Path:
    """Where the installed ``bfcl_eval`` package keeps its data (``…/site-packages/bfcl_eval/data``:
    ``BFCL_v4_<category>.json`` prompts and ``possible_answer/BFCL_v4_<category>.json``)."""
    env = os.environ.get("BFCL_DATA_DIR")
    if env:
        d = Path(env)
    else:
        spec = importlib.util.find_spec("bfcl_eval")
        if spec is None or not spec.submodule_search_locations:
            raise MissingDependencyError(f"BFCL data needs the 'bfcl-eval' package, which is not installed: "
                                         f"{BFCL_INSTALL}")
        d = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not d.is_dir():
        raise DatasetNotFoundError(f"BFCL data directory not found: {d} (reinstall: {BFCL_INSTALL})")
    return d


def _bfcl_file(d: Path, category: str, *, answers: bool = False) -> Path | None:
    """The newest ``BFCL_v<N>_<category>.json`` (exact category: ``multiple`` is not ``live_multiple``)."""
    base = d / "possible_answer" if answers else d
    pat = re.compile(rf"^BFCL_v(\d+)_{re.escape(category)}\.json$")
    found = [(int(m.group(1)), f) for f in base.glob("BFCL_v*.json") if (m := pat.match(f.name))]
    return max(found)[1] if found else None


def bfcl_schema(node: Any) -> Any:
    """A BFCL parameter schema → JSON Schema: ``dict``/``HashMap`` → object, ``float``/``double`` →
    number, ``tuple``/``ArrayList`` → array, ``any``/``char`` → string … (recursively through
    ``properties``, ``items`` and ``additionalProperties``); the non-standard ``optional`` key is
    dropped; objects always get ``properties``. Unknown type names are kept as they are."""
    if isinstance(node, list):
        return [bfcl_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in _BFCL_DROP_KEYS:
            continue
        if k == "type" and isinstance(v, str):
            out[k] = _BFCL_TYPES.get(v, v)
        elif k == "properties" and isinstance(v, dict):
            out[k] = {name: bfcl_schema(s) for name, s in v.items()}
        elif k in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[k] = bfcl_schema(v)
        else:
            out[k] = v
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["properties"] = {}
    return out


class _Omit:
    pass


_OMIT = _Omit()


def _is_omit_marker(v: Any) -> bool:
    return isinstance(v, str) and v == ""


def _first_acceptable(acceptable: Any, schema: Mapping[str, Any], required: bool = False) -> Any:
    """The first acceptable value of a BFCL possible-answer list. ``""`` is BFCL's "may be omitted"
    marker: first → the argument is omitted (_OMIT), unless the parameter is required, when the first
    other value is taken (BFCL's checker would reject the omission)."""
    if not isinstance(acceptable, list):
        return _resolve_nested(acceptable, schema)
    values = [v for v in acceptable if not _is_omit_marker(v)] if required else acceptable[:1]
    if not values or _is_omit_marker(values[0]):
        return _OMIT
    return _resolve_nested(values[0], schema)


def _resolve_nested(value: Any, schema: Mapping[str, Any]) -> Any:
    """BFCL writes dict-typed values (and list-of-dict items) as dicts of acceptable-value lists; resolve
    them recursively to first acceptable values."""
    btype = schema.get("type") if isinstance(schema, Mapping) else None
    if isinstance(value, dict) and btype in ("dict", "object", "HashMap", "Hashtable", None):
        props = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        required = set(schema.get("required", [])) if isinstance(schema, Mapping) else set()
        out = {}
        for k, v in value.items():
            r = _first_acceptable(v, props.get(k, {}), k in required)
            if r is not _OMIT:
                out[k] = r
        return out
    if isinstance(value, list) and btype in ("array", "list", "tuple", "Array", "ArrayList"):
        items = schema.get("items", {}) if isinstance(schema, Mapping) else {}
        if isinstance(items, Mapping) and items.get("type") in ("dict", "object", "HashMap"):
            return [_resolve_nested(x, items) if isinstance(x, dict) else x for x in value]
    return value


def _gold_calls(ground_truth: list[dict[str, Any]], functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    fdocs = {f["name"]: f for f in functions}
    calls = []
    for entry in ground_truth:
        (name, args), = entry.items()
        params = fdocs.get(name, {}).get("parameters") or {}
        props, required = params.get("properties", {}), set(params.get("required", []))
        gold = {}
        for k, acceptable in args.items():
            v = _first_acceptable(acceptable, props.get(k, {}), k in required)
            if v is not _OMIT:
                gold[k] = v
        calls.append({"name": name, "arguments": gold})
    return calls


def bfcl(category: str, *, limit: int | None = None, data_dir: str | os.PathLike[str] | None = None
         ) -> list[Trace]:
    """BFCL single-turn category → traces (from the installed ``bfcl-eval`` package data).

    * ``messages`` = the single turn of ``question`` (user, sometimes a system message first);
    * ``tools`` = the function docs converted to JSON Schema (:func:`bfcl_schema`); the original docs
      are in ``extra["bfcl_functions"]`` (BFCL's checker needs them);
    * ``calls`` = the possible answer with, per argument, the **first** acceptable value (BFCL lists
      several); a first value of ``""`` is BFCL's "may be omitted" marker and the argument is left
      out (for a *required* parameter the first non-``""`` value is taken instead); dict values are
      resolved recursively. Parallel categories' order is BFCL's listing order
      (BFCL itself does not score it). The full answer is in ``extra["bfcl_possible_answer"]``;
    * irrelevance categories have no possible answers: ``calls == []``,
      ``extra["bfcl_possible_answer"] is None``; ``live_relevance`` has no possible answers either,
      but expects some call: ``extra["bfcl_expect_call"]`` says which.

    Raises :class:`MissingDependencyError` if ``bfcl-eval`` is not installed, ``ValueError`` for a
    category that is not single-turn. For Java/JavaScript categories BFCL expects argument values as
    source-code strings; ``extra["bfcl_language"]`` names the language.
    """
    cat = _canonical_category(category)
    d = Path(data_dir) if data_dir is not None else bfcl_data_dir()
    prompts = _bfcl_file(d, cat)
    if prompts is None:
        raise DatasetNotFoundError(f"BFCL category {cat!r}: no BFCL_v*_{cat}.json in {d}")
    answers_file = _bfcl_file(d, cat, answers=True)
    answers: dict[str, tuple[list[Any], int]] = {}
    if answers_file is not None:
        for lineno, obj in iter_jsonl(answers_file):
            if not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("ground_truth"), list):
                raise DataFormatError("needs 'id' and a 'ground_truth' list", path=str(answers_file),
                                      line=lineno)
            answers[obj["id"]] = (obj["ground_truth"], lineno)
    elif cat not in _NO_CALL_CATEGORIES and cat != "live_relevance":
        raise DatasetNotFoundError(f"BFCL category {cat!r}: possible answers missing in "
                                   f"{d / 'possible_answer'}")
    out: list[Trace] = []
    for lineno, obj in iter_jsonl(prompts):
        where = {"path": str(prompts), "line": lineno}
        if not isinstance(obj, dict) or not isinstance(obj.get("function"), list):
            raise DataFormatError("needs a 'function' list", field="function", **where)
        q = obj.get("question")
        if not isinstance(q, list) or len(q) != 1 or not isinstance(q[0], list):
            raise DataFormatError("single-turn categories need exactly one turn", field="question", **where)
        functions = obj["function"]
        gt = None
        if answers_file is not None:
            if obj.get("id") not in answers:
                raise DataFormatError(f"no possible answer for id {obj.get('id')!r} in {answers_file}",
                                      field="id", **where)
            gt = answers[obj["id"]][0]
        try:
            record = {"id": obj.get("id"), "messages": q[0],
                      "tools": [{"name": f.get("name"), "description": f.get("description", ""),
                                 "parameters": bfcl_schema(f.get("parameters") or {"type": "dict"})}
                                for f in functions],
                      "answers": _gold_calls(gt, functions) if gt is not None else [],
                      "source": f"bfcl:{cat}"}
        except (AttributeError, TypeError, ValueError) as exc:
            raise DataFormatError(f"malformed BFCL record: {exc}", **where) from None
        trace = parse_record(record, index=len(out), **where)
        trace.extra.update({"bfcl_category": cat, "bfcl_language": _bfcl_language(cat),
                            "bfcl_functions": functions, "bfcl_possible_answer": gt,
                            "bfcl_expect_call": cat not in _NO_CALL_CATEGORIES})
        out.append(trace)
        if limit is not None and len(out) >= limit:
            break
    return out


# ----- BFCL's own AST checker, imported offline ---------------------------------------------------------
_AST_CHECKER: types.ModuleType | None = None
_STUB_MODEL = "tokmem"


class _ModelConfig:
    underscore_to_dot = False  # our models emit BFCL function names as they are (dots kept)


class _AnyModelConfig(dict):
    def __missing__(self, key: str) -> _ModelConfig:
        return _ModelConfig()


def _load_ast_checker() -> types.ModuleType:
    """Import ``bfcl_eval.eval_checker.ast_eval.ast_checker`` without its model registry.

    The checker imports ``bfcl_eval.constants.model_config`` only for ``MODEL_CONFIG_MAPPING`` (whether a
    model's API turned ``.`` into ``_`` in function names); that module imports every API handler
    (openai, anthropic, google-genai …). It is stubbed — only while the checker module executes — by a
    mapping that says "names unchanged". The checker is loaded under a private module name so a real
    ``bfcl_eval`` import elsewhere in the process is unaffected.
    """
    global _AST_CHECKER
    if _AST_CHECKER is not None:
        return _AST_CHECKER
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"BFCL's AST checker needs the 'bfcl-eval' package: {BFCL_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "eval_checker" / "ast_eval" / "ast_checker.py"
    if not path.is_file():
        raise MissingDependencyError(f"bfcl-eval is installed but has no {path}; upgrade: {BFCL_INSTALL}")
    stub_name = "bfcl_eval.constants.model_config"
    stub = types.ModuleType(stub_name)
    stub.MODEL_CONFIG_MAPPING = _AnyModelConfig()  # type: ignore[attr-defined]
    importlib.import_module("bfcl_eval.constants")  # the real package; only the submodule is stubbed
    saved = sys.modules.get(stub_name)
    sys.modules[stub_name] = stub
    try:
        mspec = importlib.util.spec_from_file_location("_tokmem_bfcl_ast_checker", path)
        if mspec is None or mspec.loader is None:
            raise MissingDependencyError(f"cannot load {path}")
        module = importlib.util.module_from_spec(mspec)
        mspec.loader.exec_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"could not import BFCL's AST checker offline: {exc}") from None
    finally:
        if saved is not None:
            sys.modules[stub_name] = saved
        else:
            sys.modules.pop(stub_name, None)
    _AST_CHECKER = module
    return module


def _to_bfcl_output(model_output: Sequence[Call | Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in model_output:
        if isinstance(c, Call):
            out.append({c.name: dict(c.arguments)})
        elif isinstance(c, Mapping) and isinstance(c.get("name"), str) and set(c) <= {"name", "arguments"} \
                and isinstance(c.get("arguments", {}), Mapping):
            out.append({c["name"]: dict(c.get("arguments", {}))})
        else:
            out.append(dict(c))  # already BFCL's {name: {param: value}}
    return out


def bfcl_ast_check(func_description: list[dict[str, Any]], model_output: Sequence[Call | Mapping[str, Any]],
                   possible_answer: list[dict[str, Any]] | None, category: str) -> dict[str, Any]:
    """Run BFCL's own AST checker (``ast_checker.ast_checker``) on decoded calls.

    ``func_description`` — BFCL function docs (``Trace.extra["bfcl_functions"]``, BFCL types, not the
    converted schema); ``model_output`` — :class:`Call` objects, ``{"name", "arguments"}`` dicts or BFCL's
    ``{name: {param: value}}``; ``possible_answer`` — BFCL's ``ground_truth``
    (``Trace.extra["bfcl_possible_answer"]``); ``category`` — e.g. ``"simple"``, ``"parallel"``,
    ``"live_multiple"``. The language (Python/Java/JavaScript) follows from the category, as in BFCL's
    runner. Returns BFCL's ``{"valid", "error", "error_type"}`` (``error_type`` is ``""`` when valid).

    Irrelevance categories are not AST-checked by BFCL: valid iff no call was made
    (``live_relevance``: iff some call was made), the same rule as BFCL's relevance runner applied to
    already-decoded calls.
    """
    cat = _canonical_category(category)
    output = _to_bfcl_output(model_output)
    if cat in _NO_CALL_CATEGORIES or cat == "live_relevance":
        expect = cat == "live_relevance"
        ok = bool(output) == expect
        return {"valid": ok, "error": [] if ok else [f"expected {'a' if expect else 'no'} function call"],
                "error_type": "" if ok else "relevance_error:decoder_success" if output else
                "relevance_error:decoder_failed"}
    if possible_answer is None:
        raise ValueError(f"category {cat!r} needs a possible answer")
    module = _load_ast_checker()
    language = importlib.import_module("bfcl_eval.constants.enums").Language(_bfcl_language(cat))
    result = module.ast_checker(func_description, output, possible_answer, language, cat, _STUB_MODEL)
    result = dict(result)
    result.setdefault("error", [])
    result["error_type"] = result.get("error_type", "") if not result["valid"] else ""
    return result


def bfcl_check_trace(trace: Trace, pred: Sequence[Call]) -> dict[str, Any]:
    """:func:`bfcl_ast_check` for a trace loaded by :func:`bfcl`."""
    if "bfcl_functions" not in trace.extra:
        raise ValueError(f"trace {trace.id} was not loaded by evals.datasets.bfcl")
    return bfcl_ast_check(trace.extra["bfcl_functions"], pred, trace.extra.get("bfcl_possible_answer"),
                          trace.extra["bfcl_category"])


if __name__ == "__main__":  # pragma: no cover - `python -m evals.datasets <category>` prints one trace
    t = bfcl(sys.argv[1] if len(sys.argv) > 1 else "simple", limit=1)[0]
    print(json.dumps(t.to_record(), indent=1, default=repr)[:4000])
