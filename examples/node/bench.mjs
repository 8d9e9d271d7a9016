// bench.mjs: speed of the wasm build in node, printed like `pocketlm bench`
// (`name dtype threads n ms tok/s`): load, prefill of -p tokens, decode of -n tokens (best of
// --reps), peak RSS of this process; first the build loaded and its kernel path.
//   node examples/node/bench.mjs MODEL.gguf [--dtype q8_0|f32] [--threads N] [-p 128] [-n 128] [--reps 3]
//        [--simd auto|relaxed|simd128]   (relaxed needs node --experimental-wasm-relaxed-simd on node 20)
import { PocketLM } from '../../build/web/pocketlm.js';
import process from 'node:process';
import fs from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const model = args.find((a, i) => !a.startsWith('-') && (i === 0 || !args[i - 1].startsWith('-')));
if (!model) {
  console.error('usage: node examples/node/bench.mjs MODEL.gguf [--dtype q8_0|f32] [--threads N] [-p N] [-n N] [--reps N] [--simd auto|relaxed|simd128]');
  process.exit(2);
}
const dtype = opt('--dtype', 'q8_0'), threads = Number(opt('--threads', 1));
const P = Number(opt('-p', 128)), N = Number(opt('-n', 128)), reps = Number(opt('--reps', 3));
const simd = opt('--simd', 'auto');

const line = (name, n, ms, toks) => console.log(
  `${name.padEnd(8)} ${dtype.padEnd(5)} ${String(threads).padStart(2)} ${String(n).padStart(5)} ` +
  `${ms.toFixed(1).padStart(10)} ${toks.toFixed(1).padStart(10)}`);

const t0 = performance.now();
const lm = await PocketLM.load(model, { dtype, threads, simd });
console.log(`build ${lm.build} kernel_path ${lm.kernelPath}`);
console.log('name     dtype th     n         ms      tok/s');
line('load', 0, performance.now() - t0, 0);
// a fixed prompt of P ids (as `pocketlm bench` does: ids, no tokenizer needed)
const ids = Array.from({ length: P }, (_, i) => 100 + ((i * 7919) % 1000));
let best = Infinity;
for (let r = 0; r < reps; r++) {
  const t = performance.now();
  await lm.decode(ids);
  best = Math.min(best, performance.now() - t);
}
line('prefill', P, best, P / best * 1000);
best = Infinity;
for (let r = 0; r < reps; r++) {
  const res = await lm.generate(ids.slice(0, 8), { maxTokens: N, stopTokens: [], cache: false });
  const ms = res.generatedTokens / res.decodeTokS * 1000;
  best = Math.min(best, ms / res.generatedTokens * N);
}
line('decode', N, best, N / best * 1000);
const rss = fs.readFileSync('/proc/self/status', 'utf8').match(/VmHWM:\s+(\d+)/);
console.log(`peak_rss ${dtype.padEnd(5)} ${String(threads).padStart(2)}     0          - ` +
            `${(Number(rss?.[1] ?? 0) / 1024).toFixed(1).padStart(10)} MB   (wasm heap ${(lm.memoryBytes / 1048576).toFixed(1)} MB)`);
lm.free();
