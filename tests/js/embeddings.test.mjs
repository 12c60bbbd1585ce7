// The seed document's embeddings examples with the official `telnyx` npm SDK (and openai-node, which decodes
// base64 embeddings unconditionally), against a live server. Files reach the bucket through inferline's S3
// endpoint, signed here with AWS Signature V4 with the key's S3 access key id and S3 secret (never the API key).
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { test } from 'node:test';
import OpenAI from 'openai';
import Telnyx from 'telnyx';

const baseURL = process.env.INFERLINE_URL;
const apiKey = process.env.INFERLINE_KEY;
const s3AccessKeyId = process.env.INFERLINE_S3_ACCESS_KEY_ID;
const s3Secret = process.env.INFERLINE_S3_SECRET;
const client = new Telnyx({ apiKey, baseURL, maxRetries: 0 });
const other = new Telnyx({ apiKey: process.env.INFERLINE_KEY_B, baseURL, maxRetries: 0 });
const MINILM = 'sentence-transformers/all-MiniLM-L6-v2';

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

async function s3Put(path, body = '') {
  const url = new URL(baseURL.replace(/\/v2$/, '') + '/s3' + path);
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payload = sha256(body);
  const headers = { host: url.host, 'x-amz-content-sha256': payload, 'x-amz-date': amzDate };
  const signed = Object.keys(headers).sort();
  const canonical = ['PUT', url.pathname, '', ...signed.map((h) => `${h}:${headers[h]}`), '', signed.join(';'), payload].join('\n');
  const scope = `${day}/us-east-1/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac('AWS4' + s3Secret, day);
  for (const part of ['us-east-1', 's3', 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const authorization = `AWS4-HMAC-SHA256 Credential=${s3AccessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`;
  const { host, ...sent } = headers;
  const response = await fetch(url, { method: 'PUT', body, headers: { ...sent, authorization } });
  assert.equal(response.status, 200, await response.text());
}

async function waitTask(taskId) {
  for (let i = 0; i < 900; i++) {
    const embedding = await client.ai.embeddings.retrieve(taskId);
    if (['success', 'failure', 'partial_success'].includes(embedding.data.status)) return embedding.data.status;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`task ${taskId} did not finish`);
}

test('Embed a bucket, list tasks and buckets, search it, then disable AI for it', async () => {
  await s3Put('/js-bucket');
  await s3Put('/js-bucket/about.txt', 'Telnyx is a global communications platform with voice and messaging APIs.');
  await s3Put('/js-bucket/recipe.txt', 'Whisk the eggs with sugar, then fold in the flour gently.');

  const embeddingResponse = await client.ai.embeddings.create({ bucket_name: 'js-bucket' });
  assert.equal(embeddingResponse.data.status, 'queued');
  const embeddings = await client.ai.embeddings.list();
  assert.ok(Array.isArray(embeddings.data));
  assert.equal(await waitTask(embeddingResponse.data.task_id), 'success');
  const embedding = await client.ai.embeddings.retrieve(embeddingResponse.data.task_id);
  assert.equal(embedding.data.task_name, 'embed_bucket');

  const buckets = await client.ai.embeddings.buckets.list();
  assert.ok(buckets.data.buckets.includes('js-bucket'));
  const bucket = await client.ai.embeddings.buckets.retrieve('js-bucket');
  assert.deepEqual(bucket.data.map((f) => [f.filename, f.status]), [['about.txt', 'success'], ['recipe.txt', 'success']]);

  const response = await client.ai.embeddings.similaritySearch({ bucket_name: 'js-bucket', query: 'What is Telnyx?' });
  assert.equal(response.data[0].metadata.filename, 'about.txt');
  assert.ok(response.data[0].distance >= 0 && response.data[0].distance <= 1);
  assert.equal(response.data[0].metadata.embedding, MINILM);
  await assert.rejects(
    other.ai.embeddings.similaritySearch({ bucket_name: 'js-bucket', query: 'What is Telnyx?' }),
    (err) => err instanceof Telnyx.NotFoundError,
  );

  await client.ai.embeddings.buckets.delete('js-bucket');
  await assert.rejects(client.ai.embeddings.buckets.retrieve('js-bucket'), (err) => err.status === 404);
});

test('Embed URL content: refused for hosts this server may not reach', async () => {
  await s3Put('/js-crawl');
  await assert.rejects(
    client.ai.embeddings.url({ bucket_name: 'js-crawl', url: 'http://169.254.169.254/latest/meta-data' }),
    (err) => err.status === 400 && err.error.errors[0].source.pointer === '/url',
  );
  await assert.rejects(
    client.ai.embeddings.url({ bucket_name: 'js-no-such-bucket', url: 'https://example.com/resource' }),
    (err) => err.status === 400 || err.status === 404,
  );
});

test('Create embeddings and list embedding models (OpenAI-compatible)', async () => {
  const response = await client.ai.openai.embeddings.createEmbeddings({
    input: 'The quick brown fox jumps over the lazy dog',
    model: 'thenlper/gte-large',
  });
  assert.equal(response.data[0].embedding.length, 384);
  assert.equal(response.model, MINILM);
  const models = await client.ai.openai.embeddings.listEmbeddingModels();
  assert.deepEqual(models.data.map((m) => m.id), [MINILM]);
});

test('openai-node decodes the default base64 encoding into the same vector', async () => {
  const oai = new OpenAI({ apiKey, baseURL: baseURL + '/ai/openai', maxRetries: 0 });
  const b64 = await oai.embeddings.create({ model: MINILM, input: 'vector search' });
  const floats = await oai.embeddings.create({ model: MINILM, input: 'vector search', encoding_format: 'float' });
  assert.equal(b64.data[0].embedding.length, 384);
  b64.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - floats.data[0].embedding[i]) < 1e-6));
});
