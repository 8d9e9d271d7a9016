// browser_train.test.mjs: the Train view of the web app in Debian's Chromium (playwright-core),
// served by `pocketlm serve` with the real model (q8_0), the page cross-origin isolated (threads).
// It loads the page and the model, drops a small JSONL (24 pairs and one bad row) on the Train
// view, trains 20 steps (batch 4, checkpoint every 5 steps into IndexedDB), reloads the page in the
// middle of the run, resumes from the offer the reloaded page makes, and downloads the adapter:
//  - the bad row is listed with its line number before any step;
//  - resumed == uninterrupted: a second run with the same settings in the same page gives the
//    same adapter_model.safetensors, byte for byte;
//  - against `pocketlm finetune` with the same seed and settings (native AVX2 kernels, the page's
//    wasm ones): adapter_config.json byte for byte, the step losses and the weights within the
//    spread two native kernel paths show on the same run (LOSS_RTOL, W_ATOL; worst errors printed);
//  - "Try it": the adapter's greedy paraphrase == `pocketlm paraphrase --lora` on the downloaded
//    files; "Use in the page": the Paraphrase view then gives the same text. Their first line (the
//    answer): the adapter's f32 branch differs within rounding between wasm and native (the Q8_0
//    base is the same bits), so two greedy texts may part at a near tie once this 20-step adapter,
//    which has not learned the end marker, runs on into chat text (as they did on 2026-12-06);
//  - every request goes to the page's own origin; no page errors.
// Screenshots: build/artifacts/train-running.png, train-done.png. Prints the renderer's RSS.
// usage: node tests/browser_train.test.mjs BIN MODEL BUILD
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [BIN, MODEL, BUILD = 'build'] = process.argv.slice(2);
const ART = path.join(BUILD, 'artifacts');
const SEED = 11, STEPS = 20, BATCH = 4, EVERY = 5;
// wasm against native on the real model (q8_0 base): two native paths already differ this much.
// `pocketlm finetune` with PLM_ISA=scalar against PLM_ISA=avx2, this data and these settings, 8 steps
// (2026-12-05): step 1's loss equal, then up to 6e-3 relative; weights up to 5.5e-4 apart (of 0.6).
// AdamW's first updates are about lr * sign(gradient), so an element whose gradient is near zero
// moves by up to 2 lr on a rounding difference, and 30 layers of quantized activations carry it on.
const LOSS_RTOL = 2e-2, W_ATOL = 3e-3;
const TRY = 'the cat 5 sat on a mat';
const answer = (t) => t.split('\n').find((l) => l.trim()) ?? ''; // the first line with text
let failed = 0;

function check(name, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ': ' + String(detail).slice(0, 500)}`);
  if (!ok) failed++;
}

function serve() {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['serve', '-m', MODEL, '--dtype', 'q8_0', '--threads', '1', '--port', '0',
                             '--web', `${BUILD}/web:web`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error('serve did not start: ' + log)), 60000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m && timer) { clearTimeout(timer); resolve({ url: m[1], proc }); }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited ${code}: ${log}`)));
  });
}

function stopServer(s) {
  return new Promise((resolve) => { s.proc.removeAllListeners('exit'); s.proc.on('exit', resolve); s.proc.kill('SIGINT'); });
}

// rendererRss: KB of RSS of the renderer processes of the browser whose command line holds profile
function rendererRss(profile) {
  let total = 0;
  for (const d of fs.readdirSync('/proc')) {
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!cmd.includes('--type=renderer') || !cmd.includes(profile)) continue;
      total += Number((fs.readFileSync(`/proc/${d}/status`, 'utf8').match(/VmRSS:\s+(\d+)/) || [0, 0])[1]);
    } catch { /* gone */ }
  }
  return total;
}

function safetensors(bytes) {
  const n = Number(bytes.readBigUInt64LE(0)), head = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [k, v] of Object.entries(head)) {
    if (k === '__metadata__') continue;
    const [a, z] = v.data_offsets;
    out[k] = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + n + a, bytes.byteOffset + 8 + n + z));
  }
  return out;
}
const metrics = (t) => t.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

const T = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-browser-train-'));
const lines = [];
for (let i = 1; i <= 24; i++) {
  lines.push(JSON.stringify({ input: `the cat ${i} sat on a mat`, output: `a cat ${i} sat on the mat` }));
  if (i === 2) lines.push('{"input": "a row without its output"}');
}
const JSONL = lines.join('\n') + '\n';
fs.writeFileSync(path.join(T, 'pairs.jsonl'), JSONL);

