// pocketlm.js: the JavaScript API of pocketlm (one ES module for node and the browser), over the
// wasm build of the C library (web/wasm.c). Conventions of transformers.js / wllama:
//
//     import { PocketLM } from './pocketlm.js';
//     const lm = await PocketLM.load('SmolLM2-135M-Instruct.Q4_1.gguf', { dtype: 'q8_0' });
//     const r = await lm.generate('The capital of France is', { maxTokens: 32, onToken: (t) => ... });
//     const p = await lm.paraphrase('The cat sat on the mat.');
//     lm.free();
//
// Which build: pocketlm.mjs (single-threaded, any page) unless threads > 1 and threads are
// possible (crossOriginIsolated in a browser; always in node), then pocketlm-mt.mjs; and each in a
// relaxed-SIMD flavour, pocketlm-relaxed.mjs / pocketlm-relaxed-mt.mjs (faster q8_0), taken when
// the engine validates a tiny module that uses the relaxed instructions the build uses (feature
// detection: WebAssembly.validate, never the user agent). Engines without relaxed SIMD (node 20
// without --experimental-wasm-relaxed-simd, older browsers) get the SIMD128 build; q8_0 results
// are the same bits in both. lm.build and lm.kernelPath say what was loaded.
// Memory: the GGUF file is streamed straight into the wasm heap (one malloc of the file's size,
// chunks written at that pointer), converted to the in-memory dtype, then freed: no second copy of
// the file is ever held in JS memory (except when a URL's size is unknown: see readUrl).
// Generation runs token by token from JS (plm_wasm_gen_step), yielding to the event loop between
// tokens, so an AbortSignal or a UI message is seen after at most one token.
// Not here: the math (src/), the page (web/index.html, web/main.js, web/worker.js).

const IS_NODE = typeof process === 'object' && typeof process.versions === 'object' &&
    typeof process.versions.node === 'string' && typeof window === 'undefined';

const DTYPES = {
  f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_1: 5, auto: 6, q5_0: 7, q5_1: 8, q6_k: 9, q4_k: 10,
  q5_k: 11,
};
const STOP_REASONS = ['length', 'token', 'string', 'context', 'callback'];
const MAX_POOL = 16; // web workers at most in the threaded build
const POOLS = 3;     // thread pools at once: a session, a trainer, a merged model's session

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---- the Emscripten module ----

// RELAXED_PROBE: a module whose one function uses i16x8.relaxed_dot_i8x16_i7x16_s,
// f32x4.relaxed_madd and i32x4.relaxed_dot_i8x16_i7x16_add_s (the relaxed instructions of the
// relaxed builds), with their final opcodes.
const RELAXED_PROBE = (() => {
  const zero = [0xfd, 0x0c, ...new Array(16).fill(0)]; // v128.const 0
  const body = [0x00, ...zero, ...zero, 0xfd, 0x92, 0x02, // (no locals) dot(0, 0)
                ...zero, ...zero, 0xfd, 0x85, 0x02,       // madd(dot, 0, 0)
                ...zero, ...zero, 0xfd, 0x93, 0x02, 0x0b]; // dot_add(madd, 0, 0) end
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,                             // type 0: [] -> [v128]
    0x03, 0x02, 0x01, 0x00,                                               // func 0: type 0
    0x0a, body.length + 2, 0x01, body.length, ...body]);                  // its code
})();

let relaxed = null;
// relaxedSimd: true when this engine runs the relaxed-SIMD builds.
export function relaxedSimd() {
  if (relaxed === null) {
    try { relaxed = typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_PROBE); }
    catch { relaxed = false; }
  }
  return relaxed;
}

// buildName: the module file for a thread mode and SIMD flavour ('relaxed' | 'simd128').
function buildName(mt, simd) {
  return `pocketlm${simd === 'relaxed' ? '-relaxed' : ''}${mt ? '-mt' : ''}.mjs`;
}

const factories = new Map(); // build file name -> Promise of the module factory (+ node wasm bytes)

async function loadFactory(mt, simd) {
  const key = buildName(mt, simd);
  if (!factories.has(key)) {
    factories.set(key, (async () => {
      const url = new URL('./' + key, import.meta.url);
      let wasmBinary, dir;
      if (IS_NODE) {
        // emscripten 3.1.6's ES6 output uses CommonJS `require` and `__dirname` in its node
        // branch; give them, and the wasm bytes (node's fetch() cannot read a file path).
        const { createRequire } = await import('node:module');
        const { fileURLToPath } = await import('node:url');
        const fs = await import('node:fs');
        const path = await import('node:path');
        const file = fileURLToPath(url);
        dir = path.dirname(file);
        if (typeof globalThis.require !== 'function') globalThis.require = createRequire(url.href);
        if (typeof globalThis.__dirname !== 'string') globalThis.__dirname = dir;
        wasmBinary = fs.readFileSync(file.replace(/\.mjs$/, '.wasm'));
      }
      const factory = (await import(url.href)).default;
      return { factory, wasmBinary, dir, url };
    })());
  }
  return factories.get(key);
}

async function instantiate(mt, simd, poolSize) {
  const { factory, wasmBinary, dir, url } = await loadFactory(mt, simd);
  const opts = {
    arguments: [],
    print: (s) => console.log(s),
    printErr: (s) => console.error(s),
    locateFile: (p) => {
      // node: the CommonJS worker script is shipped as .cjs, since package.json says "module"
      if (IS_NODE) return dir + '/' + (p.endsWith('.worker.js') ? p.replace(/\.js$/, '.cjs') : p);
      return new URL(p, url).href;
    },
  };
  if (wasmBinary) opts.wasmBinary = wasmBinary;
  if (mt) opts.pocketlmPoolSize = poolSize;
  return factory(opts);
}

