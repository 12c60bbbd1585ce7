// The seed document's JavaScript examples, run with the official `telnyx` npm SDK against a live server.
// The pytest wrapper (tests/test_js_seed.py) starts the server and passes INFERLINE_URL / INFERLINE_KEY.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Telnyx from 'telnyx';

const baseURL = process.env.INFERLINE_URL;
const client = new Telnyx({ apiKey: process.env.INFERLINE_KEY, baseURL, maxRetries: 0 });

test('Setup + list models (client.ai.openai.listModels)', async () => {
  const modelsResponse = await client.ai.openai.listModels();
  assert.ok(modelsResponse.data.some((m) => m.id === 'HuggingFaceTB/SmolLM2-135M-Instruct'));
});

test('Error handling: a bad key is a Telnyx.AuthenticationError (401)', async () => {
  const bad = new Telnyx({ apiKey: 'KEYwrong', baseURL, maxRetries: 0 });
  await assert.rejects(bad.ai.openai.listModels(), (err) => {
    assert.ok(err instanceof Telnyx.APIError);
    assert.ok(err instanceof Telnyx.AuthenticationError);
    assert.equal(err.status, 401);
    assert.equal(err.error.errors[0].code, '10009');
    return true;
  });
});
