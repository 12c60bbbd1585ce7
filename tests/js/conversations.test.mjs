// The seed document's conversation and insight examples, run with the official `telnyx` npm SDK against a live
// server (tests/test_js_seed.py passes INFERLINE_URL / INFERLINE_KEY / INFERLINE_KEY_B).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import Telnyx from 'telnyx';

const baseURL = process.env.INFERLINE_URL;
const client = new Telnyx({ apiKey: process.env.INFERLINE_KEY, baseURL, maxRetries: 0 });
const other = new Telnyx({ apiKey: process.env.INFERLINE_KEY_B, baseURL, maxRetries: 0 });

// The seed calls `client.ai.conversations.create()`; npm telnyx 7.24.0 itself throws on that before any request
// ("Cannot destructure property 'Idempotency-Key' of 'params'"), so the examples pass an empty params object.
test('Create, list, get, update, delete a conversation', async () => {
  await assert.rejects(async () => client.ai.conversations.create(), TypeError);
  const conversation = await client.ai.conversations.create({});
  assert.match(conversation.id, /^[0-9a-f-]{36}$/);
  const named = await client.ai.conversations.create({ name: 'js call', metadata: { channel: 'web_chat' } });

  const conversations = await client.ai.conversations.list();
  assert.ok(conversations.data.some((c) => c.id === conversation.id));

  const filtered = await client.ai.conversations.list({
    'metadata->telnyx_conversation_channel': 'is.null',
    name: 'eq.js call',
  });
  assert.deepEqual(
    filtered.data.map((c) => c.id),
    [named.id],
  );

  const got = await client.ai.conversations.retrieve(conversation.id);
  assert.equal(got.data.id, conversation.id);

  const updated = await client.ai.conversations.update(conversation.id, { metadata: { stage: 'done' } });
  assert.deepEqual(updated.data.metadata, { stage: 'done' });
  const unchanged = await client.ai.conversations.update(conversation.id);
  assert.deepEqual(unchanged.data.metadata, { stage: 'done' });

  await client.ai.conversations.delete(conversation.id);
  await assert.rejects(client.ai.conversations.retrieve(conversation.id), (err) => err.status === 404);
  await assert.rejects(other.ai.conversations.retrieve(named.id), (err) => err instanceof Telnyx.NotFoundError);
});

test('Add messages and page through them', async () => {
  const conversation = await client.ai.conversations.create({});
  await client.ai.conversations.addMessage(conversation.id, { role: 'user' });
  await client.ai.conversations.addMessage(conversation.id, { role: 'assistant', content: 'How can I help?' });
  const messages = await client.ai.conversations.messages.list(conversation.id);
  assert.deepEqual(
    messages.data.map((m) => [m.role, m.text]),
    [
      ['user', ''],
      ['assistant', 'How can I help?'],
    ],
  );
  const all = [];
  for await (const message of client.ai.conversations.messages.list(conversation.id, { 'page[size]': 1 })) {
    all.push(message.text);
  }
  assert.deepEqual(all, ['', 'How can I help?']);
  const response = await client.ai.conversations.retrieveConversationsInsights(conversation.id);
  assert.deepEqual(response.data, []);
  await assert.rejects(
    client.ai.conversations.addMessage(conversation.id, { role: 'narrator' }),
    (err) => err.status === 422,
  );
});

