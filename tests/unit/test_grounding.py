"""Grounded numbers in answers after tool results (tokmem_agent.decoding.grounding)."""

from __future__ import annotations

import pytest
import torch

from tokmem_agent import ConfigError, ControllerConfig, TokMem
from tokmem_agent.decoding.controller import Controller
from tokmem_agent.decoding.grounding import (
    Grounding,
    NumberGround,
    NumberVocab,
    allowed_numbers,
    conversation_numbers,
    conversation_spans,
    copy_schema,
    grounding_for,
    number_forms,
    place_params,
)
from tokmem_agent.decoding.turn import TurnDecoder
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture()
def tiny_tm(tiny_model, tiny_tokenizer):
    return TokMem.create([add], LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer)))


class _Tok:
    """A tokenizer over a fixed list of token texts (id = index)."""

    def __init__(self, texts: list[str]):
        self.texts = texts

    def get_vocab(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.texts)}

    def decode(self, ids: list[int]) -> str:
        return "".join(self.texts[i] for i in ids)


TEXTS = ["The", " is", " ", *"0123456789", ",", ".", ".\n", " months", " 1", "12"]
TOK = _Tok(TEXTS)
ID = {t: i for i, t in enumerate(TEXTS)}


def _write(ground: NumberGround, pieces: list[str], width: int = len(TEXTS) + 2) -> list[bool]:
    """Whether each piece was allowed when its turn came (then it is written anyway)."""
    ok = []
    for p in pieces:
        scores = ground.mask(torch.zeros(width))
        ok.append(bool(torch.isfinite(scores[ID[p]])))
        ground.advance(ID[p])
    return ok


def test_number_forms_cover_separators_and_rounding():
    forms = number_forms("1580.166")
    assert {"1580.166", "1,580.166", "1580.17", "1,580.17", "1580.2", "1580", "1,580"} <= forms
    assert {"6", "06"} <= number_forms("06")
    assert {"250000", "250,000", "250000.00"} <= number_forms("250,000")


def test_conversation_numbers_only_after_tool_results():
    user = {"role": "user", "content": "Borrow 250000 at 6.5%"}
    assert conversation_numbers([user]) is None
    nums = conversation_numbers([user, {"role": "assistant", "content": "", "calls": []},
                                 {"role": "tool", "name": "loan", "content": '{"monthly_payment": 1580.17}'}])
    assert nums is not None and {"250,000", "6.5", "1,580.17", "1580.17", "3"} <= nums
    assert "1.58" not in nums


def test_vocab_holds_digit_and_separator_tokens_only():
    vocab = NumberVocab.of(TOK)
    assert set(vocab.texts) == {ID[c] for c in [*"0123456789", ",", ".", ".\n", " 1", "12"]}


def test_grounded_number_is_written_and_an_invented_one_is_not():
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(['{"payment": 1580.17, "months": 360}']))
    assert all(_write(ground, ["The", " is", " ", "1", ",", "5", "8", "0", ".", "1", "7", " months"]))
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(['{"payment": 1580.17}']))
    # "1" is allowed (a small integer and a prefix), "1." ends it as a sentence, so "5" may not follow
    assert _write(ground, [" ", "1", ".", "5"]) == [True, True, True, False]
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(['{"payment": 1580.17}']))
    assert _write(ground, ["12"]) == [False]  # a multi-digit token is checked character by character
    assert _write(ground, [" 1", "5"]) == [True, True]


def test_a_period_after_a_number_may_end_the_sentence():
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(["17"]))  # "17.00" is allowed too
    assert all(_write(ground, [" ", "1", "7", ".\n"]))
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(["17"]))
    assert _write(ground, ["1", "7", ".", " months"]) == [True, True, True, True]  # "17." then text
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(["17"]))
    assert _write(ground, ["1", "7", ".", "0", "0"]) == [True] * 5  # or "17.00"
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(["17"]))
    assert _write(ground, ["1", "7", ".", "5"]) == [True, True, True, False]


def test_mid_number_only_continuations_survive():
    ground = NumberGround(NumberVocab.of(TOK), allowed_numbers(["360"]))
    ground.advance(ID["3"])  # "3" alone is complete (0-10 always are): anything may follow but "31" …
    ground.advance(ID["6"])  # "36" is not: only "0" continues it (no text, no memory token, no end)
    scores = ground.mask(torch.zeros(len(TEXTS) + 2))  # +2: memory tokens after the vocabulary
    assert torch.isfinite(scores).nonzero().flatten().tolist() == [ID["0"]]


