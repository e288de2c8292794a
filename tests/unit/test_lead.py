"""Openings of answers after tool results (lead_answers): which ones, and the trie that walks them."""

from __future__ import annotations

import torch

from tokmem_agent.decoding.lead import LeadTrie, asked_field, last_results, lead_texts, unstated_figures
from tokmem_agent.synth_phrasing import answer_leads
from tokmem_agent.traces import Call

LOAN = {"monthly_payment": 1580.17, "months": 360, "total_paid": 568861.22, "total_interest": 318861.22}


def test_answer_leads_name_each_reported_field_as_synthetic_answers_do():
    assert answer_leads(LOAN, {"principal": 250000}) == [
        "The monthly payment is 1,580.17", "The months is 360", "The total paid is 568,861.22",
        "The total interest is 318,861.22"]
    # a field that only echoes an argument is not reported; lists and booleans are not led
    assert answer_leads({"time": "02:00", "to_city": "Tokyo", "ok": True, "rows": [1]}, {"to_city": "Tokyo"}) == [
        "The time is 02:00"]
    assert answer_leads(5, {}) == ["The result is 5"] and answer_leads([1, 2], {}) == []
    assert answer_leads("x" * 80, {}) == [] and answer_leads("two\nlines", {}) == []  # long text: the model's
    assert answer_leads("Reminder set for 07:30.", {}) == ["Reminder set for 07:30"]  # a message, as it is
    assert answer_leads("02:00", {}) == ["The result is 02:00"]


def test_last_results_pair_each_result_with_its_call():
    convo = [{"role": "user", "content": "x"},
             {"role": "assistant", "content": "", "calls": [Call("loan", {"principal": 1}), Call("bmi", {"w": 2})]},
             {"role": "tool", "name": "loan", "content": '{"monthly_payment": 3}'},
             {"role": "tool", "name": "bmi", "content": "not json"}]
    assert last_results(convo) == (("loan", {"monthly_payment": 3}, {"principal": 1}), ("bmi", "not json", {"w": 2}))
    assert last_results(convo[:2]) == ()
    assert lead_texts(last_results(convo), lambda name: name == "loan") == ["The monthly payment is 3"]
    assert lead_texts(last_results(convo), lambda name: name == "bmi") == ["The result is not json"]
    listed = convo[:2] + [{"role": "tool", "name": "loan", "content": "[1, 2]"}]
    assert lead_texts(last_results(listed), lambda name: True) == []  # a list: nothing to lead
    error = convo[:2] + [{"role": "tool", "name": "loan", "content": '{"error": "boom"}'}]
    assert lead_texts(last_results(error), lambda name: True) == []  # the model explains an error itself


def test_the_opening_states_the_field_the_request_asks_about():
    fields = list(LOAN)
    assert asked_field(fields, "what's my monthly payment?") == 0
    assert asked_field(fields, "how much interest will I pay in total?") == 3  # two words of total_interest
    assert asked_field(fields, "car loan, 5 year term - how much a month?") == 0  # a tie: the first field
    assert asked_field(fields, "and what would I pay back overall") is None  # no word shared
    convo = [{"role": "user", "content": "how much will I have paid in total?"},
             {"role": "assistant", "content": "", "calls": [Call("loan", {})]},
             {"role": "tool", "name": "loan", "content": '{"monthly_payment": 3, "total_paid": 1080}'}]
    assert lead_texts(last_results(convo), lambda name: True, convo[0]["content"]) == ["The total paid is 1080"]


def test_a_field_the_request_names_is_stated_even_when_it_echoes_an_argument():
    convo = [{"role": "user", "content": "what time is 09:30 Paris time in Berlin?"},
             {"role": "assistant", "content": "", "calls": [Call("tz", {"time": "09:30", "from_city": "Paris"})]},
             {"role": "tool", "name": "tz", "content": '{"time": "09:30", "day": "same day", "from_city": "Paris"}'}]
    assert lead_texts(last_results(convo), lambda name: True, convo[0]["content"]) == [
        "The time is 09:30 (day: same day)"]
    # not named: the first field that is no echo
    assert lead_texts(last_results(convo), lambda name: True, "and in Berlin?") == ["The day is same day"]


def test_short_string_fields_are_noted_after_the_figure():
    convo = [{"role": "user", "content": "what's my BMI?"},
             {"role": "assistant", "content": "", "calls": [Call("bmi", {"weight_kg": 75})]},
             {"role": "tool", "name": "bmi", "content": '{"bmi": 23.1, "category": "normal weight", "weight_kg": 75,'
                                                        ' "note": "' + "x" * 50 + '"}'}]
    assert lead_texts(last_results(convo), lambda name: True, convo[0]["content"]) == [
        "The bmi is 23.1 (category: normal weight)"]  # the echoed weight and the long note left out


