// Times Hugging Face's tokenizers library encoding a file on one thread: prints the MB/s
// of the median of RUNS runs. The text is encoded line by line in batches of whole lines
// (the library is far slower on one multi-megabyte string), timing only the encode calls.
//   RAYON_NUM_THREADS=1 node bench/tokenizer_hf.js TOKENIZER_DIR FILE RUNS
'use strict';
const {Tokenizer} = require('tokenizers');
const fs = require('fs');
const path = require('path');

async function main() {
  const [dir, file, runs] = process.argv.slice(2);
  const tokenizer = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const bytes = fs.readFileSync(file);
  const lines = bytes.toString('utf8').split(/(?<=\n)/);
  const chunks = [];
  for (let i = 0; i < lines.length; i += 256) chunks.push(lines.slice(i, i + 256).join(''));
  const times = [];
  for (let r = 0; r < Number(runs); r++) {
    const start = process.hrtime.bigint();
    for (const chunk of chunks) await tokenizer.encode(chunk, null, {addSpecialTokens: false});
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  times.sort((a, b) => a - b);
  console.log((bytes.length / 1e6 / times[Math.floor(times.length / 2)]).toFixed(2));
}
main();
