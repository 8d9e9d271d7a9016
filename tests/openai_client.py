#!/usr/bin/env python3
"""openai_client.py: the official `openai` Python client against a running `pocketlm serve`
(tests/openai.test.sh), each answer compared with the CLI's greedy output (temperature 0).

usage: openai_client.py PORT BIN MODEL EXPECT_JSON
  models list; chat; streaming chat (with usage); completions; a stop string (completions and
  chat); n = 2; max_completion_tokens; a seed repeats a sampled answer; errors raise the client's
  exceptions. The chat prompt the CLI gets is the model's own chat template (GGUF
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
               "stop": stop, "completion_stop": want_stop}, f)
http_check.finish()
