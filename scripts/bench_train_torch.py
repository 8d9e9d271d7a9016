#!/usr/bin/python3
"""bench_train_torch.py HFDIR PAWS_TSV [STEPS] [THREADS] — PyTorch + PEFT LoRA training throughput on
the CPU with the configuration `pocketlm finetune` uses by default: LoRA r 8, alpha 16, dropout 0.05
on q_proj,v_proj; the two task tokens added (rows trainable through trainable_token_indices);
AdamW lr 2e-4; micro-batches of 8 PAWS examples in the task template (right-padded, labels only on
the target); tokens/s counts every token of every example (not the padding), as pocketlm does.
Prints `torch-train-tok_s THREADS N ms tok/s` and `torch-train-peak_rss_mb ...`.
"""
import resource
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, LlamaForCausalLM

hf, tsv = sys.argv[1], sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 6
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(hf)
tok.add_special_tokens({"additional_special_tokens": ["<|OUTPUT_START|>", "<|OUTPUT_END|>"]})
model = LlamaForCausalLM.from_pretrained(hf, torch_dtype=torch.float32)
model.resize_token_embeddings(len(tok))
new_ids = tok.convert_tokens_to_ids(["<|OUTPUT_START|>", "<|OUTPUT_END|>"])
cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                 task_type="CAUSAL_LM", trainable_token_indices={"embed_tokens": new_ids})
model = get_peft_model(model, cfg)
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)

pairs = []
for line in open(tsv, encoding="utf-8").read().splitlines()[1:]:
    f = line.split("\t")
    if len(f) == 4 and f[3].strip() == "1":
        pairs += [(f[1], f[2]), (f[2], f[1])]
examples = []
for src, dst in pairs[: 8 * (steps + 2)]:
    p = tok(f"Rephrase the following:\nInput: {src}\nOutput: <|OUTPUT_START|>", add_special_tokens=False)["input_ids"]
    t = tok(f"{dst}<|OUTPUT_END|>", add_special_tokens=False)["input_ids"]
    examples.append((p + t, len(p)))


def batch(k):
    ex = examples[8 * k: 8 * k + 8]
    T = max(len(i) for i, _ in ex)
    x = torch.zeros(len(ex), T, dtype=torch.long)
    m = torch.zeros(len(ex), T, dtype=torch.long)
    y = torch.full((len(ex), T), -100, dtype=torch.long)
    for i, (ids, np_) in enumerate(ex):
        x[i, :len(ids)] = torch.tensor(ids)
        m[i, :len(ids)] = 1
        y[i, np_:len(ids)] = torch.tensor(ids[np_:])
    return x, m, y, sum(len(i) for i, _ in ex)


def step(k):
    x, m, y, n = batch(k)
    loss = model(input_ids=x, attention_mask=m, labels=y).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    return n


for k in range(2):  # warm-up
    step(k)
t0, tokens = time.time(), 0
for k in range(2, steps + 2):
    tokens += step(k)
dt = time.time() - t0
print(f"torch-train-tok_s {threads} {tokens} {dt * 1000:.1f} {tokens / dt:.1f}")
print(f"torch-train-peak_rss_mb {threads} 0 - {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
