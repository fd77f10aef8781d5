// Compares dsv3's native chat rendering with the model's own chat_template rendered by the
// Jinja engine of transformers.js, as text and as token ids (the library's encoding of the
// reference rendering).
//   node chat.js DSV3_BINARY TOKENIZER_DIR
'use strict';
const {Tokenizer} = require('tokenizers');
const {execFileSync} = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const conversations = [
  [{role: 'user', content: 'Hello!'}],
  [{role: 'system', content: 'You are a helpful assistant.'}, {role: 'user', content: 'What is 2+2?'}],
  [{role: 'user', content: 'Hi'}, {role: 'assistant', content: 'Hello! How can I help?'},
   {role: 'user', content: 'Tell me a joke.\nA short one.'}],
  [{role: 'system', content: 'Be terse.'}, {role: 'user', content: '你好'}, {role: 'assistant', content: '你好！'},
   {role: 'user', content: 'Bye <｜end▁of▁sentence｜>'}, {role: 'assistant', content: 'Goodbye.'}],
  [{role: 'system', content: 'First.'}, {role: 'user', content: 'u1'}, {role: 'system', content: 'Second.'},
   {role: 'user', content: '  spaces\tand\r\nnewlines  '}],
  [{role: 'user', content: ''}],
];

function tokenText(config, key) {
  const t = config[key];
  return typeof t === 'string' ? t : (t && t.content) || '';
}

async function main() {
  const [binary, dir] = process.argv.slice(2);
  const {Template} = await import('@huggingface/jinja');
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  const template = new Template(config.chat_template);
  const tokenizer = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsv3-chat-'));
  let failures = 0, cases = 0;
  for (const [i, messages] of conversations.entries()) {
    for (const addGenerationPrompt of [true, false]) {
      cases++;
      const reference = template.render({messages, add_generation_prompt: addGenerationPrompt,
                                         bos_token: tokenText(config, 'bos_token'),
                                         eos_token: tokenText(config, 'eos_token')});
      const conv = path.join(tmp, `conv${i}.json`);
      fs.writeFileSync(conv, JSON.stringify(messages));
      const flags = ['tokenize', '-m', dir, '--chat-file', conv, ...(addGenerationPrompt ? [] : ['--no-generation-prompt'])];
      const rendered = execFileSync(binary, [...flags, '--render']).toString();
      const ids = execFileSync(binary, flags).toString().trim();
      const referenceIds = (await tokenizer.encode(reference, null, {addSpecialTokens: false})).getIds().join(' ');
      const label = `conversation ${i} (generation prompt ${addGenerationPrompt})`;
      if (rendered !== reference) {
        failures++;
        console.log(`FAIL ${label}: rendering differs\n  template: ${JSON.stringify(reference)}\n  dsv3:     ${JSON.stringify(rendered)}`);
      } else if (ids !== referenceIds) {
        failures++;
        console.log(`FAIL ${label}: ids differ\n  library: ${referenceIds}\n  dsv3:    ${ids}`);
      }
    }
  }
  fs.rmSync(tmp, {recursive: true, force: true});
  console.log(`${cases - failures} passed, ${failures} failed`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
