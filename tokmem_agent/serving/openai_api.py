"""An OpenAI-compatible HTTP API over an :class:`~.engine.Engine` (FastAPI).

``POST /v1/chat/completions`` takes OpenAI's request (``messages`` with system/user/assistant ``tool_calls``/
tool turns, ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``max_tokens``/``max_completion_tokens``,
``stream`` with ``stream_options.include_usage``) and answers one assistant turn: text, or ``tool_calls``
decoded by the memory tokens with arguments under each tool's schema. The client runs the tools and sends
their results back, as with any OpenAI endpoint. Requested tools map to memory tokens by name; one the bank
has no token for is a 400 naming it. Decoding is greedy: sampling fields are accepted and ignored.
``GET /v1/models`` and ``GET /health`` too. Errors have OpenAI's shape:
``{"error": {"message", "type", "param", "code"}}``.

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time.)
"""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..decoding.grounding import grounding_for
from ..decoding.schedule import TurnSpec
from ..traces import Call, Message
from .engine import Engine, Overloaded, Request
from .registration import Registrar

if TYPE_CHECKING:
    from fastapi import FastAPI


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionDef(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(_Open):
    type: Literal["function"] = "function"
    function: FunctionDef


class FunctionCall(_Open):
    name: str
    arguments: str = "{}"


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class ChatRequest(_Open):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


class RegisterRequest(_Open):
    tools: list[ToolDef] = Field(min_length=1)
    traces: list[dict[str, Any]] | None = None


class APIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for i, part in enumerate(content):
        if part.get("type") != "text":
            raise APIError(400, f"only text content parts are supported, got {part.get('type')!r}",
                           param=f"{where}.content[{i}]")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def to_messages(req: ChatRequest, known: set[str]) -> list[Message]:
    """OpenAI messages → the library's (assistant ``calls``; tool turns named after their call)."""
    out: list[Message] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(req.messages):
        where = f"messages[{i}]"
        if m.role in ("system", "developer"):
            out.append({"role": "system", "content": _text(m.content, where)})
        elif m.role == "user":
            out.append({"role": "user", "content": _text(m.content, where)})
        elif m.role == "assistant":
            calls = []
            for k, tc in enumerate(m.tool_calls or []):
                if tc.function.name not in known:
                    raise APIError(400, f"tool {tc.function.name!r} has no memory token in this bank",
                                   param=f"{where}.tool_calls[{k}].function.name", code="unknown_tool")
                try:
                    args = json.loads(tc.function.arguments or "{}")
                except json.JSONDecodeError as exc:
                    raise APIError(400, f"arguments are not JSON: {exc}",
                                   param=f"{where}.tool_calls[{k}].function.arguments") from None
                if not isinstance(args, dict):
                    raise APIError(400, "arguments must be a JSON object",
                                   param=f"{where}.tool_calls[{k}].function.arguments")
                calls.append(Call(tc.function.name, args))
                call_names[tc.id] = tc.function.name
            msg: Message = {"role": "assistant", "content": _text(m.content, where)}
            if calls:
                msg["calls"] = calls
            out.append(msg)
        else:  # tool
            name = m.name or call_names.get(m.tool_call_id or "")
            out.append({"role": "tool", "content": _text(m.content, where), **({"name": name} if name else {})})
    return out


def tool_choice_of(req: ChatRequest, bound: list[str]) -> str | None:
    tc = req.tool_choice
    if tc is None or tc == "auto":
        return None
    if tc == "none":
        return "none"
    if tc == "required":
        if not bound:
            raise APIError(400, "tool_choice 'required' needs tools", param="tool_choice")
        return "any"
    if isinstance(tc, dict) and tc.get("type") == "function":
        name = (tc.get("function") or {}).get("name")
        if name not in bound:
            raise APIError(400, f"tool_choice names {name!r}, which is not among the request's tools",
                           param="tool_choice.function.name")
        return str(name)
    raise APIError(400, f"tool_choice must be auto, none, required or a function, got {tc!r}", param="tool_choice")


def create_app(engine: Engine, *, model_name: str = "tokmem", api_key: str | None = None,
               max_tokens: int | None = None, registrar: Registrar | None = None,
               register_unknown: bool = False, default_tools: list[str] | None = None) -> "FastAPI":
    """The FastAPI app. ``max_tokens``: the most a request may generate (default: the controller's budget).
    ``registrar``: enables ``POST /v1/tools`` (registering tools into the running bank). ``register_unknown``
    (with a registrar): a chat request that names tools the bank lacks starts their registration from the
    request's schemas (zero-data) and is answered 503 with Retry-After until they are served.
    ``default_tools``: the tools a request that has no ``tools`` field may call (``tokmem serve --tools``);
    without them such a request gets a text answer, as OpenAI's API does."""
    from fastapi import FastAPI
    from fastapi import Request as HTTPRequest
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse

    cap = max_tokens or engine.controller.config.max_new_tokens
    app = FastAPI(title="tokmem", version="1")

    @app.exception_handler(APIError)
    async def _api_error(_r: HTTPRequest, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: HTTPRequest, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        msg = f"{param}: {first.get('msg', 'invalid request')}" if param else first.get("msg", "invalid request")
        return JSONResponse(APIError(400, msg, param=param).body(), status_code=400)

    @app.middleware("http")
    async def _auth(request: HTTPRequest, call_next: Any) -> Any:
        if (api_key and request.url.path.startswith("/v1/")
                and request.headers.get("authorization", "") != f"Bearer {api_key}"):
            err = APIError(401, "invalid API key", kind="authentication_error", code="invalid_api_key")
            return JSONResponse(err.body(), status_code=401)
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "tools": len(engine.tm.tool_names), "swaps": engine.swaps, "active": engine.active, "waiting": engine.waiting,
                "served": engine.served, "cancelled": engine.cancelled}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0,
                                            "owned_by": "tokmem"}]}

    @app.get("/v1/tools")
    async def list_tools() -> dict[str, Any]:
        return {"object": "list", "data": [{"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}} for t in engine.tm.tools]}

    @app.post("/v1/tools", status_code=202)
    async def register(req: RegisterRequest) -> dict[str, Any]:
        if registrar is None:
            raise APIError(404, "registering tools is not enabled on this server", code="not_enabled")
        traces = None
        if req.traces:
            from ..errors import DataFormatError
            from ..traces import load_traces

            try:
                traces = load_traces(req.traces)
            except DataFormatError as exc:
                raise APIError(400, str(exc), param="traces") from None
        tools = [{"name": t.function.name, "description": t.function.description or "",
                  "parameters": t.function.parameters or {"type": "object", "properties": {}}} for t in req.tools]
        return registrar.submit(tools, traces).to_dict()

    @app.get("/v1/tools/registrations/{job_id}")
    async def registration(job_id: str) -> dict[str, Any]:
        job = registrar.get(job_id) if registrar is not None else None
        if job is None:
            raise APIError(404, f"no registration {job_id!r}", param="job_id", code="not_found")
        return job.to_dict()

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, http: HTTPRequest) -> Any:
        tm = engine.tm  # the bank of this request (a registration may switch it between requests)
        names = ([t.function.name for t in req.tools] if req.tools is not None
                 else [n for n in default_tools or [] if n in set(tm.tool_names)])
        unknown = [n for n in names if n not in set(tm.tool_names)]
        if unknown and registrar is not None and register_unknown:
            job = registrar.pending_for(unknown)
            if job is None:
                defs = [{"name": t.function.name, "description": t.function.description or "",
                         "parameters": t.function.parameters or {"type": "object", "properties": {}}}
                        for t in req.tools or [] if t.function.name in unknown]
                job = registrar.submit(defs)
            raise APIError(503, f"tool(s) {', '.join(unknown)} are being registered from their schemas (job "
                                f"{job.id}, GET /v1/tools/registrations/{job.id}); retry when it is ready",
                           kind="server_error", param="tools", code="tool_registering",
                           headers={"Retry-After": "15"})
        if unknown:
            raise APIError(400, f"no memory token for tool(s) {', '.join(unknown)}; this bank has "
                                f"{', '.join(tm.tool_names)}", param="tools", code="unknown_tool")
        messages = to_messages(req, set(tm.tool_names))
        choice = tool_choice_of(req, names)
        budget = min(cap, req.max_completion_tokens or req.max_tokens or cap)
        prompt = tm.chat.prompt_ids(messages)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        r = Request(prompt, TurnSpec(names, choice, budget, "tool" if messages[-1]["role"] == "tool" else "user",
                                grounding_for(messages)),
                    lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev),
                    parallel_calls=req.parallel_tool_calls, stream=req.stream)
        try:
            engine.submit(r)
        except Overloaded as exc:
            raise APIError(429, f"the server is busy: {exc}", kind="rate_limit_error", code="overloaded",
                           headers={"Retry-After": "1"}) from None
        rid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        base = {"id": rid, "object": "chat.completion", "created": created, "model": req.model or model_name}
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_sse(events, r, base, len(prompt), include_usage),
                                     media_type="text/event-stream")
        try:
            while True:
                try:
                    ev = await asyncio.wait_for(events.get(), timeout=0.5)
                except asyncio.TimeoutError:
                    if await http.is_disconnected():
                        r.cancel()
                        return JSONResponse({}, status_code=499)
                    continue
                if ev[0] == "done":
                    return _completion(base, ev[1], len(prompt))
                if ev[0] == "error":
                    raise APIError(500, f"decoding failed: {ev[1]}", kind="server_error")
        except asyncio.CancelledError:
            r.cancel()
            raise

    return app


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _usage(prompt: int, turn: Any) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": turn.generated, "total_tokens": prompt + turn.generated}


