// test_wasm.mjs: the wasm build (build/web/pocketlm.js, run by node) against the native library.
// 1. tiny model (tests/ref/tiny-tied converted to GGUF; no tokenizer): for f32, q8_0, q4_1, q5_1, with the
//    single-threaded and the threaded build, the logits of a fixed id list equal the native ones
//    (tests/wasm_logits.c) within atol 1e-5 + rtol 1e-5 (libm and SIMD differ), and a 16-token
//    greedy continuation is the same ids; the same (f32, 1 thread) for the tiny Llama 3, Qwen2 and
//    Qwen3 models of tests/make_ref_arch.py.
// 2. real SmolLM2 (when models/SmolLM2-135M-Instruct.Q4_1.gguf is present), greedy: for f32 and
//    q8_0, text and ids of generate and paraphrase equal `pocketlm generate|paraphrase --temp 0
//    --json`; for q8_0 also the prompt's logits equal the native ones within atol 1e-5 + rtol 1e-5;
//    the same for the model written as Q6_K and as Q4_K_M (`pocketlm convert --quant q6_k|q4_k_m`)
//    loaded with auto (Q6_K and Q4_K kept).
// 3. which build: PLM_EXPECT_SIMD (set by wasm.test.sh: 'simd128' when node runs without relaxed
//    SIMD, 'relaxed' with it) is what feature detection must pick, for every load above. With
//    relaxed SIMD, the two builds are also compared with each other: q8_0, q4_1, q5_1 logits bit for bit
//    (one canonical order), f32 within the tolerance above (relaxed madd may fuse).
// Run by tests/wasm.test.sh, which builds everything first. Exits non-zero on any failure.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const BUILD = process.env.BUILD || 'build';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const BUILD_DIR = path.resolve(ROOT, BUILD); // BUILD may be relative to the repo or absolute
const { PocketLM, relaxedSimd } = await import(pathToFileURL(path.join(BUILD_DIR, 'web/pocketlm.js')).href);
const EXPECT_SIMD = process.env.PLM_EXPECT_SIMD || (relaxedSimd() ? 'relaxed' : 'simd128');
process.setMaxListeners(64); // each emscripten module instance adds process listeners
const native = (args) => execFileSync(args[0], args.slice(1), {
  encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'] });

let passed = 0, failed = 0;
function check(ok, what, detail = '') {
  if (ok) passed++;
  else { failed++; console.log(`FAIL ${what} ${detail}`); }
}

// allclose: |x - r| <= atol + rtol |r| everywhere; prints the worst element either way.
function allclose(x, ref, atol, rtol, what) {
  let worst = -1, worstErr = 0, maxAbs = 0, bad = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(x[i] - ref[i]), lim = atol + rtol * Math.abs(ref[i]);
    maxAbs = Math.max(maxAbs, e);
    if (!(e <= lim)) bad++;
    if (!(e / lim <= worstErr)) { worstErr = e / lim; worst = i; }
  }
  const ok = x.length === ref.length && bad === 0;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: n ${ref.length}, max abs err ${maxAbs.toExponential(2)}` +
              `, worst [${worst}] ${x[worst]} vs ${ref[worst]}, ${bad} outside`);
  check(ok, what);
}

// checkBuild: lm is the build feature detection must pick (or the one forced with simd)
function checkBuild(lm, threads, what, simd = EXPECT_SIMD) {
  const want = `pocketlm${simd === 'relaxed' ? '-relaxed' : ''}${threads > 1 ? '-mt' : ''}.mjs`;
  // relaxed: relaxed-dot where the engine's dot-add is one instruction (cpu.c's probe)
  const paths = simd === 'relaxed' ? ['relaxed', 'relaxed-dot'] : ['wasm'];
  check(lm.build === want && paths.includes(lm.kernelPath),
        `${what}: build ${want}, kernel path ${paths.join(' or ')}`, `got ${lm.build}, ${lm.kernelPath}`);
}

// bitsEqual: the same float32 bit patterns (NaN included)
function bitsEqual(a, b) {
  const x = new Uint32Array(Float32Array.from(a).buffer), y = new Uint32Array(Float32Array.from(b).buffer);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

console.log(`node ${process.version}, relaxed SIMD ${relaxedSimd() ? 'on' : 'off'}: expecting the ${EXPECT_SIMD} build`);
check(relaxedSimd() === (EXPECT_SIMD === 'relaxed'), `feature detection says relaxed SIMD is ${EXPECT_SIMD === 'relaxed' ? 'on' : 'off'}`);

// ---- 1. tiny model: logits and greedy ids vs native ----

const tiny = path.join(fs.mkdtempSync('/tmp/plm-wasm-'), 'tiny-tied.gguf');
native([path.join(BUILD_DIR, 'pocketlm'), 'convert', path.join(ROOT, 'tests/ref/tiny-tied'), tiny]);
const ids = [1, 17, 250, 3, 99, 42, 7]; // odd T = 7 to hit tail paths
const N_GREEDY = 16;
for (const dtype of ['f32', 'q8_0', 'q4_1', 'q5_1', 'f16', 'bf16']) {
  const ref = JSON.parse(native([path.join(BUILD_DIR, 'tests/wasm_logits'), tiny, dtype, '1',
                                 String(N_GREEDY), ...ids.map(String)]));
  for (const threads of [1, 2]) {
    const what = `tiny ${dtype} threads ${threads}`;
    const lm = await PocketLM.load(tiny, { dtype, threads });
    check(lm.threads === threads, `${what}: threads`, `got ${lm.threads}`);
    checkBuild(lm, threads, what);
    const logits = await lm.decode(ids);
    allclose(logits, ref.logits, 1e-5, 1e-5, `${what}: logits`);
    if (EXPECT_SIMD === 'relaxed') { // the SIMD128 build on the same engine
      const lm128 = await PocketLM.load(tiny, { dtype, threads, simd: 'simd128' });
      checkBuild(lm128, threads, `${what}: forced`, 'simd128');
      const l128 = await lm128.decode(ids);
      // f32, f16 and bf16 run the f32 kernels, whose relaxed madd may fuse: within rounding only
      if (!['f32', 'f16', 'bf16'].includes(dtype))
        check(bitsEqual(logits, l128), `${what}: logits == the SIMD128 build's, bit for bit`);
      else allclose(logits, l128, 1e-5, 1e-5, `${what}: logits vs the SIMD128 build`);
      lm128.free();
    }
    const g = await lm.generate(ids, { maxTokens: N_GREEDY, temperature: 0, stopTokens: [] });
    const same = JSON.stringify(g.tokens) === JSON.stringify(ref.greedy);
    console.log(`${same ? 'ok  ' : 'FAIL'} ${what}: greedy ids ${JSON.stringify(g.tokens)}`);
    check(same, `${what}: greedy ids`, `native ${JSON.stringify(ref.greedy)}`);
    // the KV cache reuse (a prompt sharing a prefix) gives the same ids as a fresh start
    const g2 = await lm.generate(ids, { maxTokens: N_GREEDY, temperature: 0, stopTokens: [] });
    check(g2.cachedTokens === ids.length - 1 && JSON.stringify(g2.tokens) === JSON.stringify(ref.greedy),
          `${what}: cached prefix`, `cached ${g2.cachedTokens}, ids ${JSON.stringify(g2.tokens)}`);
    // an aborted signal stops before the first token
    const ac = new AbortController();
    ac.abort();
    const g3 = await lm.generate(ids, { maxTokens: 4, signal: ac.signal });
    check(g3.stopReason === 'abort' && g3.tokens.length === 0, `${what}: abort`);
    // the paraphrase task comes from the library: its defaults, and nothing to rephrase is an Error
    const d = lm.paraphraseDefaults;
    check(d.maxTokens === 64 && d.topK === 8 && d.topP === 1 && d.minP === 0 &&
          d.repetitionPenalty === 1, `${what}: paraphrase defaults`, JSON.stringify(d));
    for (const text of ['', ' \n\t ']) {
      let err = null;
      try { await lm.paraphrase(text); } catch (e) { err = e; }
      check(err instanceof Error && /rephrase/.test(err.message) && err.status === -1,
            `${what}: paraphrase(${JSON.stringify(text)}) rejects`, String(err));
    }
    // the diversity knob: the library's mapping; out of [0, 1] or not a number rejects
    const s0 = lm.taskSettings(0), s1 = lm.taskSettings(1);
    check(JSON.stringify(lm.taskSettings(d.diversity)) === JSON.stringify(d) && d.diversity >= 0 &&
          d.diversity <= 1 && s0.candidates === 1 && s0.copyPenalty === 0 && s0.temperature === 0 &&
          s0.copyRetry === 0 && s1.copyRetry > 0 && s1.temperature === 0 && d.maxTokens === 64 &&
          s0.keepFacts === true && s1.keepFacts === true,
          `${what}: taskSettings`, JSON.stringify([s0, d, s1]));
    for (const bad of [-0.1, 1.5, 'high', NaN]) {
      let err = null;
      try { await lm.paraphrase('Hello there.', { diversity: bad }); } catch (e) { err = e; }
      check(err instanceof Error && /diversity/.test(err.message),
            `${what}: paraphrase diversity ${bad} rejects`, String(err));
    }
    lm.free();
  }
}

