// train.js: the Train view (the page's half; the model's half is worker_train.js). The user picks
// or drops a TSV (PAWS layout), JSONL ({"input","output"}) or CSV (input,output) file, types pairs,
// or takes the bundled PAWS sample (paws-sample.tsv: the first 300 rows of data/paws/dev.tsv); the
// worker reads it with the library's reader, and every bad row is listed with its line number
// before any step. Then: progress (step, epoch, tok/s, ETA), the live loss chart (the library's
// plm_loss_chart_svg, as loss.svg), Pause / Resume / Stop; a checkpoint in IndexedDB every N steps
// and on pause, and a reloaded page offers to resume; at the end "Try it" (base and adapter side by
// side), "Download adapter" (the PEFT files) and "Use in the page".
// CSV is turned into JSONL here (the library reads TSV and JSONL), keeping its line numbers.
// State on #train-card's data-state: idle, checking, ready, running, paused, done, error.

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();

// parseCsv: records of RFC 4180 CSV (quotes, "" escapes, CRLF) with the line each starts on
function parseCsv(text) {
  const out = [];
  let rec = [], field = '', quoted = false, line = 1, start = 1, any = false;
  for (let i = 0; i <= text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === undefined) { quoted = false; i--; continue; }
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else { if (c === '\n') line++; field += c; }
      continue;
    }
    if (c === '"' && field === '') { quoted = true; any = true; }
    else if (c === ',') { rec.push(field); field = ''; any = true; }
    else if (c === '\n' || c === undefined) {
      if (field.endsWith('\r')) field = field.slice(0, -1);
      rec.push(field);
      if (any || rec.some((f) => f.trim())) out.push({ line: start, fields: rec });
      rec = []; field = ''; any = false;
      line++; start = line;
    } else { field += c; any = true; }
  }
  return out;
}

// csvToJsonl: CSV pairs as JSONL bytes, the CSV line of each JSONL line, and the CSV's own bad rows
function csvToJsonl(text) {
  const recs = parseCsv(text.replace(/^\uFEFF/, ''));
  const lines = [], map = [], bad = [];
  recs.forEach((r, k) => {
    const f = r.fields.map((x) => x.trim());
    if (k === 0 && f.length === 2 && f[0].toLowerCase() === 'input' && f[1].toLowerCase() === 'output') return;
    if (f.length !== 2) { bad.push({ line: r.line, message: `expected 2 columns (input, output), found ${f.length}` }); return; }
    lines.push(JSON.stringify({ input: f[0], output: f[1] }));
    map.push(r.line);
  });
  return { bytes: encoder.encode(lines.map((l) => l + '\n').join('')), map, bad };
}

