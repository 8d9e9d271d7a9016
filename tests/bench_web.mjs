// bench_web.mjs: one browser configuration of `make bench-web` (scripts/bench_web.sh runs one
// process per configuration and round, and writes the report). Serves build/web and SITE with
// `pocketlm serve` (COOP/COEP: crossOriginIsolated, so threads work), launches Debian's Chromium
// (playwright-core) with a fresh profile, and opens tests/bench_web.html twice in it:
//   cold    first visit, empty Cache API: download, load, first token of a 30-token prompt, then
//           prefill (p tokens) and decode (n tokens), best of reps; renderer RSS read from /proc
//           with the model still loaded
//   cached  second visit (kv configurations only): the model from the Cache API, first token
// Each visit runs in its own renderer process (the first page is closed, and its renderer gone,
// before the second opens); its RSS is its own.
// usage: node tests/bench_web.mjs BIN MODEL SITE ENGINE:DTYPE:THREADS[:MODE] [P N REPS NCTX]
//   ENGINE plm (pocketlm wasm; dtype q8_0|f32; mode: the build, auto|relaxed|simd128, default
//          auto = pocketlm.js's feature detection), plmtrain (the same, then LoRA training on
//          SITE/paws-sample.tsv for BENCH_TRAIN_STEPS steps, default 20: train_tps) or ort (onnxruntime-web wasm; fp32|int8; mode
//          kv|nokv) or none (the page alone: its renderer's baseline RSS)
//   SITE   a directory with bench_web.html, bench_web_worker.js, ort/ (onnxruntime-web/dist) and
//          onnx/ (pocketlm export --format onnx output); scripts/bench_web.sh makes it
// Prints `metric value` lines (stdout), own_cpu_s last (this process and its descendants, for the
// foreign-load figure); the pages' logs and details go to stderr.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [BIN, MODEL, SITE, CONFIG, P = '128', N = '128', REPS = '3', NCTX = '0'] = process.argv.slice(2);
if (!CONFIG) {
  console.error('usage: node tests/bench_web.mjs BIN MODEL SITE ENGINE:DTYPE:THREADS[:MODE] [P N REPS NCTX]');
  process.exit(2);
}
const [engine, dtype, threads, mode4] = CONFIG.split(':');
const PLM = engine === 'plm' || engine === 'plmtrain';
const simd = PLM ? mode4 || 'auto' : '';   // pocketlm: which SIMD build
const mode = engine === 'plm' ? 'kv' : PLM ? 'train' : mode4 || 'kv';   // kv: a second, cached visit
const TRAIN_STEPS = process.env.BENCH_TRAIN_STEPS || '20';
const WEB = path.join(path.dirname(BIN), 'web');
const MB = 1 << 20;
const out = (metric, value) => console.log(`${metric} ${value}`);
const note = (s) => console.error(`bench_web: ${s}`);

// serve: `pocketlm serve` on a free port; resolves {url, proc}
function serve() {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['serve', '-m', MODEL, '--dtype', 'q8_0', '--threads', '1', '--port', '0',
      '--web', `${WEB}:${SITE}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const timer = setTimeout(() => reject(new Error('serve did not start: ' + log)), 60000);
    proc.stderr.on('data', (d) => {
      log += d;
      if (log.length > 100000) log = log.slice(-50000);
      const m = log.match(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m && timer) { clearTimeout(timer); resolve({ url: m[1], proc }); }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited ${code}: ${log}`)));
  });
}

// ---- /proc ----

function procTable() {
  const kids = {}, info = {};
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      (kids[ppid] ||= []).push(Number(d));
      // Chromium rewrites its argv: match in the whole cmdline, not per argument
      info[d] = { cmd: fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') };
    } catch { /* gone */ }
  }
  return { kids, info };
}

// renderers: pids of the renderer processes of the browser whose cmdline holds profile
function renderers(profile) {
  const { kids, info } = procTable();
  const root = Object.keys(info).find((p) => info[p].cmd.includes(profile) && !info[p].cmd.includes('--type='));
  const found = [], stack = root ? [Number(root)] : [];
  while (stack.length) {
    const p = stack.pop();
    // --top-chrome-webui: the browser's own UI renderer (~160 MB in headless), not the page's
    if (info[p] && info[p].cmd.includes('--type=renderer') && !info[p].cmd.includes('--top-chrome-webui')) found.push(p);
    stack.push(...(kids[p] || []));
  }
  return found;
}

