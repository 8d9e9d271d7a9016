// wasm_train.mjs: fine-tuning in the wasm build (build/web/pocketlm.js in node) against
// `pocketlm finetune`, on a tiny model (tests/ref/tiny-tied's shapes with SmolLM2's vocabulary and
// tokenizer, seeded random weights, as GGUF: makeTiny) and 24 JSONL pairs with two bad rows. For the base kept f32 and
// q8_0, 1 thread, the same seed and settings (12 steps of batch 4, held-out loss every 4 steps):
//  - the files the CLI writes: adapter_config.json, tokenizer files and heldout.jsonl byte for
//    byte; data_report.json's counts; the bad rows listed with their line numbers;
//  - the loss of every step and the held-out losses within LOSS_RTOL, the adapter's weights within
//    W_ATOL (the wasm f32 kernels sum in another order than AVX2's FMA chains: the numbers say how
//    far that moves a run; Q8_0 products are the same bits, the LoRA and backward products are not);
//  - resume: 5 steps, a checkpoint, a new run from it to the end == the uninterrupted run, bit for
//    bit (adapter_model.safetensors and every loss); the threaded build with 2 threads == 1 thread;
//  - the adapter saved from wasm loads in `pocketlm generate --lora` and gives the greedy ids the
//    wasm module gives with it (useAdapter); useAdapter(null) gives the base's; merge() (f32) the
//    adapter's; evalFrac 0 holds nothing out;
//  - a finished run, its adapter freed, leaves the heap's allocations as they were (mallinfo);
//    the heap size after training is printed.
// Run by tests/wasm_train.test.sh, which builds everything first. Exits non-zero on any failure.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const BUILD = process.env.BUILD || 'build';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const BUILD_DIR = path.resolve(ROOT, BUILD);
const BIN = path.join(BUILD_DIR, 'pocketlm');
const { PocketLM } = await import(pathToFileURL(path.join(BUILD_DIR, 'web/pocketlm.js')).href);
process.setMaxListeners(64);
const native = (args, env = {}) => execFileSync(args[0], args.slice(1), {
  encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });

// Tolerances of wasm against native, set from the worst errors this test prints (2026-12-05, AVX2
// native, SIMD128 wasm): f32 base, losses equal to the 6 printed digits and weights within 5e-8;
// q8_0 base, losses within 1e-4 relative and weights within 1e-5: its activations are quantized
// to int8, and a rounding difference upstream that moves a value across a quantization step
// changes it by a whole step (1/127 of its block's largest), which the next layers carry.
const LOSS_RTOL = 1e-3;
const W_ATOL = 1e-4;

let passed = 0, failed = 0;
function check(ok, what, detail = '') {
  if (ok) { passed++; console.log(`ok   ${what}`); }
  else { failed++; console.log(`FAIL ${what} ${detail}`); }
}

// safetensors: { name: Float32Array } of a file's bytes
function safetensors(bytes) {
  const b = Buffer.from(bytes);
  const n = Number(b.readBigUInt64LE(0));
  const head = JSON.parse(b.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [k, v] of Object.entries(head)) {
    if (k === '__metadata__') continue;
    if (v.dtype !== 'F32') throw new Error(`${k}: dtype ${v.dtype}`);
    const [a, z] = v.data_offsets;
    out[k] = new Float32Array(b.buffer.slice(b.byteOffset + 8 + n + a, b.byteOffset + 8 + n + z));
  }
  return out;
}

function sameBytes(a, b) { return Buffer.from(a).equals(Buffer.from(b)); }
function metrics(text) { return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)); }

// ---- the tiny model and the data ----