test('Insight templates: create, list (auto-paged), get, update, delete', async () => {
  const insightTemplateDetail = await client.ai.conversations.insights.create({
    instructions: 'You are a helpful assistant.',
    name: 'my-resource',
  });
  const id = insightTemplateDetail.data.id;
  const withSchema = await client.ai.conversations.insights.create({
    instructions: 'Rate it.',
    name: 'score',
    json_schema: { type: 'object', properties: { score: { type: 'integer' } }, required: ['score'] },
  });
  assert.equal(withSchema.data.json_schema.properties.score.type, 'integer');
  const ids = [];
  for await (const insightTemplate of client.ai.conversations.insights.list({ 'page[size]': 1 })) {
    ids.push(insightTemplate.id);
  }
  assert.ok(ids.includes(id) && ids.includes(withSchema.data.id));
  assert.equal((await client.ai.conversations.insights.retrieve(id)).data.name, 'my-resource');
  const updated = await client.ai.conversations.insights.update(id, { name: 'renamed' });
  assert.equal(updated.data.name, 'renamed');
  await client.ai.conversations.insights.delete(id);
  await client.ai.conversations.insights.delete(withSchema.data.id);
  await assert.rejects(client.ai.conversations.insights.retrieve(id), (err) => err.status === 404);
});

test('Insight groups: create, list, get, update, assign, unassign, delete', async () => {
  const insightTemplateGroupDetail = await client.ai.conversations.insightGroups.insightGroups({
    name: 'my-resource',
  });
  const groupId = insightTemplateGroupDetail.data.id;
  const template = await client.ai.conversations.insights.create({ instructions: 'Summarise.', name: 'sum' });
  const found = [];
  for await (const insightTemplateGroup of client.ai.conversations.insightGroups.retrieveInsightGroups()) {
    found.push(insightTemplateGroup.id);
  }
  assert.ok(found.includes(groupId));
  await client.ai.conversations.insightGroups.insights.assign(template.data.id, { group_id: groupId });
  let got = await client.ai.conversations.insightGroups.retrieve(groupId);
  assert.deepEqual(
    got.data.insights.map((t) => t.id),
    [template.data.id],
  );
  const updated = await client.ai.conversations.insightGroups.update(groupId, { description: 'after calls' });
  assert.equal(updated.data.description, 'after calls');
  await client.ai.conversations.insightGroups.insights.deleteUnassign(template.data.id, { group_id: groupId });
  got = await client.ai.conversations.insightGroups.retrieve(groupId);
  assert.deepEqual(got.data.insights, []);
  await client.ai.conversations.insightGroups.delete(groupId);
  await assert.rejects(client.ai.conversations.insightGroups.retrieve(groupId), (err) => err.status === 404);
});

test('Insight webhook from a marked conversation verifies with client.webhooks.unwrap', async () => {
  const received = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  try {
    const webhook = `http://127.0.0.1:${receiver.address().port}/insights`;
    const template = await client.ai.conversations.insights.create({
      instructions: 'Did the customer say thanks?',
      name: 'thanks',
      json_schema: { type: 'object', properties: { thanked: { type: 'boolean' } }, required: ['thanked'] },
    });
    const group = await client.ai.conversations.insightGroups.insightGroups({ name: 'js-hook', webhook });
    await client.ai.conversations.insightGroups.insights.assign(template.data.id, { group_id: group.data.id });
    const conversation = await client.ai.conversations.create({ metadata: { insight_group_id: group.data.id } });
    await client.ai.conversations.addMessage(conversation.id, {
      role: 'user',
      content: 'Thank you, all sorted!',
      metadata: { end_of_conversation: true },
    });
    for (let i = 0; i < 1200 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(received.length, 1);
    const keyResponse = await fetch(`${baseURL}/ai/conversations/webhook-public-key`, {
      headers: { authorization: `Bearer ${process.env.INFERLINE_KEY}` },
    });
    const key = (await keyResponse.json()).data.public_key;
    const { headers, body } = received[0];
    const event = await client.webhooks.unwrap(body, { headers, key });
    assert.equal(event.data.event_type, 'call.conversation_insights.generated');
    assert.equal(event.data.payload.insight_group_id, group.data.id);
    assert.equal(typeof event.data.payload.results[0].result.thanked, 'boolean');
    await assert.rejects(client.webhooks.unwrap(body.replace('"event"', '"evenT"'), { headers, key }));
    const runs = await client.ai.conversations.retrieveConversationsInsights(conversation.id);
    assert.equal(runs.data[0].status, 'completed');
  } finally {
    receiver.close();
  }
});