def test_turn_decoder_grounds_text_after_tool_results(tiny_tm):
    """Logits that want "13" after a tool result write "1" then something else; off, they write "13"."""
    tok = tiny_tm.tokenizer
    ones, threes = tok.convert_tokens_to_ids("1"), tok.convert_tokens_to_ids("3")
    v = tiny_tm.model.total_vocab

    def run(cfg: ControllerConfig) -> list[int]:
        ctl = Controller(tiny_tm, cfg)
        first = torch.zeros(v)
        first[ones] = 5.0
        dec = TurnDecoder(ctl, first, [], tool_choice="none", budget=3,
                          ground=Grounding(allowed_numbers(["10", "42"])))
        out, logits = [], first
        for _ in range(2):
            tok_id = dec.step(logits)
            out.append(tok_id)
            logits = torch.zeros(v)
            logits[threes] = 5.0
        return out

    assert run(ControllerConfig(ground_numbers=False, call_threshold="off")) == [ones, threes]
    grounded = run(ControllerConfig(ground_numbers=True, call_threshold="off"))
    assert grounded[0] == ones and grounded[1] != threes


def test_place_arguments_are_copied_from_the_conversation():
    schema = {"type": "object", "properties": {
        "time": {"type": "string", "description": "HH:MM"},
        "from_city": {"type": "string", "description": "Where the time is local."},
        "to": {"type": "string", "description": "The city to convert to."},
        "unit": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer"}}, "required": ["time"]}
    assert place_params(schema) == ["from_city", "to"]
    convo = [{"role": "user", "content": "It's 09:30 in Tokyo — what time is that in Los Angeles?"}]
    g = grounding_for(convo)
    assert g.numbers is None  # no tool result yet: answers are not grounded
    assert {"Tokyo", "Los Angeles", "Angeles"} <= set(g.spans) and "Angeles?" not in g.spans
    assert "in Los Angeles" not in g.spans  # no place starts with "in"
    assert "09:30" not in g.spans  # runs without a letter are no place
    copied = copy_schema(schema, g.spans)
    assert copied["properties"]["from_city"]["enum"] == list(g.spans)
    assert "enum" not in copied["properties"]["time"] and copied["properties"]["unit"]["enum"] == ["a", "b"]
    assert "enum" not in schema["properties"]["from_city"]  # the tool's own schema is untouched
    assert copy_schema(schema, ()) is schema
    assert conversation_spans(["a b c d e f"])[:5] == ("a", "a b", "a b c", "a b c d", "b")
    long = " ".join(f"w{i}" for i in range(400))  # more runs than MAX_SPANS: the latest message wins
    assert "Lima" in conversation_spans([long, "fly to Lima"])
    spans = conversation_spans(["It's 9am in London, what time is it in Tokyo?"])
    assert {"London", "Tokyo", "9am"} <= set(spans) and not {"It's", "what", "what time", "it"} & set(spans)


def weather(city: str) -> str:
    """Weather in a city.

    Args:
        city: The city.
    """
    return "sunny"


@pytest.fixture()
def weather_tm(tiny_model, tiny_tokenizer):
    return TokMem.create([weather], LoadedModel(tiny_model, tiny_tokenizer, "tiny", tokenizer_fingerprint(tiny_tokenizer)))


CONVO = [{"role": "user", "content": "weather in Oslo or Bergen"}]


def test_place_argument_decodes_only_a_span_of_the_request(weather_tm):
    tm, convo = weather_tm, CONVO
    for on in (True, False):
        ctl = Controller(tm, ControllerConfig(ground_places=on, call_threshold="off", max_arg_tokens=24))
        session = ctl.session_factory(tm.model)
        session.feed(tm.chat.prompt_ids(convo))
        turn = ctl.generate_turn(session, ["weather"], tool_choice="weather", budget=40, ground=grounding_for(convo))
        args = turn.calls[0].text
        if on:  # a random model writes whatever; grounded, the city is one of the request's runs of words
            import json

            assert json.loads(args)["city"] in grounding_for(convo).spans


def test_zero_data_policy_copies_only_for_tools_registered_from_the_schema(weather_tm):
    from tokmem_agent.config import ZERO_DATA_KEY

    tm, convo = weather_tm, CONVO
    seen = []

    class Spy(Controller):
        def constraint(self):
            real = super().constraint()

            class Wrap:
                def matcher(self, schema):
                    seen.append("enum" in schema["properties"]["city"])
                    return real.matcher(schema)
            return Wrap()

    def decode(policy):
        ctl = Spy(tm, ControllerConfig(ground_places=policy, call_threshold="off", max_arg_tokens=8))
        session = ctl.session_factory(tm.model)
        session.feed(tm.chat.prompt_ids(convo))
        ctl.generate_turn(session, ["weather"], tool_choice="weather", budget=12, ground=grounding_for(convo))

    decode("zero_data")  # trained on real traces (or never registered): the model's own strings
    tm.meta[ZERO_DATA_KEY] = ["weather"]  # as registration from the schema alone records it
    decode("zero_data")
    decode(False)
    assert seen == [False, True, False]
    with pytest.raises(ConfigError, match="ground_places"):
        ControllerConfig(ground_places="sometimes")  # type: ignore[arg-type]
