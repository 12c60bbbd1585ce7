// The seed document's chat example (`client.ai.chat.createCompletion` there; npm >= 7.8 names it
// `client.ai.openai.chat.createCompletion`) with the official `telnyx` npm SDK, plus openai-node streaming,
// against a live server. max_tokens keeps the small test model quick.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import OpenAI from 'openai';
import Telnyx from 'telnyx';

const baseURL = process.env.INFERLINE_URL;
const apiKey = process.env.INFERLINE_KEY;
const client = new Telnyx({ apiKey, baseURL, maxRetries: 0 });
const SMOL = 'HuggingFaceTB/SmolLM2-135M-Instruct';
const messages = [
  { role: 'system', content: 'You are a friendly chatbot.' },
  { role: 'user', content: 'Hello, world!' },
];

test('Create a chat completion (client.ai.openai.chat.createCompletion)', async () => {
  const response = await client.ai.openai.chat.createCompletion({ messages, max_tokens: 8 });
  assert.equal(response.object, 'chat.completion');
  assert.equal(response.model, SMOL);
  assert.equal(response.choices[0].message.role, 'assistant');
  assert.ok(response.choices[0].message.content.length > 0);
  assert.ok(response.usage.completion_tokens <= 8);
});

test('Chat completion with guided_choice and an unknown model error', async () => {
  const response = await client.ai.openai.chat.createCompletion({
    messages: [{ role: 'user', content: 'Yes or no?' }],
    guided_choice: ['yes', 'no'],
    max_tokens: 4,
  });
  assert.ok(['yes', 'no'].includes(response.choices[0].message.content));
  await assert.rejects(
    client.ai.openai.chat.createCompletion({ messages, model: 'nope/missing' }),
    (err) => {
      assert.ok(err instanceof Telnyx.NotFoundError);
      assert.equal(err.error.errors[0].code, '10005');
      return true;
    },
  );
});

test('openai-node streams chat completions from the /ai/openai base', async () => {
  const oai = new OpenAI({ apiKey, baseURL: baseURL + '/ai/openai', maxRetries: 0 });
  const stream = await oai.chat.completions.create({ model: SMOL, messages, max_tokens: 6, stream: true });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    usage = chunk.usage ?? usage;
  }
  assert.ok(text.length > 0);
  assert.ok(usage && usage.completion_tokens <= 6);
});