// ---- 1b. the other families (tests/make_ref_arch.py: Llama 3 RoPE scaling, Qwen2 biases, Qwen3
// q/k norms, Gemma 3) from GGUF: logits and greedy ids vs native ----

for (const fam of ['llama3', 'qwen2', 'qwen3', 'gemma3']) {
  const file = path.join(path.dirname(tiny), `tiny-${fam}.gguf`);
  native([path.join(BUILD_DIR, 'pocketlm'), 'convert', path.join(ROOT, `tests/ref/tiny-${fam}`), file]);
  const ref = JSON.parse(native([path.join(BUILD_DIR, 'tests/wasm_logits'), file, 'f32', '1',
                                 String(N_GREEDY), ...ids.map(String)]));
  const lm = await PocketLM.load(file, { dtype: 'f32', threads: 1 });
  allclose(await lm.decode(ids), ref.logits, 1e-5, 1e-5, `tiny-${fam} f32: logits`);
  const g = await lm.generate(ids, { maxTokens: N_GREEDY, temperature: 0, stopTokens: [] });
  check(JSON.stringify(g.tokens) === JSON.stringify(ref.greedy), `tiny-${fam} f32: greedy ids`,
        `wasm ${JSON.stringify(g.tokens)}, native ${JSON.stringify(ref.greedy)}`);
  lm.free();
}

