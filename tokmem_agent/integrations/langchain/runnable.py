""":func:`agent_runnable`: the controller's own loop (:meth:`TokMemAgent.run`) as a LangChain runnable."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from langchain_core.messages import (
    BaseMessage,
    convert_to_messages,
)
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from ...traces import Message

if TYPE_CHECKING:
    from ...agent import TokMemAgent


from .messages import to_tokmem_messages

log = logging.getLogger("tokmem_agent")


# ----- the controller's own loop as a runnable ------------------------------------------------------
def _agent_input(value: Any, known: Sequence[str]) -> tuple[str | list[Message], Any]:
    """str | {"input"/"query": str} | {"messages": [...]} | messages → (query, tool_choice)."""
    choice = None
    if isinstance(value, dict):
        choice = value.get("tool_choice")
        if "messages" in value:
            value = value["messages"]
        elif "input" in value or "query" in value:
            value = value.get("input", value.get("query"))
        else:
            raise ValueError("agent input dict needs 'input' (a string) or 'messages'")
    if isinstance(value, str):
        return value, choice
    if hasattr(value, "to_messages"):  # a PromptValue
        value = value.to_messages()
    if isinstance(value, BaseMessage):
        value = [value]
    return to_tokmem_messages(convert_to_messages(value), known), choice


def agent_runnable(agent: TokMemAgent) -> Runnable[Any, dict[str, Any]]:
    """A Runnable over :meth:`TokMemAgent.run`: the controller executes the tools itself.

    Input: a string, ``{"input": str}``, ``{"messages": [...]}`` or messages (optionally with
    ``"tool_choice"`` in the dict). Output: :meth:`RunResult.to_dict` (``answer``, ``steps``, ``outcome``,
    ``text``, token counts, ``timings``, ``messages``). Each executed call is also dispatched as a custom
    callback event ``"tokmem_step"`` (visible with ``astream_events``).
    """

    def run(value: Any, config: RunnableConfig) -> dict[str, Any]:
        query, choice = _agent_input(value, agent.tm.tool_names)

        def on_step(step: Any) -> None:
            from langchain_core.callbacks.manager import dispatch_custom_event

            try:
                dispatch_custom_event("tokmem_step", asdict(step), config=config)
            except RuntimeError:  # no parent run: nobody to tell
                log.debug("tokmem_step event not dispatched (no parent run)")

        return agent.run(query, tool_choice=choice, on_step=on_step).to_dict()

    return RunnableLambda(run, name="TokMemAgent")
