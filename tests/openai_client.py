#!/usr/bin/env python3
"""openai_client.py: the official `openai` Python client against a running `pocketlm serve`
(tests/openai.test.sh), each answer compared with the CLI's greedy output (temperature 0).

usage: openai_client.py PORT BIN MODEL EXPECT_JSON
  models list; chat; streaming chat (with usage); completions; a stop string (completions and
  chat); n = 2; max_completion_tokens; a seed repeats a sampled answer; errors raise the client's
  exceptions; logprobs: chat's (top_logprobs, n = 2, streamed) and completions' (legacy shape,
  text_offset, streamed), greedy and sampled at temperature 0.7, each token's logprob ==
  `BIN perplexity --json` of the prompt and the answer (the model's distribution at temperature 1:
  the sampling settings must not show), the top ones sorted, the greedy token the first of them. The chat prompt the CLI gets is the model's own chat template (GGUF
  tokenizer.chat_template) rendered with jinja2, as transformers' apply_chat_template does: an
  oracle independent of the server's ChatML code. Writes the expected texts to EXPECT_JSON for
  tests/openai_client.mjs (the npm client). Prints one line per check; exits 1 when any fails.
"""
import json
import os
import subprocess
import sys

import gguf
import jinja2
import openai

import http_check
from http_check import check

PORT, BIN, MODEL, EXPECT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
NAME = os.path.basename(MODEL)


def cli(prompt, n, stops=()):
    args = [BIN, "generate", "-m", MODEL, "--dtype", "q8_0", "--temp", "0", "-n", str(n), "--json", "-p", prompt]
    for s in stops:
        args += ["--stop", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout)["text"]


def scored(text, n_last):
    """BIN perplexity's log-probabilities of the last n_last tokens of text (prompt + answer), and
    how many tokens the whole text has"""
    path = os.path.join(os.path.dirname(EXPECT), "scored.txt")
    with open(path, "w") as f:
        f.write(text)
    args = [BIN, "perplexity", "-m", MODEL, "--dtype", "q8_0", "--json", "-f", path]
    r = json.loads(subprocess.run(args, capture_output=True, text=True, timeout=300).stdout)
    return [t["logprob"] for t in r["tokens"][-n_last:]], r["n_tokens"]


def close(a, b, tol=2e-3):
    """two lists of log-probabilities agree (the server decodes token by token in the batch,
    perplexity whole blocks: the same model, other kernels)"""
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def check_logprobs(name, prompt, text, tokens, lps, tops, prompt_tokens, greedy):
    """one answer's logprobs: the tokens' texts joined are the text, each logprob that of
    perplexity, the top ones sorted (the greedy token first among them)"""
    want, n_all = scored(prompt + text, len(lps))
    check(f"{name}: the tokens' texts joined == the answer", "".join(tokens) == text, (tokens, text))
    check(f"{name}: each token's logprob == pocketlm perplexity (temperature 1)",
          n_all == prompt_tokens + len(lps) and close(lps, want), (n_all, prompt_tokens, lps, want))
    check(f"{name}: top logprobs sorted, the sampled token at most the first",
          all(t == sorted(t, reverse=True) and lp <= t[0] + 1e-6 for t, lp in zip(tops, lps) if t), (tops, lps))
    if greedy:
        check(f"{name}: greedy: each token is the most likely", all(abs(lp - t[0]) < 1e-6 for t, lp in zip(tops, lps)),
              (tops, lps))


def chat_prompt(messages):
    f = gguf.GGUFReader(MODEL).fields["tokenizer.chat_template"]
    tmpl = bytes(f.parts[f.data[0]]).decode()
    return jinja2.Environment().from_string(tmpl).render(messages=messages, add_generation_prompt=True)


client = openai.OpenAI(base_url=f"http://127.0.0.1:{PORT}/v1", api_key="unused", max_retries=0, timeout=300)
Q = [{"role": "user", "content": "What is the capital of France?"}]
P = "The three primary colors are"
want_chat = cli(chat_prompt(Q), 24)
want_cmpl = cli(P, 12)
print(f"note: CLI greedy chat {want_chat!r}, completion {want_cmpl!r}")

ids = [m.id for m in client.models.list()]
check("models.list names the base", ids == [NAME], ids)

