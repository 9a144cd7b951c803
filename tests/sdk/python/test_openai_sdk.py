"""The official `openai` Python package against a running gateway (started by tests/sdk.rs).

CHERRYPICK_BASE_URL and CHERRYPICK_API_KEY point at the gateway; behind it is a fake upstream that
echoes the last user message (see tests/common/fake_upstream.rs for the models it understands).
"""
import json
import os

import openai
import pytest

BASE_URL = os.environ["CHERRYPICK_BASE_URL"]
API_KEY = os.environ["CHERRYPICK_API_KEY"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key=API_KEY, max_retries=0)


def user(text):
    return [{"role": "user", "content": text}]


def test_chat(client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=user("hello"))
    assert raw.headers["x-cherrypick-model"] == "gpt-4o-mini"
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == 15


def test_system_and_multi_turn(client):
    messages = [{"role": "developer", "content": "be brief"}, {"role": "system", "content": "you echo"},
                {"role": "user", "content": "first"}, {"role": "assistant", "content": "echo: first"},
                {"role": "user", "content": "second"}]
    completion = client.chat.completions.create(model="auto", messages=messages)
    assert completion.choices[0].message.content == "echo: second"


def test_stream_with_usage(client):
    stream = client.chat.completions.create(model="mini", messages=user("one two three"), stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert chunks[-1].usage.total_tokens == 15


def test_tools(client):
    completion = client.chat.completions.create(model="mini", messages=user("weather in Paris?"), tools=TOOLS,
                                                tool_choice="auto")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_streamed_tool_call_arguments_reassemble(client):
    stream = client.chat.completions.create(model="mini", messages=user("weather?"), tools=TOOLS, stream=True)
    arguments, names = "", []
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.function.name:
                names.append(call.function.name)
            arguments += call.function.arguments or ""
    assert names == ["get_weather"]
    assert json.loads(arguments) == {"city": "Paris"}


def test_json_mode_and_structured_output(client):
    completion = client.chat.completions.create(model="mini", messages=user("json please"),
                                                response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content) == {"echo": "json please"}
    schema = {"type": "json_schema", "json_schema": {"name": "echo", "strict": True, "schema": {
        "type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"],
        "additionalProperties": False}}}
    completion = client.chat.completions.create(model="mini", messages=user("schema"), response_format=schema)
    assert json.loads(completion.choices[0].message.content) == {"echo": "schema"}


def test_embeddings(client):
    result = client.embeddings.create(model="mini", input=["a", "b"])
    assert [len(d.embedding) for d in result.data] == [3, 3]


def test_models_list(client):
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "mini", "auto"} <= ids


def test_bad_request(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="mini", messages=[])
    assert error.value.param == "messages"


def test_context_length_is_a_bad_request_with_its_code(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="status-400", messages=user("too long"))
    assert error.value.code == "context_length_exceeded"


def test_authentication_error():
    bad = openai.OpenAI(base_url=BASE_URL, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="mini", messages=user("hi"))


def test_not_found(client):
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="gpt-9", messages=user("hi"))
    assert error.value.code == "model_not_found"


def test_rate_limit(client):
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="status-429", messages=user("hi"))
    assert error.value.response.headers["retry-after"] == "7"


def test_server_error_is_an_api_status_error(client):
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="status-503", messages=user("hi"))
    assert error.value.status_code == 503


def test_a_stream_that_breaks_raises(client):
    stream = client.chat.completions.create(model="cut-stream", messages=user("hi"), stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