// ---- 1c. an F16 KV cache (kvType 'f16'): logits and greedy ids vs native with the same cache,
// on the tied model (q8_0 weights, 1 and 2 threads) and Gemma 3 (sliding-window layers) ----

for (const [name, dtype, threads] of [['tiny-tied', 'q8_0', 1], ['tiny-tied', 'q8_0', 2],
                                      ['tiny-gemma3', 'f32', 1]]) {
  const file = path.join(path.dirname(tiny), `${name}.gguf`);
  const what = `${name} ${dtype} threads ${threads} kvType f16`;
  const ref = JSON.parse(native([path.join(BUILD_DIR, 'tests/wasm_logits'), file, `${dtype}:f16`,
                                 String(threads), String(N_GREEDY), ...ids.map(String)]));
  const lm = await PocketLM.load(file, { dtype, threads, kvType: 'f16' });
  check(lm.kvType === 'f16', `${what}: kvType`, `got ${lm.kvType}`);
  allclose(await lm.decode(ids), ref.logits, 1e-5, 1e-5, `${what}: logits`);
  const g = await lm.generate(ids, { maxTokens: N_GREEDY, temperature: 0, stopTokens: [] });
  check(JSON.stringify(g.tokens) === JSON.stringify(ref.greedy), `${what}: greedy ids`,
        `wasm ${JSON.stringify(g.tokens)}, native ${JSON.stringify(ref.greedy)}`);
  lm.free();
}
{
  let err = null;
  try { await PocketLM.load(tiny, { kvType: 'bf16' }); } catch (e) { err = e; }
  check(err instanceof Error && /kvType/.test(err.message), 'kvType bf16 rejects', String(err));
}

