// server.mjs: a tiny HTTP server (node:http) around the wasm build of pocketlm: the seed's app.js use
// case. The model is loaded once; requests are served one at a time (one session, one KV cache:
// the template's common prefix is not recomputed between requests).
//   node examples/node/server.mjs MODEL.gguf [--port 8080] [--lora DIR] [--threads N] [--dtype f32]
//   curl -s localhost:8080/paraphrase -d '{"text": "The cat sat on the mat."}'
//   -> {"paraphrase": "...", "tokens": 12, "stop_reason": "token", "decode_tok_s": 20.1, "ms": 640}
// POST /paraphrase {text, temperature?, top_k?, max_tokens?, seed?}; GET /health.
import http from 'node:http';
import { PocketLM } from '../../build/web/pocketlm.js';

const args = process.argv.slice(2);
const flags = {};
const pos = [];
for (let i = 0; i < args.length; i++) {
  if (args[i].startsWith('--')) flags[args[i].slice(2)] = args[++i];
  else pos.push(args[i]);
}
if (pos.length < 1) {
  console.error('usage: node examples/node/server.mjs MODEL.gguf [--port 8080] [--host 127.0.0.1] ' +
                '[--lora DIR] [--threads N] [--dtype q8_0|f32]');
  process.exit(2);
}
const lm = await PocketLM.load(pos[0], {
  dtype: flags.dtype ?? 'q8_0', threads: Number(flags.threads ?? 1), lora: flags.lora,
});
console.log(`loaded ${pos[0]} in ${lm.loadSeconds.toFixed(2)} s (${lm.dtype}, ${lm.threads} thread(s))`);

const MAX_BODY = 1 << 16;
function send(res, code, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') return send(res, 200, { ok: true });
  if (req.method !== 'POST' || req.url !== '/paraphrase')
    return send(res, 404, { error: 'POST /paraphrase {"text": "..."}' });
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => {
    body += c;
    if (body.length > MAX_BODY) { send(res, 413, { error: 'body too large' }); req.destroy(); }
  });
  req.on('end', async () => {
    if (res.writableEnded) return;
    let q;
    try { q = JSON.parse(body); } catch { return send(res, 400, { error: 'the body is not JSON' }); }
    if (typeof q?.text !== 'string' || !q.text.trim())
      return send(res, 400, { error: 'want {"text": "..."}' });
    // stop generating when the client goes away
    const ac = new AbortController();
    res.on('close', () => { if (!res.writableEnded) ac.abort(); });
    const t0 = performance.now();
    try {
      const r = await lm.paraphrase(q.text, { // absent fields: the task's defaults (paraphraseDefaults)
        temperature: q.temperature, topK: q.top_k,
        maxTokens: Math.min(256, q.max_tokens ?? lm.paraphraseDefaults.maxTokens), seed: q.seed,
        signal: ac.signal,
      });
      send(res, 200, { paraphrase: r.text.trim(), tokens: r.tokens.length, stop_reason: r.stopReason,
                       prompt_tokens: r.promptTokens, cached_tokens: r.cachedTokens,
                       decode_tok_s: Number(r.decodeTokS.toFixed(1)),
                       ms: Math.round(performance.now() - t0) });
    } catch (e) {
      send(res, 500, { error: String(e.message ?? e) });
    }
  });
});
const port = Number(flags.port ?? 8080), host = flags.host ?? '127.0.0.1';
server.listen(port, host, () => console.log(`POST http://${host}:${port}/paraphrase {"text": "..."}`));
const stop = () => { server.close(); lm.free(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
