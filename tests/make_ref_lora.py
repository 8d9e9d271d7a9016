#!/usr/bin/python3
"""make_ref_lora.py — PEFT LoRA adapters and their reference logits, for tests/test_lora.c.

For the tiny models of tests/make_ref.py (run that first), PEFT itself builds LoRA adapters (r 4,
alpha 8), gives them random non-zero A and B (so they change the logits), saves them with
save_pretrained into tests/ref/lora-<name>/, and writes the PEFT model's logits for a short input
as tests/ref/lora-<name>/ref.safetensors ("input_ids" stored as F32, "logits" (T, V')).
Trainable tokens use the form of peft >= 0.15 (LoraConfig.trainable_token_indices); a variant
adds two tokens beyond the base vocabulary (the model is resized first, as a user would).
Run from anywhere with the python of scripts/setup_ref.sh:
    /usr/bin/python3 tests/make_ref_lora.py            # rewrites tests/ref/lora-*/ (deterministic)
With --check-c DIR it instead loads the pocketlm-written adapter DIR into PEFT and compares with
DIR/c_logits.safetensors; with --check-merged DIR NAME it loads the HF directory that
`pocketlm merge` made of tests/ref/NAME in transformers and compares with NAME's reference
(both for tests/lora_peft.test.sh).
"""
import os
import shutil
import sys
from importlib.metadata import version

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM

import peft
from peft import LoraConfig, PeftModel, get_peft_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, "tests", "ref")
V = 320
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name: (base, targets, trainable token ids, added tokens beyond V, seed)
ADAPTERS = {
    "lora-tied-qv": ("tiny-tied", ["q_proj", "v_proj"], [7, 42], 0, 11),
    "lora-tied-all": ("tiny-tied", ALL, [9, V, V + 1], 2, 12),
    "lora-untied-qv": ("tiny-untied", ["q_proj", "v_proj"], None, 0, 13),
    "lora-untied-all": ("tiny-untied", ALL, None, 0, 14),
}


def load_base(base, extra):
    # a relative path, so base_model_name_or_path in adapter_config.json does not name this machine
    model = LlamaForCausalLM.from_pretrained(os.path.join("tests", "ref", base),
                                             attn_implementation="eager")
    if extra:
        model.resize_token_embeddings(V + extra)
    return model.eval()


def input_ids(tokens, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (7,), generator=g)
    for k, t in enumerate(tokens or []):  # every trainable token appears in the input
        ids[1 + 2 * k] = t
    return ids


def make(name, base, targets, tokens, extra, seed):
    torch.manual_seed(seed)
    model = load_base(base, extra)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets,
                     trainable_token_indices=tokens, task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_A" in n or "lora_B" in n or "trainable_tokens_delta" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    d = os.path.join(REF, name)
    shutil.rmtree(d, ignore_errors=True)
    # save_embedding_layers=False: trainable tokens carry the rows; the full (resized) embedding
    # is not part of the adapter
    pm.save_pretrained(d, save_embedding_layers=False)
    os.remove(os.path.join(d, "README.md"))  # PEFT's model card template: nothing of the adapter
    ids = input_ids(tokens, seed)
    with torch.no_grad():
        logits = pm(ids[None], use_cache=False).logits[0].float().contiguous()
        # the reference is computed in float64: PyTorch's own f32 logits are 2e-5 off it here,
        # more than the 1e-5 the C test asks of pocketlm
        exact = pm.double()(ids[None], use_cache=False).logits[0].float().contiguous()
        pm.float()
    print(f"{name}: max |f32 - f64| logits {(logits - exact).abs().max().item():.2e}")
    meta = {"generator": f"tests/make_ref_lora.py {name} (peft {peft.__version__}, "
                         f"transformers {version('transformers')}, torch {torch.__version__})"}
    save_file({"input_ids": ids.float(), "logits": exact}, os.path.join(d, "ref.safetensors"),
              metadata=meta)
    # the saved adapter, loaded back by PEFT, gives the same logits
    back = PeftModel.from_pretrained(load_base(base, extra), d).eval()
    with torch.no_grad():
        again = back(ids[None], use_cache=False).logits[0]
    assert torch.allclose(again, logits, atol=1e-6), name
    keys = sorted(load_file(os.path.join(d, "adapter_model.safetensors")).keys())
    print(f"{name}: {len(keys)} tensors, e.g. {keys[-1]}; logits {tuple(logits.shape)}")


def check_c(d):
    """Load pocketlm's adapter d in PEFT; compare with d/c_logits.safetensors."""
    ref = load_file(os.path.join(d, "c_logits.safetensors"))
    ids, want = ref["input_ids"].long(), ref["logits"]
    base = ref["base"].long().item()  # 0: tiny-tied, 1: tiny-untied
    extra = want.shape[1] - V
    model = load_base(["tiny-tied", "tiny-untied"][base], extra)
    pm = PeftModel.from_pretrained(model, d).eval()
    with torch.no_grad():
        got = pm(ids[None], use_cache=False).logits[0]
    err = (got - want).abs().max().item()
    print(f"peft {peft.__version__}: pocketlm adapter {d}: max |PEFT - pocketlm| = {err:.2e}")
    if not err <= 1e-5:
        sys.exit("PEFT logits differ from pocketlm's")


def check_merged(d, name):
    """The HF directory d that `pocketlm merge` wrote gives PEFT's logits of adapter name."""
    ref = load_file(os.path.join(REF, name, "ref.safetensors"))
    model = LlamaForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
    with torch.no_grad():
        got = model(ref["input_ids"].long()[None], use_cache=False).logits[0]
    err = (got - ref["logits"]).abs().max().item()
    print(f"transformers: pocketlm merge of {name}: max |merged - PEFT| = {err:.2e}")
    if not err <= 1e-5:
        sys.exit("the merged model's logits differ from PEFT's")


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":  # PEFT saves target_modules from a set
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})
    os.chdir(ROOT)
    torch.set_num_threads(1)
    if len(sys.argv) == 3 and sys.argv[1] == "--check-c":
        check_c(sys.argv[2])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--check-merged":
        check_merged(sys.argv[2], sys.argv[3])
        return
    for name, args in ADAPTERS.items():
        make(name, *args)
    total = sum(os.path.getsize(os.path.join(REF, n, f)) for n in ADAPTERS
                for f in os.listdir(os.path.join(REF, n)))
    print(f"tests/ref/lora-*: {total / 1e6:.3f} MB; peft {peft.__version__}")
    if total > 1_000_000:
        sys.exit("tests/ref/lora-* exceeds 1 MB")


if __name__ == "__main__":
    main()
