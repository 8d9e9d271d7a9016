// worker_train.js: the Train view's half in the worker (imported by worker.js, which owns the
// model): a fine-tuning run of pocketlm.js (lm.trainer) stepped one optimizer step at a time, so
// that Pause / Stop messages get in between steps; a checkpoint in IndexedDB every N steps and on
// pause (with the data and the settings, so that a reloaded page resumes the same run bit for bit);
// at the end the adapter: its files for download, "Try it" (base and adapter side by side), "Use in
// the page" (generation with the adapter; its files kept in IndexedDB for the next visit).
//
// Messages in:  {type: 'train-check', data: Uint8Array, dataName, params}   {type: 'train-start'}
//               {type: 'train-pause'}  {type: 'train-stop'}  {type: 'train-saved'}
//               {type: 'train-restore'}  {type: 'train-discard'}  {type: 'train-try', text, opts}
//               {type: 'train-use', on}  {type: 'train-use-saved'}
// Messages out: {type: 'train-checked', info, badRows, resumed}  {type: 'train-progress', p, svg}
//               {type: 'train-checkpoint', step}  {type: 'train-paused', step}
//               {type: 'train-done', files, svg, metrics}  {type: 'train-saved', run, adapter}
//               {type: 'train-tried', base, adapter}  {type: 'train-used', on, name}
//               {type: 'train-error', message, badRows}

const DB = 'pocketlm-train', STORE = 'runs';
const RUN_KEY = 'run', ADAPTER_KEY = 'adapter';
const CHART = { width: 640, height: 300 };

// ---- IndexedDB: one store, a record for the run in progress and one for the last adapter ----

function openDb() {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore(STORE);
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

async function dbDo(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  } finally { db.close(); }
}
const dbGet = (k) => dbDo('readonly', (s) => s.get(k));
const dbPut = (k, v) => dbDo('readwrite', (s) => s.put(v, k));
const dbDel = (k) => dbDo('readwrite', (s) => s.delete(k));

const tick = () => new Promise((r) => setTimeout(r, 0));

// trainHandler: the handler of the train-* messages for the model getLm() returns; post sends
// messages to the page. Returns a function (message) -> Promise, or null for other messages.
export function trainHandler(getLm, post) {
  let run = null;       // the TrainRun in progress
  let job = null;       // {data, dataName, params}: what it was begun with (saved with checkpoints)
  let state = 'idle';   // idle, ready (checked), running, pausing, paused, stopping
  let adapter = null;   // the finished adapter (pocketlm.js Adapter)
  let files = null;     // its files

  const chart = () => run.lossChart(CHART);

  async function begin(j, resume) {
    const lm = getLm();
    if (!lm) throw new Error('Load a model first.');
    if (run) { run.free(); run = null; }
    job = j;
    try {
      run = await lm.trainer({ ...j.params, data: j.data, dataName: j.dataName, resume });
    } catch (e) {
      post({ type: 'train-error', message: e.message.replace(/^pocketlm: finetune: /, ''), badRows: e.badRows || [] });
      state = 'idle';
      return false;
    }
    state = resume ? 'paused' : 'ready';
    post({ type: 'train-checked', info: run.info, badRows: run.badRows, resumed: !!resume,
           metrics: run.metrics, svg: run.metrics.length ? chart() : null });
    return true;
  }

  // checkpoint: the run's checkpoint, its data and settings into IndexedDB
  async function checkpoint() {
    const ck = await run.checkpoint();
    const lm = getLm();
    await dbPut(RUN_KEY, { ...job, checkpoint: ck, totalSteps: run.info.totalSteps, model: lm.name,
                           savedAt: Date.now() });
    post({ type: 'train-checkpoint', step: ck.step });
  }

  async function loop() {
    state = 'running';
    const every = job.params.checkpointEvery | 0;
    while (state === 'running') {
      const p = await run.step();
      if (!p) break;
      post({ type: 'train-progress', p, svg: chart() });
      if (every > 0 && p.step % every === 0 && p.step < p.totalSteps) await checkpoint();
      await tick(); // let Pause and Stop in
    }
    if (state === 'pausing') {
      await checkpoint();
      state = 'paused';
      post({ type: 'train-paused', step: run.stepsDone });
      return;
    }
    await finish();
  }

  async function finish() {
    const lm = getLm();
    files = await run.save();
    const svg = chart(), metrics = run.metrics;
    run.free();
    run = null;
    if (adapter) adapter.free();
    adapter = await lm.loadAdapter(files);
    state = 'idle';
    await dbDel(RUN_KEY).catch(() => {});
    post({ type: 'train-done', files, svg, metrics });
  }

  // paraphrase with and without the adapter, then back to what the page used
  async function tryIt(text, opts) {
    const lm = getLm();
    const inUse = lm._adapter || null;
    await lm.useAdapter(null);
    const base = await lm.paraphrase(text, opts);
    await lm.useAdapter(adapter);
    const mine = await lm.paraphrase(text, opts);
    await lm.useAdapter(inUse);
    post({ type: 'train-tried', base: base.text, adapter: mine.text });
  }

  return async (m) => {
    switch (m.type) {
    case 'train-check': await begin({ data: m.data, dataName: m.dataName, params: m.params }, null); return true;
    case 'train-start': if (run && state !== 'running') await loop(); return true;
    case 'train-pause': if (state === 'running') state = 'pausing'; return true;
    case 'train-stop':
      if (state === 'running' || state === 'pausing') state = 'stopping';
      else if (run && (state === 'paused' || state === 'ready')) await finish();
      return true;
    case 'train-saved': {
      const r = await dbGet(RUN_KEY).catch(() => null);
      const a = await dbGet(ADAPTER_KEY).catch(() => null);
      post({ type: 'train-saved', run: r ? { step: r.checkpoint.step, totalSteps: r.totalSteps, dataName: r.dataName,
                                              model: r.model, savedAt: r.savedAt } : null,
             adapter: a ? { savedAt: a.savedAt, model: a.model } : null });
      return true;
    }
    case 'train-restore': {
      const r = await dbGet(RUN_KEY);
      if (!r) throw new Error('There is no saved training run.');
      if (await begin({ data: r.data, dataName: r.dataName, params: r.params }, r.checkpoint)) await loop();
      return true;
    }
    case 'train-discard': await dbDel(RUN_KEY); return true;
    case 'train-try': await tryIt(m.text, m.opts); return true;
    case 'train-use': {
      const lm = getLm();
      await lm.useAdapter(m.on ? adapter : null);
      if (m.on) await dbPut(ADAPTER_KEY, { files, model: lm.name, savedAt: Date.now() });
      post({ type: 'train-used', on: !!m.on });
      return true;
    }
    case 'train-use-saved': {
      const a = await dbGet(ADAPTER_KEY);
      if (!a) throw new Error('There is no saved adapter.');
      const lm = getLm();
      if (adapter) adapter.free();
      files = a.files;
      adapter = await lm.loadAdapter(files);
      await lm.useAdapter(adapter);
      post({ type: 'train-used', on: true, saved: true });
      return true;
    }
    }
    return false;
  };
}
