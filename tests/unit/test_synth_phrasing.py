"""Synthetic requests from a schema (tokmem_agent.synth_phrasing) and traces with real results."""

from __future__ import annotations

import random
import re

import jsonschema
import pytest

from tokmem_agent import RegisterConfig, Tool, read_only
from tokmem_agent.continual import _may_run
from tokmem_agent.decoding.grounding import number_forms as answer_forms
from tokmem_agent.errors import ConfigError
from tokmem_agent.synth import render_query, synthesize_traces
from tokmem_agent.synth_phrasing import (
    clock_forms,
    description_examples,
    intents,
    number_forms,
    stray_numbers,
    unit_kind,
)


@read_only
def loan_payment(principal: float, annual_rate: float, years: int) -> dict:
    """Monthly payment of a fixed-rate loan.

    Args:
        principal: The amount borrowed.
        annual_rate: Yearly interest rate in percent (5 for 5 %).
        years: How many years the loan runs.
    """
    if not 0 < annual_rate <= 30:
        raise ValueError("annual_rate out of range")
    n, r = years * 12, annual_rate / 1200
    return {"monthly_payment": round(principal * r / (1 - (1 + r) ** -n), 2), "months": n}


def set_alarm(time: str, label: str = "alarm") -> str:
    """Set an alarm.

    Args:
        time: Clock time as HH:MM, e.g. "07:30".
        label: What the alarm is for.
    """
    return f"alarm {label} at {time}"


def test_units_from_names_and_descriptions():
    assert unit_kind("annual_rate", {"description": "Yearly interest rate in percent"}) == "percent"
    assert unit_kind("weight_kg", {}) == "kg"
    assert unit_kind("height", {"description": "Height in centimetres."}) == "cm"
    assert unit_kind("years", {"description": "How many years the loan runs."}) == "years"
    assert unit_kind("principal", {"description": "The amount borrowed."}) == "money"
    assert unit_kind("count", {"description": "How many items"}) is None


def test_number_and_clock_forms_map_back_to_the_value():
    forms = number_forms(250000, "money")
    assert {"250000", "250,000", "250k", "$250,000"} <= set(forms)
    assert all(f.endswith("%") or "cent" in f for f in number_forms(6.5, "percent"))
    assert "3 pm" in clock_forms("15:00") and "9:30 am" in clock_forms("09:30")
    assert description_examples({"description": 'The time, e.g. "09:30" or "17:00".'}) == ["09:30", "17:00"]


def test_intents_from_noun_and_verb_descriptions():
    assert ("np", "monthly payment") in intents("loan_payment", "Monthly payment of a fixed-rate loan.")
    assert ("np", "BMI") in intents("bmi", "Body mass index (BMI) from a person's weight and height.")
    assert ("vp", "convert a clock time") in intents("tz", "Converts a clock time from one zone to another.")


def test_requests_carry_every_value_and_no_stray_number():
    tool = Tool.from_function(loan_payment)
    assert tool.read_only
    rng = random.Random(3)
    for t in synthesize_traces(tool, 30, seed=2):
        args = t.calls[0].arguments
        jsonschema.validate(args, tool.parameters)
        numbers = set(re.findall(r"\d[\d,]*(?:\.\d+)?", t.query))
        for v in args.values():  # each value appears in one of the forms that map back to it
            assert any(f.replace("$", "") in {n.rstrip(",") for n in numbers} or f in t.query
                       for f in number_forms(v, None) + number_forms(v, "money")), (v, t.query)
        assert "5 for 5" not in t.query  # the description's aside is never copied
    mentions = []
    assert stray_numbers("pay 12 now", mentions) == ["12"]
    assert isinstance(render_query(tool, {"principal": 1000, "annual_rate": 5, "years": 2}, rng), str)


def test_clock_values_are_written_as_people_write_them():
    tool = Tool.from_function(set_alarm)
    queries = [t.query for t in synthesize_traces(tool, 40, seed=0)]
    assert any(re.search(r"\d(am|pm| am| pm| AM| PM)", q) for q in queries)
    for t in synthesize_traces(tool, 40, seed=0):
        assert re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", t.calls[0].arguments["time"])


def test_run_gives_results_and_answers_only_for_runnable_tools():
    ran = synthesize_traces(loan_payment, 12, run=True)
    assert all(t.results and t.response and t.between == [] for t in ran)
    for t in ran:
        assert any(f in t.response for f in answer_forms(str(t.results[0]["monthly_payment"])))
        assert 0 < t.calls[0].arguments["annual_rate"] <= 30  # arguments the function refused were resampled
    plain = synthesize_traces(loan_payment, 5)
    assert all(t.results is None and t.response is None for t in plain)


