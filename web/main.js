import { initTrain } from './train.js';

// main.js: the page's UI. Owns no model: everything that touches the model happens in worker.js,
// reached by postMessage. States (on <body data-state>): start, loading, ready, generating, error.
// The last result is also written to #output's data-result (JSON) for tests and tools.

const $ = (id) => document.getElementById(id);
const ui = {
  loadServer: $('load-server'), file: $('file'), drop: $('drop'), dtype: $('dtype'), threads: $('threads'),
  progressWrap: $('progress-wrap'), progress: $('progress'), progressLabel: $('progress-label'),
  modelStatus: $('model-status'), cacheInfo: $('cache-info'), clearCache: $('clear-cache'),
  input: $('input'), run: $('run'), stop: $('stop'), output: $('output'), error: $('error'),
  temperature: $('temperature'), topK: $('top-k'), topP: $('top-p'), maxTokens: $('max-tokens'), seed: $('seed'),
  toks: $('stat-toks'), prefill: $('stat-prefill'), ttft: $('stat-ttft'), tokens: $('stat-tokens'), mem: $('stat-mem'),
};

// the diversity slider of the paraphrase view: 0 = close to the text, 1 = as different as it can
const diversity = { row: $('diversity-row'), input: $('diversity'), value: $('diversity-value') };
diversity.input.oninput = () => { diversity.value.textContent = Number(diversity.input.value).toFixed(1); };

const MODEL_URL = new URLSearchParams(location.search).get('model') || 'model.gguf';
let worker = null;
let mode = 'paraphrase';
let loaded = null;   // info of the loaded model
let job = null;      // the generation in progress: {id, t0, tFirst, pieces}
let nextId = 1;
let memTimer = 0;

// ---- formatting ----

const mb = (b) => (b >= 1e9 ? (b / 1e9).toFixed(2) + ' GB' : (b / 1e6).toFixed(b >= 1e8 ? 0 : 1) + ' MB');
const secs = (s) => (s < 1 ? Math.round(s * 1000) + ' ms' : s.toFixed(2) + ' s');

function setState(s) {
  document.body.dataset.state = s;
  const idle = s === 'ready';
  ui.run.disabled = !idle;
  ui.stop.disabled = s !== 'generating';
  ui.loadServer.disabled = ui.file.disabled = s === 'loading' || s === 'generating' || s === 'unsupported';
}

// modelLabel: which model is loaded: its name from the GGUF metadata (else the file's name), the
// adapter merged into it, and the file ("Smollm2 135M … + LoRA paws-lora (model.gguf)")
function modelLabel(info) {
  const file = String(info.name).split('/').pop();
  const name = info.modelName || file;
  return name + (info.adapter ? ` + LoRA ${info.adapter}` : '') + (name !== file ? ` (${file})` : '');
}

// ---- errors: say what happened and what to do ----

const ADVICE = {
  oom: 'The browser ran out of memory for the model. Close other tabs, choose 8-bit weights (q8_0), or try a smaller model.',
  'bad-file': 'That file cannot be used. Pick a GGUF model file of a Llama-family model with its tokenizer (for example SmolLM2-135M-Instruct.Q4_1.gguf).',
  'no-model': 'This server has no model file to send. Start it with `pocketlm serve -m MODEL.gguf`, or choose a .gguf file from your device.',
  network: 'The model could not be downloaded. Check that `pocketlm serve` is still running, then try again.',
  unsupported: 'This browser cannot run the model.',
  state: '',
  other: '',
};

function showError(kind, message) {
  ui.error.hidden = false;
  ui.error.textContent = message + (ADVICE[kind] ? '\n' + ADVICE[kind] : '');
  ui.error.dataset.kind = kind;
}
function clearError() { ui.error.hidden = true; ui.error.textContent = ''; delete ui.error.dataset.kind; }

// ---- browser support ----

// the smallest module using a SIMD instruction (i8x16.splat / i8x16.popcnt), as wasm-feature-detect does
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

function unsupportedReason() {
  if (typeof WebAssembly !== 'object') return 'This browser has no WebAssembly.';
  if (!WebAssembly.validate(SIMD_PROBE)) return 'This browser lacks WebAssembly SIMD (Chrome 91+, Firefox 89+, Safari 16.4+ have it).';
  if (typeof Worker !== 'function') return 'This browser has no Web Workers.';
  if (typeof ReadableStream !== 'function' || typeof TransformStream !== 'function') return 'This browser lacks streams (ReadableStream).';
  return null;
}

// ---- the worker ----