// Thin accessors over one instance: heap views are re-read every time, because memory growth
// (any malloc) detaches them, and in the threaded build a worker may grow memory.
class Heap {
  constructor(M) { this.M = M; }
  get buffer() { return this.M.wasmMemory ? this.M.wasmMemory.buffer : this.M.HEAPU8.buffer; }
  u8() { return new Uint8Array(this.buffer); }
  i32(ptr, n) { return new Int32Array(this.buffer, ptr, n); }
  f32(ptr, n) { return new Float32Array(this.buffer, ptr, n); }
  malloc(n) {
    const p = this.M._malloc(Math.max(1, n)) >>> 0;
    if (!p) throw new Error(`pocketlm: out of wasm memory allocating ${n} bytes`);
    return p;
  }
  free(p) { if (p) this.M._free(p); }
  // string: bytes of ptr (n) as text (copied first: TextDecoder refuses shared memory)
  string(ptr, n) { return decoder.decode(this.u8().slice(ptr, ptr + n)); }
  // cstr: a NUL-terminated copy of s in the heap (free it)
  cstr(s) {
    const b = encoder.encode(s), p = this.malloc(b.length + 1);
    const u = this.u8();
    u.set(b, p);
    u[p + b.length] = 0;
    return { ptr: p, len: b.length };
  }
  ids(ids) {
    const p = this.malloc(ids.length * 4);
    this.i32(p, ids.length).set(ids);
    return p;
  }
}

// ---- reading sources into the heap ----

function isUrlString(s) { return /^(https?|blob|data|file):/i.test(s); }

// readInto: the bytes of source in a fresh heap buffer; returns { ptr, size } (caller frees).
async function readInto(heap, source, onProgress, what) {
  const progress = (loaded, total) => { if (onProgress) onProgress({ loaded, total, file: what }); };
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    const b = source instanceof ArrayBuffer ? new Uint8Array(source)
        : new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    const ptr = heap.malloc(b.length);
    heap.u8().set(b, ptr);
    progress(b.length, b.length);
    return { ptr, size: b.length };
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob)
    return readStream(heap, source.stream(), source.size, progress);
  if (typeof source === 'string' && IS_NODE && !/^(https?|blob|data):/i.test(source))
    return readPath(heap, source, progress);
  if (typeof source === 'string' || source instanceof URL) {
    const res = await fetch(source);
    if (!res.ok) throw new Error(`pocketlm: ${source}: HTTP ${res.status} ${res.statusText}`);
    const len = Number(res.headers.get('content-length'));
    const encoded = res.headers.get('content-encoding');
    return readStream(heap, res.body, len > 0 && !encoded ? len : -1, progress);
  }
  throw new TypeError('pocketlm: a source is a URL, a File/Blob, an ArrayBuffer/Uint8Array, ' +
                      'or (node) a file path');
}

// readPath (node): read the file in 8 MB chunks straight into the heap.
async function readPath(heap, file, progress) {
  const fs = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  if (file.startsWith('file:')) file = fileURLToPath(file);
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const ptr = heap.malloc(size);
    try {
      for (let off = 0; off < size;) {
        const n = fs.readSync(fd, heap.u8(), ptr + off, Math.min(8 << 20, size - off), off);
        if (n <= 0) throw new Error(`pocketlm: ${file}: short read at ${off} of ${size}`);
        off += n;
        progress(off, size);
      }
    } catch (e) { heap.free(ptr); throw e; }
    return { ptr, size };
  } finally { fs.closeSync(fd); }
}

// byobReader: a BYOB reader of stream when it is a byte stream, else null.
function byobReader(stream) {
  try { return stream.getReader({ mode: 'byob' }); } catch { return null; }
}

// readStream: chunks of a ReadableStream written at a heap pointer of the known size. When the
// size is unknown (no content-length, or compressed), chunks are gathered in JS first: one extra
// copy of the file, held only until it is copied into the heap.
async function readStream(heap, stream, size, progress) {
  if (size < 0) {
    const reader = stream.getReader();
    const parts = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      n += value.length;
      progress(n, 0);
    }
    const ptr = heap.malloc(n);
    let off = 0;
    for (const p of parts) { heap.u8().set(p, ptr + off); off += p.length; }
    return { ptr, size: n };
  }
  // A byte stream (Blob.stream(), and fetch bodies where the engine makes them byte streams) is
  // read through one reused 1 MB buffer (BYOB): no chunk per read left for the garbage collector,
  // which would otherwise keep tens of MB of a page's memory until it runs.
  const byob = byobReader(stream), reader = byob || stream.getReader();
  let buf = byob ? new Uint8Array(1 << 20) : null;
  const ptr = heap.malloc(size);
  let off = 0;
  try {
    for (;;) {
      const { done, value } = byob ? await reader.read(buf) : await reader.read();
      if (done) break;
      if (off + value.length > size) throw new Error(`pocketlm: got more bytes than the ${size} announced`);
      heap.u8().set(value, ptr + off);
      off += value.length;
      if (byob) buf = new Uint8Array(value.buffer); // the same memory, handed back
      progress(off, size);
    }
    if (off !== size) throw new Error(`pocketlm: got ${off} bytes, ${size} announced`);
  } catch (e) { heap.free(ptr); throw e; }
  return { ptr, size };
}

// ---- yielding to the event loop between tokens ----

const yieldNow = IS_NODE && typeof setImmediate === 'function'
  ? () => new Promise((r) => setImmediate(r))
  : (() => {
      if (typeof MessageChannel === 'undefined') return () => new Promise((r) => setTimeout(r, 0));
      const ch = new MessageChannel(), queue = [];
      ch.port1.onmessage = () => queue.shift()();
      return () => new Promise((r) => { queue.push(r); ch.port2.postMessage(0); });
    })();

function now() { return typeof performance !== 'undefined' ? performance.now() : Date.now(); }

// ---- the model ----

