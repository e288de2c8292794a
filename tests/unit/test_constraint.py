"""The JSON-schema argument constraint (xgrammar) on SmolLM2's real tokenizer (49,152 tokens).

A "model that prefers garbage" (memory tokens, stop/special tokens, non-JSON text, random noise) decoded
greedily under the mask must still give one compact JSON object that validates against the schema.
"""

from __future__ import annotations

import json
import re
import warnings

import jsonschema
import pytest
import torch

from tokmem_agent.decoding.constraint import ConstraintWarning, SchemaConstraint, schema_hash
from tokmem_agent.errors import GenerationError

N_MEM = 5  # memory tokens after the vocabulary
PAD = 3  # padding rows of a (hypothetical) embedding larger than the tokenizer

SCHEMAS = {
    "enum": ({"type": "object", "properties": {
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "level": {"type": "integer", "enum": [1, 2, 3]}}, "required": ["unit", "level"]},
        {"unit": "celsius", "level": 2}),
    "integer": ({"type": "object", "properties": {
        "a": {"type": "integer"}, "b": {"type": "integer", "minimum": -5, "maximum": 5}},
        "required": ["a", "b"]},
        {"a": 1234, "b": -3}),
    "optional": ({"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14}, "hourly": {"type": "boolean"},
        "max_temp": {"type": "number"}},
        "required": ["city"]},
        {"city": "Paris", "days": 3, "max_temp": 21.5}),
    "array": ({"type": "object", "properties": {
        "to": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["work", "home"]}},
        "scores": {"type": "array", "items": {"type": "number"}}},
        "required": ["to"]},
        {"to": ["ana@example.com", "bo"], "tags": ["work"], "scores": [1.5, -2]}),
    "nested": ({"type": "object", "properties": {
        "title": {"type": "string"},
        "start": {"type": "object", "properties": {"date": {"type": "string"}, "hour": {"type": "integer"}},
                  "required": ["date"]},
        "attendees": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "email": {"type": "string"}}, "required": ["name"]}},
        "all_day": {"type": "boolean"}},
        "required": ["title", "start"]},
        {"title": "Sync", "start": {"date": "2025-06-02", "hour": 9}, "attendees": [{"name": "Ana"}],
         "all_day": False}),
    "no_params": ({"type": "object", "properties": {}, "required": []}, {}),
}

STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')


def compact(args: dict) -> str:
    return json.dumps(args, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture(scope="module")
def tok(smollm2_tokenizer):
    return smollm2_tokenizer


@pytest.fixture(scope="module")
def V(tok):
    return len(tok)


@pytest.fixture(scope="module")
def sc(tok, V):
    return SchemaConstraint(tok, V + N_MEM)


@pytest.fixture(scope="module")
def special_ids(tok):
    return sorted(set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special})


@pytest.fixture(scope="module")
def closers(tok, V):
    """Ids whose text contains a character that ends a string, an array or an object."""
    pieces = tok.convert_ids_to_tokens(list(range(V)))
    return torch.tensor([i for i, p in enumerate(pieces) if p and any(c in p for c in '"]}')])


@pytest.fixture(scope="module")
def garbage_ids(tok):
    ids = set()
    for text in ["}}]] not json at all ,,, ", "Sure! Here are the arguments:", "\n\n  ", "<tool_call>"]:
        ids.update(tok.encode(text, add_special_tokens=False))
    return torch.tensor(sorted(ids))


def garbage_model(step: int, gen: torch.Generator, width: int, V: int, special_ids, garbage_ids, closers):
    """Logits of a model that wants anything but the schema: a memory token first, then stop/special
    tokens, then non-JSON text (its first 12 steps), over random noise with a pull towards closing
    characters (so that free strings end)."""
    logits = torch.randn(width, generator=gen)
    logits[V:] += 100.0  # memory tokens (and padding ids) win every unmasked argmax
    logits[special_ids] += 80.0
    if step < 12:
        logits[garbage_ids] += 60.0
    logits[closers] += 6.0
    return logits