function startWorker() {
  worker = new Worker('worker.js', { type: 'module' });
  worker.onmessage = (ev) => onWorker(ev.data);
  worker.onerror = (ev) => {
    ev.preventDefault();
    setState('error');
    showError('unsupported', `The model worker could not start (${ev.message || 'worker.js or pocketlm.js failed to load'}). ` +
      'If you serve this page yourself, run `make wasm` first so that pocketlm.js and pocketlm.mjs/.wasm are there.');
  };
  worker.postMessage({ type: 'cache-info' });
  initTrain(worker); // the Train view (train.js) talks to the same worker
}

function onWorker(m) {
  switch (m.type) {
  case 'ready': break;
  case 'progress': {
    ui.progressWrap.hidden = false;
    const frac = m.total ? m.loaded / m.total : 0;
    ui.progress.value = frac;
    if (!m.total) ui.progress.removeAttribute('value');
    ui.progressLabel.textContent = (m.phase === 'download' ? 'Downloading ' : 'Loading into memory ') +
      mb(m.loaded) + (m.total ? ` of ${mb(m.total)} (${Math.round(frac * 100)}%)` : '');
    break;
  }
  case 'loaded': {
    loaded = m.info;
    ui.progressWrap.hidden = true;
    ui.modelStatus.className = 'status ok';
    ui.modelStatus.textContent = `${modelLabel(m.info)}: ${mb(m.info.weightBytes)} of ${m.info.dtype} weights, ` +
      `${m.info.threads} thread${m.info.threads > 1 ? 's' : ''}, ` +
      `${m.info.kernelPath.startsWith('relaxed') ? 'relaxed SIMD' : 'SIMD128'}, ready in ${secs(m.info.totalSeconds)}`;
    ui.modelStatus.dataset.model = m.info.modelName;
    ui.modelStatus.dataset.adapter = m.info.adapter;
    ui.modelStatus.dataset.build = m.info.build;
    if (m.info.fromCache) {
      const b = document.createElement('span');
      b.className = 'badge';
      b.id = 'from-cache';
      b.textContent = 'loaded from cache';
      ui.modelStatus.append(b);
    }
    ui.modelStatus.dataset.fromCache = String(m.info.fromCache);
    ui.mem.textContent = mb(m.info.heapBytes);
    showDefaults(m.info.paraphraseDefaults);
    setState('ready');
    worker.postMessage({ type: 'cache-info' });
    break;
  }
  case 'token': {
    if (!job || m.id !== job.id) break;
    const t = performance.now();
    if (!job.tFirst) { job.tFirst = t; ui.ttft.textContent = secs((t - job.t0) / 1000); }
    job.pieces++;
    ui.output.textContent += m.text;
    if (job.pieces > 1) ui.toks.textContent = ((job.pieces - 1) / ((t - job.tFirst) / 1000)).toFixed(1);
    ui.tokens.textContent = String(job.pieces);
    break;
  }
  case 'done': {
    if (!job || m.id !== job.id) break;
    const r = m.result;
    ui.output.textContent = r.text;
    if (!r.text) ui.output.textContent = r.stopReason === 'abort' ? '(stopped before any text)'
      : `(no text: the model stopped at once, stop reason "${r.stopReason}"` +
        (mode === 'paraphrase' ? '; a model not fine-tuned for paraphrasing often does)' : ')');
    ui.toks.textContent = r.decodeTokS.toFixed(1);
    ui.prefill.textContent = r.prefillTokS.toFixed(0);
    ui.tokens.textContent = String(r.generatedTokens);
    ui.mem.textContent = mb(r.heapBytes);
    if (!job.tFirst) ui.ttft.textContent = '–';
    r.ttftMs = job.tFirst ? job.tFirst - job.t0 : null;
    ui.output.dataset.result = JSON.stringify(r);
    ui.output.dataset.stopReason = r.stopReason;
    endJob();
    break;
  }
  case 'memory': if (m.heapBytes) ui.mem.textContent = mb(m.heapBytes); break;
  case 'cache': {
    const bytes = m.entries.reduce((a, e) => a + e.bytes, 0);
    ui.cacheInfo.textContent = !m.available ? 'Cache: not available in this browser'
      : m.entries.length ? `Cache: ${m.entries.length} model${m.entries.length > 1 ? 's' : ''}, ${mb(bytes)}` : 'Cache: empty';
    ui.cacheInfo.dataset.entries = String(m.entries.length);
    ui.clearCache.disabled = !m.entries.length;
    break;
  }
  case 'warning': showError('other', m.message); break;
  case 'error': {
    ui.progressWrap.hidden = true;
    showError(m.kind, m.message);
    if (job && m.id === job.id) { endJob(); ui.output.dataset.result = JSON.stringify({ error: m.message }); }
    else if (document.body.dataset.state === 'loading') {
      // a failed load has freed any previous model in the worker: start again from nothing
      ui.modelStatus.className = 'status';
      ui.modelStatus.textContent = 'No model loaded.';
      loaded = null;
      setState('start');
    }
    break;
  }
  }
}

