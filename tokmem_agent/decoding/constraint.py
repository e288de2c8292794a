"""JSON-schema constraint for a tool's arguments (xgrammar), masked over the FULL logit width.

After memory token k the controller decodes tool k's arguments under k's JSON schema::

    constraint = SchemaConstraint(tokenizer, total_vocab_size)   # total = V + N (the logits' width)
    m = constraint.matcher(tool.parameters)                       # compiled once per schema, then cached
    while not m.is_done():
        tok = int(torch.argmax(m.mask_logits(logits)))
        m.advance(tok)
        logits = session.feed([tok])

What the mask allows: only tokens of the tokenizer's vocabulary that keep the text a prefix of one compact
JSON object valid against the schema (``separators=(",", ":")``, no whitespace between elements — the form
of the training targets). Everything else is ``-inf``: every id >= the tokenizer's vocabulary (the
embedding's padding ids *and* the memory tokens — a memory token never appears inside arguments), and the
tokenizer's special tokens (``<|im_end|>``, ``<|im_start|>`` …: xgrammar would otherwise let them through
inside strings as literal text).

Stop tokens: the grammar never needs one. The root is an object, so the grammar is complete exactly when
its closing ``}`` is accepted; the matcher then reports :meth:`ArgumentMatcher.is_done` and the controller
lifts the constraint. Inside the object every stop/special token is masked. Should a caller keep masking
after the object is complete, only the tokenizer's stop (eos) ids are allowed and ``advance`` accepts them
as a no-op.

Property order: an xgrammar JSON-schema grammar fixes the order of an object's properties (the declared
order). Our training targets are not consistent (SGD arguments are sorted by key, xLAM's follow the
schema), so by default (``property_order="declared_or_sorted"``) a matcher runs two grammars side by side,
declared and alphabetical order, allows the union of their masks and drops the one that rejects a token
(xgrammar 0.2.8 cannot express both orders in one grammar: an ``anyOf`` of the two gets both branches in
the first branch's order).

Objects that declare ``properties`` take no other keys (the root always, as validation.check_arguments
demands); property-less objects (free-form dicts) stay open.

Unsupported schemas never crash: when xgrammar cannot compile a schema, the matcher falls back (with a
:class:`ConstraintWarning`, once per schema) first to the schema's top-level shape (its property names and
required keys, values any JSON), then to a generic JSON object. Keywords the grammar does not enforce
(``not``, ``if``/``then``/``else``, multi-branch ``allOf``, ``dependentSchemas``, and string length bounds
above ``max_string_bound``, dropped because xgrammar's compile time grows ~20 ms per unit of length) also
warn once; validation after decoding still checks them. See docs/design/constrained-decoding.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import DEFAULT_MAX_STRING_BOUND, PROPERTY_ORDERS
from ..errors import GenerationError

log = logging.getLogger(__name__)

__all__ = ["PROPERTY_ORDERS", "ArgumentMatcher", "ConstraintWarning", "SchemaConstraint"]

#: The training targets' separators (``json.dumps(args, separators=(",", ":"), ensure_ascii=False)``).
SEPARATORS = (",", ":")
_GENERIC = {"type": "object"}
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_NUMPY_DTYPES = (torch.float32, torch.float16, torch.float64)


class ConstraintWarning(UserWarning):
    """A schema could not be compiled as given; a looser grammar is used instead."""


def _xgr() -> Any:
    try:
        import xgrammar
    except ImportError as exc:  # pragma: no cover - xgrammar is a hard dependency
        raise ImportError("constrained argument decoding needs xgrammar: `pip install xgrammar`") from exc
    return xgrammar


def schema_hash(schema: Any, property_order: str = "declared_or_sorted",
                max_string_bound: int = DEFAULT_MAX_STRING_BOUND) -> str:
    """Cache key: sha256 (16 hex) of the schema's JSON and the grammar options. Keys are NOT sorted: the
    declared property order is part of the grammar."""
    blob = json.dumps([schema, property_order, max_string_bound], ensure_ascii=False, separators=SEPARATORS,
                      default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ----- schema preparation -----------------------------------------------------------------------------
def _normalise_root(schema: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The schema with an object root, or (None, reason) when it cannot describe an object."""
    if not isinstance(schema, dict):
        return None, f"schema is a {type(schema).__name__}, not a JSON object"
    if not schema:
        return dict(_GENERIC), None
    typ = schema.get("type")
    if typ is None:
        return {"type": "object", **schema}, None
    if typ == "object":
        return schema, None
    if isinstance(typ, list) and "object" in typ:
        return {**schema, "type": "object"}, None
    return None, f"the arguments must be one JSON object but the schema's root type is {typ!r}"


