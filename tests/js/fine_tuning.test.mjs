// The seed document's fine-tuning and summarize examples with the official `telnyx` npm SDK against a live
// server. The training file reaches the bucket through inferline's S3 endpoint (SigV4 with the key's S3
// access key id and S3 secret).
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import Telnyx from 'telnyx';

const baseURL = process.env.INFERLINE_URL;
const apiKey = process.env.INFERLINE_KEY;
const s3AccessKeyId = process.env.INFERLINE_S3_ACCESS_KEY_ID;
const s3Secret = process.env.INFERLINE_S3_SECRET;
const client = new Telnyx({ apiKey, baseURL, maxRetries: 0, timeout: 300_000 });
const other = new Telnyx({ apiKey: process.env.INFERLINE_KEY_B, baseURL, maxRetries: 0 });
const BASE = 'HuggingFaceTB/SmolLM2-135M-Instruct';

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

async function s3Put(path, body = '') {
  const url = new URL(baseURL.replace(/\/v2$/, '') + '/s3' + path);
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers = { host: url.host, 'x-amz-content-sha256': sha256(body), 'x-amz-date': amzDate };
  const signed = Object.keys(headers).sort();
  const canonical = ['PUT', url.pathname, '', ...signed.map((h) => `${h}:${headers[h]}`), '', signed.join(';'), headers['x-amz-content-sha256']].join('\n');
  const scope = `${day}/us-east-1/s3/aws4_request`;
  let key = hmac('AWS4' + s3Secret, day);
  for (const part of ['us-east-1', 's3', 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n')).digest('hex');
  const { host, ...sent } = headers;
  const authorization = `AWS4-HMAC-SHA256 Credential=${s3AccessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  const response = await fetch(url, { method: 'PUT', body, headers: { ...sent, authorization } });
  assert.equal(response.status, 200, await response.text());
}

test('Create, list, get and cancel a fine tuning job', async () => {
  await s3Put('/js-ft');
  const line = { messages: [{ role: 'user', content: 'Hi?' }, { role: 'assistant', content: 'Hello from JS.' }] };
  await s3Put('/js-ft/train.jsonl', JSON.stringify(line) + '\n');

  const fineTuningJob = await client.ai.fineTuning.jobs.create({ model: BASE, training_file: 'js-ft/train.jsonl', hyperparameters: { n_epochs: 50 }, suffix: 'js' });
  assert.ok(['queued', 'running'].includes(fineTuningJob.status));
  assert.equal(fineTuningJob.model, BASE);
  assert.equal(fineTuningJob.hyperparameters.n_epochs, 50);
  assert.equal(fineTuningJob.trained_tokens, null);

  const jobs = await client.ai.fineTuning.jobs.list();
  assert.ok(jobs.data.some((j) => j.id === fineTuningJob.id));
  const fetched = await client.ai.fineTuning.jobs.retrieve(fineTuningJob.id);
  assert.equal(fetched.training_file, 'js-ft/train.jsonl');
  assert.equal(typeof fetched.created_at, 'number');

  const cancelled = await client.ai.fineTuning.jobs.cancel(fineTuningJob.id);
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(typeof cancelled.finished_at, 'number');

  await assert.rejects(other.ai.fineTuning.jobs.retrieve(fineTuningJob.id), (err) => err.status === 404);
  await assert.rejects(
    client.ai.fineTuning.jobs.create({ model: BASE, training_file: 'js-ft/missing.jsonl' }),
    (err) => err.status === 404 && err.error.errors[0].source.pointer === '/training_file',
  );
});

test('Summarize file content', async () => {
  await s3Put('/js-summary');
  await s3Put('/js-summary/data.csv', 'city,population\nOslo,700000\nBergen,290000\n');
  const response = await client.ai.summarize({ bucket: 'js-summary', filename: 'data.csv' });
  assert.equal(typeof response.data.summary, 'string');
  assert.ok(response.data.summary.length > 0);
  await assert.rejects(client.ai.summarize({ bucket: 'js-summary', filename: 'nope.txt' }), (err) => err.status === 404);
});