def test_some_requests_ask_for_another_field_of_the_result_by_name():
    traces = synthesize_traces(loan_payment, 40, run=True, field_rate=0.5)
    by_field = [t for t in traces if t.response.lower().startswith(("months", "the months"))]
    assert by_field and len(by_field) < len(traces)  # some, not all, ask for the second field
    for t in by_field:  # the request names it, and the answer states it first
        assert "months" in t.query.lower()
        assert str(t.results[0]["months"]) in t.response
    assert not any(t.response.lower().startswith(("months", "the months"))
                   for t in synthesize_traces(loan_payment, 40, run=True))  # off by default
    with pytest.raises(ConfigError, match="synth_field_rate"):
        RegisterConfig(synth_field_rate=2.0)


def test_a_function_that_always_fails_leaves_traces_at_the_call():
    def broken(city: str) -> str:
        """Weather for a city.

        Args:
            city: The city.
        """
        raise RuntimeError("down")

    traces = synthesize_traces(broken, 4, run=True)
    assert len(traces) == 4 and all(t.results is None for t in traces)


def test_read_only_marks_and_run_tools_policy():
    assert Tool.from_function(loan_payment).read_only and not Tool.from_function(set_alarm).read_only
    mcp = Tool.from_dict({"name": "lookup", "annotations": {"readOnlyHint": True},
                          "parameters": {"type": "object", "properties": {}}})
    assert mcp.read_only
    ro, rw = Tool.from_function(loan_payment), Tool.from_function(set_alarm)
    assert _may_run(ro, RegisterConfig()) and not _may_run(rw, RegisterConfig())
    assert _may_run(rw, RegisterConfig(run_tools="always")) and not _may_run(ro, RegisterConfig(run_tools="never"))
    assert not _may_run(mcp, RegisterConfig(run_tools="always"))  # no function to run
    with pytest.raises(ConfigError, match="run_tools"):
        RegisterConfig(run_tools="sometimes")  # type: ignore[arg-type]


def test_results_that_are_not_json_become_text():
    import datetime

    @read_only
    def next_day(date: str) -> dict:
        """The day after a date.

        Args:
            date: The date.
        """
        return {"next": datetime.date.fromisoformat(date) + datetime.timedelta(days=1)}

    traces = synthesize_traces(next_day, 3, run=True)
    assert all(isinstance(t.results[0], str) and "next" in t.results[0] for t in traces)


SERVICE_TOOLS = [
    {"name": "Hotels_4_ReserveHotel", "description": "Reserve rooms at a selected place for given dates",
     "parameters": {"type": "object", "required": ["place_name", "check_in_date", "stay_length"], "properties": {
         "place_name": {"type": "string", "description": "Name of the accommodation"},
         "check_in_date": {"type": "string", "description": "Check in date for reservation"},
         "stay_length": {"type": "string", "description": "Length of stay in days"}}}},
    {"name": "Restaurants_2_FindRestaurants", "description": "Find restaurants by location and by category",
     "parameters": {"type": "object", "required": ["category"], "properties": {
         "category": {"type": "string", "description": "The category of food offered by the restaurant"}}}},
    {"name": "Media_2_FindMovies", "description": "Find movies to watch by genre and, optionally, director",
     "parameters": {"type": "object", "required": ["director"], "properties": {
         "director": {"type": "string", "description": "Name of the director of the movie"}}}},
]


def test_service_names_and_descriptions_give_clean_intents():
    """A service prefix with a version number never reaches a request ("restaurants 2 …" would be a stray
    number), a clause cut at a comma loses its dangling "and", and a bare verb is no intent."""
    phrases = [p for t in SERVICE_TOOLS for _, p in intents(t["name"], t["description"])]
    assert "reserve hotel" in phrases and "find movies to watch by genre" in phrases
    assert not any(re.search(r"\d| and$|^look$", p) for p in phrases)
    assert intents("Hotels_4_SearchHotel", "Look for accommodation in a city of choice") == [
        ("vp", "look for accommodation in a city of choice"), ("vp", "search hotel")]
    for t in SERVICE_TOOLS:
        assert not any(re.search(r"\d", tr.query) for tr in synthesize_traces(t, 20)
                       if "stay_length" not in tr.calls[0].arguments and "check_in_date" not in tr.calls[0].arguments)


def test_values_follow_what_the_description_names_first():
    by_tool = {t["name"]: synthesize_traces(t, 20) for t in SERVICE_TOOLS}
    hotels = {tr.calls[0].arguments["place_name"] for tr in by_tool["Hotels_4_ReserveHotel"]}
    stays = {tr.calls[0].arguments["stay_length"] for tr in by_tool["Hotels_4_ReserveHotel"]}
    food = {tr.calls[0].arguments["category"] for tr in by_tool["Restaurants_2_FindRestaurants"]}
    directors = {tr.calls[0].arguments["director"] for tr in by_tool["Media_2_FindMovies"]}
    assert hotels <= {"Hotel Azure", "Park Inn", "The Grand", "Harbor Lodge"}  # not a person's name
    assert all(s.isdigit() for s in stays)  # "Length of stay in days" is a number held as a string
    assert food <= {"Italian", "Thai", "Mexican", "Indian", "Japanese"}  # food, not a restaurant's name
    assert directors <= {"Greta Gerwig", "Christopher Nolan", "Ang Lee", "Sofia Coppola"}
    for tr in by_tool["Hotels_4_ReserveHotel"]:
        args = tr.calls[0].arguments
        assert re.search(rf"\b{args['stay_length']}\b", tr.query)
        assert "check " + args["check_in_date"] not in tr.query  # "Check in date …" is not cut to "check"


