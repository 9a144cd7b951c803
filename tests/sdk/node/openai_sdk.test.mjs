// The official `openai` Node package against a running gateway (started by tests/sdk.rs).
// CHERRYPICK_BASE_URL and CHERRYPICK_API_KEY point at the gateway; behind it, a fake upstream that
// echoes the last user message (see tests/common/fake_upstream.rs).
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI from "openai";

const baseURL = process.env.CHERRYPICK_BASE_URL;
const apiKey = process.env.CHERRYPICK_API_KEY;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const user = (text) => [{ role: "user", content: text }];
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];

test("chat", async () => {
  const completion = await client.chat.completions.create({ model: "gpt-4o-mini", messages: user("hello") });
  assert.equal(completion.choices[0].message.content, "echo: hello");
  assert.equal(completion.usage.total_tokens, 15);
});

test("stream with usage", async () => {
  const stream = await client.chat.completions.create({
    model: "mini", messages: user("one two three"), stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let usage;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, "echo: one two three");
  assert.equal(usage.total_tokens, 15);
});

test("tools, whole and streamed", async () => {
  const completion = await client.chat.completions.create({ model: "mini", messages: user("weather?"), tools });
  const call = completion.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });

  const stream = await client.chat.completions.create({ model: "mini", messages: user("weather?"), tools, stream: true });
  let args = "";
  for await (const chunk of stream) {
    for (const delta of chunk.choices[0]?.delta?.tool_calls ?? []) args += delta.function?.arguments ?? "";
  }
  assert.deepEqual(JSON.parse(args), { city: "Paris" });
});

test("JSON mode", async () => {
  const completion = await client.chat.completions.create({
    model: "mini", messages: user("json please"), response_format: { type: "json_object" },
  });
  assert.deepEqual(JSON.parse(completion.choices[0].message.content), { echo: "json please" });
});

test("embeddings", async () => {
  const result = await client.embeddings.create({ model: "mini", input: ["a", "b"] });
  assert.deepEqual(result.data.map((d) => d.embedding.length), [3, 3]);
});

test("models list", async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  for (const expected of ["gpt-4o-mini", "mini", "auto"]) assert.ok(ids.includes(expected), expected);
});

test("error classes", async () => {
  await assert.rejects(client.chat.completions.create({ model: "mini", messages: [] }), OpenAI.BadRequestError);
  const wrongKey = new OpenAI({ baseURL, apiKey: "sk-wrong", maxRetries: 0 });
  await assert.rejects(wrongKey.chat.completions.create({ model: "mini", messages: user("hi") }), OpenAI.AuthenticationError);
  await assert.rejects(client.chat.completions.create({ model: "gpt-9", messages: user("hi") }), OpenAI.NotFoundError);
  await assert.rejects(client.chat.completions.create({ model: "status-429", messages: user("hi") }), OpenAI.RateLimitError);
  await assert.rejects(
    client.chat.completions.create({ model: "status-503", messages: user("hi") }),
    (error) => error instanceof OpenAI.APIError && error.status === 503,
  );
});
