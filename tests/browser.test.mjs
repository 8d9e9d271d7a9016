// browser.test.mjs: the web app in Debian's Chromium (playwright-core), served by `pocketlm serve`.
// Checks: the page loads the real model (q8_0) from its server; a greedy paraphrase and a greedy
// free generation equal the CLI's (`pocketlm paraphrase|generate --dtype q8_0 --temp 0`); Stop ends
// a generation and the UI returns to idle; a second page load takes the model from the Cache API
// ("loaded from cache", no second GET /model.gguf); the threaded page (COOP/COEP) and the
// single-threaded page (--no-coi) both work; every request the pages make goes to their own origin.
// The page names the model it runs: the GGUF's general.name and, for a merged export (WEB_MODEL,
// `make web-model`), the adapter in it (pocketlm.adapter), as `pocketlm info` reads them.
// Screenshots: build/artifacts/browser.png and browser-phone.png. Prints one line of measurements
// per page (load time, time to first token, tok/s, renderer RSS from /proc).
// usage: node tests/browser.test.mjs BIN MODEL [WEB_MODEL]   (tests/browser.test.sh decides when
// to skip)
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [BIN, MODEL, WEB_MODEL] = process.argv.slice(2);
const SENTENCE = 'The weather was nice, so we walked to the park.';
const PROMPT = 'The three primary colors are';
const ART = 'build/artifacts';
let failed = 0;

function check(name, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ': ' + String(detail).slice(0, 500)}`);
  if (!ok) failed++;
}

function cli(args) {
  return JSON.parse(execFileSync(BIN, [...args, '-m', MODEL, '--dtype', 'q8_0', '--temp', '0', '--threads', '1', '--json'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).text;
}

// serve: start `pocketlm serve` on a free port; resolves {url, proc, log()}
function serve(extra) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['serve', '-m', MODEL, '--dtype', 'q8_0', '--threads', '1', '--port', '0', '--web', 'build/web:web', ...extra],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error('serve did not start: ' + log)), 60000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m && timer) { clearTimeout(timer); resolve({ url: m[1], proc, log: () => log }); }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited ${code}: ${log}`)));
  });
}

function stopServer(s) {
  return new Promise((resolve) => { s.proc.removeAllListeners('exit'); s.proc.on('exit', (code) => resolve(code)); s.proc.kill('SIGINT'); });
}

// rendererRss: KB of RSS of the renderer processes under the browser whose cmdline holds profile
function rendererRss(profile) {
  const kids = {}, info = {};
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      (kids[ppid] ||= []).push(Number(d));
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const rss = Number((fs.readFileSync(`/proc/${d}/status`, 'utf8').match(/VmRSS:\s+(\d+)/) || [0, 0])[1]);
      info[d] = { cmd, rss };
    } catch { /* gone */ }
  }
  const root = Object.keys(info).find((p) => info[p].cmd.includes(profile) && !info[p].cmd.includes('--type='));
  let total = 0;
  const stack = root ? [Number(root)] : [];
  while (stack.length) {
    const p = stack.pop();
    if (info[p] && info[p].cmd.includes('--type=renderer')) total += info[p].rss;
    stack.push(...(kids[p] || []));
  }
  return total;
}

async function waitState(page, states, timeout = 240000) {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state), states, { timeout });
  return page.evaluate(() => document.body.dataset.state);
}

async function loadModel(page) {
  await page.click('#load-server');
  const state = await waitState(page, ['ready', 'start', 'error']);
  const err = await page.textContent('#error');
  check('model loads', state === 'ready', `${state}: ${err}`);
  return page.evaluate(() => ({ status: document.getElementById('model-status').textContent,
    build: document.getElementById('model-status').dataset.build,
    fromCache: document.getElementById('model-status').dataset.fromCache === 'true',
    badge: !!document.getElementById('from-cache'),
    model: document.getElementById('model-status').dataset.model,
    adapter: document.getElementById('model-status').dataset.adapter }));
}

