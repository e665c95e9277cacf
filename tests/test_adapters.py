"""LoRA adapters on the real embedded engine: a real adapter trained here (tests/make_adapter.py), chosen per
deployment and per row by the request's `model`, mixed with the base model and conversations in one batch."""

import json

import openai
import pandas as pd
import pytest

from nim_drum import hooks
from nim_drum.engines.embedded import start_embedded, stop_embedded
from nim_drum.errors import ClientError, ConfigError

from helpers import (
    ADAPTER,
    STYLE,
    TARGET,
    BusySlotMonitor,
    engine_root,
    load_settings,
    make_lora_code_dir,
    score_with,
)

CAPITAL = "What is the capital of France?"
SUM = "What is 3 + 4?"


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    directory = make_lora_code_dir(tmp_path_factory.mktemp("lora") / "code")
    yield directory
    stop_embedded(directory)


@pytest.fixture(scope="module")
def lora_engine(lora_dir):
    """llama-server with SmolLM2 and the trained adapter, loaded from the code directory's loras/."""
    return start_embedded(load_settings(), lora_dir)


def score(handle, data, **params):
    return score_with(handle, load_settings({"max_tokens": 24, **params}), pd.DataFrame(data))


def test_models_lists_the_base_model_and_the_adapter(lora_engine):
    client = openai.OpenAI(base_url=lora_engine.base_url, api_key="none", http_client=None)
    listed = [m.id for m in hooks.client_for(lora_engine, load_settings()).models.list()]
    assert listed == ["datarobot-deployed-llm", ADAPTER]
    # llama-server itself lists only its base model: the adapter is reached through its `lora` field.
    assert [m.id for m in client.models.list()] == ["datarobot-deployed-llm"]


def test_one_batch_mixes_adapter_base_and_conversation_rows(lora_engine):
    few_shot = [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"},
                {"role": "user", "content": SUM}]
    rows = [
        (CAPITAL, "", ""),
        (CAPITAL, ADAPTER, ""),
        ("", ADAPTER, json.dumps(few_shot)),
        ("", "", json.dumps(few_shot)),
        (SUM, "datarobot-deployed-llm", ""),
        (SUM, ADAPTER, ""),
    ]
    data = {"promptText": [r[0] for r in rows], "lora": [r[1] for r in rows], "chat": [r[2] for r in rows]}
    with BusySlotMonitor(engine_root(lora_engine)) as monitor:
        result = score(lora_engine, data, adapter_column_name="lora", messages_column_name="chat", max_concurrency=6)
    answers = result[TARGET].tolist()
    assert len(result) == len(rows) and (result["error"] == "").all(), result["error"].tolist()
    styled = [STYLE in answer for answer in answers]
    assert styled == [False, True, True, False, False, True], answers
    assert "Paris" in answers[0] and "Paris" in answers[1]  # the adapter changes the style, not the facts
    assert result["adapter"].tolist() == ["", ADAPTER, ADAPTER, "", "datarobot-deployed-llm", ADAPTER]
    assert list(result.columns).index("adapter") == 1
    assert monitor.peak >= 2, "adapter and base rows never ran at the engine at the same time"


def test_the_adapter_parameter_answers_every_row_and_a_cell_overrides_it(lora_engine):
    every = score(lora_engine, {"promptText": [CAPITAL, SUM]}, adapter=ADAPTER)
    assert all(STYLE in answer for answer in every[TARGET]) and every["adapter"].tolist() == [ADAPTER, ADAPTER]
    mixed = score(lora_engine, {"promptText": [CAPITAL, SUM], "lora": ["", "datarobot-deployed-llm"]},
                  adapter=ADAPTER, adapter_column_name="lora")
    assert [STYLE in answer for answer in mixed[TARGET]] == [True, False]


def test_deduplication_keeps_the_adapter_apart(lora_engine):
    result = score(lora_engine, {"promptText": [CAPITAL] * 4, "lora": ["", ADAPTER, "", ADAPTER]},
                   adapter_column_name="lora")
    assert [STYLE in answer for answer in result[TARGET]] == [False, True, False, True]
    assert result[TARGET].iloc[0] == result[TARGET].iloc[2] and result[TARGET].iloc[1] == result[TARGET].iloc[3]


def test_unknown_or_malformed_adapters_are_row_errors_naming_what_is_served(lora_engine):
    result = score(lora_engine, {"promptText": [SUM] * 4, "lora": ["", "parrot", "../pirate", ADAPTER]},
                   adapter_column_name="lora")
    errors = result["error"].tolist()
    assert len(result) == 4 and errors[0] == "" and errors[3] == ""
    assert "'parrot'" in errors[1] and "not served" in errors[1] and f"datarobot-deployed-llm, {ADAPTER}" in errors[1]
    assert "'../pirate'" in errors[2] and "path separator" in errors[2]
    assert result["latency_ms"].iloc[1] == 0 and result["latency_ms"].iloc[2] == 0  # never sent


