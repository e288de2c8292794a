"""Titles the user gives in words (ground_titles): which words mark them, where they end, the schema."""

from __future__ import annotations

import pytest

from tokmem_agent.decoding.ground_args import ArgEvidence, ground_schema
from tokmem_agent.decoding.titles import (
    is_text_param,
    is_title_param,
    stated_spec,
    stated_texts,
    stated_titles,
)


@pytest.mark.parametrize("text, titles", [
    ("Can you write down a note titled Boiler: the engineer comes Thursday between 8 and 12.", ("Boiler",)),
    ("note to self: the spare bike key is taped under the desk drawer. call it Bike key", ("Bike key",)),
    ("Save a note called Garage code with the text 7 7 1 9 hash, then search my notes for garage.",
     ("Garage code",)),
    ("new note pls, title Bike shop, text: the chain needs replacing", ("Bike shop",)),
    ("jot this down under the title 'Dentist': appointment moved to Thursday", ("Dentist",)),
    ("Save a note titled 'Lisbon hotel' with the text 'Hotel Alfama, booking ref QX72'", ("Lisbon hotel",)),
    ("Save this as a note called “Airbnb Lisbon”: check-in after 3pm", ("Airbnb Lisbon",)),
    ("the title is Foo", ("Foo",)), ("title: Groceries, text: milk", ("Groceries",)),
    ("Add a todo called buy milk due Friday", ("buy milk",)),
    ("Please remember this, title it Team meeting: Team agreed to ship 2.1", ("Team meeting",)),
    # no title word, or one that names no title
    ("What's the title of that book?", ()), ("Add 'buy milk' to my list", ()),
])
def test_stated_titles(text, titles):
    assert stated_titles(text) == titles


def test_title_parameters_and_their_schema():
    assert is_title_param("title", {"type": "string"}) and is_title_param("noteTitle", {"type": "string"})
    assert is_title_param("subject", {"type": "string"})
    assert not is_title_param("text", {"type": "string"}) and not is_title_param("title", {"type": "integer"})
    assert not is_title_param("title", {"type": "string", "enum": ["a"]})
    assert stated_spec({"type": "string", "maxLength": 5}, ("Bike key", "Bike")) == {"type": "string", "enum": ["Bike"]}
    assert stated_spec({"type": "string", "maxLength": 3}, ("Bike key",)) is None
    note = {"type": "object", "required": ["title", "text"],
            "properties": {"title": {"type": "string"}, "text": {"type": "string"}}}
    ev = ArgEvidence.of(["a note titled Boiler: the engineer comes Thursday"])
    assert ground_schema(note, ev, titles=True)["properties"] == {
        "title": {"type": "string", "enum": ["Boiler"]},
        "text": {"type": "string", "enum": ["the engineer comes Thursday"]}}
    assert ground_schema(note, ev, titles=False, optional=False, times=False) is note
    plain = ArgEvidence.of(["note: the engineer comes Thursday"])
    assert ground_schema(note, plain, titles=True, optional=False, times=False) is note  # no title given: free
    # only the latest user message gives titles
    assert ArgEvidence.of(["a note called Old", "and another one saying hi"]).titles == ()


@pytest.mark.parametrize("text, texts", [
    ("Save a note called Garage code with the text 7 7 1 9 hash, then search my notes for garage.",
     ("7 7 1 9 hash",)),
    ("Save a note titled 'Lisbon hotel' with the text 'Hotel Alfama, booking ref QX72', then pull up my notes",
     ("Hotel Alfama, booking ref QX72",)),
    ("jot this down under the title 'Dentist': appointment moved to Thursday at 3pm",
     ("appointment moved to Thursday at 3pm",)),
    ("new note pls, title Bike shop, text: the chain needs replacing, quote was 35 pounds",
     ("the chain needs replacing, quote was 35 pounds",)),
    ("save a note 'Doctor visit' that says Dr. Alvarez said to take vitamin D daily. cheers",
     ("Dr. Alvarez said to take vitamin D daily.", "Dr. Alvarez said to take vitamin D daily. cheers")),
    ("note to self: the spare bike key is under the drawer. call it Bike key", ()),  # no marker: free
])
def test_stated_texts(text, texts):
    assert stated_texts(text) == texts


def test_text_parameters():
    assert is_text_param("text", {"type": "string"}) and is_text_param("body", {"type": "string"})
    assert not is_text_param("title", {"type": "string"}) and not is_text_param("text", {"type": "string",
                                                                                       "enum": ["a"]})
