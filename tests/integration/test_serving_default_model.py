"""The `make demo` bank served (`tokmem serve`'s app, on 127.0.0.1) and exported (`tokmem export`), on the
real default model: the openai client gets the chain's first call; stock transformers decodes the
exported checkpoint exactly as TokMem.predict does on 20 of the pack's hand-written requests; LangChain's
ChatOpenAI pointed at the server runs a create_agent over the pack's real tools."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest
import torch
import uvicorn
from demo_checks import assert_converted_120_usd  # tests/integration/demo_checks.py

from tokmem_agent import ControllerConfig
from tokmem_agent.model.loader import cache_root, load_base_model
from tokmem_agent.serving.engine import Engine
from tokmem_agent.serving.export import export_bank
from tokmem_agent.serving.openai_api import create_app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STOCK = (Path(__file__).resolve().parents[1] / "unit" / "test_export.py").read_text()
STOCK = STOCK[STOCK.index('STOCK = r"""') + len('STOCK = r"""'):]
STOCK = STOCK[:STOCK.index('"""')]


@pytest.fixture(scope="module")
def demo_tm():
    from tools.demo import demo_bank

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield demo_bank(load_base_model(None), cache_root() / "test-banks" / "demo")
    finally:
        torch.set_num_threads(before)


def test_openai_client_and_chat_openai_agent(demo_tm, tmp_path):
    engine = Engine(demo_tm, ControllerConfig(max_new_tokens=96), batch_size=4)
    server = uvicorn.Server(uvicorn.Config(create_app(engine, model_name="demo"), host="127.0.0.1", port=0,
                                           log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                   "parameters": t.parameters}} for t in demo_tm.tools]
        r = client.chat.completions.create(model="demo", tools=tools, messages=[
            {"role": "user", "content": "Convert 250 GBP to USD and then add a 15% tip to the converted amount."}])
        call = r.choices[0].message.tool_calls[0]
        assert r.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "convert_currency"
        assert json.loads(call.function.arguments) == {"amount": 250, "from_currency": "GBP", "to_currency": "USD"}
        hello = client.chat.completions.create(model="demo", tools=tools,
                                               messages=[{"role": "user", "content": "Good morning!"}])
        assert hello.choices[0].message.tool_calls is None and hello.choices[0].message.content

        # LangChain's OpenAI chat model against the server, inside create_agent, with the pack's real tools
        from langchain.agents import create_agent
        from langchain_openai import ChatOpenAI

        from tokmem_agent.integrations.langchain import as_langchain_tools
        from tools.basic import make_tools

        llm = ChatOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", model="demo", max_retries=0)
        out = create_agent(llm, tools=as_langchain_tools(make_tools(tmp_path))).invoke(
            {"messages": [("user", "Convert 120 USD to EUR.")]})
        assert_converted_120_usd(out)
    finally:
        server.should_exit = True
        th.join(10)
        engine.close()


def test_export_reproduces_predict_with_stock_transformers(demo_tm, tmp_path):
    queries = [json.loads(line)["query"] for line in
               (ROOT / "bench/data/pack_requests.jsonl").read_text().splitlines()[:20]]
    res = export_bank(demo_tm, tmp_path / "demo", merge_lora=True)
    assert res.lora == ("merged" if demo_tm.lora is not None else "none") and res.tied
    proc = subprocess.run([sys.executable, "-c", STOCK, str(res.path), json.dumps(queries), "48"],
                          capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    same = calls = 0
    for q, g in zip(queries, got):
        want = demo_tm.predict(q, max_new_tokens=48)
        assert g["prompt"] == demo_tm.chat.prompt_ids([{"role": "user", "content": q}]), q
        same += g["ids"] == want.ids
        calls += bool(want.calls)
    assert calls >= 10  # the memory tokens were chosen: the exported rows are the ones deciding
    assert same == len(queries)
