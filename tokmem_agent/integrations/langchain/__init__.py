"""LangChain integration: :class:`ChatTokMem` (a tool-calling chat model) and :func:`agent_runnable`.

This is the only part of the package that imports LangChain (``langchain-core``): ``messages`` (message and
tool-choice mapping), ``chat_model`` (:class:`ChatTokMem`), ``tools`` (tool errors back to the model) and
``runnable`` (:func:`agent_runnable`).

>>> from tokmem_agent.integrations.langchain import ChatTokMem
>>> llm = ChatTokMem.from_pretrained("banks/my-tools")          # the model loads on first use
>>> msg = llm.bind_tools([get_weather]).invoke("What's the weather in Paris?")
>>> msg.tool_calls
[{'name': 'get_weather', 'args': {'city': 'Paris'}, 'id': 'call_…', 'type': 'tool_call'}]

Each call to the model generates **one assistant turn** with the decoding controller
(:meth:`Controller.generate_turn`): free text, or memory tokens of bound tools each followed by JSON
arguments (decoded under the tool's schema when ``ControllerConfig.constrained``). LangChain runs the
tools and sends the results back as ``ToolMessage`` s; :func:`lc_tool` / :func:`as_langchain_tools` make
plain functions LangChain tools whose exceptions come back to the model as error results (as in
:class:`TokMemAgent`) instead of ending the run. :func:`agent_runnable` instead wraps
:meth:`TokMemAgent.run`, the controller's own loop (tools executed in-process, KV cache reused).

See docs/langchain.md for the message mapping, ``tool_choice`` semantics and what is not supported.
"""

from .chat_model import ChatTokMem
from .messages import to_tokmem_messages
from .runnable import agent_runnable
from .tools import as_langchain_tools, lc_tool, tool_error_middleware, tool_error_text

__all__ = ["ChatTokMem", "agent_runnable", "as_langchain_tools", "lc_tool", "to_tokmem_messages",
           "tool_error_middleware", "tool_error_text"]