// the native run: the same seed and settings as the page's (evalEvery 10 is the page's)
const NAT = path.join(T, 'native');
execFileSync(BIN, ['finetune', '-m', MODEL, '--dtype', 'q8_0', '--data', path.join(T, 'pairs.jsonl'), '--out', NAT,
  '--max-steps', String(STEPS), '--epochs', '1000', '--batch', String(BATCH), '--seed', String(SEED),
  '--eval-frac', '0.05', '--eval-every', '10', '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });

async function waitTrain(page, pred, arg, timeout = 600000) {
  await page.waitForFunction(pred, arg, { timeout, polling: 200 });
}

async function loadModel(page) {
  await page.click('#load-server');
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 240000 });
  check('model loads', await page.evaluate(() => document.body.dataset.state) === 'ready', await page.textContent('#error'));
}

// startRun: the settings of this test, then Train
async function startRun(page) {
  await page.evaluate(({ STEPS, BATCH, SEED, EVERY }) => {
    document.querySelector('#train-card details.settings').open = true;
    const set = (id, v) => { document.getElementById(id).value = String(v); };
    set('train-steps', STEPS); set('train-batch', BATCH); set('train-seed', SEED); set('train-every', EVERY);
    set('train-eval-frac', 0.05); set('train-lr', 0.0002); set('train-rank', 8); set('train-alpha', 16);
  }, { STEPS, BATCH, SEED, EVERY });
  await page.click('#train-start');
}

// dropData: drop the JSONL on the Train view
async function dropData(page) {
  await page.evaluate((text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'pairs.jsonl', { type: 'application/jsonl' }));
    document.getElementById('train-drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, JSONL);
  await page.waitForFunction(() => document.getElementById('train-card').dataset.dataName === 'pairs.jsonl');
}

// download: the bytes of the Train view's download link for name
async function download(page, name) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`a.download[download="${name}"]`)]);
  return fs.readFileSync(await dl.path());
}

