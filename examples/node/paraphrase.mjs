// paraphrase.mjs: paraphrase a text with the wasm build of pocketlm in node, streaming the output.
//   node examples/node/paraphrase.mjs MODEL.gguf "text" [--lora DIR] [--threads N] [--dtype f32] [--temp T] [--seed S]
import { PocketLM } from '../../build/web/pocketlm.js';

const args = process.argv.slice(2);
const flags = {};
const pos = [];
for (let i = 0; i < args.length; i++) {
  if (args[i].startsWith('--')) flags[args[i].slice(2)] = args[++i];
  else pos.push(args[i]);
}
if (pos.length < 2) {
  console.error('usage: node examples/node/paraphrase.mjs MODEL.gguf "text" [--lora DIR] [--threads N] ' +
                '[--dtype q8_0|f32] [--temp T] [--top-k K] [--seed S] [-n N]');
  process.exit(2);
}
const [model, text] = pos;
const lm = await PocketLM.load(model, {
  dtype: flags.dtype ?? 'q8_0',
  threads: Number(flags.threads ?? 1),
  lora: flags.lora,
  onProgress: ({ loaded, total, file }) =>
    process.stderr.write(`\rloading ${file} ${(loaded / 1048576).toFixed(0)}/${(total / 1048576).toFixed(0)} MB`),
});
process.stderr.write(`\rloaded in ${lm.loadSeconds.toFixed(2)} s (${lm.dtype}, ${lm.threads} thread(s))\n`);
if (lm.tokenId('<|OUTPUT_END|>') < 0)
  process.stderr.write('note: the model has no <|OUTPUT_START|>/<|OUTPUT_END|> tokens (not fine-tuned ' +
                       'for the task): plain template, stopping at a newline\n');
const opts = { onToken: (t) => process.stdout.write(t) };
if (flags.temp !== undefined) opts.temperature = Number(flags.temp);
if (flags['top-k'] !== undefined) opts.topK = Number(flags['top-k']);
if (flags.seed !== undefined) opts.seed = Number(flags.seed);
if (flags.n !== undefined) opts.maxTokens = Number(flags.n);
const r = await lm.paraphrase(text, opts);
process.stdout.write('\n');
process.stderr.write(`${r.generatedTokens} tokens, ${r.decodeTokS.toFixed(1)} tok/s, stop: ${r.stopReason}\n`);
lm.free();