export class PocketLM {
  // use PocketLM.load
  constructor(M, model, session, lora, threads, kvType) {
    this._M = M;
    this._heap = new Heap(M);
    this._model = model;
    this._session = session;
    this._lora = lora;
    this._err = M._plm_wasm_error_new() >>> 0;
    this._cache = [];          // ids held in the session's KV cache, in order
    this._queue = Promise.resolve(); // calls on one session run one after another
    this.threads = threads;
    this.kvType = kvType;
    const info = (k) => M._plm_wasm_model_info(model, k);
    this.config = { vocabSize: info(0), hiddenSize: info(1), numLayers: info(2),
                    maxPositionEmbeddings: info(3), bosTokenId: info(4), eosTokenId: info(5) };
    this.dtype = Object.keys(DTYPES).find((k) => DTYPES[k] === info(7)) ?? 'f32';
    this.hasTokenizer = M._plm_wasm_session_info(session, 4) === 1;
    this.nCtx = M._plm_wasm_session_info(session, 2);
    this.weightBytes = M._plm_wasm_model_weight_bytes(model);
    // the task's generation settings at the default diversity, as the library has them
    this.paraphraseDefaults = this._taskSettings(undefined);
    this.name = M.UTF8ToString(M._plm_wasm_model_name(model, 0) >>> 0);
    this.adapter = M.UTF8ToString(M._plm_wasm_model_name(model, 1) >>> 0);
    this.kernelPath = M.UTF8ToString(M._plm_kernel_path() >>> 0); // 'relaxed-dot' | 'relaxed' | 'wasm'
  }

  // PocketLM.load: see pocketlm.d.ts.
  static async load(source, opts = {}) {
    const dtype = opts.dtype ?? 'auto';
    if (!(dtype in DTYPES))
      throw new Error(
        `pocketlm: dtype '${dtype}': want 'q8_0', 'f32', 'f16', 'bf16', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q6_k', 'q4_k', 'q5_k' or 'auto'`);
    const kvType = opts.kvType ?? 'f32';
    if (kvType !== 'f32' && kvType !== 'f16')
      throw new Error(`pocketlm: kvType '${kvType}': want 'f32' or 'f16'`);
    let threads = opts.threads ?? defaultThreads();
    const canThread = IS_NODE || (typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated);
    if (!canThread) threads = 1;
    threads = Math.max(1, Math.min(MAX_POOL + 1, threads | 0));
    const mt = threads > 1;
    const simd = opts.simd ?? 'auto';
    if (!['auto', 'relaxed', 'simd128'].includes(simd))
      throw new Error(`pocketlm: simd '${simd}': want 'auto', 'relaxed' or 'simd128'`);
    if (simd === 'relaxed' && !relaxedSimd())
      throw new Error('pocketlm: simd \'relaxed\': this engine does not run relaxed SIMD');
    const flavour = simd === 'auto' ? (relaxedSimd() ? 'relaxed' : 'simd128') : simd;
    // workers: threads - 1 for each thread pool that may exist at once: the session's, a
    // trainer's, a merged model's session (a pthread started beyond the pool would wait for this
    // thread to yield, which a pool's first job never does)
    const M = await instantiate(mt, flavour, POOLS * (threads - 1));
    const heap = new Heap(M);
    const err = M._plm_wasm_error_new() >>> 0;
    let model = 0, session = 0, lora = 0;
    try {
      const t0 = now();
      const { ptr, size } = await readInto(heap, source, opts.onProgress, 'model');
      const tRead = now();
      try { // loaded in place: on success the model owns the file's bytes (one copy in the heap)
        model = M._plm_wasm_model_load(ptr, size, DTYPES[dtype], err) >>> 0;
      } finally { if (!model) heap.free(ptr); }
      if (!model) throw wasmError(M, err, 'loading the model');
      if (opts.lora) lora = await loadLora(M, heap, model, opts.lora, opts.onProgress, err);
      session = M._plm_wasm_session_create(model, lora, opts.nCtx ?? 0, threads, DTYPES[kvType],
                                           err) >>> 0;
      if (!session) throw wasmError(M, err, 'creating the session');
      const lm = new PocketLM(M, model, session, lora, threads, kvType);
      lm.build = buildName(mt, flavour);
      lm.loadSeconds = (now() - t0) / 1000;
      lm.readSeconds = (tRead - t0) / 1000;
      return lm;
    } catch (e) {
      if (session) M._plm_wasm_session_free(session);
      if (lora) M._plm_wasm_lora_free(lora);
      if (model) M._plm_wasm_model_free(model);
      if (M.PThread) M.PThread.terminateAllThreads();
      throw e;
    } finally { M._plm_wasm_error_free(err); }
  }

  // run: fn() after every call before it on this model has finished.
  _run(fn) {
    if (!this._model) return Promise.reject(new Error('pocketlm: the model was freed'));
    const p = this._queue.then(fn);
    this._queue = p.catch(() => {});
    return p;
  }

  tokenize(text) {
    this._alive();
    if (!this.hasTokenizer) throw new Error('pocketlm: the model has no tokenizer');
    const M = this._M, h = this._heap, s = h.cstr(String(text));
    let ids = 0;
    try {
      let n = M._plm_wasm_tokenize(this._session, s.ptr, s.len, 0, 0);
      if (n < 0) throw new Error('pocketlm: tokenize failed (out of memory)');
      ids = h.malloc(n * 4);
      n = M._plm_wasm_tokenize(this._session, s.ptr, s.len, ids, n);
      return h.i32(ids, n).slice();
    } finally { h.free(ids); h.free(s.ptr); }
  }

  detokenize(ids) {
    this._alive();
    if (!this.hasTokenizer) throw new Error('pocketlm: the model has no tokenizer');
    const M = this._M, h = this._heap, p = h.ids(ids);
    let out = 0;
    try {
      const n = M._plm_wasm_detokenize(this._session, p, ids.length, 0, 0);
      if (n < 0) throw new Error('pocketlm: detokenize: an id is out of range');
      out = h.malloc(n);
      M._plm_wasm_detokenize(this._session, p, ids.length, out, n);
      return h.string(out, n);
    } finally { h.free(out); h.free(p); }
  }

  // tokenId: the id of a token given by its exact text, or -1.
  tokenId(text) {
    this._alive();
    const h = this._heap, s = h.cstr(text);
    try { return this._M._plm_wasm_token_id(this._session, s.ptr); } finally { h.free(s.ptr); }
  }