// makeTiny: tests/ref/tiny-tied's shapes (2 layers, hidden 64, 4 heads, 2 KV heads, tied) with
// SmolLM2's vocabulary and tokenizer (data/smollm2-paraphraser's less the task markers, which
// fine-tuning adds, as on the real base model), seeded uniform random weights, into dir
function makeTiny(dir) {
  const cfg = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests/ref/tiny-tied/config.json'), 'utf8'));
  Object.assign(cfg, { vocab_size: 49152, max_position_embeddings: 256 });
  const C = cfg.hidden_size, F = cfg.intermediate_size, KD = C / cfg.num_attention_heads * cfg.num_key_value_heads;
  const shapes = { 'model.embed_tokens.weight': [cfg.vocab_size, C], 'model.norm.weight': [C] };
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(shapes, { [p + 'input_layernorm.weight']: [C], [p + 'post_attention_layernorm.weight']: [C],
      [p + 'self_attn.q_proj.weight']: [C, C], [p + 'self_attn.k_proj.weight']: [KD, C],
      [p + 'self_attn.v_proj.weight']: [KD, C], [p + 'self_attn.o_proj.weight']: [C, C],
      [p + 'mlp.gate_proj.weight']: [F, C], [p + 'mlp.up_proj.weight']: [F, C], [p + 'mlp.down_proj.weight']: [C, F] });
  }
  let x = 0x9e3779b97f4a7c15n;
  const rand = () => { // xorshift64*, uniform in [-0.1, 0.1)
    x ^= x >> 12n; x ^= (x << 25n) & 0xffffffffffffffffn; x ^= x >> 27n;
    return Number(((x * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn) >> 40n) / 2 ** 24 * 0.2 - 0.1;
  };
  const head = {}, parts = [];
  let off = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const a = new Float32Array(shape.reduce((m, n) => m * n, 1));
    for (let i = 0; i < a.length; i++) a[i] = shape.length === 1 ? 1 + rand() : rand();
    head[name] = { dtype: 'F32', shape, data_offsets: [off, off + a.byteLength] };
    parts.push(Buffer.from(a.buffer));
    off += a.byteLength;
  }
  let h = Buffer.from(JSON.stringify(head));
  h = Buffer.concat([h, Buffer.alloc((8 - h.length % 8) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'model.safetensors'), Buffer.concat([len, h, ...parts]));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  // the base's tokenizer: SmolLM2's, without the task markers (as the real base model's GGUF)
  const read = (f) => JSON.parse(fs.readFileSync(path.join(ROOT, 'data/smollm2-paraphraser', f), 'utf8'));
  const tok = read('tokenizer.json'), tcfg = read('tokenizer_config.json');
  tok.added_tokens = tok.added_tokens.filter((a) => a.id < cfg.vocab_size);
  for (const id of Object.keys(tcfg.added_tokens_decoder)) if (Number(id) >= cfg.vocab_size) delete tcfg.added_tokens_decoder[id];
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tcfg));
}

const T = fs.mkdtempSync('/tmp/plm-wasm-train-');
makeTiny(path.join(T, 'model'));
const tiny = path.join(T, 'tiny.gguf');
native([BIN, 'convert', path.join(T, 'model'), tiny]);
const lines = [];
for (let i = 1; i <= 24; i++) {
  lines.push(JSON.stringify({ input: `the cat ${i} sat on a mat`, output: `a cat ${i} sat on the mat` }));
  if (i === 3) lines.push('{"input": "no output here"}');
  if (i === 9) lines.push('not json at all');
}
const data = path.join(T, 'pairs.jsonl');
fs.writeFileSync(data, lines.join('\n') + '\n');
const bytes = fs.readFileSync(data);
const SETTINGS = { epochs: 3, maxSteps: 12, batch: 4, evalFrac: 0.25, evalEvery: 4, seed: 7 };
const CLI = ['--epochs', '3', '--max-steps', '12', '--batch', '4', '--eval-frac', '0.25',
             '--eval-every', '4', '--seed', '7', '--threads', '1'];

