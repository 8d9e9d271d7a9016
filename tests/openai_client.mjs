// openai_client.mjs: the official `openai` npm client against a running `pocketlm serve`
// (tests/openai.test.sh): models list, chat, streaming chat, completions, a stop string and n = 2,
// each compared with the CLI's greedy output that tests/openai_client.py wrote to EXPECT_JSON.
// usage: node tests/openai_client.mjs PORT EXPECT_JSON. Prints one line per check; exits 1 when any
// fails.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [port, expectPath] = process.argv.slice(2);
const want = JSON.parse(readFileSync(expectPath, 'utf8'));
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 300000 });
let failed = 0;
const check = (name, ok, detail) => {
    console.log((ok ? 'ok   ' : 'FAIL ') + 'js: ' + name + (ok ? '' : ': ' + JSON.stringify(detail).slice(0, 400)));
    if (!ok) failed++;
};
const base = { model: want.name, temperature: 0 };

const ids = [];
for await (const m of client.models.list()) ids.push(m.id);
check('models.list names the base', ids.length === 1 && ids[0] === want.name, ids);

let r = await client.chat.completions.create({ ...base, messages: want.messages, max_tokens: 24 });
check('chat == CLI greedy', r.choices[0].message.content === want.chat, [r.choices[0].message.content, want.chat]);

let text = '', usage = null;
const stream = await client.chat.completions.create({ ...base, messages: want.messages, max_tokens: 24, stream: true,
    stream_options: { include_usage: true } });
for await (const ch of stream) {
    if (ch.choices.length) text += ch.choices[0].delta.content ?? '';
    if (ch.usage) usage = ch.usage;
}
check('streaming chat == CLI greedy, with usage', text === want.chat && usage?.completion_tokens > 0, [text, usage]);

let c = await client.completions.create({ ...base, prompt: want.prompt, max_tokens: 12 });
check('completions == CLI greedy', c.choices[0].text === want.completion, [c.choices[0].text, want.completion]);
c = await client.completions.create({ ...base, prompt: want.prompt, max_tokens: 12, stop: want.stop });
check(`completions stop ${JSON.stringify(want.stop)} == CLI --stop`, c.choices[0].text === want.completion_stop,
    [c.choices[0].text, want.completion_stop]);

r = await client.chat.completions.create({ ...base, messages: want.messages, max_tokens: 24, n: 2 });
check('n = 2: two choices, each == CLI greedy',
    r.choices.length === 2 && r.choices.every((ch) => ch.message.content === want.chat), r.choices);

try {
    await client.chat.completions.create({ ...base, model: 'gpt-4o', messages: want.messages });
    check('unknown model raises NotFoundError', false, 'no exception');
} catch (e) {
    check('unknown model raises NotFoundError', e instanceof OpenAI.NotFoundError && e.status === 404, String(e));
}
process.exit(failed ? 1 : 0);
