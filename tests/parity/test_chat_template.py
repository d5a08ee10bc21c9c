"""apply_chat_template against transformers' apply_chat_template, run offline on the shipped
tokenizer_config.json (the Qwen2.5-Instruct template)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import qwen25

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city. Units: «celsius» or <fahrenheit> & more.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. 北京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
CALC_TOOL = {"type": "function", "function": {"name": "add", "description": "a+b",
             "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}}}

CONVERSATIONS: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None]] = [
    ("single user turn, default system prompt", [{"role": "user", "content": "Hi"}], None),
    ("custom system prompt", [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}], None),
    ("multi-turn", [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Tell me a joke about 🦀 and 你好.\n\nTwo lines."},
    ], None),
    ("tools, default system prompt", [{"role": "user", "content": "Weather in Paris?"}], [WEATHER_TOOL, CALC_TOOL]),
    ("tools with system prompt, tool call and response", [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris and 2+3?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}},
            {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
        ]},
        {"role": "tool", "content": '{"temperature": 21}'},
        {"role": "tool", "content": "5"},
        {"role": "assistant", "content": "It is 21°C in Paris, and 2+3=5."},
    ], [WEATHER_TOOL, CALC_TOOL]),
    ("assistant text with a tool call", [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "content": "cold"},
    ], [WEATHER_TOOL]),
]


@pytest.fixture(scope="module")
def hf_auto(qwen25_data_dir: Path):  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(qwen25_data_dir))


@pytest.mark.parametrize("name,messages,tools", CONVERSATIONS, ids=[c[0] for c in CONVERSATIONS])
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_matches_transformers(tok: qwen25.Tokenizer, hf_auto, name: str, messages, tools, add_generation_prompt: bool) -> None:  # type: ignore[no-untyped-def]
    expected = hf_auto.apply_chat_template(messages, tools=tools, add_generation_prompt=add_generation_prompt, tokenize=False)
    text = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=add_generation_prompt, tokenize=False)
    assert text == expected
    ids = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=add_generation_prompt)
    assert ids == hf_auto(expected, add_special_tokens=False)["input_ids"]


def test_caller_messages_are_not_modified(tok: qwen25.Tokenizer) -> None:
    msgs = CONVERSATIONS[4][1]
    before = repr(msgs)
    tok.apply_chat_template(msgs, tools=[WEATHER_TOOL], tokenize=False)
    assert repr(msgs) == before


def test_bad_messages(tok: qwen25.Tokenizer) -> None:
    with pytest.raises(TypeError):
        tok.apply_chat_template("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"messages\[1\]"):
        tok.apply_chat_template([{"role": "user", "content": "a"}, "b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="role"):
        tok.apply_chat_template([{"content": "a"}])
