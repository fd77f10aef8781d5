// dsv3 serve through the official OpenAI Node client, plus raw HTTP for what a client
// library would never send.   usage: node client_test.mjs MAIN_URL API_KEY SINGLE_URL EXPECTED.json
// MAIN_URL: --parallel 16 --ctx 512 --api-key API_KEY; SINGLE_URL: --parallel 1 --queue 0, no key.
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';

const [mainUrl, apiKey, singleUrl, expectedPath] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
const client = new OpenAI({ baseURL: `${mainUrl}/v1`, apiKey, maxRetries: 0 });
const single = new OpenAI({ baseURL: `${singleUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
const greedy = { model: 'any', temperature: 0 };

let failures = 0, passed = 0;
function check(ok, what, detail = '') {
  if (ok) passed++;
  else { failures++; console.log(`FAIL ${what} ${detail}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function streamCompletion(c, params) {
  const chunks = [];
  for await (const chunk of await c.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }))
    chunks.push(chunk);
  const text = chunks.flatMap((c) => c.choices.map((x) => x.text)).join('');
  const finish = chunks.flatMap((c) => c.choices).map((x) => x.finish_reason).filter((x) => x);
  return { text, finish, usage: chunks.at(-1).usage, chunks };
}

async function streamChat(c, params) {
  const chunks = [];
  for await (const chunk of await c.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }))
    chunks.push(chunk);
  const deltas = chunks.flatMap((c) => c.choices.map((x) => x.delta));
  const text = deltas.map((d) => d.content ?? '').join('');
  const finish = chunks.flatMap((c) => c.choices).map((x) => x.finish_reason).filter((x) => x);
  return { text, finish, usage: chunks.at(-1).usage, role: deltas[0]?.role };
}

// 1. Models.
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].object === 'model', 'models.list', JSON.stringify(models.data));

// 2. Completions, non-streaming and streaming: greedy text = dsv3 generate --temp 0.
for (const e of expected.completions) {
  const r = await client.completions.create({ ...greedy, prompt: e.prompt, max_tokens: 24 });
  const choice = r.choices[0];
  check(choice.text === e.text, `completion text "${e.prompt}"`, JSON.stringify([choice.text, e.text]));
  check(r.usage.prompt_tokens === e.prompt_tokens, `completion prompt_tokens "${e.prompt}"`, JSON.stringify(r.usage));
  check(r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, 'completion total_tokens');
  check(choice.finish_reason === (r.usage.completion_tokens === 24 ? 'length' : 'stop'),
        `completion finish_reason "${e.prompt}"`, JSON.stringify([choice.finish_reason, r.usage]));
  const s = await streamCompletion(client, { ...greedy, prompt: e.prompt, max_tokens: 24 });
  check(s.text === e.text, `streamed completion text "${e.prompt}"`, JSON.stringify([s.text, e.text]));
  check(JSON.stringify(s.usage) === JSON.stringify(r.usage), 'streamed usage', JSON.stringify([s.usage, r.usage]));
  check(s.finish.length === 1 && s.finish[0] === choice.finish_reason, 'streamed finish_reason', JSON.stringify(s.finish));
}

// 3. Chat, non-streaming and streaming, with the model's chat template.
for (const e of expected.chat) {
  const messages = [{ role: 'user', content: e.content }];
  const r = await client.chat.completions.create({ ...greedy, messages, max_tokens: 24 });
  const choice = r.choices[0];
  check(r.object === 'chat.completion' && choice.message.role === 'assistant', 'chat shape', JSON.stringify(r));
  check(choice.message.content === e.text, `chat text "${e.content}"`, JSON.stringify([choice.message.content, e.text]));
  check(r.usage.prompt_tokens === e.prompt_tokens, 'chat prompt_tokens', JSON.stringify(r.usage));
  check(choice.finish_reason === (r.usage.completion_tokens === 24 ? 'length' : 'stop'), 'chat finish_reason');
  const s = await streamChat(client, { ...greedy, messages, max_tokens: 24 });
  check(s.role === 'assistant', 'streamed chat role first');
  check(s.text === e.text, `streamed chat text "${e.content}"`, JSON.stringify([s.text, e.text]));
  check(JSON.stringify(s.usage) === JSON.stringify(r.usage), 'streamed chat usage');
}

