// paraphrase.mjs: paraphrase a sentence with a model exported by `pocketlm export --format onnx`,
// in Node.js: onnxruntime-node runs onnx/model*.onnx with the KV cache (each new token is one run
// of one token, present.* fed back as past_key_values.*), the tokenizer is transformers.js'
// AutoTokenizer on the same directory, and the text is streamed as it is produced.
// usage: node paraphrase.mjs DIR "text" [--dtype fp32|q8|q4] [--max N] [--threads N]
import { AutoTokenizer, env } from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => (args.includes(name) ? args[args.indexOf(name) + 1] : def);
const [dir, text] = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
if (!dir || !text) {
    console.error('usage: node paraphrase.mjs DIR "text" [--dtype fp32|q8|q4] [--max N] [--threads N]');
    process.exit(2);
}
const file = { fp32: 'model.onnx', q8: 'model_quantized.onnx', q4: 'model_q4.onnx' }[opt('--dtype', 'fp32')];
const maxNew = Number(opt('--max', 64));

// the tokenizer, from the exported directory only
env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(dir)) + '/';
const tok = await AutoTokenizer.from_pretrained(path.basename(path.resolve(dir)), { local_files_only: true });
const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
const L = config.num_hidden_layers, K = config.num_key_value_heads, V = config.vocab_size;
const D = config.head_dim || config.hidden_size / config.num_attention_heads;

// the task template pocketlm trains with (docs/DESIGN.md); the end marker stops generation
const START = '<|OUTPUT_START|>', END = '<|OUTPUT_END|>';
const hasMarkers = tok.model.tokens_to_ids.has(START);
const prompt = `Rephrase the following:\nInput: ${text}\nOutput: ${hasMarkers ? START : ''}`;
const stop = new Set([config.eos_token_id, hasMarkers ? tok.model.tokens_to_ids.get(END) : -1]);
if (!hasMarkers) console.error('(this model has no task markers: a base model, not a fine-tuned paraphraser)');

const sess = await ort.InferenceSession.create(path.join(dir, 'onnx', file), {
    intraOpNumThreads: Number(opt('--threads', 2)) });
const i64 = (a) => new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), [1, a.length]);
let past = {};
for (let l = 0; l < L; l++)
    for (const kv of ['key', 'value'])
        past[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, K, 0, D]);

// step: run ids at positions n_past.., keep the cache, return the greedy next id
let nPast = 0;
async function step(ids) {
    const n = nPast + ids.length;
    const r = await sess.run({ input_ids: i64(ids), attention_mask: i64(Array(n).fill(1)),
        position_ids: i64(Array.from({ length: ids.length }, (_, i) => nPast + i)), ...past });
    for (let l = 0; l < L; l++)
        for (const kv of ['key', 'value']) past[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`];
    nPast = n;
    const lg = r.logits.data, off = lg.length - V;
    let best = 0;
    for (let i = 1; i < V; i++) if (lg[off + i] > lg[off + best]) best = i;
    return best;
}

const t0 = performance.now();
let next = await step(tok.encode(prompt, { add_special_tokens: false }));
const out = [];
let shown = '';
while (out.length < maxNew && !stop.has(next)) {
    out.push(next);
    const s = tok.decode(out, { skip_special_tokens: true });
    if (!s.endsWith('\uFFFD')) { // print only whole characters
        process.stdout.write(s.slice(shown.length));
        shown = s;
    }
    next = await step([next]);
}
const secs = (performance.now() - t0) / 1000;
process.stdout.write('\n');
console.error(`(${out.length} tokens in ${secs.toFixed(1)} s, ${(out.length / secs).toFixed(1)} tok/s, ${file})`);
