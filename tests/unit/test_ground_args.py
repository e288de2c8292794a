"""Grounded arguments: stated clock times and mentioned optional parameters (decoding/ground_args.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tokmem_agent import ControllerConfig, TokMem
from tokmem_agent.decoding.controller import Controller
from tokmem_agent.decoding.ground_args import (
    ArgEvidence,
    clock_of,
    conversation_times,
    ground_schema,
    is_date_param,
    is_time_param,
    mentions_date,
    name_words,
    stated_numbers,
    time_forms,
)
from tokmem_agent.decoding.grounding import grounding_for
from tokmem_agent.model.loader import LoadedModel, tokenizer_fingerprint


@pytest.mark.parametrize("text, times", [
    ("I will pick up the car at half past 9 in the morning till the 14th.", [(9, 30)]),
    ("I'll need to pick up the vehicle about 2 pm.", [(14, 0)]),
    ("I need it for 14:00 on Tuesday next week", [(14, 0)]),
    ("I want to collect the car at half past 3 in the afternoon.", [(15, 30)]),
    ("Probably, around twelve pm.", [(12, 0)]),
    ("around 1:30 in the afternoon.", [(13, 30)]),
    ("11 a.m. please, or quarter to 8 in the evening", [(11, 0), (19, 45)]),
    ("at noon", [(12, 0)]),
    ("at 5:30", [(5, 30), (17, 30)]),  # no part of the day: both readings
    ("it costs 2 a month for 3 rooms in 2019", []),
])
def test_conversation_times(text, times):
    assert conversation_times(text) == times


def test_time_forms():
    assert time_forms(9, 30) == ["09:30", "9:30 AM"]
    assert time_forms(0, 5) == ["00:05", "12:05 AM"]
    assert time_forms(12, 0) == ["12:00", "12:00 PM"]
    assert time_forms(15, 0, "24") == ["15:00"] and time_forms(15, 0, "12") == ["3:00 PM"]


@pytest.mark.parametrize("description, clock", [
    ('The clock time as HH:MM in 24-hour form, e.g. "09:30" or "17:00".', "24"),
    ("start time, e.g. 22:15", "24"),
    ("Time of the meeting, e.g. 5:00 PM", "12"),
    ("HH:MM AM/PM", "12"),
    ("Tentative time of restaurant reservation", None),
    ("9:30 or 21:30", "24"),
    ("17:00 or 5 pm", None),  # both said: both forms
])
def test_time_parameters_take_the_clock_their_description_asks_for(description, clock):
    assert clock_of({"type": "string", "description": description}) == clock
    schema = {"type": "object", "properties": {"time": {"type": "string", "description": description}},
              "required": ["time"]}
    got = ground_schema(schema, ArgEvidence.of(["what time is 3pm London time in Singapore?"]))
    assert got["properties"]["time"]["enum"] == time_forms(15, 0, clock)


def test_dates_numbers_and_name_words():
    assert mentions_date("on March 13th") and mentions_date("next Tuesday") and mentions_date("2025-06-02")
    assert not mentions_date("stick it on my tasks") and not mentions_date("show me my to-do list")
    assert not mentions_date("There's no particular due date") and not mentions_date("the market is open")
    assert stated_numbers("Six of us, 147.60 in all, 1,150 and 18 percent") == {6.0, 147.6, 1150.0, 18.0}
    from tokmem_agent.decoding.ground_args import stated_counts

    assert stated_counts("130 euros and an 18% tip, €92 or $40, 10 percent, for the 4 of us, six") == {4.0, 6.0}
    assert stated_counts("dinner came to 1450 pesos, 2000 rupees or 300 SEK for 3 people") == {3.0}
    assert stated_counts("convert 1500 Swedish kronor, 250 British pounds and 40 US dollars for 2 of us") == {2.0}
    assert stated_counts("split it 4 in euros") == {4.0}  # a word before a currency is no nationality
    tip = {"type": "object", "required": ["bill"], "properties": {"bill": {"type": "number"},
                                                                   "percent": {"type": "number", "default": 15},
                                                                   "people": {"type": "integer", "minimum": 1}}}
    got = ground_schema(tip, ArgEvidence.of(["Our meal was 130 euros, add an 18% tip"]))["properties"]
    assert "people" not in got and got["percent"]["enum"] == [18, 130, 15]  # a count is neither a percentage nor
    # a sum; the default stays a choice
    assert name_words("has_wifi") == {"wifi"} and name_words("petsWelcome") == {"pets", "welcome"}
    assert is_time_param("pickup_time", {"type": "string"}) and is_time_param("time", {"type": "string"})
    assert not is_time_param("timezone", {"type": "string"})
    assert not is_time_param("pickup_time", {"type": "string", "enum": ["10:00"]})
    assert is_date_param("due_by", {"type": "string"}) and is_date_param("date", {"type": "string"})


HOTEL = {"type": "object", "required": ["destination"],
         "properties": {"destination": {"type": "string"}, "number_of_rooms": {"type": "integer", "enum": [1, 2, 3]},
                        "has_wifi": {"type": "boolean"}, "star_rating": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
                        "check_in_date": {"type": "string"}, "pickup_time": {"type": "string"}}}


def test_optional_parameters_stay_only_when_the_conversation_gives_them_something():
    bare = ground_schema(HOTEL, ArgEvidence.of(["Find me a hotel in Paris"]))
    assert set(bare["properties"]) == {"destination"}
    told = ground_schema(HOTEL, ArgEvidence.of(["A hotel in Paris with wifi for 2 rooms on March 3rd at 9 pm"]))
    p = told["properties"]
    assert p["has_wifi"] == {"type": "boolean"}
    assert p["number_of_rooms"]["enum"] == [2, 3]  # 2 rooms, the 3rd: numbers said, within the enum
    assert p["star_rating"]["enum"] == [2, 3]
    assert p["check_in_date"] == {"type": "string"}
    assert p["pickup_time"]["enum"] == ["21:00", "9:00 PM"]
    assert HOTEL["properties"]["number_of_rooms"]["enum"] == [1, 2, 3]  # the tool's own schema is untouched


def test_switches_and_required_parameters():
    ev = ArgEvidence.of(["A hotel in Paris"])
    assert ground_schema(HOTEL, ev, times=False, optional=False) is HOTEL
    assert ground_schema(HOTEL, None) is HOTEL
    req = {**HOTEL, "required": ["destination", "has_wifi", "pickup_time"]}
    kept = ground_schema(req, ev)["properties"]
    assert "has_wifi" in kept and kept["pickup_time"] == {"type": "string"}  # required: never removed
    times_only = ground_schema(HOTEL, ArgEvidence.of(["at 10 am"]), optional=False)["properties"]
    assert set(times_only) == set(HOTEL["properties"]) and times_only["pickup_time"]["enum"] == ["10:00", "10:00 AM"]


LIST = {"type": "object", "properties": {"due_by": {
    "anyOf": [{"type": "string", "pattern": "^(today|\\d{4}-\\d{2}-\\d{2})$"}, {"type": "null"}], "default": None}}}
TIP = {"type": "object", "required": ["bill"], "properties": {
    "bill": {"type": "number"}, "percent": {"type": "number", "default": 15},
    "people": {"type": "integer", "minimum": 1, "default": 1}}}
TODAY = dt.date(2025, 6, 2)


def _named(schema, said, results=(), calls=(), named=True):
    return ground_schema(schema, ArgEvidence.of([said], list(results), calls), dates=True, today=TODAY, named=named)


def test_an_optional_parameter_the_user_asks_for_with_an_unused_value_is_required():
    ask = "add 'call mom' due 2025-06-04, then show me everything due by friday the 6th"
    added = [{"title": "call mom", "due": "2025-06-04"}]
    got = _named(LIST, ask, ['{"id": 4, "title": "call mom", "due": "2025-06-04"}'], added)
    assert got["required"] == ["due_by"] and got["properties"]["due_by"]["enum"] == ["2025-06-06"]
    assert "required" not in _named(LIST, ask, [], added, named=False)  # the switch
    # every stated date already used by this request's calls: the list stays optional
    whole = _named(LIST, "add 'call mom' due 2025-06-04, then show me my whole list", [], added)
    assert "required" not in whole
    # the name's word not said: optional ("show my list" after adding with a date)
    assert "required" not in _named(LIST, "add 'call mom' for 2025-06-04, then show me my list", [], added)
    # a date only a tool result states (its weekday) is no request
    tax = _named(LIST, "submit my tax return 45 days from now: add it due on that date, then show my whole list",
                 ['{"date": "2025-06-02", "days": 45, "result": "2025-07-17", "weekday": "Thursday"}'],
                 [{"date": "today", "days": 45}, {"title": "submit tax return", "due": "2025-07-17"}])
    assert "required" not in tax
    # the dates of a tool result: its ISO dates, not its weekday ("Thursday" is no new date)
    ev = ArgEvidence.of(["add it 45 days from now"], ['{"result": "2025-07-17", "weekday": "Thursday"}'])
    assert ev.dates(TODAY) == (dt.date(2025, 7, 17),)
    today = _named(LIST, "show me what's overdue or due today")
    assert today["required"] == ["due_by"] and today["properties"]["due_by"]["enum"] == ["today", "2025-06-02"]
    # numbers: the operands an earlier call wrote are used; the default the schema offers is no request
    tip = _named(TIP, "3 pizzas at 18.50 and 4 drinks at 4.25, add a 20% tip and split it between 5 people",
                 ['{"result": 72.5}'], [{"expression": "3 * 18.50 + 4 * 4.25"}])
    assert tip["required"] == ["bill", "people"] and tip["properties"]["people"]["enum"] == [5]
    assert "people" not in _named(TIP, "Add a 20% tip to 72.50 for the people at my table")["properties"]
    # an earlier request's calls do not count: only those since the last user message
    msgs = [{"role": "user", "content": "add 'call mom' due 2025-06-04"},
            {"role": "assistant", "content": "", "calls": [{"name": "add_todo", "arguments": added[0]}]},
            {"role": "tool", "content": "{}"}, {"role": "assistant", "content": "Done."},
            {"role": "user", "content": "what's due by 2025-06-04?"}]
    assert grounding_for(msgs).args.used == frozenset()
    assert grounding_for(msgs[:3]).args.used == {"2025-06-04", "call mom"}


DATE_ADD = {"type": "object", "required": ["date", "days"], "properties": {
    "date": {"type": "string"}, "days": {"type": "integer", "description": "negative for earlier dates"}}}


@pytest.mark.parametrize("said, days", [
    ("Which date was it 3 weeks ago?", [-21]),
    ("we're going away a fortnight after Christmas 2025, which date is that?", [14]),
    ("what's the date six weeks after 2025-07-14?", [42]),
    ("Which date was 30 days before 2025-03-10?", [-30]),
    ("two weeks from today, and then 3 days after that", [14, 3]),
    ("My passport takes 21 days if I send it on 2025-07-14", [21]),
    ("what date is it in a week?", [7]),
])
def test_a_day_count_takes_the_spans_the_user_states(said, days):
    from tokmem_agent.decoding.dates import stated_spans

    assert stated_spans(said) == days
    got = ground_schema(DATE_ADD, ArgEvidence.of([said]), dates=True, today=TODAY, spans=True)
    assert got["properties"]["days"]["enum"] == days and got["required"] == ["date", "days"]
    assert ground_schema(DATE_ADD, ArgEvidence.of([said]), optional=False) is DATE_ADD  # the switch


def test_spans_leave_other_numbers_and_unstated_spans_alone():
    from tokmem_agent.decoding.dates import stated_spans
    from tokmem_agent.decoding.ground_args import is_span_param

    assert stated_spans("5000 yen a day, once a week, 3 months from now") == []  # "per", months: not read
    assert ground_schema(DATE_ADD, ArgEvidence.of(["what's the date 3 months from now"]), spans=True,
                         optional=False) is DATE_ADD
    assert is_span_param("days", {"type": "integer"}) and is_span_param("num_days", {"type": "number"})
    assert not is_span_param("days", {"type": "integer", "enum": [1, 7]}) and not is_span_param("hours", {"type": "integer"})
    bounded = {"type": "object", "properties": {"num_days": {"type": "integer", "minimum": 1}}}
    got = ground_schema(bounded, ArgEvidence.of(["3 weeks ago and 2 weeks from now"]), spans=True, optional=False)
    assert got["properties"]["num_days"]["enum"] == [14]  # -21 is outside its bounds


def test_evidence_comes_from_user_messages_and_tool_results_not_the_assistant():
    msgs = [{"role": "user", "content": "book the table"}, {"role": "assistant", "content": "At 7 pm?"},
            {"role": "tool", "content": {"slots": ["18:30"]}}]
    ev = grounding_for(msgs).args
    assert ev is not None and ev.times == ((18, 30),)
    chain = grounding_for([{"role": "user", "content": "change 130 euros to dollars and add an 18% tip"},
                           {"role": "tool", "content": {"amount": 130, "converted": 141.3}}]).args
    assert chain is not None and 130.0 in chain.numbers and chain.counts == frozenset()  # no count of people there


def rent(city: str, pickup_time: str, insurance: bool = False) -> str:
    """Rent a car.

    Args:
        city: The city.
        pickup_time: Time of pick-up.
        insurance: With insurance.
    """
    return "ok"


def test_decoded_arguments_take_a_stated_time_and_no_unmentioned_option(make_tiny_model, tiny_tokenizer):
    tm = TokMem.create([rent], LoadedModel(make_tiny_model(len(tiny_tokenizer), seed=0), tiny_tokenizer, "tiny",
                                           tokenizer_fingerprint(tiny_tokenizer)))
    convo = [{"role": "user", "content": "a car in Oslo at half past 4 in the afternoon"}]

    def args(on: bool) -> str:
        ctl = Controller(tm, ControllerConfig(call_threshold="off", max_arg_tokens=48, ground_times=on,
                                              ground_optional=on))
        session = ctl.session_factory(tm.model)
        session.feed(tm.chat.prompt_ids(convo))
        turn = ctl.generate_turn(session, ["rent"], tool_choice="rent", budget=60, ground=grounding_for(convo))
        return turn.calls[0].text

    free = args(False)  # this random model writes an unasked option and no time
    assert '"insurance"' in free and "4:30" not in free and "16:30" not in free
    grounded = json.loads(args(True))
    assert grounded["pickup_time"] in ("16:30", "4:30 PM") and "insurance" not in grounded


def test_date_parameters_take_today_or_a_stated_date():
    import datetime as dt

    pattern = "^(today|\\d{4}-\\d{2}-\\d{2})$"
    schema = {"type": "object", "required": ["start", "end"],
              "properties": {"start": {"type": "string", "pattern": pattern},
                             "end": {"type": "string", "pattern": pattern},
                             "due": {"anyOf": [{"type": "string", "pattern": pattern}, {"type": "null"}],
                                     "default": None, "description": "Due date"}}}
    today = dt.date(2025, 6, 2)
    ev = ArgEvidence.of(["How many days until my wedding on 20/09/2025?"])
    p = ground_schema(schema, ev, dates=True, today=today, optional=False)["properties"]
    assert p["start"]["enum"] == ["today", "2025-06-02", "2025-09-20"] and "pattern" not in p["start"]
    assert p["due"] == {"type": "string", "description": "Due date", "enum": ["today", "2025-06-02", "2025-09-20"]}
    free = {"type": "object", "properties": {"pickup_date": {"type": "string"}}}  # no pattern: ISO only
    sgd = ArgEvidence.of(["from next tuesday to till March 7th, today"])
    assert ground_schema(free, sgd, dates=True, today=dt.date(2019, 3, 1))["properties"]["pickup_date"]["enum"] == [
        "2019-03-01", "2019-03-05", "2019-03-12", "2019-03-07"]
    unsaid = ArgEvidence.of(["from the 10th of this month till the 11th"])  # today is not a choice unless said
    assert ground_schema(free, unsaid, dates=True, today=dt.date(2019, 3, 1))["properties"]["pickup_date"]["enum"] == [
        "2019-03-10", "2019-03-11"]
    assert ground_schema(schema, ArgEvidence.of(["count the days"]), dates=True, today=today,
                         optional=False) is schema  # no date stated: free
    no_date = ground_schema(schema, ArgEvidence.of(["stick it on my tasks"]), today=today)["properties"]
    assert "due" not in no_date and "start" in no_date  # optional and never spoken of: removed


def test_controller_overrides_from_the_command_line():
    from tokmem_agent import ConfigError
    from tokmem_agent.config import parse_overrides

    got = parse_overrides(["ground_times=false", "today=2019-03-01", "call_threshold=0.5", "ground_places=zero_data"])
    assert got == {"ground_times": False, "today": "2019-03-01", "call_threshold": 0.5, "ground_places": "zero_data"}
    assert ControllerConfig(**got).today == "2019-03-01"
    with pytest.raises(ConfigError, match="no field 'bogus'"):
        parse_overrides(["bogus=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["ground_times"])
    with pytest.raises(ConfigError, match="today must be a date"):
        ControllerConfig(today="next friday")


def test_a_limit_asked_for_in_words_is_written():
    import datetime as dt

    from tokmem_agent.decoding.grounding import grounding_for

    search = {"type": "object", "required": ["query"], "properties": {
        "query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5}}}

    def limit(text: str):
        out = ground_schema(search, grounding_for([{"role": "user", "content": text}]).args, named=True,
                            today=dt.date(2025, 6, 2))
        return out["properties"].get("limit", {}).get("enum"), "limit" in out.get("required", [])

    assert limit("search my notes for recipe, just the first 2 please") == ([2], True)
    assert limit("top three notes about the garage") == ([3], True)
    assert limit("search my notes for recipe") == (None, False)  # nothing asked: left out
    assert limit("find 2 notes on cars") == ([2, 5], False)  # a count, but not asked as a limit
