// The seed document's audio examples (transcription, text-to-speech, voices, legacy STT reports), run with the
// official `telnyx` npm SDK against a live server (tests/test_js_seed.py passes INFERLINE_URL / INFERLINE_KEY).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Telnyx, { toFile } from 'telnyx';

const baseURL = process.env.INFERLINE_URL;
const client = new Telnyx({ apiKey: process.env.INFERLINE_KEY, baseURL, maxRetries: 0 });
const other = new Telnyx({ apiKey: process.env.INFERLINE_KEY_B, baseURL, maxRetries: 0 });
const VOICE = 'Telnyx.Piper.en_US-joe-medium';
const words = (s) => s.toLowerCase().replace(/[^a-z0-9\s]/g, ' ').split(/\s+/).filter(Boolean);

test('List available voices (client.textToSpeech.listVoices)', async () => {
  const response = await client.textToSpeech.listVoices();
  assert.deepEqual([response.voices[0].voice_id, response.voices[0].provider], [VOICE, 'telnyx']);
  assert.deepEqual((await client.textToSpeech.listVoices({ provider: 'aws' })).voices, []);
});

test('Generate speech, then transcribe it back (textToSpeech.generateSpeech + ai.audio.transcribe)', async () => {
  // npm telnyx >= 7.6 names the seed's `textToSpeech.generate()` `generateSpeech`.
  assert.equal(typeof client.textToSpeech.generate, 'undefined');
  const text = 'The weather is sunny and warm today.';
  const response = await client.textToSpeech.generateSpeech({
    text,
    voice: VOICE,
    output_type: 'base64_output',
    telnyx: { response_format: 'wav' },
  });
  const wav = Buffer.from(response.base64_audio, 'base64');
  assert.equal(wav.subarray(0, 4).toString(), 'RIFF');

  // The seed's call names a model but no file: a 400 in the Telnyx envelope.
  await assert.rejects(client.ai.audio.transcribe({ model: 'distil-whisper/distil-large-v2' }), (err) => {
    assert.ok(err instanceof Telnyx.BadRequestError);
    assert.equal(err.error.errors[0].code, '10015');
    return true;
  });
  const transcript = await client.ai.audio.transcribe({
    model: 'distil-whisper/distil-large-v2',
    file: await toFile(wav, 'speech.wav', { type: 'audio/wav' }),
    response_format: 'verbose_json',
    'timestamp_granularities[]': 'segment',
  });
  assert.deepEqual(words(transcript.text), words(text));
  assert.ok(transcript.duration > 1 && transcript.segments.length >= 1);
});

test('Binary speech through .asResponse() is raw audio/mpeg', async () => {
  const response = await client.textToSpeech
    .generateSpeech({ text: 'Hello there.', voice: VOICE, output_type: 'binary_output' })
    .asResponse();
  assert.equal(response.headers.get('content-type'), 'audio/mpeg');
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.ok(bytes.length > 1000);
  const transcript = await client.ai.audio.transcribe({
    model: 'openai/whisper-large-v3-turbo',
    file: await toFile(bytes, 'hello.mp3'),
    model_config: { smart_format: true },
  });
  assert.deepEqual(words(transcript.text), ['hello', 'there']);
});

test('Speech to Text batch reports: create, list, retrieve, delete; and the usage report', async () => {
  const reports = client.legacy.reporting.batchDetailRecords.speechToText;
  const now = new Date();
  const created = await reports.create({
    start_date: new Date(now.getTime() - 3600_000).toISOString(),
    end_date: new Date(now.getTime() + 60_000).toISOString(),
  });
  assert.equal(created.data.record_type, 'speech_to_text_report');
  let report = created.data;
  for (let i = 0; i < 300 && report.status === 'PENDING'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    report = (await reports.retrieve(created.data.id)).data;
  }
  assert.equal(report.status, 'COMPLETE');
  const csv = await fetch(report.download_link, { headers: { authorization: `Bearer ${process.env.INFERLINE_KEY}` } });
  assert.equal(csv.status, 200);
  assert.match((await csv.text()).split('\n')[0], /^record_id,created_at,model,/);

  const speechToTexts = await reports.list();
  assert.ok(speechToTexts.data.some((r) => r.id === created.data.id));
  await assert.rejects(other.legacy.reporting.batchDetailRecords.speechToText.retrieve(created.data.id), Telnyx.NotFoundError);
  const deleted = await reports.delete(created.data.id);
  assert.equal(deleted.data.id, created.data.id);
  await assert.rejects(reports.retrieve(created.data.id), Telnyx.NotFoundError);

  const usage = await client.legacy.reporting.usageReports.retrieveSpeechToText();
  assert.ok(usage.data.total.transcriptions >= 2);
});