def test_the_trie_walks_an_opening_and_closes_at_its_end():
    trie = LeadTrie([[1, 2, 3], [1, 4], [1, 2, 3, 5]])
    scores = torch.zeros(8)
    assert torch.isfinite(trie.mask(scores)).nonzero().flatten().tolist() == [1]
    trie.advance(1)
    assert torch.isfinite(trie.mask(scores)).nonzero().flatten().tolist() == [2, 4]
    trie.advance(2)
    assert trie.open
    trie.advance(3)  # [1, 2, 3] ends here (and [1, 2, 3, 5] would go on): the model writes on freely
    assert not trie.open
    assert not LeadTrie([]).open


def test_unstated_figures_name_what_an_answer_left_out():
    calc = [("calculate", {"expression": "11625 / 1500", "result": 7.75}, {"expression": "11625 / 1500"})]
    assert unstated_figures(calc, "how many lunches", "For 1,500.00 JPY: 1,500.00 JPY.") == ["The result is 7.75"]
    assert unstated_figures(calc, "how many lunches", "That buys 7.75 lunches.") == []
    assert unstated_figures(calc, "how many lunches", "About 8.") == ["The result is 7.75"]  # under 10: too rough
    assert unstated_figures([("calculate", {"result": 817.8}, {})], "", "About 818.") == []
    assert unstated_figures(calc, "how many lunches", "About 7.8.") == []
    temp = [("convert_units", {"value": 21, "result": -6.1111}, {"value": 21})]
    assert unstated_figures(temp, "", "21 °F is -6.11 °C.") == []  # signed
    assert unstated_figures(temp, "", "21 °F is -6.11111 °C.") == ["The result is -6.1111"]  # not its value
    assert unstated_figures([("calculate", {"result": 2.4}, {})], "", "About 2.") == ["The result is 2.4"]
    fx = [("convert_currency", {"amount": 1200, "from_currency": "GBP", "rate": 196.203, "result": 235443.04},
           {"amount": 1200, "from_currency": "GBP"})]
    # the echoed amount is no figure of the result; "result" before the first figure (the rate)
    assert unstated_figures(fx, "How much is £1,200 in yen?", "1,200.00 GBP is 1200.00 JPY.") == [
        "The result is 235,443.04"]
    assert unstated_figures(fx, "what rate?", "It is 235,443.04.") == []  # any figure counts as stated
    assert unstated_figures(fx, "what is the rate?", "Hmm.") == ["The rate is 196.203"]  # the one asked about
    # ids and strings are no figures; errors are the model's to explain
    todo = [("add_todo", {"id": 3, "title": "x", "due": "2025-06-02"}, {"title": "x"})]
    assert unstated_figures(todo, "add x", "Added x.") == []
    assert unstated_figures([("calculate", {"error": "bad"}, {})], "", "Oops.") == []
    assert unstated_figures(LOAN_RESULTS, "monthly payment?", "Done.") == ["The monthly payment is 1,580.17"]
    two = calc + [("loan", LOAN, {})]
    assert unstated_figures(two, "", "7.75") == ["The monthly payment is 1,580.17"]  # each result on its own


LOAN_RESULTS = [("loan", LOAN, {"principal": 250000})]


def test_unstated_figures_name_the_listed_records_an_answer_left_out():
    notes = {"query": "recipe", "count": 2, "notes": [
        {"id": 1, "title": "Banana bread recipe", "text": "3 ripe bananas"},
        {"id": 2, "title": "Grandma's chili", "text": "beans, beef"}]}
    found = [("search_notes", notes, {"query": "recipe", "limit": 2})]
    assert unstated_figures(found, "", "Found 2 notes. “Banana bread recipe”: 3 ripe bananas.") == [
        "Also: “Grandma's chili”"]
    assert unstated_figures(found, "", "Found 2 notes: Banana bread recipe and Grandma’s chili.") == []
    assert unstated_figures(found, "", "Found 2 notes.") == ["Listed: “Banana bread recipe”; “Grandma's chili”"]
    many = {"count": 11, "notes": [{"title": f"n{i}"} for i in range(11)]}
    assert unstated_figures([("search_notes", many, {})], "", "Found 11 notes.") == []  # too many to list
