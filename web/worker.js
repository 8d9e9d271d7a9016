// worker.js: owns the model. Loads a GGUF file (from this page's server, through the Cache API so
// that the second visit needs no download, or from a file the user picked), runs generations with
// pocketlm.js and streams text back to main.js. One request at a time; "stop" aborts the current
// generation through an AbortSignal, which pocketlm.js checks before every token.
//
// Messages in:  {type: 'load', source: {url} | {file}, dtype, threads}
//               {type: 'run', id, mode: 'paraphrase' | 'generate', text, opts}
//               {type: 'stop'}  {type: 'memory'}  {type: 'cache-info'}  {type: 'clear-cache'}
//               {type: 'train-…'} (the Train view: worker_train.js)
// Messages out: {type: 'progress', phase: 'download' | 'read', loaded, total}
//               {type: 'loaded', info} (info.name: the file; modelName, adapter: from its metadata; paraphraseDefaults: pocketlm.js's, for the settings)   {type: 'token', id, text}   {type: 'done', id, result}
//               {type: 'error', id?, kind, message}   {type: 'memory', heapBytes}
//               {type: 'cache', entries: [{url, bytes}]}
import { PocketLM } from './pocketlm.js';
import { trainHandler } from './worker_train.js';

const CACHE = 'pocketlm-models-v1';
let lm = null;
let busy = null; // the AbortController of the generation in progress

const post = (m) => self.postMessage(m);

// ---- errors: one kind per thing the page explains differently ----

function classify(e) {
  const msg = String(e && e.message ? e.message : e);
  if (/out of (wasm )?memory|could not allocate|Array buffer allocation failed|RangeError.*memory/i.test(msg) ||
      (e instanceof RangeError && /memory|allocation/i.test(msg)))
    return 'oom';
  if (/magic|GGUF|format|not a gguf|truncated|unsupported|tensor/i.test(msg)) return 'bad-file';
  if (/HTTP \d+|Failed to fetch|NetworkError|network/i.test(msg)) return 'network';
  return 'other';
}

function fail(e, id) {
  post({ type: 'error', id, kind: e.kind || classify(e), message: String(e && e.message ? e.message : e) });
}

// ---- the cache: the server's model file, kept with its ETag ----

async function openCache() {
  try { return self.caches ? await caches.open(CACHE) : null; } catch { return null; }
}

// cachedOrFetch: a Blob of url's bytes, from the cache when its copy is current, else downloaded
// (with progress) into the cache. Returns {blob, fromCache}; blob is null when nothing could be
// cached (then the caller loads from the network directly).
async function cachedOrFetch(url) {
  const cache = await openCache();
  if (cache) {
    const hit = await cache.match(url);
    if (hit) {
      // still the server's file? a HEAD is cheap; offline (no answer) the copy is used as is
      let current = true;
      try {
        const head = await fetch(url, { method: 'HEAD', cache: 'no-store' });
        const tag = head.ok && head.headers.get('etag');
        if (tag && hit.headers.get('etag') && tag !== hit.headers.get('etag')) current = false;
      } catch { /* offline */ }
      if (current) return { blob: await hit.blob(), fromCache: true };
      await cache.delete(url);
    }
  }
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) {
    const e = new Error(`could not download the model: ${url}: HTTP ${res.status} ${res.statusText}`);
    e.kind = res.status === 404 ? 'no-model' : 'network';
    throw e;
  }
  const total = Number(res.headers.get('content-length')) || 0;
  let loaded = 0, last = 0;
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, ctl) {
      loaded += chunk.length;
      const t = performance.now();
      if (t - last > 100 || loaded === total) { last = t; post({ type: 'progress', phase: 'download', loaded, total }); }
      ctl.enqueue(chunk);
    },
  }));
  if (cache) {
    try {
      const headers = new Headers(res.headers);
      await cache.put(url, new Response(counted, { headers }));
      const hit = await cache.match(url);
      if (hit) return { blob: await hit.blob(), fromCache: false };
    } catch (e) {
      post({ type: 'warning', message: `The model could not be cached (${e.name === 'QuotaExceededError' ? 'not enough storage' : e.message}); it will be downloaded again next time.` });
      return { blob: null, fromCache: false };
    }
  }
  return { blob: await new Response(counted).blob(), fromCache: false };
}