// ---- 2. real SmolLM2: greedy text equals the native CLI ----
// f32 (1 and 2 threads) and q8_0: text and ids equal. A q8_0 matmul re-quantizes its input, so a
// last-bit difference can flip an int8 rounding and grow; every Q8_0 path (wasm, scalar, AVX2,
// AVX-512) therefore sums in one canonical order and gives the same bits (src/matmul.c), and the
// q8_0 logits are held to the same 1e-5 as the tiny model's (only libm and the f32 paths differ).

const real = path.join(ROOT, 'models/SmolLM2-135M-Instruct.Q4_1.gguf');
if (!fs.existsSync(real)) {
  console.log(`SKIP wasm/real-model: no ${path.relative(ROOT, real)} (install with: make model)`);
} else {
  const prompt = 'The three most important things to know about the ocean are';
  const para = 'The quick brown fox jumps over the lazy dog near the river bank.';
  const cli = (cmd, dtype, text) => JSON.parse(native([path.join(BUILD_DIR, 'pocketlm'), cmd,
    '-m', real, '--dtype', dtype, '--temp', '0', '-n', '32', '--threads', '1', '--json',
    ...(cmd === 'generate' ? ['-p', text] : [text])]).trim().split('\n').pop());
  for (const [dtype, threads] of [['f32', 1], ['f32', 2], ['q8_0', 1]]) {
    const refGen = cli('generate', dtype, prompt), refPara = cli('paraphrase', dtype, para);
    const lm = await PocketLM.load(real, { dtype, threads });
    const what = `SmolLM2 ${dtype} threads ${threads}`;
    checkBuild(lm, threads, what);
    let streamed = '';
    const g = await lm.generate(prompt, { maxTokens: 32, temperature: 0, onToken: (t) => { streamed += t; } });
    const p = await lm.paraphrase(para, { maxTokens: 32, temperature: 0, topK: 0 });
    check(streamed === g.text, `${what}: streamed pieces concatenate to the text`);
    const t = lm.tokenize(prompt);
    check(lm.detokenize(t) === prompt, `${what}: tokenize/detokenize round trip`);
    const same = g.text === refGen.text && p.text === refPara.text;
    console.log(`${same ? 'same' : 'diff'} ${what}: generate ${JSON.stringify(g.text)}`);
    if (!same) console.log(`     native: ${JSON.stringify(refGen.text)}`);
    console.log(`     paraphrase ${JSON.stringify(p.text)} (native ${JSON.stringify(refPara.text)})`);
    check(g.text === refGen.text, `${what}: generate text`);
    check(JSON.stringify(g.tokens) === JSON.stringify(refGen.tokens), `${what}: generate ids`);
    check(g.stopReason === refGen.stop_reason, `${what}: stop reason`);
    check(p.text === refPara.text, `${what}: paraphrase text`);
    if (dtype === 'q8_0') { // the diversity knob and reranking: the same text as the CLI's
      const args = ['--seed', '3', '-n', '24', '--dtype', dtype, '--threads', '1', '--json'];
      const cliRun = (extra) => JSON.parse(native([path.join(BUILD_DIR, 'pocketlm'), ...extra,
        '-m', real, ...args]).trim().split('\n').pop());
      for (const dv of [0, 1]) {
        const want = cliRun(['paraphrase', para, '--diversity', String(dv)]);
        const got = await lm.paraphrase(para, { diversity: dv, seed: 3, maxTokens: 24 });
        check(got.text === want.text && got.candidates === want.candidates &&
              got.sampledTokens === want.sampled_tokens,
              `${what}: paraphrase diversity ${dv} == pocketlm paraphrase --diversity ${dv}`,
              JSON.stringify([got.text, got.candidates, want.text, want.candidates]));
      }
      const want = cliRun(['generate', '-p', prompt, '--candidates', '3', '--block', '1', '--temp', '0.8']);
      const got = await lm.generate(prompt, { candidates: 3, copyPenalty: Infinity, temperature: 0.8,
                                              seed: 3, maxTokens: 24 });
      check(got.text === want.text && JSON.stringify(got.tokens) === JSON.stringify(want.tokens) &&
            got.candidates === 3, `${what}: generate with candidates and blocking == the CLI's`,
            JSON.stringify([got.text, want.text]));
      const ref = JSON.parse(native([path.join(BUILD_DIR, 'tests/wasm_logits'), real, dtype, '1',
                                     '1', ...Array.from(t).map(String)]));
      const logits = await lm.decode(t);
      allclose(logits, ref.logits, 1e-5, 1e-5, `${what}: prompt logits`);
      if (EXPECT_SIMD === 'relaxed') {
        const lm128 = await PocketLM.load(real, { dtype, threads, simd: 'simd128' });
        check(bitsEqual(logits, await lm128.decode(t)), `${what}: prompt logits == the SIMD128 build's, bit for bit`);
        lm128.free();
      }
    }
    lm.free();
  }
  // the model written as Q6_K (its down_proj Q6_K, the rest Q8_0) and as Q4_K_M (its down_proj
  // Q4_K or Q6_K, most of the rest Q5_0) and loaded with auto: the prompt's logits == native's
  // within the same 1e-5, its greedy ids the same (and with relaxed SIMD the SIMD128 build's
  // logits bit for bit)
  for (const quant of ['q6_k', 'q4_k_m']) {
    const file = path.join(path.dirname(tiny), `smollm2-${quant}.gguf`);
    native([path.join(BUILD_DIR, 'pocketlm'), 'convert', real, file, '--quant', quant]);
    const lmk = await PocketLM.load(file, { dtype: 'auto', threads: 1 });
    const tk = lmk.tokenize(prompt);
    const refk = JSON.parse(native([path.join(BUILD_DIR, 'tests/wasm_logits'), file, 'auto', '1',
                                    String(N_GREEDY), ...Array.from(tk).map(String)]));
    const lk = await lmk.decode(tk);
    allclose(lk, refk.logits, 1e-5, 1e-5, `SmolLM2 ${quant} file (auto): prompt logits`);
    if (EXPECT_SIMD === 'relaxed') {
      const lm128 = await PocketLM.load(file, { dtype: 'auto', threads: 1, simd: 'simd128' });
      check(bitsEqual(lk, await lm128.decode(tk)), `SmolLM2 ${quant}: prompt logits == the SIMD128 build's, bit for bit`);
      lm128.free();
    }
    const gk = await lmk.generate(Array.from(tk), { maxTokens: N_GREEDY, temperature: 0, stopTokens: [] });
    check(JSON.stringify(gk.tokens) === JSON.stringify(refk.greedy), `SmolLM2 ${quant}: greedy ids`,
          `${JSON.stringify(gk.tokens)} native ${JSON.stringify(refk.greedy)}`);
    lmk.free();
  }
}

fs.rmSync(path.dirname(tiny), { recursive: true, force: true });
console.log(`test_wasm: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
