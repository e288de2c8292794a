"""LangChain's standard integration tests for ChatTokMem on the real default model (SmolLM2-135M-Instruct).

The standard tests bind their own tools (``magic_function``, ``get_weather``, ``Joke``…), which no bank
has a trained memory token for: the model runs with ``auto_register=True``, i.e. each such tool gets a fresh,
untrained token. So these tests check the plumbing with a real model (prompting, streaming, usage, stop
sequences, histories with tool calls and results, forced tool calls under the schema grammar, structured
output); they cannot check tool-use quality. What needs trained tokens or a bigger model is xfailed with
the reason. Greedy decoding makes every outcome deterministic.
"""

from __future__ import annotations

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from tokmem_agent import ControllerConfig
from tokmem_agent.integrations.langchain import ChatTokMem

pytestmark = pytest.mark.slow

#: Per-turn token budget: long enough for a short answer or a small JSON object (24 cut the forced call of
#: test_bind_runnables_as_tools), short enough that the module takes about two minutes on a shared CPU.
MAX_TOKENS = 32

STRUCTURED = ("with_structured_output binds the schema as a tool with tool_choice='any' and the grammar "
              "keeps the JSON valid, but the schema's token is untrained and the 135M model repeats itself "
              "inside the 'setup' string ('A cat with a tail is a cat with a tail…') until the token budget "
              "cuts the object (an invalid tool call, so no parsed output)")
UNTRAINED = ("the bound tool gets an untrained memory token (auto_register) and the model never sees tool "
             "descriptions in its prompt (TokMem: a tool is its token): ")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core CPU, two threads were measured 5x slower (busy-waiting)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def default_tm():
    from tokmem_agent.tokmem import TokMem

    def placeholder(text: str) -> str:
        """Echo a text (a bank needs at least one tool; the standard tests bind their own)."""
        return text

    return TokMem.create([placeholder])  # the default model, dequantised once and cached


class TestChatTokMemDefaultModel(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _tm(self, default_tm):
        self.tm = default_tm

    @property
    def chat_model_class(self) -> type[ChatTokMem]:
        return ChatTokMem

    @property
    def chat_model_params(self) -> dict:
        return {"tm": self.tm, "auto_register": True, "max_tokens": MAX_TOKENS,
                "controller_config": ControllerConfig(constrained=True)}

    @property
    def supports_model_override(self) -> bool:
        return False  # one local model per instance: invoke(model=...) is refused

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False  # with_structured_output(method="json_mode") is not implemented (tool calling is)

    # --- what an untrained token on a 135M model cannot do ----------------------------------------
    # run=False: greedy decoding makes these outcomes deterministic (observed once, see the reasons), and
    # each costs 10-20 s of CPU. The same code paths are covered with scripted decoding in
    # tests/unit/test_langchain.py. test_tool_calling still runs as a canary (XPASS = it got it right).
    @pytest.mark.xfail(reason=UNTRAINED + "it fills the forced call with its own value (input=100), not "
                       "the 3 of the question", strict=False)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_tool_calling(self, model: BaseChatModel) -> None:
        super().test_tool_calling(model)

    @pytest.mark.xfail(reason=UNTRAINED + "input=100 instead of 3 (as test_tool_calling)", run=False)
    async def test_tool_calling_async(self, model: BaseChatModel) -> None:
        await super().test_tool_calling_async(model)

    @pytest.mark.xfail(reason=UNTRAINED + "after the empty arguments it emits the same token again and again "
                       "(16 identical calls in one turn) instead of ending the turn", run=False)
    def test_tool_calling_with_no_arguments(self, model: BaseChatModel) -> None:
        super().test_tool_calling_with_no_arguments(model)

    @pytest.mark.xfail(reason=UNTRAINED + "with tool_choice=auto the model never picks that token, so no "
                       "call", run=False)
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(reason=UNTRAINED + "the customer name it writes is not copied from the question",
                       run=False)
    def test_unicode_tool_call_integration(self, model: BaseChatModel, *, tool_choice: str | None = None,
                                           force_tool_call: bool = True) -> None:
        super().test_unicode_tool_call_integration(model, tool_choice=tool_choice,
                                                   force_tool_call=force_tool_call)

    @pytest.mark.xfail(reason=STRUCTURED, run=False)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model: BaseChatModel, schema_type: str) -> None:
        super().test_structured_output(model, schema_type)

    @pytest.mark.xfail(reason=STRUCTURED, run=False)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: str) -> None:
        await super().test_structured_output_async(model, schema_type)

    @pytest.mark.xfail(reason=STRUCTURED, run=False)
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @pytest.mark.xfail(reason=STRUCTURED, run=False)
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)
