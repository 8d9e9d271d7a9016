// onnx_perplexity.mjs: perplexity of pocketlm's ONNX exports in onnxruntime-node on a sample of
// PAWS text (the sentences of models/paws-lora/heldout.tsv, PAWS rows held out of the adapter's
// training), each file against the fp32 export.
// usage: node tests/onnx_perplexity.mjs DIR [FILE...] [--tokens N] [--window W] [--max-ratio R]
//        [--ref-ppl P] [--task]
// DIR: an export with tokenizer.json (onnx/model.onnx is the reference); FILE defaults to the
// quantized files present. The first N tokens (default 512) of the sample are scored in windows of
// W (default 256) tokens, each a single prefill (the first token of a window is not scored).
// --ref-ppl P: fp32's perplexity is P (measured elsewhere, e.g. natively for an emulated run).
// --task: the rows in the adapter's paraphrase template (src/data.c), only the target tokens scored
// (what a merged adapter changes most; needs the adapter's tokenizer with the task markers).
// Exit status 1 when a file's perplexity exceeds R (default 1.05) times fp32's.
import { AutoTokenizer, env } from '@huggingface/transformers';
import * as ort from 'onnxruntime-node';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
};
const pos = [];
for (let i = 0; i < args.length; i++) {
    if (['--tokens', '--window', '--max-ratio', '--ref-ppl'].includes(args[i])) i++;
    else if (args[i] !== '--task') pos.push(args[i]);
}
const [dir, ...files] = pos;
if (!dir) {
    console.error('usage: node tests/onnx_perplexity.mjs DIR [FILE...] [--tokens N] [--window W] [--max-ratio R]');
    process.exit(2);
}
const nTokens = Number(opt('--tokens', '512')), W = Number(opt('--window', '256'));
const maxRatio = Number(opt('--max-ratio', '1.05'));
const here = path.dirname(new URL(import.meta.url).pathname);
const todo = files.length ? files : ['model_quantized.onnx', 'model_q4.onnx']
    .filter((f) => fs.existsSync(path.join(dir, 'onnx', f)));

// the sample: both sentences of each held-out PAWS row, one a line; --task: each row in the
// paraphrase template the adapter was trained on (src/data.c)
const task = args.includes('--task');
const text = fs.readFileSync(path.join(here, '../models/paws-lora/heldout.tsv'), 'utf8').split('\n')
    .filter((l) => l.trim()).map((l) => l.split('\t').slice(1, 3))
    .map(([a, b]) => task ? `Rephrase the following:\nInput: ${a}\nOutput: <|OUTPUT_START|>${b}<|OUTPUT_END|>`
        : `${a}\n${b}`).join('\n');
env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(dir)) + '/';
const tok = await AutoTokenizer.from_pretrained(path.basename(path.resolve(dir)), { local_files_only: true });
const ids = tok.encode(text, { add_special_tokens: false }).slice(0, nTokens);
if (ids.length < nTokens) console.log(`onnx_perplexity: only ${ids.length} tokens in the sample`);
// --task scores only the targets: the tokens after <|OUTPUT_START|>, up to <|OUTPUT_END|> included
const scored = ids.map(() => !task);
if (task) {
    const [start, end] = ['<|OUTPUT_START|>', '<|OUTPUT_END|>'].map((m) => tok.encode(m, { add_special_tokens: false }));
    if (start.length !== 1 || end.length !== 1) {
        console.error(`onnx_perplexity: --task needs a tokenizer with the task markers (an adapter's)`);
        process.exit(2);
    }
    for (let i = 1, on = false; i < ids.length; i++) {
        scored[i] = on;
        if (ids[i - 1] === start[0]) scored[i] = on = true;
        if (ids[i] === end[0]) on = false;
    }
}

const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
const L = config.num_hidden_layers, KV = config.num_key_value_heads, V = config.vocab_size;
const D = config.head_dim || config.hidden_size / config.num_attention_heads;
const i64 = (row) => new ort.Tensor('int64', BigInt64Array.from(row.map(BigInt)), [1, row.length]);

// nll: summed negative log-likelihood and scored token count of ids under the file
async function nll(file) {
    const sess = await ort.InferenceSession.create(path.join(dir, 'onnx', file), { intraOpNumThreads: 2 });
    let sum = 0, n = 0;
    for (let w0 = 0; w0 + 1 < ids.length; w0 += W) {
        const win = ids.slice(w0, w0 + W);
        const feed = { input_ids: i64(win), attention_mask: i64(win.map(() => 1)),
            position_ids: i64(win.map((_, i) => i)) };
        for (let l = 0; l < L; l++)
            for (const k of ['key', 'value'])
                feed[`past_key_values.${l}.${k}`] = new ort.Tensor('float32', new Float32Array(0), [1, KV, 0, D]);
        const lg = (await sess.run(feed)).logits.data;
        for (let t = 0; t + 1 < win.length; t++) {
            if (!scored[w0 + t + 1]) continue;
            let mx = -Infinity, s = 0;
            for (let v = 0; v < V; v++) mx = Math.max(mx, lg[t * V + v]);
            for (let v = 0; v < V; v++) s += Math.exp(lg[t * V + v] - mx);
            sum -= lg[t * V + win[t + 1]] - mx - Math.log(s), n++;
        }
    }
    await sess.release();
    return { sum, n };
}

let pplRef = Number(opt('--ref-ppl', 'NaN'));
if (Number.isNaN(pplRef)) {
    const ref = await nll('model.onnx');
    pplRef = Math.exp(ref.sum / ref.n);
    console.log(`onnx_perplexity model.onnx: ${pplRef.toFixed(4)} (${ref.n} tokens scored, windows of ${W})`);
} else console.log(`onnx_perplexity model.onnx: ${pplRef.toFixed(4)} (given)`);
let bad = 0;
for (const f of todo) {
    const r = await nll(f);
    const ppl = Math.exp(r.sum / r.n), ratio = ppl / pplRef;
    const ok = ratio <= maxRatio;
    if (!ok) bad++;
    console.log(`onnx_perplexity ${f}: ${ppl.toFixed(4)} = ${ratio.toFixed(4)} x fp32` +
                `${ok ? '' : ` FAIL (> ${maxRatio})`}`);
}
process.exit(bad ? 1 : 0);
