// bench_web_worker.js: the engine side of tests/bench_web.html (a module worker, as web/worker.js
// is in the app). Given one configuration (the page's query string), it loads the model through
// the Cache API (cold: downloaded from this origin into the cache; cached: read back from it, no
// download), times the first token of a 30-token prompt, then (cold phase) the prefill of a p-token
// prompt and the decode of n tokens after it, best of reps, and posts one result. The model stays
// loaded afterwards, so that the driver reads the renderer's RSS with it in memory.
//   engine=plm: pocketlm wasm (/pocketlm.js, build/web), dtype q8_0|f32, threads 1 = the
//               single-threaded build, > 1 = the pthreads build; nctx 0 = pocketlm.js's default;
//               simd auto|relaxed|simd128 (pocketlm.js `simd`: auto = feature detection).
//   engine=ort: onnxruntime-web (/ort/ = node_modules/onnxruntime-web/dist, wasm backend) on
//               `pocketlm export --format onnx` (/onnx/onnx/model.onnx = fp32,
//               model_quantized.onnx = int8); mode kv: past_key_values fed back as in
//               tests/bench_ort.mjs; mode nokv: the seed's way, the whole sequence recomputed for
//               each new token (30-token prompt, 50 new tokens).
//   engine=plmtrain: pocketlm wasm as engine=plm, then LoRA training on /paws-sample.tsv for
//               steps optimizer steps (trainPlm); its tokens per second.
//   engine=none: nothing loaded (the renderer's baseline).
// Prompts are fixed token ids (no tokenizer), the same formula as tests/bench_ort.mjs.
const CACHE = 'bench-web-v1';
const abs = () => performance.timeOrigin + performance.now();
const promptIds = (n) => Array.from({ length: n }, (_, i) => 100 + ((i * 7919) % 20000));
const post = (m) => self.postMessage(m);
const say = (text) => post({ type: 'log', text });

// getBlob: url's bytes from the Cache API, downloading them into it first when absent
async function getBlob(url) {
  const cache = await caches.open(CACHE);
  let hit = await cache.match(url);
  if (hit) return { blob: await hit.blob(), fromCache: true };
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  await cache.put(url, res);
  hit = await cache.match(url);
  return { blob: await hit.blob(), fromCache: false };
}

// ---- pocketlm ----

async function benchPlm(q, r) {
  const { PocketLM } = await import('/pocketlm.js');
  const { blob, fromCache } = await getBlob('/model.gguf');
  Object.assign(r, { fromCache, fileBytes: blob.size });
  const opts = { dtype: q.dtype, threads: Number(q.threads), simd: q.simd || 'auto' };
  if (Number(q.nctx) > 0) opts.nCtx = Number(q.nctx);
  const lm = await PocketLM.load(blob, opts);
  self.lm = lm; // kept alive: RSS is read with the model loaded
  r.loadedAt = abs();
  Object.assign(r, { threads: lm.threads, nCtx: lm.nCtx, weightBytes: lm.weightBytes, build: lm.build,
                     kernelPath: lm.kernelPath });
  await lm.generate(promptIds(30), { maxTokens: 1, stopTokens: [], cache: false });
  r.firstTokenAt = abs();
  if (q.phase === 'cold' && q.engine === 'plm') {
    const p = promptIds(Number(q.p)), reps = Number(q.reps);
    r.prefillTokS = r.decodeTokS = 0;
    for (let i = 0; i < reps; i++) {
      const g = await lm.generate(p, { maxTokens: Number(q.n), stopTokens: [], cache: false });
      r.prefillTokS = Math.max(r.prefillTokS, g.prefillTokS);
      r.decodeTokS = Math.max(r.decodeTokS, g.decodeTokS);
      r.generated = g.generatedTokens;
      say(`rep ${i}: prefill ${g.prefillTokS.toFixed(1)} decode ${g.decodeTokS.toFixed(1)} tok/s`);
    }
  }
  if (q.engine === 'plmtrain') await trainPlm(lm, q, r);
  r.heapBytes = lm.memoryBytes;
}

// trainPlm (engine=plmtrain): LoRA fine-tuning as the app's Train view runs it (lm.finetune with
// the library's defaults: r 8 on q_proj,v_proj, batch 8, 5% held out) on the bundled PAWS sample
// (/paws-sample.tsv) for q.steps optimizer steps, the held-out loss every 10 steps (the Train view's
// evalEvery); tokens per second over the whole run, the first and last held-out loss, and the most
// heap in use between steps (the model, the session and the run: pocketlm.js memoryInUseBytes).
async function trainPlm(lm, q, r) {
  const data = new Uint8Array(await (await fetch('/paws-sample.tsv')).arrayBuffer());
  let last = null, inUse = 0;
  const evals = [];
  const t0 = performance.now();
  const adapter = await lm.finetune({ data, dataName: 'paws-sample.tsv', maxSteps: Number(q.steps), seed: 1234,
                                      evalEvery: 10,
                                      onProgress: (p) => {
                                        last = p;
                                        inUse = Math.max(inUse, lm.memoryInUseBytes || 0);
                                        if (p.evalLoss != null) evals.push(p.evalLoss);
                                      } });
  r.trainSeconds = (performance.now() - t0) / 1000;
  r.trainTokS = last.tokS;
  r.trainSteps = last.step;
  r.trainLoss = last.loss;
  r.trainEvalFirst = evals[0];
  r.trainEvalLast = evals[evals.length - 1];
  r.trainHeapBytes = lm.memoryBytes;
  r.trainInUseBytes = inUse;
  adapter.free();
  say(`train: ${last.step} steps, ${last.tokens} tokens, ${last.tokS.toFixed(1)} tok/s`);
}