// 4. Stop strings: the text ends before the first one, finish_reason "stop".
{
  const e = expected.completions.find((x) => x.text.length > 12);
  const stop = e.text.slice(6, 10);
  const want = e.text.slice(0, e.text.indexOf(stop));
  for (const stopParam of [stop, [stop, 'zzzz']]) {
    const r = await client.completions.create({ ...greedy, prompt: e.prompt, max_tokens: 24, stop: stopParam });
    check(r.choices[0].text === want && r.choices[0].finish_reason === 'stop', 'stop string',
          JSON.stringify([r.choices[0], want]));
    const s = await streamCompletion(client, { ...greedy, prompt: e.prompt, max_tokens: 24, stop: stopParam });
    check(s.text === want && s.finish[0] === 'stop', 'streamed stop string', JSON.stringify([s.text, want]));
  }
}

// 5. Seeds: the same seed gives the same sample; the default max_tokens of completions is 16.
{
  const params = { model: 'any', prompt: 'the lord', temperature: 1.0, top_p: 0.9, seed: 1234, max_tokens: 20 };
  const a = await client.completions.create(params), b = await client.completions.create(params);
  check(a.choices[0].text === b.choices[0].text, 'same seed, same sample');
  const d = await client.completions.create({ ...greedy, prompt: 'the lord' });
  check(d.usage.completion_tokens <= 16, 'default max_tokens 16', JSON.stringify(d.usage));
}

// 6. 16 concurrent streams (greedy and seeded sampling) each equal to its run alone.
{
  const prompts = Array.from({ length: 16 }, (_, i) => ({
    model: 'any', prompt: ['the lord', 'moses', 'aaron said', 'speak unto'][i % 4] + ' '.repeat(i % 3),
    max_tokens: 20 + 3 * i, ...(i % 2 ? { temperature: 0.8, seed: 100 + i } : { temperature: 0 }),
  }));
  const alone = [];
  for (const p of prompts) alone.push((await streamCompletion(client, p)).text);
  const together = await Promise.all(prompts.map((p) => streamCompletion(client, p)));
  together.forEach((t, i) => check(t.text === alone[i], `concurrent stream ${i} equals its run alone`,
                                   JSON.stringify([t.text, alone[i]])));
}

