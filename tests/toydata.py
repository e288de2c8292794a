"""Toy tools and records shared by the tiny-model tests."""

from __future__ import annotations

TOOLS = [
    {"name": "get_weather", "description": "Weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    {"name": "add", "description": "Add two numbers",
     "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"]}},
    {"name": "send_email", "description": "Send an email",
     "parameters": {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}},
    {"name": "play_song", "description": "Play a song",
     "parameters": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}},
]
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo"]


def toy_records() -> list[dict]:
    recs = []
    for i in range(10):
        c = CITIES[i % 5]
        recs.append({"query": f"weather in {c}?", "answers": [{"name": "get_weather", "arguments": {"city": c}}]})
        recs.append({"query": f"add {i} and {i + 2}", "answers": [{"name": "add", "arguments": {"a": i, "b": i + 2}}]})
        recs.append({"query": f"email to bob{i}", "answers": [{"name": "send_email", "arguments": {"to": f"bob{i}"}}]})
        recs.append({"query": f"play song {c}", "answers": [{"name": "play_song", "arguments": {"title": c}}]})
    recs.append({"query": "weather in Oslo and add 1 and 2",
                 "answers": [{"name": "get_weather", "arguments": {"city": "Oslo"}},
                             {"name": "add", "arguments": {"a": 1, "b": 2}}]})
    for r in recs:
        r["tools"] = TOOLS
    return recs


ADD = {"name": "add", "description": "Add two numbers",
       "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                      "required": ["a", "b"]}}
ECHO = {"name": "echo", "description": "Echo a text back",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}


# ----- callables for controller tests ------------------------------------------------------------------
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: first
        b: second
    """
    return a + b


def get_weather(city: str, unit: str = "C") -> dict:
    """Weather for a city.

    Args:
        city: city name
        unit: C or F
    """
    if city == "Atlantis":
        raise ValueError("unknown city 'Atlantis'")
    return {"city": city, "temp": 21, "unit": unit}