def decode(matcher, model, limit: int = 600) -> list[int]:
    ids = []
    for step in range(limit):
        if matcher.is_done():
            break
        scores = matcher.mask_logits(model(step))
        tok_id = int(torch.argmax(scores))
        assert torch.isfinite(scores[tok_id]), "every token masked"
        matcher.advance(tok_id)
        ids.append(tok_id)
    return ids


def assert_compact(text: str) -> None:
    outside_strings = STRING_RE.sub('""', text)
    assert not re.search(r"\s", outside_strings), f"whitespace between JSON elements: {text!r}"


# ----- garbage in, valid JSON out ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SCHEMAS))
@pytest.mark.parametrize("seed", [0, 1])
def test_garbage_model_decodes_valid_compact_json(name, seed, sc, tok, V, special_ids, garbage_ids, closers):
    schema, _ = SCHEMAS[name]
    gen = torch.Generator().manual_seed(seed)
    m = sc.matcher(schema)
    ids = decode(m, lambda step: garbage_model(step, gen, V + N_MEM, V, special_ids, garbage_ids, closers))
    assert m.is_done() and m.allowed_stop(), tok.decode(ids)
    assert all(i < V for i in ids), "a memory token inside the arguments"
    assert not set(ids) & set(special_ids), "a special token inside the arguments"
    text = tok.decode(ids)
    value = json.loads(text)
    assert isinstance(value, dict)
    jsonschema.validate(value, schema)
    assert_compact(text)
    assert m.ids == ids


@pytest.mark.parametrize("seed", range(4))
def test_pure_random_logits_with_memory_token_spike(seed, sc, tok, V):
    schema = SCHEMAS["enum"][0]  # no free strings: random choices always end
    gen = torch.Generator().manual_seed(seed)

    def model(step):
        logits = torch.randn(V + N_MEM, generator=gen)
        logits[V + seed % N_MEM] = 1e4
        return logits

    m = sc.matcher(schema)
    text = tok.decode(decode(m, model))
    jsonschema.validate(json.loads(text), schema)


# ----- what the mask allows ------------------------------------------------------------------------
def test_memory_padding_and_special_ids_are_never_allowed(tok, V, special_ids):
    total = V + PAD + N_MEM  # an embedding padded beyond the tokenizer, then the memory tokens
    sc = SchemaConstraint(tok, total)
    assert sc.tokenizer_vocab_size == V
    m = sc.matcher(SCHEMAS["optional"][0])
    states = []
    for piece in ['{"', 'city', '":"', 'Par']:  # start, key, value, inside a free string
        allowed = m.allowed_mask()
        assert allowed.shape == (total,)
        assert not allowed[V:].any(), "padding or memory ids allowed"
        assert not allowed[special_ids].any(), "special tokens allowed"
        states.append(int(allowed.sum()))
        [tid] = tok.encode(piece, add_special_tokens=False)
        m.advance(tid)
    allowed = m.allowed_mask()
    assert allowed.sum() > 40_000 and not allowed[V:].any() and not allowed[special_ids].any()
    assert states[0] < 10  # structural position: a handful of tokens


def test_mask_logits_keeps_values_shapes_and_input(sc, V):
    m = sc.matcher(SCHEMAS["integer"][0])
    logits = torch.randn(V + N_MEM)
    before = logits.clone()
    out = m.mask_logits(logits)
    assert torch.equal(logits, before), "input mutated"
    keep = torch.isfinite(out)
    assert torch.equal(out[keep], logits[keep]) and torch.isneginf(out[~keep]).all()
    batch = torch.stack([logits, logits + 1])  # [2, W]: one matcher state, the same mask on every row
    outb = m.mask_logits(batch)
    assert outb.shape == batch.shape and torch.equal(torch.isfinite(outb[0]), keep)
    assert torch.equal(torch.isfinite(outb[1]), keep)
    out64 = m.mask_logits(logits.double())  # dtype without the kernel: torch fallback
    assert out64.dtype == torch.float64 and torch.equal(torch.isfinite(out64), keep)
    with pytest.raises(ValueError, match="width"):
        m.mask_logits(torch.randn(V))