const srv = await serve();
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1200, height: 1400 }, acceptDownloads: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-features=SpareRendererForSitePerProcess'],
});
const origin = new URL(srv.url).origin;
const requests = [], logs = [];
ctx.on('request', (r) => requests.push(r.url()));
let peakRss = 0;
const rssTimer = setInterval(() => { peakRss = Math.max(peakRss, rendererRss(profile)); }, 500);
try {
  fs.mkdirSync(ART, { recursive: true });
  let page = await ctx.newPage();
  page.on('pageerror', (e) => logs.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') logs.push(m.text()); });
  await page.goto(srv.url);
  await loadModel(page);
  await dropData(page);
  await startRun(page);
  await waitTrain(page, () => Number(document.getElementById('train-card').dataset.step) >= 1 || document.getElementById('train-card').dataset.state === 'error');
  const bad = await page.evaluate(() => [...document.querySelectorAll('#train-bad li')].map((li) => li.textContent));
  check('the bad row is listed with its line number before training', bad.length === 1 && /^line 3: missing string field "output"/.test(bad[0]), JSON.stringify(bad));
  // reload in the middle of the run, after a checkpoint
  await waitTrain(page, () => Number(document.getElementById('train-card').dataset.checkpoint) >= 5 &&
    Number(document.getElementById('train-card').dataset.step) >= 6);
  await page.screenshot({ path: `${ART}/train-running.png`, fullPage: true });
  const [before, of] = await page.evaluate(() => document.getElementById('train-stat-step').textContent.split(' / ').map(Number));
  check(`reloading mid-run (at step ${before} of ${of})`, before < STEPS && of === STEPS, [before, of]);
  await page.reload();
  await loadModel(page);
  await page.waitForSelector('#train-offer:not([hidden])', { timeout: 60000 }).catch(async (e) => {
    console.log('debug:', await page.evaluate(async () => JSON.stringify({ card: { ...document.getElementById('train-card').dataset },
      status: document.getElementById('train-status').textContent, dbs: await indexedDB.databases() })));
    throw e;
  });
  check('the reloaded page offers to resume', /stopped at step \d+ of 20/.test(await page.textContent('#train-offer-text')),
        await page.textContent('#train-offer-text'));
  await page.click('#train-restore');
  await waitTrain(page, () => ['done', 'error'].includes(document.getElementById('train-card').dataset.state));
  check('the resumed run ends', await page.evaluate(() => document.getElementById('train-card').dataset.state) === 'done',
        await page.textContent('#train-status'));
  await page.screenshot({ path: `${ART}/train-done.png`, fullPage: true });
  const resumed = {};
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json', 'metrics.jsonl'])
    resumed[f] = await download(page, f);

  // against the native run
  check('adapter_config.json byte for byte as pocketlm finetune\'s',
        resumed['adapter_config.json'].equals(fs.readFileSync(path.join(NAT, 'adapter_config.json'))));
  const mw = metrics(resumed['metrics.jsonl'].toString()), mn = metrics(fs.readFileSync(path.join(NAT, 'metrics.jsonl'), 'utf8'));
  let worstLoss = 0;
  mn.forEach((m, i) => { worstLoss = Math.max(worstLoss, Math.abs(mw[i].loss - m.loss) / m.loss); });
  check(`${STEPS} step losses within rtol ${LOSS_RTOL} of native (worst ${worstLoss.toExponential(2)})`,
        mw.length === STEPS && mn.length === STEPS && worstLoss <= LOSS_RTOL);
  const aw = safetensors(resumed['adapter_model.safetensors']), an = safetensors(fs.readFileSync(path.join(NAT, 'adapter_model.safetensors')));
  let worstW = 0;
  for (const k of Object.keys(an)) for (let i = 0; i < an[k].length; i++) worstW = Math.max(worstW, Math.abs(aw[k][i] - an[k][i]));
  check(`adapter weights within atol ${W_ATOL} of native (worst ${worstW.toExponential(2)})`,
        Object.keys(aw).length === Object.keys(an).length && worstW <= W_ATOL);

  // generate with it: Try it, then Use in the page
  const dir = path.join(T, 'page-adapter');
  fs.mkdirSync(dir);
  for (const [k, v] of Object.entries(resumed)) fs.writeFileSync(path.join(dir, k), v);
  const want = JSON.parse(execFileSync(BIN, ['paraphrase', '-m', MODEL, '--dtype', 'q8_0', '--lora', dir, '--temp', '0',
                                              '--threads', '1', '--json', TRY], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).text;
  await page.fill('#train-try-input', TRY);
  await page.click('#train-try');
  await waitTrain(page, () => document.getElementById('train-card').dataset.tried === '1', null, 120000);
  const tried = await page.textContent('#train-try-adapter');
  check('Try it: the adapter\'s greedy paraphrase == pocketlm paraphrase --lora (the downloaded files)',
        answer(want) !== '' && answer(tried) === answer(want), JSON.stringify([tried, want]));
  await page.click('#train-use');
  await waitTrain(page, () => document.getElementById('train-card').dataset.using === 'true', null, 60000);
  await page.evaluate(() => { document.querySelector('details.settings').open = true; document.getElementById('temperature').value = '0'; });
  await page.fill('#input', TRY);
  await page.click('#mode-paraphrase');
  await page.click('#run');
  await page.waitForFunction(() => document.getElementById('output').dataset.result, null, { timeout: 120000 });
  const used = JSON.parse(await page.evaluate(() => document.getElementById('output').dataset.result)).text;
  check('Use in the page: the Paraphrase view gives the adapter\'s text', answer(used) === answer(want),
        JSON.stringify([used, want]));

  // resumed == uninterrupted: the same run again in this page, never stopped
  await dropData(page);
  await startRun(page);
  await waitTrain(page, () => document.getElementById('train-card').dataset.state === 'running');
  await waitTrain(page, () => ['done', 'error'].includes(document.getElementById('train-card').dataset.state));
  const whole = await download(page, 'adapter_model.safetensors');
  check('resumed after a reload == uninterrupted (adapter_model.safetensors byte for byte)', whole.equals(resumed['adapter_model.safetensors']));
  await page.close();
} catch (e) {
  check('ran to the end', false, e.stack || e);
} finally {
  clearInterval(rssTimer);
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
  const code = await stopServer(srv);
  check('server stopped cleanly', code === 0, code);
}
const foreign = requests.filter((u) => !/^(data|blob):/.test(u) && new URL(u).origin !== origin);
check(`all ${requests.length} requests go to ${origin}`, foreign.length === 0, foreign.join(' '));
check('no page errors', logs.length === 0, logs.join(' | '));
console.log(`measure train: renderer peak RSS ${(peakRss / 1024).toFixed(0)} MB`);
fs.rmSync(T, { recursive: true, force: true });
console.log(`browser_train.test: ${failed} failed`);
process.exit(failed ? 1 : 0);