_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                  "unevaluatedProperties", "unevaluatedItems", "propertyNames")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _transform(schema: Any, fn: Any) -> Any:
    """Apply ``fn`` to every (sub)schema, children first; returns new dicts, never mutates."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {k: _transform(v, fn) for k, v in out[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_transform(v, fn) for v in out[key]]
    for key in _SUBSCHEMA_ONE:
        if isinstance(out.get(key), dict):
            out[key] = _transform(out[key], fn)
    return fn(out)


def _close(node: dict[str, Any]) -> dict[str, Any]:
    """Objects that declare properties take no others unless the schema says so (xgrammar's strict mode,
    but leaving property-less objects — free-form dicts — open)."""
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node \
            and "unevaluatedProperties" not in node and "patternProperties" not in node:
        node["additionalProperties"] = False
    return node


def _sort(node: dict[str, Any]) -> dict[str, Any]:
    if isinstance(node.get("properties"), dict):
        node["properties"] = dict(sorted(node["properties"].items()))
    return node


def _relax_lengths(limit: int) -> Any:
    def fn(node: dict[str, Any]) -> dict[str, Any]:
        for k in ("minLength", "maxLength"):
            if isinstance(node.get(k), int) and node[k] > limit:
                del node[k]
        return node

    return fn


def _prepare(root: dict[str, Any], property_order: str, max_string_bound: int) -> list[dict[str, Any]]:
    """The schema(s) actually compiled: closed objects, long string bounds dropped, one schema per requested
    property order (deduplicated)."""
    closed = _transform(_transform(root, _relax_lengths(max_string_bound)), _close)
    # the root never takes undeclared keys: validation.check_arguments rejects them
    if "additionalProperties" not in closed and "unevaluatedProperties" not in closed \
            and "patternProperties" not in closed:
        closed["additionalProperties"] = False
    if property_order == "declared":
        return [closed]
    srt = _transform(closed, _sort)
    if property_order == "sorted" or json.dumps(srt) == json.dumps(closed):
        return [srt]
    return [closed, srt]


def _unenforced(schema: Any, max_string_bound: int) -> list[str]:
    """Keywords the grammar does not enforce (xgrammar 0.2.8 compiles them but ignores them, or supports
    them only in part, or we drop them); arguments may then fail the validation that follows decoding."""
    found: set[str] = set()

    def visit(node: dict[str, Any]) -> dict[str, Any]:
        found.update(k for k in ("not", "if", "then", "else", "dependentSchemas") if k in node)
        found.update(f"{k} > {max_string_bound}" for k in ("minLength", "maxLength")
                     if isinstance(node.get(k), int) and node[k] > max_string_bound)
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) > 1:
            found.add("allOf")
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            found.add("$ref (non-local)")
        return node

    _transform(schema, visit)
    return sorted(found)


def _shape(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The top-level shape only: property names and required keys, each value any JSON value."""
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return None
    req = schema.get("required")
    required = [k for k in req if isinstance(k, str) and k in props] if isinstance(req, list) else []
    return {"type": "object", "properties": {str(k): {} for k in props}, "required": required}


# ----- per-tokenizer state (shared by every SchemaConstraint of one tokenizer) ------------------------
@dataclass
class _Compiled:
    grammars: list[Any]  # xgrammar.CompiledGrammar, one per property order
    tier: str  # "schema" | "shape" | "generic"
    reason: str | None  # why it fell back, or which keywords the grammar leaves to validation