  // decode (low level): run ids after what the session holds (or from position 0 with
  // reset) and return a copy of the last position's logits.
  decode(ids, { reset = true } = {}) {
    return this._run(() => {
      const M = this._M, h = this._heap;
      if (reset) this._truncate(0);
      const p = h.ids(ids);
      try {
        const st = M._plm_wasm_decode(this._session, p, ids.length, this._err);
        if (st !== 0) { this._truncate(0); throw wasmError(M, this._err, 'decode'); }
      } finally { h.free(p); }
      this._cache.push(...ids);
      const n = M._plm_wasm_session_info(this._session, 0);
      return h.f32(M._plm_wasm_logits(this._session) >>> 0, n).slice();
    });
  }

  _truncate(n) {
    this._M._plm_wasm_session_truncate(this._session, n);
    this._cache.length = n;
  }

  generate(prompt, opts = {}) {
    return this._run(() => this._generate(prompt, opts));
  }

  async _generate(prompt, opts) {
    const M = this._M, h = this._heap;
    const ids = typeof prompt === 'string' ? this.tokenize(prompt) : Int32Array.from(prompt);
    if (ids.length === 0) throw new Error('pocketlm: the prompt is empty');
    const maxTokens = opts.maxTokens ?? 256;
    const stops = (opts.stop ?? []).filter((s) => s.length > 0);
    const stopIds = opts.stopTokens ?? null;
    if (stopIds && stopIds.length > 16) throw new Error('pocketlm: at most 16 stop tokens');
    if (stops.length > 16) throw new Error('pocketlm: at most 16 stop strings');
    // the KV cache keeps the longest common prefix with the last call (at least one token is
    // decoded anew, for its logits); opts.cache === false starts from an empty cache.
    let keep = 0;
    if (opts.cache !== false)
      while (keep < ids.length - 1 && keep < this._cache.length && this._cache[keep] === ids[keep]) keep++;
    this._truncate(keep);
    const rest = ids.subarray(keep);
    const promptPtr = h.ids(rest);
    const stopPtr = stopIds ? h.ids(stopIds) : 0;
    // stop strings: C strings and an array of their pointers, alive until the generation ends
    const strs = stops.map((s) => h.cstr(s).ptr);
    const strsPtr = strs.length ? h.malloc(strs.length * 4) : 0;
    if (strsPtr) h.i32(strsPtr, strs.length).set(strs);
    const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 32);
    const source = opts._source === undefined ? null : h.cstr(opts._source);
    const t0 = now();
    let g = 0;
    try {
      g = M._plm_wasm_gen_begin(this._session, promptPtr, rest.length, maxTokens,
                                opts.temperature ?? 0, opts.topK ?? 0, opts.topP ?? 1,
                                opts.minP ?? 0, opts.repetitionPenalty ?? 1, seed,
                                stopPtr, stopIds ? stopIds.length : -1, strsPtr, strs.length,
                                opts._task ? 1 : 0, opts.copyPenalty ?? 0, opts.copyBlock ?? 1,
                                opts.candidates ?? 1, opts.rerankWeight ?? 0, opts.copyRetry ?? 0,
                                opts.copyDeviate ?? 0, opts.keepFacts ? 1 : 0, source ? source.ptr : 0, this._err) >>> 0;
    } finally { h.free(promptPtr); h.free(stopPtr); if (source) h.free(source.ptr); }
    const freeStrings = () => { strs.forEach((p) => h.free(p)); h.free(strsPtr); };
    if (!g) { freeStrings(); this._truncate(0); throw wasmError(M, this._err, 'prefill'); }
    this._cache = Array.from(ids);
    const t1 = now();
    let tokens = [], text = '', stopReason = null, generated = 0, sampled = 0, candidates = 0;
    try {
      for (;;) {
        if (opts.signal?.aborted) { stopReason = 'abort'; break; }
        const rc = M._plm_wasm_gen_step(g, this._err); // 1 goes on, 0 finished, < 0 failed
        if (rc < 0) throw wasmError(M, this._err, 'generate');
        const id = M._plm_wasm_gen_token(g);
        if (id >= 0) this._cache.push(id);
        const n = M._plm_wasm_gen_text_len(g);
        if (n > 0) { // complete UTF-8, never part of a stop string (the library holds those back)
          const piece = h.string(M._plm_wasm_gen_text(g) >>> 0, n);
          text += piece;
          if (opts.onToken) opts.onToken(piece);
        }
        if (rc === 0) { stopReason = STOP_REASONS[M._plm_wasm_gen_stop_reason(g)]; break; }
        if (opts.onToken || opts.signal) await yieldNow();
      }
      // the output's ids (with candidates: the chosen one's) and the counts of the library
      tokens = Array.from(h.i32(M._plm_wasm_gen_ids(g) >>> 0, M._plm_wasm_gen_n_ids(g)));
      [generated, sampled, candidates] = [0, 1, 2].map((k) => M._plm_wasm_gen_result(g, k));
    } catch (e) {
      this._truncate(0);
      throw e;
    } finally { M._plm_wasm_gen_free(g); freeStrings(); }
    // the KV cache holds the prompt and every generated token but a last one not yet decoded;
    // with candidates or a copy's retry, the prompt alone is kept (the tokens in the cache are not
    // mirrored here)
    const nPast = M._plm_wasm_session_info(this._session, 1);
    if ((opts.candidates ?? 1) > 1 || (opts.copyRetry ?? 0) > 0) this._truncate(Math.min(nPast, ids.length));
    else this._cache.length = nPast;
    const t2 = now();
    return {
      text, tokens, stopReason,
      promptTokens: ids.length,
      cachedTokens: keep,
      generatedTokens: generated,
      sampledTokens: sampled,
      candidates: Math.max(1, candidates),
      prefillTokS: rest.length / Math.max(1e-9, (t1 - t0) / 1000),
      decodeTokS: sampled / Math.max(1e-9, (t2 - t1) / 1000),
    };
  }

  // paraphrase: the library's paraphrase task (plm_task): its template, its end (<|OUTPUT_END|>,
  // or the first line of text for a model without the task markers) and its defaults
  // (paraphraseDefaults), as `pocketlm paraphrase`. Empty or blank text rejects with an Error.
  // opts.diversity (0 = stay close, 1 = as different as it can) sets the control code and the
  // decoding settings the library maps it to (taskSettings); the other options override those.
  paraphrase(text, opts = {}) {
    return this._run(() => {
      const input = String(text);
      // an option given as undefined: the default
      const o = { ...this._taskSettings(opts.diversity), _task: true, _source: input };
      for (const [k, v] of Object.entries(opts))
        if (v !== undefined && !k.startsWith('_') && k !== 'diversity') o[k] = v;
      return this._generate(this._taskPrompt(input, o.diversity), o);
    });
  }

  // taskSettings: the options paraphrase starts from at diversity (the library's mapping,
  // plm_paraphrase_diversity); rejects a diversity outside [0, 1] with the library's message.
  taskSettings(diversity) { this._alive(); return this._taskSettings(diversity); }

  _taskSettings(diversity) {
    if (diversity !== undefined && (typeof diversity !== 'number' || Number.isNaN(diversity)))
      throw new Error(`pocketlm: paraphrase: diversity must be a number in [0, 1], got ${diversity}`);
    const M = this._M, d = (k) => M._plm_wasm_task_default(diversity ?? NaN, k, this._err);
    const v = d(10);
    if (Number.isNaN(v)) throw wasmError(M, this._err, 'paraphrase');
    return Object.freeze({ maxTokens: d(0), temperature: d(1), topK: d(2), topP: d(3), minP: d(4),
                           repetitionPenalty: d(5), copyPenalty: d(6), copyBlock: d(7),
                           candidates: d(8), rerankWeight: d(9), copyRetry: d(11),
                           copyDeviate: d(13), keepFacts: d(12) !== 0, diversity: v });
  }

  // _taskPrompt: the task's prompt for text at diversity; throws the library's error for nothing
  // to rephrase
  _taskPrompt(text, diversity) {
    const M = this._M, h = this._heap, s = h.cstr(text);
    let out = 0;
    try {
      const n = M._plm_wasm_task_prompt(this._session, s.ptr, diversity, 0, 0, this._err);
      if (n < 0) throw wasmError(M, this._err, 'paraphrase');
      out = h.malloc(n + 1);
      M._plm_wasm_task_prompt(this._session, s.ptr, diversity, out, n + 1, this._err);
      return h.string(out, n);
    } finally { h.free(out); h.free(s.ptr); }
  }

  // reset: forget the KV cache (the next generate starts from position 0)
  reset() { return this._run(() => this._truncate(0)); }

  _alive() { if (!this._model) throw new Error('pocketlm: the model was freed'); }

  // free: release the model, session and adapter (and the threaded build's workers).
  free() {
    if (!this._model) return;
    const M = this._M;
    M._plm_wasm_session_free(this._session);
    M._plm_wasm_lora_free(this._lora);
    M._plm_wasm_model_free(this._model);
    M._plm_wasm_error_free(this._err);
    this._model = this._session = this._lora = 0;
    if (M.PThread && !this._sharesModule) M.PThread.terminateAllThreads();
  }

  // memoryBytes: the size of the wasm heap (it never shrinks)
  get memoryBytes() { return this._heap.buffer.byteLength; }
  // memoryInUseBytes: the part of it allocated now (the rest is free for reuse)
  get memoryInUseBytes() { return this._M._plm_wasm_heap_in_use(); }
}

