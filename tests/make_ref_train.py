#!/usr/bin/python3
"""make_ref_train.py — reference LoRA training runs for tests/test_train.c (PyTorch + PEFT).

On the tiny models of tests/ref (made by make_ref.py), with PEFT LoRA (dropout 0, so no RNG is
involved) and, for the tied model, trainable embedding rows shared with the tied head:
  - the summed/mean loss of a micro-batch of 3 examples of different lengths (right-padded in
    torch, labels -100 on prompt and padding: the same loss as pocketlm's packed batch);
  - every trainable tensor's gradient of the mean loss (step 0);
  - 10 steps of clip_grad_norm_(1.0) + torch.optim.AdamW + HF get_cosine_schedule_with_warmup,
    alternating two batches: the loss before each step and every tensor after the 10th.
Tensors are named as pocketlm's trainer names them: layers.{l}.{target}.lora_A / lora_B,
token_rows. The initial adapter values are stored too (init.<name>), so the C test starts from
exactly the same point. Written to tests/ref/train-<variant>.ref.safetensors (F32).
Run: /usr/bin/python3 tests/make_ref_train.py
"""
import os

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref")
TARGETS_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# variant: (model dir, targets, rank, alpha, trainable token ids)
VARIANTS = {
    "train-tied": ("tiny-tied", TARGETS_ALL, 4, 8.0, [5, 300]),
    "train-untied": ("tiny-untied", ["q_proj", "v_proj"], 8, 16.0, []),
}
LR, WD, WARMUP, STEPS = 1e-2, 0.01, 3, 10


def batches(V, g):
    """two micro-batches of (ids, n_prompt) with lengths that differ"""
    out = []
    for lens, prompts in (([9, 5, 12], [4, 2, 7]), ([7, 11], [3, 6])):
        out.append([(torch.randint(0, V, (n,), generator=g), p) for n, p in zip(lens, prompts)])
    return out


def padded(batch):
    """right-padded ids, attention mask and labels (-100 outside the targets)"""
    T = max(len(ids) for ids, _ in batch)
    x = torch.zeros(len(batch), T, dtype=torch.long)
    mask = torch.zeros(len(batch), T, dtype=torch.long)
    labels = torch.full((len(batch), T), -100, dtype=torch.long)
    for i, (ids, p) in enumerate(batch):
        x[i, :len(ids)] = ids
        mask[i, :len(ids)] = 1
        labels[i, p:len(ids)] = ids[p:]
    return x, mask, labels


class Run:
    def __init__(self, model_dir, targets, r, alpha, token_ids, seed):
        base = AutoModelForCausalLM.from_pretrained(os.path.join(REF, model_dir),
                                                    torch_dtype=torch.float32,
                                                    attn_implementation="eager")
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                         bias="none", task_type="CAUSAL_LM", init_lora_weights=True)
        self.model = get_peft_model(base, cfg)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # B random too, so that A's gradient is not zero at step 0
            for n, p in self.model.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
        self.tied = base.config.tie_word_embeddings
        self.E = base.model.embed_tokens.weight  # frozen
        self.token_ids = torch.tensor(token_ids, dtype=torch.long)
        self.rows = torch.nn.Parameter(self.E.detach()[self.token_ids].clone() +
                                       0.05 * torch.randn(len(token_ids), self.E.shape[1], generator=g)) \
            if token_ids else None

    def named(self):
        """trainable tensors under pocketlm's names"""
        out = {}
        for n, p in self.model.named_parameters():
            if "lora_" in n:
                parts = n.split(".")
                l = parts[parts.index("layers") + 1]
                tgt = next(t for t in TARGETS_ALL if t in parts)
                ab = "lora_A" if "lora_A" in n else "lora_B"
                out[f"layers.{l}.{tgt}.{ab}"] = p
        if self.rows is not None:
            out["token_rows"] = self.rows
        return out

    def loss(self, batch):
        x, mask, labels = padded(batch)
        E = self.E if self.rows is None else self.E.index_copy(0, self.token_ids, self.rows)
        emb = self.model.base_model.model.model.embed_tokens  # Gemma's scales its rows
        scale = emb.embed_scale.to(E.dtype) if hasattr(emb, "embed_scale") else 1.0
        h = self.model.base_model.model.model(inputs_embeds=E[x] * scale,
                                              attention_mask=mask).last_hidden_state
        W = E if self.tied else self.model.base_model.model.lm_head.weight
        logits = h @ W.t()
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100)


def main(variants=VARIANTS, generator="tests/make_ref_train.py"):
    torch.manual_seed(0)
    for name, (model_dir, targets, r, alpha, token_ids) in variants.items():
        run = Run(model_dir, targets, r, alpha, token_ids, seed=len(name))
        V = run.E.shape[0]
        bs = batches(V, torch.Generator().manual_seed(7))
        out = {}
        params = run.named()
        for n, p in params.items():
            out["init." + n] = p.detach().clone()
        for k, b in enumerate(bs):
            ids = torch.cat([i for i, _ in b]).float()
            out[f"batch{k}.ids"] = ids
            out[f"batch{k}.lens"] = torch.tensor([len(i) for i, _ in b], dtype=torch.float32)
            out[f"batch{k}.prompt"] = torch.tensor([p for _, p in b], dtype=torch.float32)
        loss = run.loss(bs[0])
        loss.backward()
        out["loss0"] = loss.detach().reshape(1)
        for n, p in params.items():
            out["grad." + n] = p.grad.detach().clone()
            p.grad = None
        opt = torch.optim.AdamW(list(params.values()), lr=LR, weight_decay=WD)
        sched = get_cosine_schedule_with_warmup(opt, WARMUP, STEPS)
        losses = []
        for step in range(STEPS):
            loss = run.loss(bs[step % 2])
            losses.append(loss.item())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
        out["losses"] = torch.tensor(losses)
        for n, p in params.items():
            out["final." + n] = p.detach().clone()
        meta = {"generator": f"{generator} (torch {torch.__version__}, transformers "
                             f"{transformers.__version__}, peft {peft.__version__})",
                "rank": str(r), "alpha": str(alpha), "targets": ",".join(targets),
                "token_ids": ",".join(map(str, token_ids)), "lr": str(LR), "weight_decay": str(WD),
                "warmup": str(WARMUP), "steps": str(STEPS), "model": model_dir}
        path = os.path.join(REF, name + ".ref.safetensors")
        save_file({k: v.contiguous().float() for k, v in out.items()}, path, metadata=meta)
        print(f"{name}: loss0 {out['loss0'].item():.6f}, losses {[round(x, 4) for x in losses]}, "
              f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
