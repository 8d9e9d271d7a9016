// onnx_transformersjs.mjs: transformers.js loads pocketlm's exported directory as it is and
// generates greedily. usage: node tests/onnx_transformersjs.mjs DIR DTYPE N PROMPT
// (DTYPE fp32 | q8 | q4: onnx/model.onnx, model_quantized.onnx, model_q4.onnx). Local files only.
// Prints one JSON object: {"dtype", "text", "ids"} (the continuation without the prompt).
import { AutoTokenizer, pipeline, env } from '@huggingface/transformers';
import path from 'node:path';

const [dir, dtype, n, prompt] = process.argv.slice(2);
if (!prompt) {
    console.error('usage: node tests/onnx_transformersjs.mjs DIR fp32|q8|q4 N PROMPT');
    process.exit(2);
}
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(dir)) + '/';
const id = path.basename(path.resolve(dir));
const gen = await pipeline('text-generation', id, { dtype, local_files_only: true });
const out = await gen(prompt, { max_new_tokens: Number(n), do_sample: false, return_full_text: false });
const tok = await AutoTokenizer.from_pretrained(id, { local_files_only: true });
const text = out[0].generated_text;
console.log(JSON.stringify({ dtype, text, ids: tok.encode(text, { add_special_tokens: false }) }));