class _TokenizerState:
    """xgrammar's TokenizerInfo + compiler for one tokenizer, and the compiled-grammar cache (LRU)."""

    def __init__(self, tokenizer: Any, cache_size: int):
        xgr = _xgr()
        vocab = tokenizer.get_vocab()
        self.n_tokens = max(len(vocab), max(vocab.values(), default=-1) + 1)
        special = {int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []) if i is not None}
        for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
            if getattr(tok, "special", False):
                special.add(int(i))
        self.special_ids = sorted(i for i in special if 0 <= i < self.n_tokens)
        eos = getattr(tokenizer, "eos_token_id", None)
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        self.stop_ids = sorted({int(i) for i in eos_ids if i is not None and 0 <= i < self.n_tokens})
        # Detect the vocabulary's encoding (byte-level BPE, byte fallback, …) the usual way, then rebuild the
        # info with the special tokens blanked: xgrammar treats empty tokens as special and never accepts them
        # (by default it would let "<|im_start|>" through inside a string).
        base = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=self.n_tokens,
                                                  stop_token_ids=self.stop_ids or None)
        encoded = [""] * self.n_tokens
        for tok, i in vocab.items():
            if 0 <= i < self.n_tokens:
                encoded[i] = tok
        for i in self.special_ids:
            encoded[i] = ""
        meta = json.loads(base.dump_metadata())
        if self.stop_ids:
            meta["stop_token_ids"] = self.stop_ids
        self.info = xgr.TokenizerInfo.from_vocab_and_metadata(encoded, json.dumps(meta))
        # our own cache is the only one (xgrammar's would hold a second copy of every grammar)
        self.compiler = xgr.GrammarCompiler(self.info, max_threads=max(1, min(8, os.cpu_count() or 1)),
                                            cache_enabled=False)
        self.cache: OrderedDict[str, _Compiled] = OrderedDict()
        self.cache_size = cache_size
        self.lock = threading.Lock()
        self.hits = self.misses = 0
        self.vocab_len = len(tokenizer)

    def compile(self, schema: Any, property_order: str,
                max_string_bound: int = DEFAULT_MAX_STRING_BOUND) -> tuple[str, _Compiled]:
        key = schema_hash(schema, property_order, max_string_bound)
        with self.lock:
            hit = self.cache.get(key)
            if hit is not None:
                self.cache.move_to_end(key)
                self.hits += 1
                return key, hit
        compiled = self._compile_uncached(schema, property_order, max_string_bound)
        with self.lock:
            self.misses += 1
            self.cache[key] = compiled
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        if compiled.tier == "schema" and compiled.reason:
            warnings.warn(f"argument schema {key}: {compiled.reason}", ConstraintWarning, stacklevel=3)
        elif compiled.tier != "schema":
            warnings.warn(f"argument schema {key} cannot be enforced as given ({compiled.reason}); "
                          f"decoding arguments under the {compiled.tier} fallback grammar instead",
                          ConstraintWarning, stacklevel=3)
        return key, compiled

    def _try(self, schemas: list[dict[str, Any]]) -> list[Any]:
        # strict_mode=False: _prepare closed the objects that declare properties; free-form ones stay open
        return [self.compiler.compile_json_schema(json.dumps(s, ensure_ascii=False), any_whitespace=False,
                                                  separators=SEPARATORS, strict_mode=False) for s in schemas]

    def _compile_uncached(self, schema: Any, property_order: str, max_string_bound: int) -> _Compiled:
        root, reason = _normalise_root(schema)
        if root is not None:
            try:
                grammars = self._try(_prepare(root, property_order, max_string_bound))
                loose = _unenforced(root, max_string_bound)
                note = (f"the grammar does not enforce {', '.join(loose)}; such constraints are only checked "
                        "when the arguments are validated") if loose else None
                return _Compiled(grammars, "schema", note)
            except Exception as exc:  # noqa: BLE001 - xgrammar raises RuntimeError/ValueError/InvalidJSONError…
                reason = f"{type(exc).__name__}: {_one_line(exc)}"
            shape = _shape(root)
            if shape is not None:
                try:
                    return _Compiled(self._try(_prepare(shape, property_order, max_string_bound)), "shape",
                                     reason)
                except Exception as exc:  # noqa: BLE001 - the shape grammar is plain JSON: not expected
                    log.debug("shape grammar failed too: %s", exc)
        return _Compiled(self._try([_GENERIC]), "generic", reason)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    if text.startswith("[") and "] " in text:  # "[09:00:12] /project/cpp/x.cc:83: message"
        text = text.split("] ", 1)[1]
        if ": " in text:
            text = text.split(": ", 1)[1]
    return text[:limit]


