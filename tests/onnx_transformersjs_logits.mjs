// onnx_transformersjs_logits.mjs: transformers.js (AutoModelForCausalLM, local files only) loads
// pocketlm's exported directory as it is, picks its class from config.json's model_type, and its
// fp32 logits of the given ids equal a reference's (HF transformers').
// usage: node tests/onnx_transformersjs_logits.mjs DIR IDS_JSON WANT_F32 (raw f32, (n, vocab))
// Prints the class and the max |difference|; exits 1 above 1e-4.
import { AutoModelForCausalLM, Tensor, env } from '@huggingface/transformers';
import fs from 'node:fs';
import path from 'node:path';

const [dir, idsJson, wantPath] = process.argv.slice(2);
if (!wantPath) {
    console.error('usage: node tests/onnx_transformersjs_logits.mjs DIR IDS_JSON WANT_F32');
    process.exit(2);
}
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(dir)) + '/';
const id = path.basename(path.resolve(dir));
const ids = JSON.parse(idsJson);
const model = await AutoModelForCausalLM.from_pretrained(id, { dtype: 'fp32', local_files_only: true });
const shape = [1, ids.length];
const out = await model({
    input_ids: new Tensor('int64', BigInt64Array.from(ids.map(BigInt)), shape),
    attention_mask: new Tensor('int64', BigInt64Array.from(ids.map(() => 1n)), shape),
});
const got = out.logits.data, want = new Float32Array(fs.readFileSync(wantPath).buffer.slice(0));
let err = got.length === want.length ? 0 : Infinity;
for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
console.log(`${id}: transformers.js ${model.constructor.name}, max |logits - HF| ${err.toExponential(2)}`);
process.exit(err <= 1e-4 ? 0 : 1);