function defaultThreads() {
  if (IS_NODE) return 1;
  if (typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated &&
      typeof navigator !== 'undefined')
    return Math.min(4, navigator.hardwareConcurrency || 1);
  return 1;
}

function wasmError(M, err, what) {
  const msg = M.UTF8ToString(M._plm_wasm_error_msg(err) >>> 0);
  const e = new Error(`pocketlm: ${what}: ${msg || 'failed'}`);
  e.status = M._plm_wasm_error_status(err);
  return e;
}

// ---- adapters: files written into MEMFS, loaded with plm_lora_load ----

const LORA_FILES = ['adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json'];
let loraDirs = 0;

// loadLora: lora is { 'adapter_config.json': src, 'adapter_model.safetensors': src,
// 'tokenizer.json'?: src } (src as for PocketLM.load), or a base URL / (node) directory holding
// those files (tokenizer.json optional).
async function loadLora(M, heap, model, lora, onProgress, err) {
  const files = await loraSources(lora);
  const dir = `/lora${loraDirs++}`;
  M.FS.mkdir(dir);
  try {
    for (const [name, src] of Object.entries(files)) {
      if (!LORA_FILES.includes(name)) throw new Error(`pocketlm: lora: unknown file '${name}'`);
      const { ptr, size } = await readInto(heap, src, onProgress, name);
      try { M.FS.writeFile(`${dir}/${name}`, heap.u8().slice(ptr, ptr + size)); }
      finally { heap.free(ptr); }
    }
    const d = heap.cstr(dir);
    let l;
    try { l = M._plm_wasm_lora_load(d.ptr, model, err) >>> 0; } finally { heap.free(d.ptr); }
    if (!l) throw wasmError(M, err, 'loading the adapter');
    return l;
  } finally {
    for (const name of M.FS.readdir(dir)) if (name !== '.' && name !== '..') M.FS.unlink(`${dir}/${name}`);
    M.FS.rmdir(dir);
  }
}

// loraSources: lora as { file name: source }: a base URL / (node) directory gives its files
async function loraSources(lora) {
  if (typeof lora !== 'string' && !(lora instanceof URL)) return lora;
  const base = String(lora).replace(/\/?$/, '/');
  const files = {};
  for (const f of LORA_FILES) {
    const src = isUrlString(base) || !IS_NODE ? new URL(f, new URL(base, globalThis.location?.href)).href : base + f;
    if (f === 'tokenizer.json' && !(await exists(src))) continue;
    files[f] = src;
  }
  return files;
}