for (const dtype of ['f32', 'q8_0']) {
  console.log(`-- base ${dtype}`);
  const nat = path.join(T, `native-${dtype}`);
  native([BIN, 'finetune', '-m', tiny, '--dtype', dtype, '--data', data, '--out', nat, ...CLI]);
  const lm = await PocketLM.load(tiny, { dtype, threads: 1 });
  let started = null;
  const adapter = await lm.finetune({ data: bytes, dataName: 'pairs.jsonl', ...SETTINGS,
                                      onStart: (run) => { started = { info: run.info, bad: run.badRows }; } });
  const files = await adapter.save();

  // the data and the files beside the adapter
  check(started && started.bad.map((r) => r.line).join(',') === '4,11' &&
        /missing string field "output"/.test(started.bad[0].message) && started.info.bad === 2,
        `${dtype}: bad rows listed with their lines (4, 11)`, JSON.stringify(started?.bad));
  const report = JSON.parse(fs.readFileSync(path.join(nat, 'data_report.json'), 'utf8'));
  check(report.train_examples === started.info.trainExamples && report.eval_examples === started.info.evalExamples &&
        report.bad_fields === 2, `${dtype}: train/eval examples as native (${report.train_examples}/${report.eval_examples})`);
  for (const f of ['adapter_config.json', 'tokenizer.json', 'tokenizer_config.json', 'heldout.jsonl'])
    if (fs.existsSync(path.join(nat, f)) || files[f])
      check(files[f] && sameBytes(files[f], fs.readFileSync(path.join(nat, f))), `${dtype}: ${f} byte for byte as native`);

  // losses and weights within the stated tolerance
  const mw = metrics(new TextDecoder().decode(files['metrics.jsonl']));
  const mn = metrics(fs.readFileSync(path.join(nat, 'metrics.jsonl'), 'utf8'));
  let worstLoss = 0, lossBits = 0;
  for (let i = 0; i < mn.length; i++) {
    for (const k of ['loss', 'eval_loss']) {
      if (mn[i][k] === undefined) continue;
      const w = mw[i]?.[k] ?? mw[i]?.[k === 'loss' ? 'loss' : 'evalLoss'];
      worstLoss = Math.max(worstLoss, Math.abs(w - mn[i][k]) / Math.abs(mn[i][k]));
      if (w === mn[i][k]) lossBits++;
    }
  }
  check(mw.length === 12 && mn.length === 12 && worstLoss <= LOSS_RTOL,
        `${dtype}: 12 steps, losses within rtol ${LOSS_RTOL} of native (worst ${worstLoss.toExponential(2)}, ${lossBits} equal as printed)`);
  const aw = safetensors(files['adapter_model.safetensors']);
  const an = safetensors(fs.readFileSync(path.join(nat, 'adapter_model.safetensors')));
  let worstW = 0, nW = 0, eqW = 0;
  for (const k of Object.keys(an)) {
    for (let i = 0; i < an[k].length; i++) {
      const e = Math.abs(aw[k][i] - an[k][i]);
      worstW = Math.max(worstW, e);
      nW++;
      if (e === 0) eqW++;
    }
  }
  check(Object.keys(aw).length === Object.keys(an).length && worstW <= W_ATOL,
        `${dtype}: adapter weights within atol ${W_ATOL} of native (worst ${worstW.toExponential(2)}; ${eqW} of ${nW} bit-identical)`);

  // resume: 5 steps, checkpoint, a new run from it == the uninterrupted run, bit for bit
  const r1 = await lm.trainer({ data: bytes, dataName: 'pairs.jsonl', ...SETTINGS });
  for (let i = 0; i < 5; i++) await r1.step();
  const ck = await r1.checkpoint();
  r1.free();
  const r2 = await lm.trainer({ data: bytes, dataName: 'pairs.jsonl', ...SETTINGS, resume: ck });
  check(r2.stepsDone === 5 && r2.metrics.length === 5, `${dtype}: the resumed run starts at step 5 with its metrics`);
  while (await r2.step());
  const resumed = await r2.save();
  r2.free();
  const mr = metrics(new TextDecoder().decode(resumed['metrics.jsonl']));
  check(sameBytes(resumed['adapter_model.safetensors'], files['adapter_model.safetensors']) &&
        mr.length === 12 && mr.every((m, i) => m.loss === mw[i].loss && m.eval_loss === mw[i].eval_loss),
        `${dtype}: checkpoint at step 5 + resume == uninterrupted, bit for bit`);

  // generation: the wasm adapter in `pocketlm generate --lora`, useAdapter, useAdapter(null), merge
  const dir = path.join(T, `wasm-${dtype}`);
  fs.mkdirSync(dir);
  for (const [k, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, k), v);
  const prompt = 'Rephrase the following:\nInput: the cat 5 sat on a mat\nOutput: <|OUTPUT_START|>';
  const gen = (extra) => JSON.parse(native([BIN, 'generate', '-m', tiny, '--dtype', dtype, '-p', prompt,
                                            '-n', '12', '--temp', '0', '--json', '--threads', '1', ...extra])).tokens;
  await lm.useAdapter(adapter);
  const withA = (await lm.generate(prompt, { maxTokens: 12 })).tokens;
  check(JSON.stringify(withA) === JSON.stringify(gen(['--lora', dir])),
        `${dtype}: greedy ids with the wasm adapter == pocketlm generate --lora (its saved files)`);
  await lm.useAdapter(null);
  const base = (await lm.generate(prompt, { maxTokens: 12 })).tokens;
  check(JSON.stringify(base) === JSON.stringify(gen([])), `${dtype}: useAdapter(null): the base's greedy ids`);
  const merged = await lm.merge(adapter);
  const mids = (await merged.generate(prompt, { maxTokens: 12 })).tokens;
  // f32: the merged weights run the same math as the adapter at run time (within rounding); a q8_0
  // base merges into f32 weights, whose activations are not quantized: other logits, other ids
  if (dtype === 'f32') check(JSON.stringify(mids) === JSON.stringify(withA), `${dtype}: merge(adapter): the adapter's greedy ids`);
  else check(merged.dtype === 'f32' && mids.length > 0, `${dtype}: merge(adapter): an f32 model that generates`);
  merged.free();
  adapter.free();

  // the threaded build, 2 threads (a session's pool and the trainer's): the same bits as 1 thread
  {
    const lm2 = await PocketLM.load(tiny, { dtype, threads: 2 });
    const a2 = await lm2.finetune({ data: bytes, dataName: 'pairs.jsonl', ...SETTINGS });
    const f2 = await a2.save();
    check(lm2.threads === 2 && sameBytes(f2['adapter_model.safetensors'], files['adapter_model.safetensors']),
          `${dtype}: 2 threads (${lm2.build}) == 1 thread, bit for bit`);
    a2.free();
    lm2.free();
  }

  // the heap given back: a whole run (data, trainer, steps, the adapter it returns) leaves, once its
  // adapter is freed, exactly the allocations there were before it (the heap's size never shrinks)
  {
    const mib = (b) => (b / 2 ** 20).toFixed(1), before = lm.memoryInUseBytes;
    const a = await lm.finetune({ data: bytes, dataName: 'pairs.jsonl', ...SETTINGS, maxSteps: 2 });
    const held = lm.memoryInUseBytes;
    a.free();
    const after = lm.memoryInUseBytes;
    check(before > 0 && held > before && after === before,
          `${dtype}: a finished run gives all its memory back (in use ${mib(before)} MiB before, ${mib(held)} with its adapter, ${mib(after)} after)`);
  }

  // no held-out split
  const r0 = await lm.trainer({ data: bytes, ...SETTINGS, evalFrac: 0, maxSteps: 2 });
  const p1 = await r0.step(), p2 = await r0.step(), p3 = await r0.step();
  check(r0.info.evalExamples === 0 && p1.evalLoss === null && p2.evalLoss === null && p3 === null &&
        r0.lossChart().startsWith('<svg'), `${dtype}: evalFrac 0: no held-out split, no eval loss; the loss chart is SVG`);
  r0.free();
  console.log(`     ${dtype}: wasm heap ${(lm.memoryBytes / 2 ** 20).toFixed(0)} MiB after training`);
  lm.free();
}

// no usable row: an error that lists the bad rows
{
  const lm = await PocketLM.load(tiny, { dtype: 'q8_0', threads: 1 });
  let e = null;
  try { await lm.trainer({ data: new TextEncoder().encode('nope\n{"input": ""}\n'), dataName: 'bad.jsonl' }); }
  catch (x) { e = x; }
  check(e && /all 2 rows bad/.test(e.message) && e.badRows?.length === 2 && e.badRows[1].line === 2,
        'all rows bad: rejects, saying so, with both rows listed', e ? `${e.message} ${JSON.stringify(e.badRows)}` : 'resolved');
  lm.free();
}

fs.rmSync(T, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