def test_a_comma_after_a_number_is_not_part_of_it():
    mentions = [type("M", (), {"numbers": {"19", "3"}})()]
    assert stray_numbers("from 2026-08-19, passengers 3, Business", [
        type("M", (), {"numbers": {"2026", "08", "19", "3"}})()]) == []
    assert stray_numbers("about 250,000, paid in 3", mentions) == ["250,000"]


def test_dialogues_ask_for_a_missing_argument_or_confirm_an_action():
    from tokmem_agent.synth import render_dialogue
    from tokmem_agent.synth_phrasing import is_action

    reserve, find = SERVICE_TOOLS[0], SERVICE_TOOLS[1]
    assert is_action(reserve["name"], reserve["description"]) and not is_action(find["name"], find["description"])
    traces = synthesize_traces(reserve, 40, dialogue_rate=1.0)
    shapes = {tuple(m["role"] for m in tr.messages) for tr in traces}
    assert ("user", "assistant", "user") in shapes and ("user", "assistant", "user", "assistant", "user") in shapes
    for tr in traces:
        text = " ".join(m["content"] for m in tr.messages)
        args = tr.calls[0].arguments
        assert tr.messages[-1]["role"] == "user" and args["place_name"] in text
        assert args["check_in_date"] in text or args["check_in_date"].split("-")[0] in text
    # a lookup is never confirmed; a tool without arguments that is no action has no dialogue
    assert all(len(tr.messages) == 3 for tr in synthesize_traces(find, 20, dialogue_rate=1.0))
    bare = Tool(name="get_alarms", description="Get the alarms already set", parameters={"type": "object", "properties": {}})
    assert render_dialogue(bare, {}, random.Random(0)) == []
    assert all(len(tr.messages) == 1 for tr in synthesize_traces(bare, 5, dialogue_rate=1.0))
    # the default keeps one request per trace
    assert all(len(tr.messages) == 1 for tr in synthesize_traces(reserve, 20))
    with pytest.raises(ConfigError, match="synth_dialogue_rate"):
        RegisterConfig(synth_dialogue_rate=1.5)


def test_dates_are_written_as_people_write_them_with_their_year():
    from tokmem_agent.synth_phrasing import date_forms, mention

    assert date_forms("2026-03-07") == ["2026-03-07", "March 7, 2026", "7 March 2026", "Mar 7 2026", "March 7th, 2026"]
    assert date_forms("2019-12-22")[-1] == "December 22nd, 2019" and date_forms("2019-13-01") == ["2019-13-01"]
    rng = random.Random(0)
    said = {mention("departure_date", {"type": "string"}, "2025-11-20", rng).text for _ in range(60)}
    assert any("November 20" in t for t in said) and any("2025-11-20" in t for t in said)
    assert all("2025" in t for t in said)  # never a date without its year


def test_spoken_clock_times_carry_the_part_of_the_day():
    assert "half past 4 in the afternoon" in clock_forms("16:30")
    assert "quarter to 9 in the evening" in clock_forms("20:45")
    assert "9 o'clock in the morning" in clock_forms("09:00")
    assert "quarter past 12 in the afternoon" in clock_forms("12:15")
    assert not any("quarter to" in f for f in clock_forms("11:45"))  # "quarter to 12 in the morning" is 11:45 pm?


def test_amounts_held_as_strings_are_plain_digits_worded_as_money():
    tool = {"name": "Banks_2_TransferMoney", "description": "Transfer money to another user",
            "parameters": {"type": "object", "required": ["transfer_amount"], "properties": {
                "transfer_amount": {"type": "string", "description": "The amount of money to transfer"}}}}
    traces = synthesize_traces(tool, 30)
    for tr in traces:
        amount = tr.calls[0].arguments["transfer_amount"]
        assert re.fullmatch(r"\d+(\.\d{1,2})?", amount), amount
        said = {n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", tr.query)}
        assert amount in said or amount.removesuffix(".0") in said or f"{amount}k" in tr.query \
            or any(f"{int(float(amount)) // 1000}k" in tr.query for _ in [0]), (amount, tr.query)
    assert any("$" in tr.query for tr in traces) and any("," in tr.query for tr in traces)
