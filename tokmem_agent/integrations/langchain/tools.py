"""Tools whose errors go back to the model as error results instead of ending the run."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException, tool

log = logging.getLogger("tokmem_agent")


# ----- tools whose errors go back to the model -----------------------------------------------------
ErrorTypes = bool | type[Exception] | tuple[type[Exception], ...]


def tool_error_text(exc: BaseException) -> str:
    """``"ValueError: message"``: the text :class:`TokMemAgent` reports for a failed call."""
    if isinstance(exc, ToolException) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]  # already converted (see lc_tool)
    return f"{type(exc).__name__}: {str(exc) or type(exc).__name__}"


def _error_types(handle_errors: ErrorTypes) -> tuple[type[Exception], ...]:
    if handle_errors is True:
        return (Exception,)
    if isinstance(handle_errors, type) and issubclass(handle_errors, Exception):
        return (handle_errors,)
    if isinstance(handle_errors, tuple) and handle_errors and all(
            isinstance(t, type) and issubclass(t, Exception) for t in handle_errors):
        return handle_errors
    raise TypeError(f"handle_errors must be a bool, an Exception type or a tuple of them, got {handle_errors!r}")


def _passthrough() -> tuple[type[BaseException], ...]:
    """Exceptions never turned into results: LangGraph's control flow (``interrupt()``, ``Command``)."""
    try:
        from langgraph.errors import GraphBubbleUp
    except ImportError:  # langchain-core alone: no graph to bubble up to
        return (ToolException,)
    return (ToolException, GraphBubbleUp)


def _as_tool_exception(fn: Callable[..., Any], types: tuple[type[Exception], ...]) -> Callable[..., Any]:
    """``fn`` raising :class:`ToolException` (with :func:`tool_error_text`) for exceptions of ``types``."""
    keep = _passthrough()
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def arun(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except keep:
                raise
            except types as exc:
                raise ToolException(tool_error_text(exc)) from exc

        return arun

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except keep:
            raise
        except types as exc:
            raise ToolException(tool_error_text(exc)) from exc

    return run


def lc_tool(fn: Callable[..., Any] | StructuredTool, *, handle_errors: ErrorTypes = True) -> StructuredTool:
    """A LangChain tool (as ``@tool``) whose exceptions become error results the model sees.

    LangChain only returns :class:`ToolException` to the model, and only from a tool with
    ``handle_tool_error`` set; ``create_agent``'s ToolNode returns argument-validation errors but re-raises
    anything else, ending the run. Here an exception of ``handle_errors`` (True: any ``Exception``; or an
    Exception type / tuple of types; False: plain ``tool(fn)``) is re-raised as ``ToolException`` and the
    tool has ``handle_tool_error=True``: the call gets ``ToolMessage(content="ValueError: …",
    status="error")`` and ChatTokMem shows the model ``{"error": "ValueError: …"}``, as TokMemAgent does.
    Other exceptions, and LangGraph interrupts, propagate. fn: a typed function (sync or async) or a
    StructuredTool (copied; the original is left as it is).
    """
    if isinstance(fn, StructuredTool):
        base = fn
    elif isinstance(fn, BaseTool):
        raise TypeError(f"lc_tool wraps functions and StructuredTools, not {type(fn).__name__}: raise "
                        "ToolException in its _run and set handle_tool_error=True, or use tool_error_middleware()")
    elif callable(fn):
        base = tool(fn)
    else:
        raise TypeError(f"lc_tool needs a function or a StructuredTool, got {type(fn).__name__}")
    if handle_errors is False:
        return base
    types = _error_types(handle_errors)
    update: dict[str, Any] = {"handle_tool_error": True}
    if base.func is not None:
        update["func"] = _as_tool_exception(base.func, types)
    if base.coroutine is not None:
        update["coroutine"] = _as_tool_exception(base.coroutine, types)
    return base.model_copy(update=update)


def as_langchain_tools(fns: Sequence[Callable[..., Any] | StructuredTool], *,
                       handle_errors: ErrorTypes = True) -> list[StructuredTool]:
    """:func:`lc_tool` for each function: ``create_agent(ChatTokMem(...), tools=as_langchain_tools(fns))``."""
    return [lc_tool(f, handle_errors=handle_errors) for f in fns]


def tool_error_middleware(errors: type[Exception] | tuple[type[Exception], ...] = Exception, *,
                          tools: Sequence[Any] | None = None) -> Any:
    """A ``create_agent`` middleware returning tool exceptions to the model, for tools you built yourself.

    LangChain's ``ToolErrorMiddleware`` with :func:`tool_error_text` as the error ToolMessage's content, for
    exceptions of ``errors``; ``tools``: only these (tools or names). Others propagate.
    ``create_agent(llm, tools=[...], middleware=[tool_error_middleware()])``.
    """
    try:
        from langchain.agents.middleware import ToolErrorMiddleware
    except ImportError as exc:
        raise ImportError("tool_error_middleware needs a langchain with ToolErrorMiddleware (1.5.2 has it); "
                          "otherwise build the tools with as_langchain_tools()") from exc
    types = _error_types(errors)

    def on_error(exc: Exception, request: Any) -> str | None:
        return tool_error_text(exc) if isinstance(exc, types) else None

    return ToolErrorMiddleware(on_error, tools=list(tools) if tools is not None else None)
