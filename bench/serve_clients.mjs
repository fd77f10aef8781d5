// Load generator for bench/serve.sh: C concurrent clients, each sending R streaming
// completions one after another (greedy, fixed max_tokens). Prints one JSON line:
// aggregate completion tokens/s over the wall time, and time-to-first-token percentiles.
// Plain fetch and a hand-rolled SSE reader: no packages needed.
//   usage: node serve_clients.mjs URL CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS
const [url, clients, perClient, maxTokens] = [process.argv[2], ...process.argv.slice(3).map(Number)];
const prompts = ['In the beginning', 'And God said', 'The LORD is my shepherd', 'Blessed are they',
                 'And it came to pass', 'Now the serpent', 'Let there be light', 'In my Father'];

async function request(prompt) {
  const start = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'm', prompt, max_tokens: maxTokens, temperature: 0, stream: true,
                           stream_options: { include_usage: true } }),
  });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let ttft = null, tokens = 0, buffer = '';
  const decoder = new TextDecoder();
  for await (const bytes of r.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end).replace(/^data: /, '');
      buffer = buffer.slice(end + 2);
      if (event === '[DONE]') continue;
      const chunk = JSON.parse(event);
      if (chunk.error) throw new Error(chunk.error.message);
      if (ttft === null && chunk.choices?.[0]?.text) ttft = performance.now() - start;
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  return { ttft: ttft ?? performance.now() - start, tokens };
}

const start = performance.now();
const results = (await Promise.all(Array.from({ length: clients }, async (_, c) => {
  const mine = [];
  for (let i = 0; i < perClient; i++) mine.push(await request(prompts[(c + i) % prompts.length]));
  return mine;
}))).flat();
const seconds = (performance.now() - start) / 1000;
const ttfts = results.map((r) => r.ttft).sort((a, b) => a - b);
const percentile = (p) => ttfts[Math.min(ttfts.length - 1, Math.floor(p * ttfts.length))];
const tokens = results.reduce((sum, r) => sum + r.tokens, 0);
console.log(JSON.stringify({ clients, requests: results.length, completion_tokens: tokens, seconds,
                             aggregate_tok_s: tokens / seconds, ttft_p50_ms: percentile(0.5),
                             ttft_p99_ms: percentile(0.99) }));
