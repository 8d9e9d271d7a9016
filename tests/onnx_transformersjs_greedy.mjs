// onnx_transformersjs_greedy.mjs: transformers.js loads pocketlm's export as it is, in two dtypes,
// and both generate the same tokens greedily on the real prompts of tests/ref/smollm2-real.json
// (token ids: no tokenizer involved; end-of-sequence does not stop generation, so every prompt
// gives T tokens).
// usage: node tests/onnx_transformersjs_greedy.mjs DIR DTYPE [REF_DTYPE] [--prompts N | --only I,J]
//        [--tokens T] [--web] [--expect F]
// DTYPE / REF_DTYPE: q8 (onnx/model_quantized.onnx), q4 (model_q4.onnx), fp32 (model.onnx, the
// default reference). --web: transformers.js runs on onnxruntime-web (its wasm build for browsers,
// through the runtime hook transformers.js checks first) instead of onnxruntime-node. --expect F:
// the reference tokens come from F (written by onnx_greedy.mjs --save-ref: fp32 in onnxruntime)
// instead of a REF_DTYPE run, and T is F's.
// Exit status 0 when every prompt gives the same tokens in both.
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
};
const pos = [];
for (let i = 0; i < args.length; i++) {
    if (['--prompts', '--only', '--tokens', '--expect'].includes(args[i])) i++;
    else if (!args[i].startsWith('--')) pos.push(args[i]);
}
const [dir, dtype, refDtype = 'fp32'] = pos;
if (!dir || !dtype) {
    console.error('usage: node tests/onnx_transformersjs_greedy.mjs DIR DTYPE [REF_DTYPE] [--prompts N] ' +
                  '[--tokens T] [--web]');
    process.exit(2);
}
const web = args.includes('--web');
let webSessions = 0, runtime = 'onnxruntime-node';
const here = path.dirname(new URL(import.meta.url).pathname);
if (web) {
    const ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = path.resolve(here, '../node_modules/onnxruntime-web/dist') + '/';
    // count the sessions made here, to be sure transformers.js took this runtime
    const create = ort.InferenceSession.create.bind(ort.InferenceSession);
    ort.InferenceSession.create = (...a) => (webSessions++, create(...a));
    globalThis[Symbol.for('onnxruntime')] = ort;
    runtime = `onnxruntime-web ${ort.env.versions.web}`;
}
const { AutoModelForCausalLM, Tensor, env } = await import('@huggingface/transformers');
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(dir)) + '/';
const id = path.basename(path.resolve(dir));
const expect = opt('--expect', null) && JSON.parse(fs.readFileSync(opt('--expect', null), 'utf8'));
const nTokens = expect ? expect.tokens : Number(opt('--tokens', '32'));
const all = JSON.parse(fs.readFileSync(path.join(here, 'ref/smollm2-real.json'), 'utf8')).prompts;
const which = opt('--only', null) ? opt('--only', null).split(',').map(Number)
    : all.slice(0, Number(opt('--prompts', '20'))).map((_, i) => i);
// an --expect file saved with --prompt-tokens P (tests/onnx_greedy.mjs) holds continuations of each
// prompt's first P tokens
const cut = expect?.promptTokens ?? Infinity;
const prompts = which.map((k) => ({ ...all[k], ids: all[k].ids.slice(0, cut), index: k }));

async function generateAll(dt) {
    const model = await AutoModelForCausalLM.from_pretrained(id, { dtype: dt, local_files_only: true, ...(web ? { device: 'auto' } : {}) });
    const outs = [];
    for (const p of prompts) {
        const n = p.ids.length;
        const ids = new Tensor('int64', BigInt64Array.from(p.ids.map(BigInt)), [1, n]);
        const mask = new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]);
        const out = await model.generate({ input_ids: ids, attention_mask: mask, max_new_tokens: nTokens,
                                           min_new_tokens: nTokens, do_sample: false, eos_token_id: null });
        outs.push(Array.from(out.data.slice(n), Number));
    }
    await model.dispose();
    return outs;
}

const t0 = Date.now();
const ref = expect ? 'fp32 (onnxruntime, ' + opt('--expect', '') + ')' : refDtype;
const a = expect ? prompts.map((p) => expect.prompts.find((x) => x.index === p.index).toks)
    : await generateAll(refDtype);
const b = await generateAll(dtype);
let same = 0, agree = 0, short = 0;
for (const [k, p] of prompts.entries()) {
    let d = 0;
    while (d < nTokens && a[k][d] === b[k][d]) d++;
    if (a[k].length < nTokens || b[k].length < nTokens) short++;
    agree += d;
    if (d === nTokens) same++;
    else console.log(`onnx_transformersjs_greedy: prompt ${p.index} (${p.name}): DIFFERENT at token ` +
                     `${d}: ${refDtype} ${a[k][d]}, ${dtype} ${b[k][d]}`);
}
const n = prompts.length;
console.log(`onnx_transformersjs_greedy ${dtype} vs ${ref} (transformers.js on ` +
            `${runtime}${web ? `, ${webSessions} session${webSessions === 1 ? '' : 's'}` : ''}): ${same}/${n} prompts give the same ` +
            `${nTokens} tokens (${agree}/${n * nTokens} before any divergence)` +
            `${short ? `; ${short} outputs SHORTER than ${nTokens} tokens` : ''}; ` +
            `${((Date.now() - t0) / 1000).toFixed(0)} s`);
process.exit(same === n && !short && (!web || webSessions === (expect ? 1 : 2)) ? 0 : 1);