async function exists(src) {
  if (IS_NODE && !isUrlString(src)) {
    const fs = await import('node:fs');
    return fs.existsSync(src);
  }
  try { return (await fetch(src, { method: 'HEAD' })).ok; } catch { return false; }
}

// ---- fine-tuning: src/finetune.c's run, one optimizer step per call, its files in MEMFS ----
// The run reads its data from, and writes the adapter, metrics.jsonl, loss.svg and checkpoint/ to,
// a directory of Emscripten's in-memory file system, as `pocketlm finetune` does on disk; JS moves
// the bytes in and out. Between steps it yields to the event loop (progress, AbortSignal, pause).

const PROGRESS_KEYS = ['step', 'totalSteps', 'epoch', 'loss', 'evalLoss', 'lr', 'gradNorm', 'tokS',
                       'elapsed', 'eta', 'tokens'];
const INFO_KEYS = ['rows', 'notLabel1', 'bad', 'trainExamples', 'evalExamples', 'stepsPerEpoch',
                   'totalSteps', 'step'];
const TRAIN_DEFAULT_KEYS = ['rank', 'alpha', 'dropout', 'lr', 'epochs', 'batch', 'accum', 'seed',
                            'evalFrac', 'warmupRatio', 'maxLen', 'reverse'];
let trainDirs = 0;

// rmTree: remove a MEMFS directory and everything under it
function rmTree(FS, dir) {
  for (const name of FS.readdir(dir)) {
    if (name === '.' || name === '..') continue;
    const p = `${dir}/${name}`;
    if (FS.isDir(FS.stat(p).mode)) rmTree(FS, p); else FS.unlink(p);
  }
  FS.rmdir(dir);
}

// readTree: the files under a MEMFS directory as { 'name' or 'sub/name': Uint8Array }
function readTree(FS, dir, prefix = '', out = {}) {
  for (const name of FS.readdir(dir).sort()) {
    if (name === '.' || name === '..') continue;
    const p = `${dir}/${name}`;
    if (FS.isDir(FS.stat(p).mode)) readTree(FS, p, `${prefix}${name}/`, out);
    else out[prefix + name] = FS.readFile(p);
  }
  return out;
}

// writeTree: files as readTree gives them, under dir
function writeTree(FS, dir, files) {
  for (const [name, bytes] of Object.entries(files)) {
    const parts = name.split('/');
    if (parts.some((x) => x === '' || x === '.' || x === '..'))
      throw new Error(`pocketlm: checkpoint: bad file name '${name}'`);
    let d = dir;
    for (const sub of parts.slice(0, -1)) {
      d += '/' + sub;
      if (!FS.analyzePath(d).exists) FS.mkdir(d);
    }
    FS.writeFile(`${dir}/${name}`, bytes);
  }
}

// trainDataBytes: finetune's data as the bytes of a file: an array of {input, output} becomes
// JSONL; a File/Blob, ArrayBuffer or typed array, URL or (node) path is read as it is.
async function trainDataBytes(heap, data) {
  if (Array.isArray(data)) {
    const lines = data.map((r, i) => {
      if (!r || typeof r.input !== 'string' || typeof r.output !== 'string')
        throw new TypeError(`pocketlm: finetune: data[${i}] is not { input, output } strings`);
      return JSON.stringify({ input: r.input, output: r.output }) + '\n';
    });
    return encoder.encode(lines.join(''));
  }
  if (data === undefined || data === null) throw new TypeError('pocketlm: finetune: data is required');
  const { ptr, size } = await readInto(heap, data, null, 'data');
  try { return heap.u8().slice(ptr, ptr + size); } finally { heap.free(ptr); }
}

// parseMetrics: metrics.jsonl's lines as the objects TrainRun.metrics holds (camelCase keys)
function parseMetrics(bytes) {
  return decoder.decode(bytes).split('\n').filter((l) => l.trim()).map((l) => {
    const j = JSON.parse(l);
    const m = { step: j.step, epoch: j.epoch, loss: j.loss, lr: j.lr, gradNorm: j.grad_norm, tokS: j.tok_s,
                tokens: j.tokens, elapsed: j.elapsed };
    if (j.eval_loss !== undefined) m.evalLoss = j.eval_loss;
    return m;
  });
}

// TrainRun: one fine-tuning run on a PocketLM (lm.trainer(opts)); see pocketlm.d.ts.
export class TrainRun {
  constructor(lm, w, dir, name) {
    this._lm = lm;
    this._w = w;
    this._dir = dir;
    const M = lm._M;
    this.info = Object.fromEntries(INFO_KEYS.map((k, i) => [k, M._plm_wasm_train_info(w, i)]));
    this.badRows = parseBadRows(M.UTF8ToString(M._plm_wasm_train_bad_rows(w) >>> 0), name);
    this.metrics = []; // one object per step, as metrics.jsonl (a resumed run: from its start)
    const mpath = `${dir}/out/metrics.jsonl`;
    if (M.FS.analyzePath(mpath).exists) this.metrics = parseMetrics(M.FS.readFile(mpath));
  }

  // stepsDone: optimizer steps done (a resumed run starts at its checkpoint's)
  get stepsDone() { return this.metrics.length ? this.metrics[this.metrics.length - 1].step : this.info.step; }
  get done() { return this.stepsDone >= this.info.totalSteps; }

  // step: one optimizer step; resolves to its progress, or null when the run is over
  step() {
    return this._lm._run(() => {
      const M = this._lm._M, err = this._lm._err;
      this._alive();
      const rc = M._plm_wasm_train_step(this._w, err);
      if (rc < 0) throw wasmError(M, err, 'finetune');
      if (rc === 0) return null;
      const p = Object.fromEntries(PROGRESS_KEYS.map((k, i) => [k, M._plm_wasm_train_progress(this._w, i)]));
      if (Number.isNaN(p.evalLoss)) p.evalLoss = null;
      const m = { step: p.step, epoch: p.epoch, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm,
                  tokS: p.tokS, tokens: p.tokens, elapsed: p.elapsed };
      if (p.evalLoss !== null) m.evalLoss = p.evalLoss;
      this.metrics.push(m);
      return p;
    });
  }

