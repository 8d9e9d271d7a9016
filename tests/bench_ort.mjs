// bench_ort.mjs: onnxruntime-node on pocketlm's ONNX export of the real model, one child process per
// (file, mode) so each peak RSS is its own.
// usage: node tests/bench_ort.mjs DIR [THREADS=2]     (DIR from `pocketlm export --quant all`)
//        node tests/bench_ort.mjs DIR THREADS FILE kv|nokv [P N]    one child: one file, one mode
// Prints one line per result: `name threads n ms tok/s peak_rss_mb`:
//   <file>-start    before session creation: node + onnxruntime alone (n = 0; the RSS column)
//   <file>-load     session creation (n = 1)
//   <file>-prefill  a P-token prompt with an empty KV cache (P = 128)
//   <file>-decode   N greedy tokens, one run each, present.* fed back as past.* (N = 128)
//   <file>-nokv     the seed's way: no KV cache, the whole sequence recomputed for each new token
//                   (P = 30-token prompt, N = 50 new tokens)
// scripts/bench_onnx.sh (`make bench-onnx`) runs the children itself, side by side with pocketlm.
import * as ort from 'onnxruntime-node';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [dir, threadsArg, oneFile, oneMode, pArg, nArg] = process.argv.slice(2);
const threads = Number(threadsArg || 2);
if (!dir) {
    console.error('usage: node tests/bench_ort.mjs DIR [THREADS]');
    process.exit(2);
}
const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
const L = config.num_hidden_layers, K = config.num_key_value_heads, V = config.vocab_size;
const D = config.head_dim || config.hidden_size / config.num_attention_heads;

const i64 = (a) => new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), [1, a.length]);
const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);
const promptIds = (n) => range(0, n).map((i) => 100 + ((i * 7919) % 20000)); // fixed, tokenizer-free

function emptyPast() {
    const p = {};
    for (let l = 0; l < L; l++)
        for (const kv of ['key', 'value'])
            p[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, K, 0, D]);
    return p;
}

async function run(sess, ids, pos0, past) {
    const n = pos0 + ids.length;
    const r = await sess.run({ input_ids: i64(ids), attention_mask: i64(Array(n).fill(1)),
                               position_ids: i64(range(pos0, n)), ...past });
    const next = {};
    for (let l = 0; l < L; l++)
        for (const kv of ['key', 'value']) next[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`];
    const lg = r.logits.data, off = lg.length - V;
    let b = 0;
    for (let i = 1; i < V; i++) if (lg[off + i] > lg[off + b]) b = i;
    return { next: b, past: next };
}

const rss = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);
const line = (name, n, ms) =>
    console.log(`${name} ${threads} ${n} ${ms.toFixed(1)} ${ms > 0 ? ((n * 1000) / ms).toFixed(1) : '-'} ${rss()}`);

async function child(file, mode) {
    const name = `ort-node-${file.replace(/\.onnx$/, '')}`;
    const P = Number(pArg || (mode === 'kv' ? 128 : 30)), N = Number(nArg || (mode === 'kv' ? 128 : 50));
    console.log(`${name}-start ${threads} 0 0 - ${rss()}`);
    let t = performance.now();
    const sess = await ort.InferenceSession.create(path.join(dir, 'onnx', file), {
        intraOpNumThreads: threads, interOpNumThreads: 1 });
    line(`${name}-load`, 1, performance.now() - t);
    if (mode === 'kv') {
        t = performance.now();
        let r = await run(sess, promptIds(P), 0, emptyPast());
        line(`${name}-prefill`, P, performance.now() - t);
        t = performance.now();
        for (let i = 0; i < N; i++) r = await run(sess, [r.next], P + i, r.past);
        line(`${name}-decode`, N, performance.now() - t);
    } else {
        const seq = promptIds(P);
        t = performance.now();
        for (let i = 0; i < N; i++) seq.push((await run(sess, seq, 0, emptyPast())).next);
        line(`${name}-nokv`, N, performance.now() - t);
    }
}

if (oneFile) await child(oneFile, oneMode);
else {
    const self = fileURLToPath(import.meta.url);
    const files = ['model.onnx', 'model_quantized.onnx', 'model_q4.onnx', 'model_quantized_qdq.onnx']
        .filter((f) => fs.existsSync(path.join(dir, 'onnx', f)));
    console.log('# name threads n ms tok/s peak_rss_mb');
    for (const f of files)
        for (const mode of ['kv', 'nokv'])
            process.stdout.write(execFileSync(process.execPath, [self, dir, String(threads), f, mode]));
}