// ---- onnxruntime-web ----

async function benchOrt(q, r) {
  const ort = await import('/ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = new URL('/ort/', self.location.href).href;
  ort.env.wasm.numThreads = Number(q.threads);
  ort.env.wasm.proxy = false;
  const cfg = await (await fetch('/onnx/config.json')).json();
  const L = cfg.num_hidden_layers, K = cfg.num_key_value_heads, V = cfg.vocab_size;
  const D = cfg.head_dim || cfg.hidden_size / cfg.num_attention_heads;
  const file = q.dtype === 'int8' ? 'model_quantized.onnx' : 'model.onnx';
  const { blob, fromCache } = await getBlob(`/onnx/onnx/${file}`);
  Object.assign(r, { fromCache, fileBytes: blob.size, file });
  let bytes = new Uint8Array(await blob.arrayBuffer());
  const sess = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  bytes = null; // ORT copied the model into its heap; the JS copy is garbage from here on
  self.sess = sess;
  r.loadedAt = abs();
  const withPos = sess.inputNames.includes('position_ids');
  const i64 = (a) => new ort.Tensor('int64', BigInt64Array.from(a, (x) => BigInt(x)), [1, a.length]);
  const emptyPast = () => {
    const p = {};
    for (let l = 0; l < L; l++)
      for (const kv of ['key', 'value'])
        p[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, K, 0, D]);
    return p;
  };
  // step: ids after pos0 cached positions (past) -> the greedy next id and the new past
  const step = async (ids, pos0, past) => {
    const n = pos0 + ids.length;
    const feeds = { input_ids: i64(ids), attention_mask: i64(Array(n).fill(1)), ...past };
    if (withPos) feeds.position_ids = i64(Array.from({ length: ids.length }, (_, i) => pos0 + i));
    const out = await sess.run(feeds);
    const next = {};
    for (let l = 0; l < L; l++)
      for (const kv of ['key', 'value']) next[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
    const lg = out.logits.data, off = lg.length - V;
    let b = 0;
    for (let i = 1; i < V; i++) if (lg[off + i] > lg[off + b]) b = i;
    return { next: b, past: next };
  };
  await step(promptIds(30), 0, emptyPast());
  r.firstTokenAt = abs();
  if (q.phase !== 'cold') return;
  const reps = Number(q.reps);
  if (q.mode === 'nokv') { // the seed's way: 30-token prompt, 50 new tokens, no KV cache
    r.nokvTokS = 0;
    for (let i = 0; i < reps; i++) {
      const seq = promptIds(30), t = performance.now();
      for (let k = 0; k < 50; k++) seq.push((await step(seq, 0, emptyPast())).next);
      r.nokvTokS = Math.max(r.nokvTokS, 50 / ((performance.now() - t) / 1000));
      say(`rep ${i}: nokv ${r.nokvTokS.toFixed(1)} tok/s`);
    }
    return;
  }
  const P = Number(q.p), N = Number(q.n);
  r.prefillTokS = r.decodeTokS = 0;
  for (let i = 0; i < reps; i++) {
    let t = performance.now();
    let s = await step(promptIds(P), 0, emptyPast());
    const pre = P / ((performance.now() - t) / 1000);
    t = performance.now();
    for (let k = 0; k < N; k++) s = await step([s.next], P + k, s.past);
    const dec = N / ((performance.now() - t) / 1000);
    r.prefillTokS = Math.max(r.prefillTokS, pre);
    r.decodeTokS = Math.max(r.decodeTokS, dec);
    say(`rep ${i}: prefill ${pre.toFixed(1)} decode ${dec.toFixed(1)} tok/s`);
  }
}

self.onmessage = async (ev) => {
  const q = { p: '128', n: '128', reps: '3', phase: 'cold', mode: 'kv', threads: '1', nctx: '0', ...ev.data };
  const r = { engine: q.engine, dtype: q.dtype, threads: Number(q.threads), mode: q.mode, phase: q.phase,
              startedAt: abs() };
  try {
    if (q.engine === 'plm' || q.engine === 'plmtrain') await benchPlm(q, r);
    else if (q.engine === 'ort') await benchOrt(q, r);
    else if (q.engine === 'none') r.firstTokenAt = abs(); // the page's own baseline
    else throw new Error(`engine '${q.engine}': want plm or ort`);
    post({ type: 'result', result: r });
  } catch (e) {
    post({ type: 'error', message: String(e && e.stack ? e.stack : e) });
  }
};