  // checkpoint: what a run needs to continue bit for bit (pass it as opts.resume, with the same
  // data and settings): { step, files: { 'checkpoint/...': bytes, 'metrics.jsonl': bytes } }
  checkpoint() {
    return this._lm._run(() => {
      const M = this._lm._M, err = this._lm._err;
      this._alive();
      if (M._plm_wasm_train_checkpoint(this._w, err) !== 0) throw wasmError(M, err, 'checkpoint');
      const out = `${this._dir}/out`;
      const files = readTree(M.FS, `${out}/checkpoint`, 'checkpoint/');
      files['metrics.jsonl'] = M.FS.readFile(`${out}/metrics.jsonl`);
      return { step: this.stepsDone, files };
    });
  }

  // save: the adapter as it is now, with the files `pocketlm finetune` writes beside it:
  // { 'adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json', ..., 'metrics.jsonl',
  // 'loss.svg', 'data_report.json', 'heldout.jsonl' | 'heldout.tsv' } as bytes
  save() {
    return this._lm._run(() => {
      const M = this._lm._M, err = this._lm._err;
      this._alive();
      if (M._plm_wasm_train_save(this._w, err) !== 0) throw wasmError(M, err, 'saving the adapter');
      const files = readTree(M.FS, `${this._dir}/out`);
      for (const k of Object.keys(files)) if (k.startsWith('checkpoint/')) delete files[k];
      return files;
    });
  }

  // adapter: the adapter as it is now, as an Adapter of the model (for generation and merge)
  async adapter() { return this._lm.loadAdapter(await this.save()); }

  // lossChart: the chart of loss.svg (plm_loss_chart_svg) for the steps so far, as SVG text
  lossChart(opts = {}) {
    const m = this.metrics, ev = m.filter((x) => x.evalLoss !== undefined);
    return this._lm.lossChart({ step: m.map((x) => x.step), loss: m.map((x) => x.loss),
                                evalStep: ev.map((x) => x.step), evalLoss: ev.map((x) => x.evalLoss),
                                stepsPerEpoch: this.info.stepsPerEpoch, ...opts });
  }

  _alive() { if (!this._w) throw new Error('pocketlm: the training run was freed'); }

  // free: the trainer's memory (activations, gradients, moments) and the run's files
  free() {
    if (!this._w) return;
    const M = this._lm._M;
    M._plm_wasm_train_free(this._w);
    this._w = 0;
    rmTree(M.FS, this._dir);
  }
}

// parseBadRows: "name:line: why" lines into { line, message }
function parseBadRows(text, name) {
  return text.split('\n').filter((l) => l).map((l) => {
    const m = l.startsWith(name + ':') ? /^:(\d+): (.*)$/.exec(l.slice(name.length)) : null;
    return m ? { line: Number(m[1]), message: m[2] } : { line: 0, message: l };
  });
}

// Adapter: a LoRA adapter loaded for a PocketLM (lm.loadAdapter, lm.finetune); see pocketlm.d.ts.
export class Adapter {
  constructor(lm, ptr, files) {
    this._lm = lm;
    this._ptr = ptr;
    this._files = files;
  }
  // save: the adapter's files by name, as bytes (copies)
  async save() {
    return Object.fromEntries(Object.entries(this._files).map(([k, v]) => [k, v.slice()]));
  }
  free() {
    if (!this._ptr) return;
    if (this._lm._adapter === this) this._lm._setSession(null);
    this._lm._M._plm_wasm_lora_free(this._ptr);
    this._ptr = 0;
  }
}

// trainDefaults: plm_finetune_default_params, for the options finetune leaves out
Object.defineProperty(PocketLM.prototype, 'trainDefaults', {
  get() {
    const M = this._M;
    const d = Object.fromEntries(TRAIN_DEFAULT_KEYS.map((k, i) => [k, M._plm_wasm_finetune_default(i)]));
    d.reverse = d.reverse !== 0;
    d.targets = M.UTF8ToString(M._plm_wasm_finetune_default_targets() >>> 0);
    return d;
  },
});

