// One long stream that is in flight when the test sends SIGTERM to the server: it must end
// with an error event (the client raises it), not hang or end as if complete.
//   usage: node sigterm_client.mjs URL    prints STREAMING once text flows, then how it ended
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: `${process.argv[2]}/v1`, apiKey: 'unused', maxRetries: 0 });
const stream = await client.completions.create(
  { model: 'm', prompt: 'the lord', max_tokens: 4000, temperature: 1.0, seed: 9, stream: true });
let chunks = 0;
try {
  for await (const chunk of stream) {
    if (chunks++ === 0) console.log('STREAMING');
    if (chunk.choices[0]?.finish_reason) console.log(`finish_reason ${chunk.choices[0].finish_reason}`);
  }
  console.log(`ENDED_NORMALLY after ${chunks} chunks`);
} catch (e) {
  console.log(`ENDED_WITH_ERROR after ${chunks} chunks: ${e.message}`);
}