function endJob() {
  job = null;
  clearInterval(memTimer);
  worker.postMessage({ type: 'memory' });
  setState('ready');
}

// ---- actions ----

function load(source) {
  clearError();
  loaded = null;
  setState('loading');
  ui.modelStatus.className = 'status';
  ui.modelStatus.textContent = source.file ? `Reading ${source.file.name}…` : 'Getting the model…';
  delete ui.modelStatus.dataset.fromCache;
  ui.progressWrap.hidden = false;
  ui.progress.value = 0;
  ui.progressLabel.textContent = 'Starting…';
  worker.postMessage({ type: 'load', source, dtype: ui.dtype.value, threads: Number(ui.threads.value) });
}

// showDefaults: the settings left empty show the paraphrase defaults of pocketlm.js (the library's)
// as placeholders (an empty field takes the diversity's setting); the slider starts at its default
function showDefaults(d) {
  const fields = { temperature: ui.temperature, topK: ui.topK, topP: ui.topP, maxTokens: ui.maxTokens };
  for (const [key, el] of Object.entries(fields)) if (d && key in d) el.placeholder = String(d[key]);
  if (d && 'diversity' in d) { diversity.input.value = String(d.diversity); diversity.input.oninput(); }
}

// settings: the options of the filled-in fields, clamped (an empty field: pocketlm.js's default)
function settings() {
  const opts = {};
  const take = (key, el, f) => { const v = parseFloat(el.value); if (Number.isFinite(v)) opts[key] = f(v); };
  take('temperature', ui.temperature, (v) => Math.max(0, v));
  take('topK', ui.topK, (v) => Math.max(0, Math.round(v)));
  take('topP', ui.topP, (v) => Math.min(1, Math.max(0.01, v)));
  take('maxTokens', ui.maxTokens, (v) => Math.max(1, Math.round(v)));
  take('seed', ui.seed, (v) => Math.max(0, Math.round(v)));
  if (mode === 'paraphrase') opts.diversity = Number(diversity.input.value);
  return opts;
}

function run() {
  const text = ui.input.value.trim();
  if (!text) { showError('state', mode === 'paraphrase' ? 'Type a sentence to rephrase.' : 'Type a prompt.'); return; }
  clearError();
  const opts = settings();
  job = { id: nextId++, t0: performance.now(), tFirst: 0, pieces: 0 };
  ui.output.textContent = '';
  delete ui.output.dataset.result;
  delete ui.output.dataset.stopReason;
  for (const k of ['toks', 'prefill', 'ttft', 'tokens']) ui[k].textContent = '–';
  setState('generating');
  memTimer = setInterval(() => worker.postMessage({ type: 'memory' }), 1000);
  worker.postMessage({ type: 'run', id: job.id, mode, text, opts });
}

function setMode(m) {
  mode = m;
  for (const t of document.querySelectorAll('.tab')) t.setAttribute('aria-selected', String(t.dataset.mode === m));
  ui.run.textContent = m === 'paraphrase' ? 'Paraphrase' : 'Generate';
  ui.input.placeholder = m === 'paraphrase' ? 'Type a sentence to rephrase…' : 'Type the beginning of a text…';
  $('input-label').textContent = m === 'paraphrase' ? 'Sentence to rephrase' : 'Prompt';
  diversity.row.hidden = m !== 'paraphrase';
}

// ---- wiring ----

ui.loadServer.onclick = () => load({ url: MODEL_URL });
ui.file.onchange = () => { if (ui.file.files[0]) load({ file: ui.file.files[0] }); ui.file.value = ''; };
ui.run.onclick = run;
ui.stop.onclick = () => { if (job) worker.postMessage({ type: 'stop' }); };
ui.clearCache.onclick = () => worker.postMessage({ type: 'clear-cache' });
ui.input.onkeydown = (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !ui.run.disabled) run(); };
for (const t of document.querySelectorAll('.tab')) t.onclick = () => setMode(t.dataset.mode);
for (const ev of ['dragenter', 'dragover']) ui.drop.addEventListener(ev, (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
for (const ev of ['dragleave', 'drop']) ui.drop.addEventListener(ev, () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  const f = e.dataTransfer.files[0];
  if (f && !ui.loadServer.disabled) load({ file: f });
});
// a file dropped anywhere else must not make the browser navigate away to it
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

const why = unsupportedReason();
if (why) {
  setState('unsupported');
  showError('unsupported', why);
} else {
  setState('start');
  startWorker();
}
