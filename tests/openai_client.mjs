// openai_client.mjs: the official `openai` npm client against a running `pocketlm serve`
// (tests/openai.test.sh): models list, chat, streaming chat, completions, a stop string, n = 2 and
// logprobs (chat's and completions', whole and streamed), each compared with what
// tests/openai_client.py wrote to EXPECT_JSON: the CLI's greedy output, and logprobs it checked
// against `pocketlm perplexity`.
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

// logprobs: the same tokens and values as the python client's (which checked them)
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const chatLp = (content) => content.map((t) => [t.token, t.logprob, t.top_logprobs.map((x) => x.logprob)]);
r = await client.chat.completions.create({ ...base, messages: want.messages, max_tokens: 24, n: 2, logprobs: true,
    top_logprobs: 3 });
check('chat logprobs, n = 2 == python client\'s', r.choices.every((ch) => same(chatLp(ch.logprobs.content), want.chat_logprobs)),
    r.choices[0].logprobs);
let lps = [];
for await (const ch of await client.chat.completions.create({ ...base, messages: want.messages, max_tokens: 24,
    stream: true, logprobs: true, top_logprobs: 3 }))
    if (ch.choices.length && ch.choices[0].logprobs) lps.push(...chatLp(ch.choices[0].logprobs.content));
check('streamed chat logprobs == python client\'s', same(lps, want.chat_logprobs), lps);
c = await client.completions.create({ ...base, prompt: want.prompt, max_tokens: 12, logprobs: 5 });
const L = c.choices[0].logprobs;
const W = want.completion_logprobs, byKey = (tops) => tops.map((d) => Object.entries(d).sort()); // (JS orders keys like "1" first)
check('completions logprobs (tokens, token_logprobs, top_logprobs, text_offset) == python client\'s',
    same([L.tokens, L.token_logprobs, byKey(L.top_logprobs), L.text_offset], [W[0], W[1], byKey(W[2]), W[3]]), L);

try {
    await client.chat.completions.create({ ...base, model: 'gpt-4o', messages: want.messages });
    check('unknown model raises NotFoundError', false, 'no exception');
} catch (e) {
    check('unknown model raises NotFoundError', e instanceof OpenAI.NotFoundError && e.status === 404, String(e));
}
process.exit(failed ? 1 : 0);
