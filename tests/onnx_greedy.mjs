// onnx_greedy.mjs: a quantized ONNX export against the fp32 one, in onnxruntime, on the real
// prompts of tests/ref/smollm2-real.json (token ids, so no tokenizer is involved).
// usage: node tests/onnx_greedy.mjs DIR FILE [--prompts N | --only I,J,..] [--prompt-tokens P]
//        [--tokens T] [--web] [--threads K] [--save-ref F | --load-ref F] [--no-teacher] [--max-nmse X]
// DIR is an export (DIR/config.json, DIR/onnx/model.onnx = the fp32 reference, DIR/onnx/FILE).
// For each prompt (the first N, default 20, or those of --only's indices; with --prompt-tokens only
// its first P tokens) both files decode T tokens greedily (default 32) through the KV cache
// (prefill, then one token a step, as transformers.js does); the tokens must be the same. Also
// reported: the logits NMSE of FILE against fp32 over the decode steps while the tokens agree, and
// teacher-forced over the prompt and the fp32 continuation (one prefill each; --no-teacher skips
// it); at a divergence, the fp32 margin between its top two tokens there (a near-tie explains a
// flip; a wide margin is an error).
// --save-ref F writes fp32's tokens, margins and step logits (and P) to F and F.f32; --load-ref F
// takes them from there instead of running model.onnx (so an emulated CPU runs only FILE:
// tests/onnx_avx2.test.sh).
// --web runs onnxruntime-web (the wasm build transformers.js uses in browsers), not onnxruntime-node.
// Exit status 0 when every prompt gives the fp32 tokens (and, with --max-nmse, the step and
// teacher-forced NMSE are at most X), else 1.
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
};
const [dir, file] = args;
if (!dir || !file) {
    console.error('usage: node tests/onnx_greedy.mjs DIR FILE [--prompts N | --only I,J] [--tokens T] [--web] ' +
                  '[--prompt-tokens P] [--threads K] [--save-ref F | --load-ref F] [--no-teacher]');
    process.exit(2);
}
const web = args.includes('--web'), teacher = !args.includes('--no-teacher');
const ort = web ? await import('onnxruntime-web') : await import('onnxruntime-node');
const threads = Number(opt('--threads', '2'));
if (web) ort.env.wasm.numThreads = 1;
const nTokens = Number(opt('--tokens', '32'));
const promptTokens = Number(opt('--prompt-tokens', '0')) || null; // null: whole prompts
const saveRef = opt('--save-ref', null), loadRef = opt('--load-ref', null);
const maxNmse = Number(opt('--max-nmse', 'Infinity'));
const here = path.dirname(new URL(import.meta.url).pathname);
const all = JSON.parse(fs.readFileSync(path.join(here, 'ref/smollm2-real.json'), 'utf8')).prompts
    .map((p) => ({ ...p, ids: p.ids.slice(0, promptTokens ?? p.ids.length) }));
const which = opt('--only', null) ? opt('--only', null).split(',').map(Number)
    : all.slice(0, Number(opt('--prompts', '20'))).map((_, i) => i);
const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
const L = config.num_hidden_layers, KV = config.num_key_value_heads, V = config.vocab_size;
const D = config.head_dim || config.hidden_size / config.num_attention_heads;

const i64 = (row) => new ort.Tensor('int64', BigInt64Array.from(row.map(BigInt)), [1, row.length]);
const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);

async function open(name) {
    const f = path.join(dir, 'onnx', name);
    return ort.InferenceSession.create(web ? fs.readFileSync(f) : f, web ? {} : { intraOpNumThreads: threads });
}

// run: ids at positions pos0.. on top of the cache kv (null: empty); returns {logits, kv}
async function run(sess, ids, pos0, kv) {
    const feed = { input_ids: i64(ids), attention_mask: i64(range(0, pos0 + ids.length).map(() => 1)),
        position_ids: i64(range(pos0, pos0 + ids.length)) };
    for (let l = 0; l < L; l++)
        for (const k of ['key', 'value'])
            feed[`past_key_values.${l}.${k}`] = kv ? kv[`present.${l}.${k}`]
                : new ort.Tensor('float32', new Float32Array(0), [1, KV, 0, D]);
    const r = await sess.run(feed);
    return { logits: r.logits.data, kv: r };
}

const top2 = (x, off) => {
    let a = 0, b = -1;
    for (let i = 1; i < V; i++) {
        if (x[off + i] > x[off + a]) (b = a), (a = i);
        else if (b < 0 || x[off + i] > x[off + b]) b = i;
    }
    return { id: a, gap: x[off + a] - x[off + b] };
};