// memory of one process: VmRSS and VmHWM (KB), and from smaps the resident KB of its largest
// anonymous read-write mappings (a wasm memory is one such mapping, as large as the heap)
function memory(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((status.match(new RegExp(`${k}:\\s+(\\d+)`)) || [0, 0])[1]);
  const maps = [];
  let cur = null;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = line.match(/^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/);
    if (head) {
      cur = { perm: head[3], name: head[4], sizeKB: Number((BigInt('0x' + head[2]) - BigInt('0x' + head[1])) / 1024n), rssKB: 0 };
      maps.push(cur);
    } else if (cur && line.startsWith('Rss:')) cur.rssKB = Number(line.split(/\s+/)[1]);
  }
  const big = maps.filter((m) => m.perm.startsWith('rw') && !m.name && m.rssKB > 16 * 1024)
    .sort((a, b) => b.rssKB - a.rssKB);
  return { rssKB: kb('VmRSS'), hwmKB: kb('VmHWM'), big: big.slice(0, 4).map((m) => ({ sizeMB: +(m.sizeKB / 1024).toFixed(1), rssMB: +(m.rssKB / 1024).toFixed(1) })) };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// CPU time of this process's descendants (the server, Chromium and its zygote-forked renderers),
// polled: Chromium's renderers are not reaped up to this process, so /usr/bin/time never sees
// their CPU time. Max user+sys ticks seen per pid (USER_HZ = 100), summed at the end.
const ticks = new Map();
function pollCpu() {
  const kids = {}, stat = {};
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      (kids[Number(f[1])] ||= []).push(Number(d));
      stat[d] = Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  const stack = [...(kids[process.pid] || [])];
  while (stack.length) {
    const p = stack.pop();
    if (stat[p] !== undefined) ticks.set(p, Math.max(ticks.get(p) || 0, stat[p]));
    stack.push(...(kids[p] || []));
  }
}