r = client.chat.completions.create(model=NAME, messages=Q, temperature=0, max_tokens=24)
check("chat == CLI greedy", r.choices[0].message.content == want_chat and r.choices[0].message.role == "assistant",
      (r.choices[0].message.content, want_chat))
check("chat usage", r.usage.prompt_tokens > 10 and 0 < r.usage.completion_tokens <= 24 and
      r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)
check("chat id and object", r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == NAME, r)

text, finish, usage = "", None, None
for ch in client.chat.completions.create(model=NAME, messages=Q, temperature=0, max_tokens=24, stream=True,
                                         stream_options={"include_usage": True}):
    if ch.choices:
        text += ch.choices[0].delta.content or ""
        finish = ch.choices[0].finish_reason or finish
    if ch.usage:
        usage = ch.usage
check("streaming chat == CLI greedy", text == want_chat and finish in ("stop", "length"), (text, finish))
check("streaming chat usage (stream_options.include_usage)",
      usage is not None and usage.completion_tokens == r.usage.completion_tokens, usage)

c = client.completions.create(model=NAME, prompt=P, temperature=0, max_tokens=12)
check("completions == CLI greedy", c.choices[0].text == want_cmpl and c.choices[0].finish_reason == "length",
      (c.choices[0].text, want_cmpl))
text = "".join(ch.choices[0].text for ch in
               client.completions.create(model=NAME, prompt=P, temperature=0, max_tokens=12, stream=True) if ch.choices)
check("streaming completions == CLI greedy", text == want_cmpl, (text, want_cmpl))