// 7. Bad requests: the right status and an OpenAI error body, and the server keeps serving.
async function raw(path, { body, key = apiKey, method = 'POST', type = 'application/json' } = {}) {
  const headers = { 'Content-Type': type };
  if (key) headers.Authorization = `Bearer ${key}`;
  const r = await fetch(`${mainUrl}${path}`, { method, headers, body });
  let json = null;
  try { json = await r.json(); } catch { /* checked below */ }
  return { status: r.status, json };
}
const chatPath = '/v1/chat/completions', completionPath = '/v1/completions';
const user = [{ role: 'user', content: 'hi' }];
const bad = [
  ['malformed JSON', chatPath, { body: '{"messages": [' }, 400],
  ['not an object', chatPath, { body: '[1, 2]' }, 400],
  ['wrong type: max_tokens', chatPath, { body: JSON.stringify({ model: 'm', messages: user, max_tokens: 'ten' }) }, 400, 'max_tokens'],
  ['wrong type: temperature', completionPath, { body: JSON.stringify({ model: 'm', prompt: 'a', temperature: 'hot' }) }, 400, 'temperature'],
  ['wrong type: messages', chatPath, { body: JSON.stringify({ model: 'm', messages: 'hi' }) }, 400, 'messages'],
  ['wrong type: content', chatPath, { body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 5 }] }) }, 400, 'messages[0].content'],
  ['bad role', chatPath, { body: JSON.stringify({ model: 'm', messages: [{ role: 'wizard', content: 'x' }] }) }, 400, 'messages[0].role'],
  ['unknown field', chatPath, { body: JSON.stringify({ model: 'm', messages: user, bogus: 1 }) }, 400, 'bogus'],
  ['empty messages', chatPath, { body: JSON.stringify({ model: 'm', messages: [] }) }, 400, 'messages'],
  ['missing prompt', completionPath, { body: JSON.stringify({ model: 'm' }) }, 400, 'prompt'],
  ['negative max_tokens', completionPath, { body: JSON.stringify({ model: 'm', prompt: 'a', max_tokens: -1 }) }, 400, 'max_tokens'],
  ['prompt over the context', completionPath, { body: JSON.stringify({ model: 'm', prompt: 'the lord '.repeat(400) }) }, 400, 'prompt'],
  ['completion over the context', completionPath, { body: JSON.stringify({ model: 'm', prompt: 'a', max_tokens: 600 }) }, 400, 'prompt'],
  ['10 MB body', completionPath, { body: JSON.stringify({ model: 'm', prompt: 'a'.repeat(10 << 20) }) }, 413],
  ['missing API key', chatPath, { body: JSON.stringify({ model: 'm', messages: user }), key: '' }, 401],
  ['wrong API key', chatPath, { body: JSON.stringify({ model: 'm', messages: user }), key: 'nope' }, 401],
  ['unknown route', '/v1/engines', { method: 'GET' }, 404],
];
for (const [what, path, options, status, param] of bad) {
  const r = await raw(path, options);
  const e = r.json?.error;
  check(r.status === status && e && typeof e.message === 'string' && typeof e.type === 'string' &&
        (param === undefined || e.param === param), `bad request: ${what}`, JSON.stringify(r));
}
{
  const r = await raw(completionPath, { body: JSON.stringify({ model: 'm', prompt: 'a', max_tokens: 600 }) });
  check(r.json?.error?.code === 'context_length_exceeded', 'context overflow code', JSON.stringify(r.json));
  let error = null;
  try {
    await new OpenAI({ baseURL: `${mainUrl}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list();
  } catch (e) { error = e; }
  check(error instanceof OpenAI.AuthenticationError, 'client sees AuthenticationError', String(error));
  const health = await fetch(`${mainUrl}/health`);
  check(health.status === 200, '/health needs no key');
  const again = await client.completions.create({ ...greedy, prompt: expected.completions[0].prompt, max_tokens: 24 });
  check(again.choices[0].text === expected.completions[0].text, 'still serving after bad requests');
}

// 8. The single-slot server: a client that disconnects frees the slot at once; a second
// request while the slot is busy and the queue (0) is full gets 503.
async function busySlots() { return (await (await fetch(`${singleUrl}/health`)).json()).slots_busy; }
async function openLongStream() {
  const controller = new AbortController();
  const stream = await single.completions.create(
    { model: 'm', prompt: 'the lord', max_tokens: 4000, temperature: 1.0, seed: 5, stream: true },
    { signal: controller.signal });
  const iterator = stream[Symbol.asyncIterator]();
  await iterator.next();
  return { controller, iterator };
}
{
  const long = await openLongStream();
  check(await busySlots() === 1, 'the stream holds the slot');
  let error = null;
  try {
    await single.completions.create({ model: 'm', prompt: 'a', max_tokens: 2 });
  } catch (e) { error = e; }
  check(error?.status === 503 && error?.error?.type === 'server_overloaded', 'saturated server answers 503', String(error));
  long.controller.abort();
  const start = Date.now();
  while (await busySlots() !== 0 && Date.now() - start < 3000) await sleep(5);
  const freedMs = Date.now() - start;
  check(await busySlots() === 0, 'a disconnected client frees its slot', `after ${freedMs} ms`);
  console.log(`slot freed ${freedMs} ms after the client went away`);
  const r = await single.completions.create({ model: 'm', prompt: 'the lord', max_tokens: 4, temperature: 0 });
  check(r.usage.completion_tokens >= 1, 'the freed slot serves the next request');
}

console.log(`${passed} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