// names: what `pocketlm info` reads from a GGUF: {name, adapter}
function names(file) {
  const j = JSON.parse(execFileSync(BIN, ['info', '-m', file, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  return { name: j.name, adapter: j.adapter };
}

// checkNames: the status line starts with the model's name, then " + LoRA <adapter>" when one is
// merged into the file, and nothing about an adapter when none is
function checkNames(label, got, want) {
  const head = want.name + (want.adapter ? ` + LoRA ${want.adapter}` : '');
  check(`${label}: the page names the model${want.adapter ? ' and its adapter' : ''} ("${head}")`,
    want.name.length > 0 && got.model === want.name && got.adapter === want.adapter &&
      got.status.startsWith(head + ' (') && (want.adapter || !/LoRA/.test(got.status)),
    JSON.stringify([got.status, got.model, got.adapter, want]));
}

// runOnce: set the mode and settings, press the button, wait for the result; with diversity, the
// slider is moved there and the temperature left empty (the diversity's)
async function runOnce(page, mode, text, { temperature = 0, maxTokens = 64, diversity = null } = {}) {
  await page.click(mode === 'paraphrase' ? '#mode-paraphrase' : '#mode-generate');
  await page.evaluate(({ temperature, maxTokens, diversity }) => {
    document.querySelector('details.settings').open = true;
    document.getElementById('temperature').value = diversity === null ? String(temperature) : '';
    document.getElementById('max-tokens').value = String(maxTokens);
    document.getElementById('seed').value = '1';
    if (diversity !== null) {
      const d = document.getElementById('diversity');
      d.value = String(diversity);
      d.dispatchEvent(new Event('input'));
    }
  }, { temperature, maxTokens, diversity });
  await page.fill('#input', text);
  await page.click('#run');
  await page.waitForFunction(() => document.getElementById('output').dataset.result, null, { timeout: 240000 });
  await waitState(page, ['ready']);
  return JSON.parse(await page.evaluate(() => document.getElementById('output').dataset.result));
}

async function session(label, srv, expect, { threaded, shots }) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1200, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-features=SpareRendererForSitePerProcess'],
  });
  const origin = new URL(srv.url).origin;
  const requests = [];
  ctx.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
  const logs = [];
  const measures = {};
  try {
    // ---- first visit: download, paraphrase, free generation, stop ----
    let page = await ctx.newPage();
    page.on('pageerror', (e) => logs.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') logs.push(m.text()); });
    await page.goto(srv.url);
    const coi = await page.evaluate(() => self.crossOriginIsolated);
    check(`${label}: crossOriginIsolated is ${threaded}`, coi === threaded, coi);
    const tLoad = Date.now();
    const first = await loadModel(page);
    measures.firstLoadMs = Date.now() - tLoad;
    check(`${label}: first load is not from the cache`, !first.fromCache && !first.badge, first.status);
    checkNames(label, first, expect.names);
    check(`${label}: ${threaded ? 'several threads' : '1 thread'}`, threaded ? !/ 1 thread/.test(first.status) : / 1 thread,/.test(first.status), first.status);
    // which build: pocketlm.js feature-detects relaxed SIMD (Chromium runs it since 114)
    const relaxed = await page.evaluate(async () => (await import('./pocketlm.js')).relaxedSimd());
    const want = `pocketlm${relaxed ? '-relaxed' : ''}${threaded ? '-mt' : ''}.mjs`;
    console.log(`${label}: loaded ${first.build} (relaxed SIMD ${relaxed ? '' : 'not '}validated)`);
    check(`${label}: build ${want}`, first.build === want && relaxed, first.build);
    measures.build = first.build;
    measures.rssAfterLoadKB = rendererRss(profile);
    const p = await runOnce(page, 'paraphrase', SENTENCE);
    check(`${label}: greedy paraphrase == pocketlm.js${expect.paraphrase.cli === expect.paraphrase.wasm ? ' == pocketlm paraphrase' : ''}`,
      p.text === expect.paraphrase.wasm, JSON.stringify([p.text, expect.paraphrase]));
    // the diversity slider, moved to "different": what pocketlm.js gives at diversity 1
    const visible = await page.isVisible('#diversity');
    const pd = await runOnce(page, 'paraphrase', SENTENCE, { maxTokens: 24, diversity: 1 });
    check(`${label}: the diversity slider at 1 == pocketlm.js paraphrase(text, {diversity: 1})`,
      visible && pd.text === expect.diverse && pd.text.length > 0, JSON.stringify([visible, pd.text, expect.diverse]));
    const g = await runOnce(page, 'generate', PROMPT, { maxTokens: 24 });
    check(`${label}: no diversity slider in free generation`, !(await page.isVisible('#diversity')));
    check(`${label}: greedy generation == pocketlm.js${expect.generate.cli === expect.generate.wasm ? ' == pocketlm generate' : ''}`,
      g.text === expect.generate.wasm && g.text.length > 0, JSON.stringify([g.text, expect.generate]));
    Object.assign(measures, { ttftColdMs: Math.round(g.ttftMs), decodeTokS: +g.decodeTokS.toFixed(1),
      prefillTokS: +g.prefillTokS.toFixed(1), promptTokens: g.promptTokens, heapMB: Math.round(g.heapBytes / 1e6) });
    measures.rssAfterGenKB = rendererRss(profile);
    // Stop in the middle of a long generation
    await page.click('#mode-generate');
    await page.evaluate(() => {
      document.getElementById('temperature').value = '0.8';
      document.getElementById('max-tokens').value = '1000';
    });
    await page.fill('#input', 'Once upon a time, in a faraway kingdom,');
    await page.click('#run');
    await page.waitForFunction(() => Number(document.getElementById('stat-tokens').textContent) >= 3, null, { timeout: 120000 });
    const t0 = Date.now();
    await page.click('#stop');
    await waitState(page, ['ready'], 30000);
    const stopped = await page.evaluate(() => JSON.parse(document.getElementById('output').dataset.result || '{}'));
    check(`${label}: Stop ends the generation and the UI is idle again (${Date.now() - t0} ms)`,
      stopped.stopReason === 'abort' && stopped.generatedTokens < 1000 && await page.isEnabled('#run') && !(await page.isEnabled('#stop')),
      JSON.stringify(stopped));
    if (shots) {
      fs.mkdirSync(ART, { recursive: true });
      await runOnce(page, 'generate', 'A language model that runs inside your web browser', { temperature: 0, maxTokens: 40 });
      await page.screenshot({ path: `${ART}/browser.png`, fullPage: true });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: `${ART}/browser-phone.png`, fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(`${label}: no horizontal scrolling on a phone-sized viewport`, overflow <= 0, overflow);
    }
    await page.close();
    // ---- second visit: the model comes from the cache ----
    const getsBefore = requests.filter((r) => r.method === 'GET' && r.url.endsWith('/model.gguf')).length;
    page = await ctx.newPage();
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(srv.url);
    const t1 = Date.now();
    const second = await loadModel(page);
    measures.cachedLoadMs = Date.now() - t1;
    check(`${label}: second load says "loaded from cache"`, second.fromCache && second.badge &&
      /loaded from cache/.test(await page.textContent('#model-status')), second.status);
    const gets = requests.filter((r) => r.method === 'GET' && r.url.endsWith('/model.gguf')).length;
    const served = (srv.log().match(/ GET \/model\.gguf 200 /g) || []).length;
    check(`${label}: no second GET /model.gguf (page saw ${gets}, server sent ${served})`, getsBefore === 1 && gets === 1 && served === 1, gets);
    const g2 = await runOnce(page, 'generate', PROMPT, { maxTokens: 24 });
    check(`${label}: same greedy text after a cached load`, g2.text === expect.generate.wasm, g2.text);
    measures.ttftCachedMs = Math.round(g2.ttftMs);
    measures.rssCachedKB = rendererRss(profile);
    await page.close();
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const foreign = requests.filter((r) => !/^(data|blob):/.test(r.url) && new URL(r.url).origin !== origin);
  check(`${label}: all ${requests.length} requests go to ${origin}`, foreign.length === 0, foreign.map((r) => r.url).join(' '));
  check(`${label}: no page errors`, logs.length === 0, logs.join(' | '));
  console.log(`measure ${label}: ${JSON.stringify(measures)}`);
}

// The oracles. The page must give exactly what pocketlm.js gives in node (same q8_0 weights; node
// 20 without its flag loads the SIMD128 build, the page the relaxed-SIMD one, and q8_0 is the same
// bits in both): that checks the page, the worker and the cache end to end. It must also equal the
// CLI when the CLI agrees with wasm (q8_0 runs one canonical order on every path, so they agree
// unless libm differs; tests/test_wasm.mjs checks the logits); else the difference is printed.
async function wasmText(mode, text, maxTokens, extra = {}) {
  const { PocketLM } = await import(path.resolve('build/web/pocketlm.js'));
  const lm = await PocketLM.load(MODEL, { dtype: 'q8_0', threads: 1 });
  try {
    const o = { temperature: 0, maxTokens, seed: 1, ...extra };
    return (mode === 'paraphrase' ? await lm.paraphrase(text, o) : await lm.generate(text, o)).text;
  } finally { lm.free(); }
}
const expect = {
  paraphrase: { cli: cli(['paraphrase', SENTENCE]), wasm: await wasmText('paraphrase', SENTENCE, 64) },
  generate: { cli: cli(['generate', '-n', '24', '-p', PROMPT]), wasm: await wasmText('generate', PROMPT, 24) },
  diverse: await wasmText('paraphrase', SENTENCE, 24, { diversity: 1, temperature: undefined }),
};
for (const k of ['paraphrase', 'generate'])
  if (expect[k].cli !== expect[k].wasm)
    console.log(`note: greedy ${k}: native q8_0 ${JSON.stringify(expect[k].cli)} != wasm q8_0 ${JSON.stringify(expect[k].wasm)} (ISA rounding, see test_wasm.mjs)`);
expect.names = names(MODEL);
for (const [label, extra, threaded, shots] of [['threaded', [], true, true], ['single-thread', ['--no-coi'], false, false]]) {
  const srv = await serve(extra);
  try {
    await session(label, srv, expect, { threaded, shots });
  } catch (e) {
    check(`${label}: ran to the end`, false, e.stack || e);
  } finally {
    const code = await stopServer(srv);
    check(`${label}: server stopped cleanly`, code === 0, code);
  }
}
// the merged web model (`make web-model`): the page shows its adapter
if (WEB_MODEL) {
  const srv = await serve(['--model-file', WEB_MODEL]);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium',
    headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const page = await ctx.newPage();
    await page.goto(srv.url);
    checkNames('web model', await loadModel(page), names(WEB_MODEL));
  } catch (e) {
    check('web model: ran to the end', false, e.stack || e);
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
    const code = await stopServer(srv);
    check('web model: server stopped cleanly', code === 0, code);
  }
}
console.log(`browser.test: ${failed} failed`);
process.exit(failed ? 1 : 0);