# ----- advance -------------------------------------------------------------------------------------
def test_advance_rejects_disallowed_tokens_and_keeps_state(sc, tok, V):
    m = sc.matcher(SCHEMAS["integer"][0])
    with pytest.raises(GenerationError, match="memory token"):
        m.advance(V + 1)
    with pytest.raises(GenerationError):
        m.advance(V + N_MEM + 10)
    with pytest.raises(GenerationError):
        m.advance(tok.eos_token_id)
    [hello] = tok.encode("hello", add_special_tokens=False)
    with pytest.raises(GenerationError, match="does not fit"):
        m.advance(hello)
    for tid in tok.encode('{"a":12,"b":', add_special_tokens=False):
        m.advance(tid)
    [quote] = tok.encode('"', add_special_tokens=False)
    with pytest.raises(GenerationError):
        m.advance(quote)  # b is an integer
    for tid in tok.encode("7", add_special_tokens=False):  # maximum 5
        with pytest.raises(GenerationError):
            m.advance(tid)
    for tid in tok.encode("-4}", add_special_tokens=False):  # the state survived every rejection
        m.advance(tid)
    assert m.is_done() and tok.decode(m.ids) == '{"a":12,"b":-4}'


def test_done_object_then_stop_tokens(sc, tok, V):
    m = sc.matcher(SCHEMAS["no_params"][0])
    assert not m.is_done() and not m.allowed_stop()
    for tid in tok.encode("{}", add_special_tokens=False):
        m.advance(tid)
    assert m.is_done() and m.allowed_stop()
    allowed = m.allowed_mask()
    assert allowed.nonzero().flatten().tolist() == [tok.eos_token_id]  # only the stop token after it
    m.advance(tok.eos_token_id)  # no-op
    with pytest.raises(GenerationError, match="complete"):
        m.advance(tok.encode("x", add_special_tokens=False)[0])
    m.reset()
    assert not m.is_done() and m.ids == []


# ----- the training targets are accepted as tokenized ---------------------------------------------
@pytest.mark.parametrize("name", list(SCHEMAS))
def test_compact_training_targets_are_accepted_in_declared_and_sorted_order(name, sc, tok):
    schema, args = SCHEMAS[name]
    for target in (args, dict(sorted(args.items()))):
        m = sc.matcher(schema)
        for tid in tok.encode(compact(target), add_special_tokens=False):
            assert m.allowed_mask()[tid]
            m.advance(tid)
        assert m.is_done(), compact(target)


def test_declared_order_only(tok, V):
    strict = SchemaConstraint(tok, V + N_MEM, property_order="declared")
    schema = {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "integer"}},
              "required": ["b", "a"]}
    m = strict.matcher(schema)
    for tid in tok.encode('{"b":1,"a":2}', add_special_tokens=False):
        m.advance(tid)
    assert m.is_done()
    m = strict.matcher(schema)
    with pytest.raises(GenerationError):
        for tid in tok.encode('{"a":2,"b":1}', add_special_tokens=False):
            m.advance(tid)
    with pytest.raises(ValueError):
        SchemaConstraint(tok, V, property_order="random")


# ----- the compile cache ---------------------------------------------------------------------------
def test_compiled_grammar_cache_hits_for_the_same_schema(tok, V):
    sc = SchemaConstraint(tok, V + N_MEM)
    schema = {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["q"], "x-test": "cache"}
    before = sc.cache_info
    m1 = sc.matcher(schema)
    mid = sc.cache_info
    assert mid["misses"] == before["misses"] + 1
    m2 = sc.matcher(json.loads(json.dumps(schema)))  # equal schema, another dict
    assert sc.cache_info["hits"] == mid["hits"] + 1 and sc.cache_info["misses"] == mid["misses"]
    assert m1.schema_hash == m2.schema_hash and m1 is not m2
    wider = SchemaConstraint(tok, V + N_MEM + 2)  # tools added: rebuilt for the new width, same cache
    wider.matcher(schema)
    assert wider.cache_info["hits"] == mid["hits"] + 2
    # matchers over one cached grammar are independent
    for tid in tok.encode('{"q":"', add_special_tokens=False):
        m1.advance(tid)
    assert m2.ids == [] and not m2.allowed_mask()[tok.encode("hello", add_special_tokens=False)[0]]
    # property order is part of the key
    swapped = {**schema, "properties": dict(reversed(list(schema["properties"].items())))}
    assert schema_hash(swapped) != schema_hash(schema)