// greedy: T tokens after the prompt, one cached step each: the tokens, the margin between the top
// two logits and the logits (T, V) of each step
async function greedy(sess, prompt) {
    let r = await run(sess, prompt, 0, null);
    const toks = [], gaps = [], logits = new Float32Array(nTokens * V);
    let x = r.logits.subarray((prompt.length - 1) * V, prompt.length * V);
    for (;;) {
        const t = top2(x, 0);
        logits.set(x, toks.length * V);
        toks.push(t.id), gaps.push(t.gap);
        if (toks.length === nTokens) break;
        r = await run(sess, [t.id], prompt.length + toks.length - 1, r.kv);
        x = r.logits;
    }
    return { toks, gaps, logits };
}

const nmse = (a, b, n) => {
    let e = 0, s = 0;
    for (let i = 0; i < n; i++) (e += (a[i] - b[i]) ** 2), (s += a[i] ** 2);
    return [e, s];
};

let ref = null, saved = null;
if (loadRef) {
    saved = JSON.parse(fs.readFileSync(loadRef, 'utf8'));
    const raw = fs.readFileSync(loadRef + '.f32');
    const f = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    saved.prompts.forEach((p, k) => (p.logits = f.subarray(k * nTokens * V, (k + 1) * nTokens * V)));
    if (saved.tokens !== nTokens || saved.vocab !== V || saved.promptTokens !== promptTokens)
        throw new Error(`${loadRef}: other tokens / vocab / --prompt-tokens`);
} else ref = await open('model.onnx');
const q = file === '-' ? null : await open(file);
let same = 0, agreeTok = 0, se = 0, sr = 0, tse = 0, tsr = 0;
const out = { tokens: nTokens, vocab: V, promptTokens, prompts: [] }, outLogits = [];
const t0 = Date.now();
for (const k of which) {
    const p = all[k];
    const a = saved ? saved.prompts.find((x) => x.index === k) : await greedy(ref, p.ids);
    if (!a) throw new Error(`${loadRef}: no prompt ${k}`);
    if (saveRef) out.prompts.push({ index: k, toks: a.toks, gaps: a.gaps }), outLogits.push(a.logits);
    if (!q) continue;
    const b = await greedy(q, p.ids);
    let d = 0;
    while (d < nTokens && a.toks[d] === b.toks[d]) d++;
    agreeTok += d;
    // the step logits while both decoded the same tokens (step d still had the same input)
    const [e, s] = nmse(a.logits, b.logits, Math.min(d + 1, nTokens) * V);
    se += e, sr += s;
    let line = `prompt ${k} (${p.name}): step nmse ${(e / s).toExponential(2)}`;
    if (teacher && ref) {
        const seq = [...p.ids, ...a.toks.slice(0, -1)];
        const [te, ts] = nmse((await run(ref, seq, 0, null)).logits, (await run(q, seq, 0, null)).logits,
                              seq.length * V);
        tse += te, tsr += ts;
        line += `, teacher-forced nmse ${(te / ts).toExponential(2)}`;
    }
    line += `, min fp32 margin ${Math.min(...a.gaps).toFixed(3)}`;
    if (d === nTokens) same++;
    else line += `; DIFFERENT at token ${d}: fp32 ${a.toks[d]} (margin ${a.gaps[d].toFixed(3)}), ${file} ${b.toks[d]}`;
    console.log(`onnx_greedy: ${line}`);
}
if (saveRef) {
    fs.writeFileSync(saveRef, JSON.stringify(out));
    fs.writeFileSync(saveRef + '.f32', Buffer.concat(outLogits.map((x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength))));
}
if (!q) process.exit(0);
const n = which.length;
console.log(`onnx_greedy ${file} (${web ? 'onnxruntime-web' : 'onnxruntime-node'}): ${same}/${n} prompts ` +
    `give the fp32 tokens (${agreeTok}/${n * nTokens} tokens before any divergence); logits nmse ` +
    `${(se / sr).toExponential(2)} over the decode steps` +
    `${tsr ? `, ${(tse / tsr).toExponential(2)} teacher-forced` : ''}; ${((Date.now() - t0) / 1000).toFixed(0)} s`);
const worst = Math.max(se / sr, tsr ? tse / tsr : 0);
if (worst > maxNmse) console.log(`onnx_greedy: FAIL: logits nmse ${worst.toExponential(2)} > ${maxNmse}`);
process.exit(same === n && worst <= maxNmse ? 0 : 1);