Object.assign(PocketLM.prototype, {
  // trainer: begin a fine-tuning run (the data read and checked, the trainer allocated); see
  // pocketlm.d.ts. A run whose data has no usable row rejects with the reason and err.badRows.
  async trainer(opts = {}) {
    this._alive();
    const M = this._M, h = this._heap, d = this.trainDefaults;
    const o = { ...d };
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) o[k] = v;
    const bytes = await trainDataBytes(h, opts.data);
    const dir = `/train${trainDirs++}`, name = String(opts.dataName ?? 'data').replace(/[/:\n]/g, '_') || 'data';
    M.FS.mkdir(dir);
    M.FS.mkdir(`${dir}/out`);
    let w = 0;
    try {
      M.FS.writeFile(`${dir}/${name}`, bytes);
      if (opts.resume) writeTree(M.FS, `${dir}/out`, opts.resume.files ?? opts.resume);
      const targets = Array.isArray(o.targets) ? o.targets.join(',') : String(o.targets);
      // with maxSteps alone the steps decide: an epoch has one step at least
      const epochs = opts.epochs ?? (opts.maxSteps > 0 ? opts.maxSteps : d.epochs);
      const strs = [h.cstr(`${dir}/${name}`), h.cstr(`${dir}/out`), h.cstr(targets)];
      try {
        w = M._plm_wasm_train_new() >>> 0;
        if (!w) throw new Error('pocketlm: finetune: out of memory');
        const rc = M._plm_wasm_train_begin(w, this._model, strs[0].ptr, strs[1].ptr, strs[2].ptr,
          o.rank, o.alpha, o.dropout, o.lr, epochs, opts.maxSteps ?? 0, o.batch, o.accum, o.seed,
          o.evalFrac, o.evalEvery ?? 0, o.warmupRatio, o.maxLen, o.reverse ? 1 : 0,
          opts.resume ? 1 : 0, this.threads, this._err);
        if (rc !== 0) { // messages name the data as given, not by its place in MEMFS
          const e = wasmError(M, this._err, 'finetune');
          e.message = e.message.split(`${dir}/`).join('');
          e.badRows = parseBadRows(M.UTF8ToString(M._plm_wasm_train_bad_rows(w) >>> 0), `${dir}/${name}`);
          throw e;
        }
      } finally { strs.forEach((s) => h.free(s.ptr)); }
      return new TrainRun(this, w, dir, `${dir}/${name}`);
    } catch (e) {
      if (w) M._plm_wasm_train_free(w);
      rmTree(M.FS, dir);
      throw e;
    }
  },

  // finetune: a whole run (see pocketlm.d.ts): steps until done, progress after each, a checkpoint
  // every checkpointEvery steps and when signal aborts (then it rejects with an AbortError that
  // carries .checkpoint); resolves to the Adapter.
  async finetune(opts = {}) {
    const run = await this.trainer(opts);
    try {
      if (opts.onStart) opts.onStart(run);
      const every = opts.checkpointEvery ?? 0;
      for (;;) {
        if (opts.signal?.aborted) {
          const ck = await run.checkpoint();
          if (opts.onCheckpoint) await opts.onCheckpoint(ck);
          const e = new Error(`pocketlm: finetune: stopped at step ${ck.step}`);
          e.name = 'AbortError';
          e.checkpoint = ck;
          throw e;
        }
        const p = await run.step();
        if (!p) break;
        if (opts.onProgress) opts.onProgress(p, run);
        if (every > 0 && p.step % every === 0 && opts.onCheckpoint && p.step < p.totalSteps)
          await opts.onCheckpoint(await run.checkpoint());
        await yieldNow();
      }
      return await run.adapter();
    } finally { run.free(); }
  },

  // loadAdapter: a PEFT adapter for this model, from its files ({ name: bytes | Blob | URL }, as
  // Adapter.save gives them; files other than the adapter's are ignored) or a URL / (node)
  // directory holding them
  async loadAdapter(files) {
    this._alive();
    const src = await loraSources(files), bytes = {};
    for (const [k, v] of Object.entries(src ?? {})) bytes[k] = await trainDataBytes(this._heap, v);
    const lora = Object.fromEntries(Object.entries(bytes).filter(([k]) => LORA_FILES.includes(k)));
    const ptr = await loadLora(this._M, this._heap, this._model, lora, null, this._err);
    return new Adapter(this, ptr, bytes);
  },

  // useAdapter: generate with adapter from now on (null: the base alone); the base stays loaded
  useAdapter(adapter) {
    return this._run(() => this._setSession(adapter));
  },

  // _setSession: a new session with adapter (null: the one given to load, if any). The old one is
  // freed first, so that its threads go back to the pool; a failure leaves a session without it.
  _setSession(adapter) {
    const M = this._M;
    if (adapter && !adapter._ptr) throw new Error('pocketlm: the adapter was freed');
    if (adapter && adapter._lm !== this) throw new Error('pocketlm: the adapter belongs to another model');
    const create = (lora) => M._plm_wasm_session_create(this._model, lora, this.nCtx, this.threads,
                                                        DTYPES[this.kvType], this._err) >>> 0;
    M._plm_wasm_session_free(this._session);
    this._cache = [];
    this._adapter = adapter;
    this._session = create(adapter ? adapter._ptr : this._lora);
    if (!this._session) {
      const e = wasmError(M, this._err, 'creating the session');
      this._adapter = null;
      this._session = create(this._lora);
      throw e;
    }
    this.hasTokenizer = M._plm_wasm_session_info(this._session, 4) === 1;
  },

  // merge: a new PocketLM whose f32 weights have the adapter folded in (plm_model_merge); it
  // shares this one's module and threads: free it before this one
  merge(adapter) {
    return this._run(() => {
      const M = this._M;
      if (!adapter?._ptr || adapter._lm !== this) throw new Error('pocketlm: merge: not an adapter of this model');
      const m = M._plm_wasm_model_merge(this._model, adapter._ptr, this._err) >>> 0;
      if (!m) throw wasmError(M, this._err, 'merge');
      const s = M._plm_wasm_session_create(m, 0, this.nCtx, this.threads, DTYPES[this.kvType],
                                           this._err) >>> 0;
      if (!s) { M._plm_wasm_model_free(m); throw wasmError(M, this._err, 'creating the session'); }
      const lm = new PocketLM(M, m, s, 0, this.threads, this.kvType);
      lm.build = this.build;
      lm._sharesModule = true;
      return lm;
    });
  },

  // lossChart: plm_loss_chart_svg (the chart of loss.svg) of { step, loss, evalStep, evalLoss,
  // stepsPerEpoch, width, height } as SVG text
  lossChart(c) {
    const M = this._M, h = this._heap;
    const arr = (a) => { const x = Float32Array.from(a ?? []); const p = h.malloc(x.length * 4); h.f32(p, x.length).set(x); return p; };
    const ptrs = [arr(c.step), arr(c.loss), arr(c.evalStep), arr(c.evalLoss)];
    let svg = 0;
    try {
      svg = M._plm_wasm_loss_chart(ptrs[0], ptrs[1], (c.loss ?? []).length, ptrs[2], ptrs[3],
                                   (c.evalLoss ?? []).length, c.stepsPerEpoch ?? 0, c.width ?? 0,
                                   c.height ?? 0, this._err) >>> 0;
      if (!svg) throw wasmError(M, this._err, 'loss chart');
      return M.UTF8ToString(svg);
    } finally { h.free(svg); ptrs.forEach((p) => h.free(p)); }
  },
});

export default PocketLM;
