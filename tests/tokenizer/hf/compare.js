// Compares dsv3's token ids with Hugging Face's tokenizers library on corpus files, and
// checks that dsv3 decodes its ids back to the exact bytes.
//   node compare.js DSV3_BINARY TOKENIZER_DIR FILE...
// A file ending in .bin holds invalid UTF-8: only its round trip is checked (a JavaScript
// string cannot hold invalid bytes, so the library cannot see the same input).
'use strict';
const {Tokenizer} = require('tokenizers');
const {execFileSync} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

// Splits text where a pre-tokenizer piece boundary is certain (right after a newline that
// is followed by a letter or a CJK/kana character: no split rule spans that point and no
// added token starts with a letter), so that encoding chunk by chunk equals encoding the
// whole text. The library is much slower on one multi-megabyte string than on chunks.
function safeChunks(text, size = 32768) {
  const chunks = [];
  let start = 0;
  const boundary = /\n(?=[A-Za-z\u4e00-\u9fa5\u3040-\u30ff])/g;
  while (start < text.length) {
    boundary.lastIndex = Math.min(start + size, text.length);
    const m = boundary.exec(text);
    const end = m ? m.index + 1 : text.length;
    chunks.push(text.slice(start, end));
    start = end;
  }
  return chunks;
}

function dsv3(binary, args, input) {
  return execFileSync(binary, args, {input, maxBuffer: 1 << 30});
}

async function main() {
  const [binary, dir, ...files] = process.argv.slice(2);
  const tokenizer = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsv3-tok-'));
  let failures = 0;
  for (const file of files) {
    const name = path.basename(file);
    const bytes = fs.readFileSync(file);
    const ours = dsv3(binary, ['tokenize', '-m', dir, '--no-bos', '--file', file]).toString().trim();
    const ourIds = ours.length ? ours.split(' ').map(Number) : [];
    const idsFile = path.join(tmp, name + '.ids');
    fs.writeFileSync(idsFile, ours);
    const decoded = dsv3(binary, ['tokenize', '-m', dir, '--decode', '--file', idsFile]);
    const problems = [];
    if (!decoded.equals(bytes)) {
      let i = 0;
      while (i < bytes.length && decoded[i] === bytes[i]) i++;
      problems.push(`decode(encode(x)) != x: first difference at byte ${i} of ${bytes.length}`);
    }
    if (!file.endsWith('.bin')) {
      const reference = [];
      for (const chunk of safeChunks(bytes.toString('utf8'))) {
        const encoding = await tokenizer.encode(chunk, null, {addSpecialTokens: false});
        for (const id of encoding.getIds()) reference.push(id);
      }
      let i = 0;
      while (i < reference.length && i < ourIds.length && reference[i] === ourIds[i]) i++;
      if (i < reference.length || i < ourIds.length) {
        const context = (ids) => ids.slice(Math.max(0, i - 5), i + 5);
        problems.push(`ids differ at position ${i} (library ${reference.length} ids, dsv3 ${ourIds.length}):\n` +
                      `    library: ${context(reference).join(' ')}  ${JSON.stringify(await tokenizer.decode(context(reference), false))}\n` +
                      `    dsv3:    ${context(ourIds).join(' ')}  ${JSON.stringify(await tokenizer.decode(context(ourIds), false))}`);
      }
    }
    if (problems.length) {
      failures++;
      console.log(`FAIL ${name}:\n  ${problems.join('\n  ')}`);
    } else {
      const what = file.endsWith('.bin') ? 'round trip exact (invalid UTF-8: no library comparison)'
                                         : 'ids identical to the library, round trip exact';
      console.log(`PASS ${name}: ${bytes.length} bytes, ${ourIds.length} tokens, ${what}`);
    }
  }
  fs.rmSync(tmp, {recursive: true, force: true});
  console.log(`${files.length - failures} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