# a stop string from the middle of the greedy text: the answer ends before it, as the CLI's --stop
words = want_cmpl.split()
stop = " " + words[len(words) // 2]
want_stop = cli(P, 12, [stop])
c = client.completions.create(model=NAME, prompt=P, temperature=0, max_tokens=12, stop=[stop, "\n\n\n"])
check(f"completions stop {stop!r} == CLI --stop", c.choices[0].text == want_stop and c.choices[0].finish_reason == "stop",
      (c.choices[0].text, want_stop))
cw = want_chat.split()
chat_stop = " " + cw[len(cw) // 2]
want_chat_stop = cli(chat_prompt(Q), 24, [chat_stop])
r = client.chat.completions.create(model=NAME, messages=Q, temperature=0, max_tokens=24, stop=chat_stop)
check(f"chat stop {chat_stop!r} == CLI --stop", r.choices[0].message.content == want_chat_stop, (r.choices[0].message.content, want_chat_stop))

r = client.chat.completions.create(model=NAME, messages=Q, temperature=0, max_tokens=24, n=2)
check("n = 2: two choices, each == CLI greedy", [ch.index for ch in r.choices] == [0, 1] and
      all(ch.message.content == want_chat for ch in r.choices), r.choices)
check("n = 2: usage counts both", usage is not None and r.usage.completion_tokens == 2 * usage.completion_tokens,
      (r.usage, usage))
r = client.chat.completions.create(model=NAME, messages=Q, max_completion_tokens=3)
check("max_completion_tokens 3", r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length", r)
a = client.chat.completions.create(model=NAME, messages=Q, temperature=1.0, top_p=0.9, seed=42, max_tokens=16, n=2)
b = client.chat.completions.create(model=NAME, messages=Q, temperature=1.0, top_p=0.9, seed=42, max_tokens=16, n=2)
check("a seed repeats sampled answers", [x.message.content for x in a.choices] == [x.message.content for x in b.choices],
      (a.choices, b.choices))

# logprobs: chat (n = 2, streamed), completions (legacy shape, streamed), greedy and sampled
PQ = chat_prompt(Q)
r = client.chat.completions.create(model=NAME, messages=Q, temperature=0, max_tokens=24, n=2, logprobs=True,
                                   top_logprobs=3)
lp = [[(t.token, t.logprob, [x.logprob for x in t.top_logprobs]) for t in ch.logprobs.content] for ch in r.choices]
check("chat logprobs: n = 2, each == CLI greedy, the same logprobs, 3 top each",
      all(ch.message.content == want_chat for ch in r.choices) and lp[0] == lp[1] and all(len(t[2]) == 3 for t in lp[0]),
      r.choices)
c0 = r.choices[0].logprobs.content
check("chat logprobs: bytes are each token's UTF-8", all(bytes(t.bytes) == t.token.encode() for t in c0), c0[:3])
check_logprobs("chat logprobs", PQ, want_chat, [t[0] for t in lp[0]], [t[1] for t in lp[0]], [t[2] for t in lp[0]],
               r.usage.prompt_tokens, True)
streamed = []
for ch in client.chat.completions.create(model=NAME, messages=Q, temperature=0, max_tokens=24, stream=True,
                                         logprobs=True, top_logprobs=3):
    if ch.choices and ch.choices[0].logprobs:
        streamed += [(t.token, t.logprob, [x.logprob for x in t.top_logprobs]) for t in ch.choices[0].logprobs.content]
check("streamed chat logprobs == whole", streamed == lp[0], (streamed, lp[0]))

c = client.completions.create(model=NAME, prompt=P, temperature=0, max_tokens=12, logprobs=5)
L = c.choices[0].logprobs
offsets = [len(P.encode()) + len("".join(L.tokens[:i]).encode()) for i in range(len(L.tokens))]
check("completions logprobs: text == CLI greedy, 5 top each, text_offset from the prompt's start",
      c.choices[0].text == want_cmpl and all(len(t) == 5 for t in L.top_logprobs) and L.text_offset == offsets,
      (c.choices[0].text, L))
check_logprobs("completions logprobs", P, want_cmpl, L.tokens, L.token_logprobs,
               [sorted(t.values(), reverse=True) for t in L.top_logprobs], c.usage.prompt_tokens, True)
streamed = []
for ch in client.completions.create(model=NAME, prompt=P, temperature=0, max_tokens=12, logprobs=5, stream=True):
    if ch.choices and ch.choices[0].logprobs:
        s_lp = ch.choices[0].logprobs
        streamed += list(zip(s_lp.tokens, s_lp.token_logprobs, s_lp.top_logprobs, s_lp.text_offset))
check("streamed completions logprobs == whole",
      streamed == list(zip(L.tokens, L.token_logprobs, L.top_logprobs, L.text_offset)), streamed)
c = client.completions.create(model=NAME, prompt=P, temperature=0.7, seed=7, max_tokens=12, logprobs=0,
                              extra_body={"top_k": 20})
S = c.choices[0].logprobs
check("completions logprobs 0: the sampled token alone in top_logprobs",
      all(list(t) == [tok] for t, tok in zip(S.top_logprobs, S.tokens)), S.top_logprobs)
check_logprobs("sampled at temperature 0.7, top_k 20", P, c.choices[0].text, S.tokens, S.token_logprobs,
               [[] for _ in S.tokens], c.usage.prompt_tokens, False)
for kw in ({"logprobs": True, "top_logprobs": 21}, {"top_logprobs": 2}):
    try:
        client.chat.completions.create(model=NAME, messages=Q, max_tokens=1, **kw)
        check(f"chat {kw} raises BadRequestError", False, "no exception")
    except openai.BadRequestError as e:
        check(f"chat {kw} raises BadRequestError", "top_logprobs" in e.message, e)
try:
    client.completions.create(model=NAME, prompt=P, max_tokens=1, logprobs=21)
    check("completions logprobs 21 raises BadRequestError", False, "no exception")
except openai.BadRequestError as e:
    check("completions logprobs 21 raises BadRequestError", "logprobs" in e.message, e)

try:
    client.chat.completions.create(model="gpt-4o", messages=Q)
    check("unknown model raises NotFoundError", False, "no exception")
except openai.NotFoundError as e:
    check("unknown model raises NotFoundError", e.status_code == 404 and "models" in e.message, e)
try:
    client.chat.completions.create(model=NAME, messages=Q, temperature=-1)
    check("temperature -1 raises BadRequestError", False, "no exception")
except openai.BadRequestError as e:
    check("temperature -1 raises BadRequestError", e.status_code == 400 and "temperature" in e.message, e)
try:
    client.chat.completions.create(model=NAME, messages=[{"role": "wizard", "content": "hi"}])
    check("a bad role raises BadRequestError", False, "no exception")
except openai.BadRequestError as e:
    check("a bad role raises BadRequestError", "messages[0]" in e.message, e)

with open(EXPECT, "w") as f:
    json.dump({"name": NAME, "messages": Q, "chat": want_chat, "prompt": P, "completion": want_cmpl,
               "stop": stop, "completion_stop": want_stop, "chat_logprobs": lp[0],
               "completion_logprobs": [L.tokens, L.token_logprobs, L.top_logprobs, L.text_offset]}, f)
http_check.finish()