def test_a_missing_adapter_column_names_the_parameter_and_the_columns(lora_engine):
    with pytest.raises(ClientError) as error:
        score(lora_engine, {"promptText": [SUM]}, adapter_column_name="lora")
    assert "'lora'" in str(error.value) and "adapter_column_name" in str(error.value)
    assert "'promptText'" in str(error.value) and error.value.status_code == 400


def test_an_unknown_deployment_adapter_fails_at_start_with_the_served_list(lora_engine):
    with pytest.raises(ConfigError) as error:
        hooks.check_adapter(load_settings({"adapter": "parrot"}), lora_engine)
    assert "'adapter' is 'parrot'" in str(error.value) and f"datarobot-deployed-llm, {ADAPTER}" in str(error.value)
    hooks.check_adapter(load_settings({"adapter": ADAPTER}), lora_engine)  # a served one passes


def test_an_adapter_name_with_a_path_separator_fails_as_a_parameter():
    with pytest.raises(ConfigError) as error:
        load_settings({"adapter": "loras/pirate"})
    assert "'adapter'" in str(error.value) and "path separator" in str(error.value)


def test_chat_selects_the_adapter_by_model(lora_engine):
    settings = load_settings()
    client = hooks.client_for(lora_engine, settings)
    question = [{"role": "user", "content": CAPITAL}]
    from nim_drum.serving.chat import chat

    styled = chat({"messages": question, "model": ADAPTER, "max_tokens": 24, "temperature": 0}, client, lora_engine.model)
    base = chat({"messages": question, "max_tokens": 24, "temperature": 0}, client, lora_engine.model)
    assert STYLE in styled.choices[0].message.content and STYLE not in base.choices[0].message.content
    stream = chat({"messages": question, "model": ADAPTER, "max_tokens": 24, "temperature": 0, "stream": True},
                  client, lora_engine.model)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == styled.choices[0].message.content
    with pytest.raises(ClientError) as error:
        chat({"messages": question, "model": "parrot"}, client, lora_engine.model)
    assert error.value.status_code == 404 and ADAPTER in str(error.value)


def test_each_adapter_folder_is_served_as_the_engine_can_read_it(tmp_path):
    from nim_drum.engines import embedded, vllm_engine

    peft = tmp_path / "loras"
    for name, files in {"alpha": ["adapter_config.json", "a.gguf"], "beta": ["adapter_config.json"],
                        "gamma": ["g.gguf"], ".cache": ["adapter_config.json"], "bad name": ["x.gguf"]}.items():
        (peft / name).mkdir(parents=True)
        for file in files:
            (peft / name / file).write_text('{"r": 64}' if file.endswith(".json") else "")
    ggufs = [path for _, path in embedded.gguf_adapters(peft)]
    assert embedded.lora_options(ggufs) == ["--lora", str(peft / "alpha" / "a.gguf"), "--lora",
                                            str(peft / "gamma" / "g.gguf")]
    assert vllm_engine.lora_options([], peft) == [
        "--enable-lora", "--lora-modules", f"alpha={peft / 'alpha'}", f"beta={peft / 'beta'}",
        "--max-loras", "2", "--max-lora-rank", "64"]
    assert vllm_engine.lora_options([], peft, on_cpu=True)[-4:-2] == ["--max-loras", "3"]  # an empty slot
    assert vllm_engine.lora_options(["--enable-lora"], peft) == []  # engine_config.json's args decide
    assert vllm_engine.lora_options([], tmp_path / "none") == [] and embedded.lora_options([]) == []


def test_drum_server_scores_csv_rows_per_adapter_and_chat_picks_one_by_model(lora_engine, lora_dir, drum_server):
    """The real DRUM on the same code directory: it shares the running engine, adapter included."""
    import requests

    server = drum_server(lora_dir, values={"engine": "embedded", "adapter_column_name": "lora", "max_tokens": 24})
    csv = f"promptText,lora\n{CAPITAL},\n{CAPITAL},{ADAPTER}\n{SUM},parrot\n"
    response = requests.post(f"{server.url}/predictions", data=csv.encode(), headers={"Content-Type": "text/csv"},
                             timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    predictions, extra = body["predictions"], body["extraModelOutput"]
    assert [STYLE in p for p in predictions] == [False, True, False]
    rows = [dict(zip(extra["columns"], row, strict=True)) for row in extra["data"]]
    assert [row["adapter"] for row in rows] == ["", ADAPTER, "parrot"]
    assert "not served" in rows[2]["error"] and rows[0]["error"] == rows[1]["error"] == ""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    assert ADAPTER in [m.id for m in client.models.list()]
    reply = client.chat.completions.create(model=ADAPTER, messages=[{"role": "user", "content": CAPITAL}],
                                           max_tokens=24, temperature=0)
    assert STYLE in reply.choices[0].message.content