def _finish(turn: Any) -> str:
    """``length`` when the budget (or a call's argument limit) cut the turn, as OpenAI says it."""
    if turn.out_of_budget or any(c.cut for c in turn.calls):
        return "length"
    return "tool_calls" if turn.calls else "stop"


def _completion(base: dict[str, Any], turn: Any, prompt: int) -> dict[str, Any]:
    calls = [{"id": _call_id(), "type": "function", "function": {"name": c.tool, "arguments": c.text}}
             for c in turn.calls]
    message: dict[str, Any] = {"role": "assistant", "content": turn.text if turn.text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {**base, "choices": [{"index": 0, "message": message, "finish_reason": _finish(turn), "logprobs": None}],
            "usage": _usage(prompt, turn)}


async def _sse(events: asyncio.Queue[tuple[Any, ...]], r: Request, base: dict[str, Any], prompt: int,
               include_usage: bool) -> AsyncIterator[str]:
    """OpenAI's stream: a role chunk, content or tool-call deltas, a finish chunk, the usage chunk, [DONE]."""
    base = {**base, "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if include_usage:
            body["usage"] = None
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            ev = await events.get()
            kind = ev[0]
            if kind == "text":
                yield chunk({"content": ev[1]})
            elif kind == "call":
                yield chunk({"tool_calls": [{"index": ev[1], "id": _call_id(), "type": "function",
                                             "function": {"name": ev[2], "arguments": ""}}]})
            elif kind == "args":
                yield chunk({"tool_calls": [{"index": ev[1], "function": {"arguments": ev[2]}}]})
            elif kind == "done":
                turn = ev[1]
                yield chunk({}, _finish(turn))
                if include_usage:
                    yield f"data: {json.dumps({**base, 'choices': [], 'usage': _usage(prompt, turn)})}\n\n"
                break
            elif kind == "error":
                err = APIError(500, f"decoding failed: {ev[1]}", kind="server_error")
                yield f"data: {json.dumps(err.body())}\n\n"
                break
        yield "data: [DONE]\n\n"
    finally:
        r.cancel()  # a client that went away frees its row (no-op once the turn is done)