_STATES: weakref.WeakKeyDictionary[Any, _TokenizerState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state_for(tokenizer: Any, cache_size: int) -> _TokenizerState:
    """One state per tokenizer object (rebuilt if the tokenizer grew), so a SchemaConstraint rebuilt for a
    wider logit width (tools added) keeps the compiled grammars."""
    with _STATES_LOCK:
        try:
            st = _STATES.get(tokenizer)
        except TypeError:  # unhashable / not weak-referenceable tokenizer: no sharing
            return _TokenizerState(tokenizer, cache_size)
        if st is None or st.vocab_len != len(tokenizer):
            st = _TokenizerState(tokenizer, cache_size)
            try:
                _STATES[tokenizer] = st
            except TypeError:
                pass
        return st


# ----- public API -------------------------------------------------------------------------------------
class SchemaConstraint:
    """Compiles JSON schemas for one tokenizer; caches compiled grammars by schema hash.

    ``total_vocab_size`` is the logits' width: the model's embedding rows (the tokenizer's vocabulary plus
    any padding ids) plus the N memory tokens. Every id >= the tokenizer's vocabulary is always masked.
    ``property_order``: see :data:`PROPERTY_ORDERS`. ``max_string_bound``: see
    :data:`DEFAULT_MAX_STRING_BOUND`. ``cache_size``: compiled grammars kept (LRU), shared by every
    SchemaConstraint of the same tokenizer object.
    """

    def __init__(self, tokenizer: Any, total_vocab_size: int, *, property_order: str = "declared_or_sorted",
                 max_string_bound: int = DEFAULT_MAX_STRING_BOUND, cache_size: int = 1024):
        if property_order not in PROPERTY_ORDERS:
            raise ValueError(f"property_order must be one of {PROPERTY_ORDERS}, got {property_order!r}")
        if total_vocab_size <= 0:
            raise ValueError(f"total_vocab_size must be positive, got {total_vocab_size}")
        self.tokenizer = tokenizer
        self.total_vocab_size = int(total_vocab_size)
        self.property_order = property_order
        self.max_string_bound = int(max_string_bound)
        self._state = _state_for(tokenizer, cache_size)

    @property
    def tokenizer_vocab_size(self) -> int:
        """Ids below this come from the tokenizer; ids at or above it (padding, memory tokens) are masked."""
        return self._state.n_tokens

    @property
    def cache_info(self) -> dict[str, int]:
        """Compiled-grammar cache counters (shared by every constraint of this tokenizer)."""
        st = self._state
        return {"hits": st.hits, "misses": st.misses, "size": len(st.cache)}

    def compile(self, schema: dict[str, Any]) -> tuple[str, str]:
        """Compile (or fetch from the cache) ``schema``'s grammar; returns (schema hash, tier)."""
        key, compiled = self._state.compile(schema, self.property_order, self.max_string_bound)
        return key, compiled.tier

    def matcher(self, schema: dict[str, Any]) -> ArgumentMatcher:
        """A fresh matcher (one per call being decoded) over the cached compiled grammar of ``schema``."""
        key, compiled = self._state.compile(schema, self.property_order, self.max_string_bound)
        return ArgumentMatcher(self._state, compiled, key, self.total_vocab_size, self.tokenizer)


class ArgumentMatcher:
    """Incremental state of one argument object being decoded. Not thread-safe (one per sequence)."""

    def __init__(self, state: _TokenizerState, compiled: _Compiled, key: str, total_vocab_size: int,
                 tokenizer: Any = None):
        xgr = _xgr()
        self._st = state
        self._tok = tokenizer
        self.schema_hash = key
        #: "schema" (the schema as given), "shape" or "generic" (fallbacks, see the module doc)
        self.tier = compiled.tier
        self.fallback_reason = compiled.reason
        self.total_vocab_size = total_vocab_size
        self._n = state.n_tokens
        self._width = min(self._n, total_vocab_size)  # tokenizer ids present in the logits
        self._all = [xgr.GrammarMatcher(g, terminate_without_stop_token=True) for g in compiled.grammars]
        self._live = list(self._all)  # the grammars (property orders) still consistent with the text
        with torch.device("cpu"):  # xgrammar fills bitmasks on the CPU, whatever the model's device
            self._bitmask = xgr.allocate_token_bitmask(1, self._n)
            self._scratch = xgr.allocate_token_bitmask(1, self._n) if len(self._all) > 1 else None
        self._fresh = False  # the bitmask describes the current state
        self._stop = torch.tensor([i for i in state.stop_ids if i < total_vocab_size], dtype=torch.long,
                                  device="cpu")  # an index: valid on logits of any device
        self.ids: list[int] = []

    # ----- state --------------------------------------------------------------------------------------
    def is_done(self) -> bool:
        """The JSON object is complete (its closing brace accepted): lift the constraint."""
        return any(m.is_terminated() for m in self._live)

    def allowed_stop(self) -> bool:
        """Whether the argument text could end here (a complete object; for an object root == is_done)."""
        return any(m.is_terminated() or m.is_completed() for m in self._live)

    def reset(self) -> None:
        for m in self._all:
            m.reset()
        self._live = list(self._all)
        self.ids.clear()
        self._fresh = False

    # ----- masking ------------------------------------------------------------------------------------
    def _fill(self) -> torch.Tensor:
        if not self._fresh:
            self._live[0].fill_next_token_bitmask(self._bitmask)
            for m in self._live[1:]:  # union of the live grammars' masks
                m.fill_next_token_bitmask(self._scratch)
                np.bitwise_or(self._bitmask.numpy(), self._scratch.numpy(), out=self._bitmask.numpy())
            self._fresh = True
        return self._bitmask

    def allowed_mask(self) -> torch.Tensor:
        """Bool [total_vocab_size]: True where the next token is allowed (for tests and debugging)."""
        out = torch.zeros(self.total_vocab_size, device="cpu")
        return torch.isfinite(self.mask_logits(out))

    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """A copy of ``logits`` [..., total_vocab_size] with every disallowed id set to -inf."""
        if logits.shape[-1] != self.total_vocab_size:
            raise ValueError(f"logits have width {logits.shape[-1]}, the constraint was built for "
                             f"{self.total_vocab_size} (tokenizer vocabulary + padding + memory tokens)")
        x = logits.detach()
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.total_vocab_size)
        out = _copy(flat)
        w = self._width
        if self.is_done():  # only the stop token(s) after the object; the caller normally stops earlier
            keep = out[:, self._stop].clone() if len(self._stop) else None
            out.fill_(float("-inf"))
            if keep is not None:
                out[:, self._stop] = keep
            return out.reshape(*lead, self.total_vocab_size)
        bitmask = self._fill()
        if out.is_cpu and out.dtype in _KERNEL_DTYPES:
            xgr = _xgr()
            bm = bitmask if out.shape[0] == 1 else bitmask.expand(out.shape[0], -1).contiguous()
            xgr.apply_token_bitmask_inplace(out[:, :w], bm, vocab_size=w, backend="cpu")
        else:  # other devices/dtypes: unpack the bits with torch
            out[:, :w].masked_fill_(~self._unpack(bitmask, w).to(out.device), float("-inf"))
        if w < self.total_vocab_size:
            out[:, w:] = float("-inf")  # padding ids of the embedding and the memory tokens
        return out.reshape(*lead, self.total_vocab_size)

    @staticmethod
    def _unpack(bitmask: torch.Tensor, width: int) -> torch.Tensor:
        shifts = torch.arange(32, dtype=torch.int32, device=bitmask.device)
        return ((bitmask[0].unsqueeze(-1) >> shifts) & 1).bool().reshape(-1)[:width]

    # ----- advancing ----------------------------------------------------------------------------------
    def advance(self, token_id: int) -> None:
        """Accept the generated token; raise GenerationError (state unchanged) if the grammar rejects it."""
        tok = int(token_id)
        if self.is_done():
            if tok in self._st.stop_ids:
                return
            raise GenerationError(f"token {tok} after a complete argument object")
        if not 0 <= tok < self._width:
            what = "a memory token or padding id" if tok >= self._n else "outside the logits"
            raise GenerationError(f"token {tok} is not allowed inside tool arguments ({what})")
        # a rejected token leaves an xgrammar matcher unchanged: on error no state changed at all
        live = [m for m in self._live if m.accept_token(tok)]
        if not live:
            raise GenerationError(f"token {tok} ({self._piece(tok)!r}) does not fit the argument schema after "
                                  f"{self._text()!r}")
        self._live = live
        self.ids.append(tok)
        self._fresh = False

    def _piece(self, tok: int) -> str:
        try:
            return self._tok.decode([tok]) if self._tok is not None else str(tok)
        except Exception:  # noqa: BLE001
            return str(tok)

    def _text(self) -> str:
        try:
            return self._tok.decode(self.ids)[-80:] if self._tok is not None else str(self.ids[-20:])
        except Exception:  # noqa: BLE001
            return str(self.ids[-20:])


def _copy(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy. CPU float tensors go through numpy: one memcpy, no intra-op thread pool (torch's
    parallel copy stalls for milliseconds when the other core is busy)."""
    if x.is_cpu and x.dtype in _NUMPY_DTYPES and not x.requires_grad:
        return torch.from_numpy(np.array(x.numpy(), copy=True, order="C"))
    return x.clone(memory_format=torch.contiguous_format)