export function initTrain(worker) {
  const ui = {
    card: $('train-card'), file: $('train-file'), drop: $('train-drop'), sample: $('train-sample'),
    pairs: $('train-pairs').querySelector('tbody'), addRow: $('train-add-row'), usePairs: $('train-use-pairs'),
    dataStatus: $('train-data-status'), bad: $('train-bad'),
    steps: $('train-steps'), epochs: $('train-epochs'), batch: $('train-batch'), lr: $('train-lr'),
    rank: $('train-rank'), alpha: $('train-alpha'), evalFrac: $('train-eval-frac'), seed: $('train-seed'),
    every: $('train-every'),
    start: $('train-start'), pause: $('train-pause'), stop: $('train-stop'),
    offer: $('train-offer'), offerText: $('train-offer-text'), restore: $('train-restore'), discard: $('train-discard'),
    stat: { step: $('train-stat-step'), epoch: $('train-stat-epoch'), toks: $('train-stat-toks'),
            eta: $('train-stat-eta'), loss: $('train-stat-loss'), evalLoss: $('train-stat-eval') },
    chart: $('train-chart'), done: $('train-done'), downloads: $('train-downloads'), use: $('train-use'),
    useSaved: $('train-use-saved'), tryInput: $('train-try-input'), tryBtn: $('train-try'),
    tryBase: $('train-try-base'), tryAdapter: $('train-try-adapter'), status: $('train-status'),
  };
  let data = null;      // {bytes, name, map (CSV: line of each JSONL line), bad (CSV's own)}
  let modelReady = false, using = false;
  let urls = [];

  const setState = (s) => {
    ui.card.dataset.state = s;
    const busy = s === 'running' || s === 'checking';
    ui.start.disabled = !modelReady || busy || !data;
    ui.start.textContent = s === 'paused' ? 'Resume' : 'Train';
    ui.pause.disabled = s !== 'running';
    ui.stop.disabled = !(s === 'running' || s === 'paused');
    for (const el of [ui.file, ui.sample, ui.usePairs]) el.disabled = busy || s === 'paused';
    // the model must not change under a run, nor generate while it trains; after, as the page was
    const idle = document.body.dataset.state === 'ready';
    if (busy || idle) for (const id of ['load-server', 'file', 'run']) if ($(id)) $(id).disabled = busy;
  };
  const say = (text, cls = '') => { ui.status.textContent = text; ui.status.className = 'status ' + cls; };
  const fmtTime = (s) => (!Number.isFinite(s) ? '–' : s < 60 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);

  function setData(d, label) {
    data = d;
    ui.dataStatus.textContent = label;
    ui.dataStatus.className = 'status ok';
    ui.bad.hidden = true;
    ui.bad.textContent = '';
    ui.card.dataset.dataName = d.name;
    setState('idle');
  }

  async function fromFile(f) {
    const text = await f.text();
    const name = f.name || 'data';
    if (/\.csv$/i.test(name)) {
      const c = csvToJsonl(text);
      setData({ bytes: c.bytes, name, map: c.map, bad: c.bad }, `${name}: CSV, ${c.map.length} pairs`);
    } else setData({ bytes: encoder.encode(text), name, map: null, bad: [] }, `${name}: ${(f.size / 1024).toFixed(1)} kB`);
  }

  function fromPairs() {
    const pairs = [];
    for (const tr of ui.pairs.rows) {
      const [a, b] = [...tr.querySelectorAll('input')].map((x) => x.value);
      if (a.trim() || b.trim()) pairs.push({ input: a, output: b });
    }
    const bytes = encoder.encode(pairs.map((p) => JSON.stringify(p) + '\n').join(''));
    setData({ bytes, name: 'typed pairs', map: null, bad: [] }, `${pairs.length} typed pair${pairs.length === 1 ? '' : 's'}`);
  }

  function addRow(a = '', b = '') {
    const tr = document.createElement('tr');
    for (const v of [a, b]) {
      const td = document.createElement('td'), inp = document.createElement('input');
      inp.type = 'text';
      inp.value = v;
      td.append(inp);
      tr.append(td);
    }
    ui.pairs.append(tr);
  }

  function showBad(rows) {
    const all = [...(data?.bad ?? []), ...rows.map((r) => ({ ...r, line: data?.map ? data.map[r.line - 1] ?? r.line : r.line }))]
      .sort((a, b) => a.line - b.line);
    ui.bad.textContent = '';
    ui.bad.hidden = all.length === 0;
    const MAX = 200;
    for (const r of all.slice(0, MAX)) {
      const li = document.createElement('li');
      li.dataset.line = String(r.line);
      li.textContent = `line ${r.line}: ${r.message}`;
      ui.bad.append(li);
    }
    if (all.length > MAX) {
      const li = document.createElement('li');
      li.textContent = `… and ${all.length - MAX} more`;
      ui.bad.append(li);
    }
    ui.card.dataset.badRows = String(all.length);
  }

  function params() {
    const num = (el, f = Number) => { const v = f(el.value); return Number.isFinite(v) ? v : undefined; };
    const steps = num(ui.steps, parseInt), epochs = num(ui.epochs, parseInt);
    return { maxSteps: steps > 0 ? steps : 0, epochs: steps > 0 ? undefined : Math.max(1, epochs || 1),
             batch: num(ui.batch, parseInt), lr: num(ui.lr, parseFloat), rank: num(ui.rank, parseInt),
             alpha: num(ui.alpha, parseFloat), evalFrac: num(ui.evalFrac, parseFloat), seed: num(ui.seed, parseInt),
             evalEvery: 10, checkpointEvery: num(ui.every, parseInt) ?? 0 };
  }

  function progress(p, svg) {
    ui.stat.step.textContent = `${p.step} / ${p.totalSteps}`;
    ui.stat.epoch.textContent = p.epoch.toFixed(2);
    ui.stat.toks.textContent = p.tokS.toFixed(0);
    ui.stat.eta.textContent = fmtTime(p.eta);
    ui.stat.loss.textContent = p.loss.toFixed(3);
    if (p.evalLoss !== null && p.evalLoss !== undefined) ui.stat.evalLoss.textContent = p.evalLoss.toFixed(3);
    ui.card.dataset.step = String(p.step);
    if (svg) showChart(svg);
  }

  function showChart(svg) {
    ui.chart.hidden = false;
    ui.chart.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
  }

  function done(m) {
    for (const u of urls) URL.revokeObjectURL(u);
    urls = [];
    ui.downloads.textContent = 'Download adapter: ';
    for (const [name, bytes] of Object.entries(m.files)) {
      const a = document.createElement('a'), u = URL.createObjectURL(new Blob([bytes]));
      urls.push(u);
      a.href = u;
      a.download = name;
      a.textContent = name;
      a.className = 'download';
      ui.downloads.append(a, ' ');
    }
    ui.done.hidden = false;
    if (m.svg) showChart(m.svg);
    const last = m.metrics[m.metrics.length - 1];
    say(`Done: ${last ? last.step : 0} steps. Your adapter is ready.`, 'ok');
    setState('done');
  }

  worker.addEventListener('message', (ev) => {
    const m = ev.data;
    switch (m.type) {
    case 'loaded':
      modelReady = true;
      setState(ui.card.dataset.state || 'idle');
      worker.postMessage({ type: 'train-saved' });
      break;
    case 'train-saved':
      ui.offer.hidden = !m.run;
      if (m.run) ui.offerText.textContent = `A training run on ${m.run.dataName} stopped at step ${m.run.step} of ${m.run.totalSteps} (${new Date(m.run.savedAt).toLocaleString()}).`;
      ui.useSaved.hidden = !m.adapter;
      break;
    case 'train-checked': {
      showBad(m.badRows);
      const i = m.info;
      ui.dataStatus.textContent = `${data ? data.name + ': ' : ''}${i.rows} rows, ${i.trainExamples} training examples, ` +
        `${i.evalExamples} held out${i.notLabel1 ? `, ${i.notLabel1} not paraphrases (label 0)` : ''}` +
        `${i.bad ? `, ${i.bad} bad rows (listed below, not used)` : ''}; ${i.totalSteps} steps.`;
      if (m.resumed) {
        say(`Resuming from step ${i.step}.`);
        if (m.svg) showChart(m.svg);
        ui.card.dataset.step = String(i.step);
        ui.stat.step.textContent = `${i.step} / ${i.totalSteps}`;
      }
      setState('running'); // a resumed run goes on by itself; a new one starts now
      if (!m.resumed) worker.postMessage({ type: 'train-start' });
      break;
    }
    case 'train-progress': progress(m.p, m.svg); say(`Training… step ${m.p.step} of ${m.p.totalSteps}`); break;
    case 'train-checkpoint': ui.card.dataset.checkpoint = String(m.step); break;
    case 'train-paused':
      ui.card.dataset.checkpoint = String(m.step);
      say(`Paused at step ${m.step}; a checkpoint is saved in this browser.`);
      setState('paused');
      break;
    case 'train-done': done(m); break;
    case 'train-tried':
      ui.tryBase.textContent = m.base;
      ui.tryAdapter.textContent = m.adapter;
      ui.card.dataset.tried = '1';
      ui.tryBtn.disabled = false;
      break;
    case 'train-used':
      using = m.on;
      ui.use.textContent = using ? 'Stop using it in the page' : 'Use in the page';
      say(using ? 'The Paraphrase view now uses your adapter (kept in this browser for your next visit).' : 'The Paraphrase view uses the model alone.', 'ok');
      ui.card.dataset.using = String(using);
      break;
    case 'train-error':
      if (m.badRows) showBad(m.badRows);
      say(m.message, 'bad');
      setState(ui.card.dataset.state === 'paused' ? 'paused' : 'error');
      ui.tryBtn.disabled = false;
      break;
    }
  });

  ui.file.onchange = () => { if (ui.file.files[0]) fromFile(ui.file.files[0]); ui.file.value = ''; };
  for (const ev of ['dragenter', 'dragover']) ui.drop.addEventListener(ev, (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
  for (const ev of ['dragleave', 'drop']) ui.drop.addEventListener(ev, () => ui.drop.classList.remove('over'));
  ui.drop.addEventListener('drop', (e) => { e.preventDefault(); const f = e.dataTransfer.files[0]; if (f) fromFile(f); });
  ui.sample.onclick = async () => {
    const r = await fetch('paws-sample.tsv');
    setData({ bytes: new Uint8Array(await r.arrayBuffer()), name: 'paws-sample.tsv', map: null, bad: [] },
            'paws-sample.tsv: 300 rows of PAWS (dev), label-1 rows used both ways');
  };
  ui.addRow.onclick = () => addRow();
  ui.usePairs.onclick = fromPairs;
  ui.start.onclick = () => {
    if (ui.card.dataset.state === 'paused') { setState('running'); say('Training…'); worker.postMessage({ type: 'train-start' }); return; }
    ui.done.hidden = true;
    ui.chart.hidden = true;
    for (const k of Object.values(ui.stat)) k.textContent = '–';
    delete ui.card.dataset.step;
    setState('checking');
    say('Reading the data…');
    const bytes = data.bytes.slice();
    worker.postMessage({ type: 'train-check', data: bytes, dataName: data.name, params: params() });
  };
  ui.pause.onclick = () => { ui.pause.disabled = true; worker.postMessage({ type: 'train-pause' }); };
  ui.stop.onclick = () => { ui.stop.disabled = ui.pause.disabled = true; say('Stopping after this step…'); worker.postMessage({ type: 'train-stop' }); };
  ui.restore.onclick = () => { ui.offer.hidden = true; setState('checking'); say('Resuming…'); worker.postMessage({ type: 'train-restore' }); };
  ui.discard.onclick = () => { ui.offer.hidden = true; worker.postMessage({ type: 'train-discard' }); };
  ui.use.onclick = () => worker.postMessage({ type: 'train-use', on: !using });
  ui.useSaved.onclick = () => { ui.useSaved.hidden = true; worker.postMessage({ type: 'train-use-saved' }); };
  ui.tryBtn.onclick = () => {
    const text = ui.tryInput.value.trim();
    if (!text) return;
    ui.tryBtn.disabled = true;
    ui.tryBase.textContent = ui.tryAdapter.textContent = '…';
    delete ui.card.dataset.tried;
    worker.postMessage({ type: 'train-try', text, opts: { temperature: 0 } });
  };
  for (let i = 0; i < 3; i++) addRow();
  setState('idle');
}