async function cacheInfo() {
  const cache = await openCache();
  const entries = [];
  if (cache) {
    for (const req of await cache.keys()) {
      const r = await cache.match(req);
      entries.push({ url: req.url, bytes: Number(r && r.headers.get('content-length')) || 0 });
    }
  }
  post({ type: 'cache', entries, available: !!cache });
}

// ---- loading ----

async function isGguf(blob) {
  const head = new Uint8Array(await blob.slice(0, 4).arrayBuffer());
  return head.length === 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46;
}

async function load({ source, dtype, threads }) {
  if (lm) { lm.free(); lm = null; }
  const t0 = performance.now();
  let blob, fromCache = false, name;
  if (source.file) {
    blob = source.file;
    name = source.file.name;
  } else {
    const url = new URL(source.url, self.location.href).href;
    name = source.url;
    ({ blob, fromCache } = await cachedOrFetch(url));
    if (!blob) blob = await (await fetch(url, { cache: 'no-store' })).blob();
  }
  const tRead = performance.now();
  if (!(await isGguf(blob))) {
    const e = new Error(`${name} is not a GGUF file (it does not start with "GGUF").`);
    e.kind = 'bad-file';
    throw e;
  }
  const opts = { dtype, onProgress: (p) => post({ type: 'progress', phase: 'read', loaded: p.loaded, total: p.total }) };
  if (threads > 0) opts.threads = threads;
  lm = await PocketLM.load(blob, opts);
  if (!lm.hasTokenizer) {
    lm.free();
    lm = null;
    const e = new Error(`${name} has no tokenizer: this page needs a GGUF file with tokenizer metadata.`);
    e.kind = 'bad-file';
    throw e;
  }
  const t1 = performance.now();
  post({
    type: 'loaded',
    info: {
      name, modelName: lm.name, adapter: lm.adapter, fromCache, bytes: blob.size, dtype: lm.dtype, threads: lm.threads, nCtx: lm.nCtx,
      build: lm.build, kernelPath: lm.kernelPath,
      weightBytes: lm.weightBytes, heapBytes: lm.memoryBytes, crossOriginIsolated: self.crossOriginIsolated === true,
      paraphraseDefaults: lm.paraphraseDefaults,
      fetchSeconds: (tRead - t0) / 1000, loadSeconds: (t1 - tRead) / 1000, totalSeconds: (t1 - t0) / 1000,
    },
  });
}

// ---- generating ----

async function run({ id, mode, text, opts }) {
  if (!lm) throw Object.assign(new Error('Load a model first.'), { kind: 'state' });
  busy = new AbortController();
  const o = { ...opts, signal: busy.signal, onToken: (piece) => post({ type: 'token', id, text: piece }) };
  try {
    const r = mode === 'paraphrase' ? await lm.paraphrase(text, o) : await lm.generate(text, o);
    post({
      type: 'done', id,
      result: {
        text: r.text, tokens: r.tokens.length, generatedTokens: r.generatedTokens, stopReason: r.stopReason,
        promptTokens: r.promptTokens, prefillTokS: r.prefillTokS, decodeTokS: r.decodeTokS, heapBytes: lm.memoryBytes,
      },
    });
  } finally {
    busy = null;
  }
}

// ---- messages ----

// the Train view's messages (train-*): worker_train.js
const train = trainHandler(() => lm, post);

self.onmessage = async (ev) => {
  const m = ev.data;
  try {
    if (m.type.startsWith('train-')) {
      await train(m).catch((e) => post({ type: 'train-error', message: String(e && e.message ? e.message : e), badRows: [] }));
      return;
    }
    switch (m.type) {
    case 'load': await load(m); break;
    case 'run': await run(m); break;
    case 'stop': if (busy) busy.abort(); break;
    case 'memory': post({ type: 'memory', heapBytes: lm ? lm.memoryBytes : 0 }); break;
    case 'cache-info': await cacheInfo(); break;
    case 'clear-cache':
      if (self.caches) await caches.delete(CACHE);
      await cacheInfo();
      break;
    default: throw new Error(`unknown message ${m.type}`);
    }
  } catch (e) {
    fail(e, m.id);
  }
};

post({ type: 'ready', simd: true });