# ----- unsupported schemas -------------------------------------------------------------------------
@pytest.mark.parametrize("schema,tier", [
    ({"type": "object", "properties": {"d": {"type": "str"}, "n": {"type": "integer"}}, "required": ["d"]},
     "shape"),
    ({"type": "object", "properties": {"d": {"type": "integer", "minimum": 5, "maximum": 1}}}, "shape"),
    ({"type": "object", "properties": {"d": {"enum": []}}}, "shape"),
    ({"type": "string"}, "generic"),
    ({"type": "object", "properties": "oops"}, "generic"),
    (None, "generic"),
])
def test_unsupported_schemas_fall_back_with_a_warning(schema, tier, tok, V, special_ids, garbage_ids, closers):
    sc = SchemaConstraint(tok, V + N_MEM)
    with pytest.warns(ConstraintWarning, match="cannot be enforced"):
        m = sc.matcher(schema)
    assert m.tier == tier and m.fallback_reason
    gen = torch.Generator().manual_seed(0)
    ids = decode(m, lambda step: garbage_model(step, gen, V + N_MEM, V, special_ids, garbage_ids, closers))
    value = json.loads(tok.decode(ids))
    assert isinstance(value, dict) and all(i < V for i in ids)
    if tier == "shape":
        assert set(value) <= set(schema["properties"]) and set(schema.get("required", [])) <= set(value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc.matcher(schema)  # cached: warned once


def test_unenforced_keywords_warn_but_compile(tok, V):
    sc = SchemaConstraint(tok, V + N_MEM)
    schema = {"type": "object", "properties": {"a": {"type": "integer", "not": {"const": 0}}}, "required": ["a"]}
    with pytest.warns(ConstraintWarning, match="does not enforce not"):
        m = sc.matcher(schema)
    assert m.tier == "schema"


def test_long_string_bounds_are_left_to_validation(tok, V, special_ids, garbage_ids, closers):
    sc = SchemaConstraint(tok, V + N_MEM)
    schema = {"type": "object", "properties": {
        "code": {"type": "string", "minLength": 2, "maxLength": 3},  # short: in the grammar
        "body": {"type": "string", "maxLength": 500}},  # long: seconds of compile if unrolled; dropped
        "required": ["code", "body"]}
    with pytest.warns(ConstraintWarning, match="maxLength > 16"):
        m = sc.matcher(schema)
    assert m.tier == "schema"
    for seed in range(3):
        m.reset()
        gen = torch.Generator().manual_seed(seed)
        ids = decode(m, lambda step, gen=gen: garbage_model(step, gen, V + N_MEM, V, special_ids, garbage_ids,
                                                            closers))
        value = json.loads(tok.decode(ids))
        assert 2 <= len(value["code"]) <= 3


def test_loose_roots_are_objects(sc, tok):
    for schema in ({}, {"properties": {"a": {"type": "boolean"}}},
                   {"type": ["object", "null"], "properties": {"a": {"type": "boolean"}}}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            m = sc.matcher(schema)
        assert m.tier == "schema"
        for tid in tok.encode('{"a":true}' if schema else "{}", add_special_tokens=False):
            m.advance(tid)
        assert m.is_done()


# ----- another tokenizer ---------------------------------------------------------------------------
def test_tiny_tokenizer(tiny_tokenizer):
    n = len(tiny_tokenizer)
    sc = SchemaConstraint(tiny_tokenizer, n + 2)
    schema = SCHEMAS["optional"][0]
    m = sc.matcher(schema)
    gen = torch.Generator().manual_seed(0)
    quote = tiny_tokenizer.convert_tokens_to_ids('"')

    def model(step):
        logits = torch.randn(n + 2, generator=gen)
        logits[n:] += 100
        logits[quote] += 5
        return logits

    ids = decode(m, model)
    assert all(i < n for i in ids)
    jsonschema.validate(json.loads(tiny_tokenizer.decode(ids)), schema)