async function visit(page, url, phase) {
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e}`));
  const q = new URLSearchParams({ engine, dtype, threads, mode, simd, phase, p: P, n: N, reps: REPS, nctx: NCTX,
                                  steps: TRAIN_STEPS });
  await page.goto(`${url}bench_web.html?${q}`);
  await page.waitForFunction(() => document.body.dataset.result, null, { timeout: 30 * 60000 });
  const r = JSON.parse(await page.evaluate(() => document.body.dataset.result));
  for (const l of logs) note(`${phase}: ${l}`);
  if (r.error) throw new Error(`${phase}: ${r.error}`);
  return r;
}

async function main() {
  const poller = setInterval(pollCpu, 500);
  try { await run(); } finally {
    clearInterval(poller);
    const self = process.cpuUsage();
    let kidTicks = 0;
    for (const t of ticks.values()) kidTicks += t;
    out('own_cpu_s', ((self.user + self.system) / 1e6 + kidTicks / 100).toFixed(2));
  }
}

async function run() {
  const srv = await serve();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'plm-bench-web-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync',
      '--disable-features=SpareRendererForSitePerProcess'],
  });
  const origin = new URL(srv.url).origin;
  const requests = [];
  ctx.on('request', (r) => requests.push(r.url()));
  try {
    // ---- cold: the context's first page, navigated away from about:blank ----
    let page = ctx.pages()[0] || await ctx.newPage();
    const cold = await visit(page, srv.url, 'cold');
    pollCpu();
    const pids = renderers(profile);
    const mem = pids.map((p) => ({ pid: p, ...memory(p) }));
    note(`cold: ${JSON.stringify(cold)}`);
    note(`cold renderers: ${JSON.stringify(mem)}`);
    if (!cold.crossOriginIsolated) throw new Error('the page is not crossOriginIsolated (COOP/COEP headers missing?)');
    if (PLM && cold.threads !== Number(threads)) throw new Error(`asked ${threads} threads, pocketlm.js used ${cold.threads}`);
    if (PLM) note(`${CONFIG}: loaded ${cold.build}, kernel path ${cold.kernelPath}`);
    const relaxed = PLM && cold.kernelPath.startsWith('relaxed'); // 'relaxed' or 'relaxed-dot'
    if (PLM && simd !== 'auto' && relaxed !== (simd === 'relaxed'))
      throw new Error(`asked the ${simd} build, pocketlm.js loaded ${cold.build}`);
    if (PLM) out('relaxed', relaxed ? 1 : 0), out('relaxed_dot', cold.kernelPath === 'relaxed-dot' ? 1 : 0);
    if (cold.fromCache) throw new Error('the cold visit found the model in the cache');
    if (engine !== 'none') {
      out('ttft_cold_ms', cold.ttftMs.toFixed(0));
      out('load_ms', (cold.loadedAt - cold.startedAt).toFixed(0));
    }
    if (cold.prefillTokS) out('prefill_tps', cold.prefillTokS.toFixed(1));
    if (cold.decodeTokS) out('decode_tps', cold.decodeTokS.toFixed(1));
    if (cold.nokvTokS) out('nokv_tps', cold.nokvTokS.toFixed(1));
    if (cold.trainTokS) {
      out('train_tps', cold.trainTokS.toFixed(1));
      out('train_steps', cold.trainSteps);
      out('train_loss_last', cold.trainLoss.toFixed(6));
      if (cold.trainEvalFirst !== undefined) out('train_eval_first', cold.trainEvalFirst.toFixed(6));
      if (cold.trainEvalLast !== undefined) out('train_eval_last', cold.trainEvalLast.toFixed(6));
      out('train_heap_mb', (cold.trainHeapBytes / MB).toFixed(1));
      if (cold.trainInUseBytes) out('train_inuse_mb', (cold.trainInUseBytes / MB).toFixed(1));
    }
    out('rss_mb', (mem.reduce((s, m) => s + m.rssKB, 0) / 1024).toFixed(1));
    out('hwm_mb', (mem.reduce((s, m) => s + m.hwmKB, 0) / 1024).toFixed(1));
    out('renderers', mem.length);
    // the largest anonymous rw mapping: the wasm memory (resident part)
    const big = mem.flatMap((m) => m.big).sort((a, b) => b.rssMB - a.rssMB)[0];
    if (big) { out('bigmap_rss_mb', big.rssMB); out('bigmap_size_mb', big.sizeMB); }
    if (cold.fileBytes) out('file_mb', (cold.fileBytes / MB).toFixed(1));
    if (cold.heapBytes) out('heap_mb', (cold.heapBytes / MB).toFixed(1));
    if (cold.weightBytes) out('weight_mb', (cold.weightBytes / MB).toFixed(1));
    if (cold.nCtx) out('n_ctx', cold.nCtx);
    // ---- cached: a second page in the same profile, once the first one's renderer has exited ----
    if (mode === 'kv') {
      await page.close();
      for (let i = 0; i < 100 && renderers(profile).some((p) => pids.includes(p)); i++) await sleep(100);
      page = await ctx.newPage();
      const cached = await visit(page, srv.url, 'cached');
      pollCpu();
      const mem2 = renderers(profile).map((p) => ({ pid: p, ...memory(p) }));
      note(`cached: ${JSON.stringify(cached)}`);
      note(`cached renderers: ${JSON.stringify(mem2)}`);
      if (!cached.fromCache) throw new Error('the second visit did not find the model in the Cache API');
      out('ttft_cached_ms', cached.ttftMs.toFixed(0));
      out('rss_cached_mb', (mem2.reduce((s, m) => s + m.rssKB, 0) / 1024).toFixed(1));
    }
    const foreign = requests.filter((u) => !/^(data|blob):/.test(u) && new URL(u).origin !== origin);
    if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(' ')}`);
    out('requests', requests.length);
  } finally {
    pollCpu();
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
    srv.proc.removeAllListeners('exit');
    const done = new Promise((r) => srv.proc.on('exit', r));
    srv.proc.kill('SIGINT');
    await done;
  }
}

try {
  await main();
} catch (e) {
  note(`${CONFIG}: FAILED: ${e.stack || e}`);
  console.log(`error ${String(e.message || e).split('\n')[0].replace(/\s+/g, '_').slice(0, 200)}`);
  process.exit(1);
}
