"""Checks shared by the slow tests that run the demo bank through LangChain's create_agent."""

from __future__ import annotations

from typing import Any


def assert_converted_120_usd(out: dict[str, Any]) -> None:
    """A create_agent run on "Convert 120 USD to EUR.": the right call, its result fed back, an answer."""
    calls = [c for m in out["messages"] for c in (getattr(m, "tool_calls", None) or [])]
    assert calls and calls[0]["name"] == "convert_currency", out["messages"]
    assert calls[0]["args"] == {"amount": 120, "from_currency": "USD", "to_currency": "EUR"}
    tool_msgs = [m for m in out["messages"] if type(m).__name__ == "ToolMessage"]
    assert tool_msgs and "110.4" in tool_msgs[0].content
    assert out["messages"][-1].content.strip()
