#!/usr/bin/python3
"""make_ref.py — generate the PyTorch/transformers reference fixtures in tests/ref/.

Builds tiny seeded random HF `LlamaForCausalLM` models (GQA, SwiGLU, RMSNorm with random
weights, RoPE rotate_half), saves them as HF dirs, and writes reference outputs as
safetensors (F32 only, so pocketlm's own reader loads them; token ids are stored as F32).
It does not test anything itself: the C tests compare against these files.
Run with the system python that scripts/setup_ref.sh set up:
    /usr/bin/python3 tests/make_ref.py            # rewrites tests/ref/ (deterministic)
Oracle: transformers.LlamaForCausalLM (eager attention), torch float32, eval, no_grad.
"""
import json
import os
import sys
from importlib.metadata import version

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref")
V = 320           # vocab, not a power of two
T_SHORT = 7       # odd, hits SIMD tails
T_LONG = 33
N_GREEDY = 20

# ---- model shapes ----
BASE = dict(
    vocab_size=V, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2,  # head_dim 16, GQA group 2
    max_position_embeddings=128, rms_norm_eps=1e-5, hidden_act="silu",
    bos_token_id=1, eos_token_id=2, pad_token_id=None, attention_bias=False, mlp_bias=False,
)
VARIANTS = {
    # name: (seed, tie_word_embeddings, rope_theta)
    "tiny-tied": (1234, True, 100000.0),
    "tiny-untied": (5678, False, 10000.0),
}
# Lower-precision checkpoints of the f32 models above: (name, source, dtype).
# Their references are computed from the rounded weights upcast to f32.
LOWP = [("tiny-tied-bf16", "tiny-tied", torch.bfloat16),
        ("tiny-untied-f16", "tiny-untied", torch.float16)]


def build(seed, tied, theta):
    cfg = LlamaConfig(**BASE, tie_word_embeddings=tied, rope_theta=theta,
                      torch_dtype="float32", attn_implementation="eager")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                # around 1 but not 1, so a missing or misplaced norm weight shows
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model.eval()


def top2_gap(logits):
    """logits (..., V) -> top1 - top2 along the last axis."""
    t = torch.topk(logits, 2, dim=-1).values
    return t[..., 0] - t[..., 1]


def references(model, ids7, ids33):
    """Full forwards (no cache) for both sequences, loss, and a cached greedy decode."""
    out = {}
    with torch.no_grad():
        for key, ids in (("", ids7), ("33", ids33)):
            x = ids[None].long()
            r = model(x, labels=x, use_cache=False)
            out["input_ids" + key] = ids.float()
            out["logits" + key] = r.logits[0].float().contiguous()
            out["loss" + key] = r.loss.float().reshape(1)  # mean CE of ids[1:] given ids[:-1]
        g = model.generate(ids7[None].long(), do_sample=False, max_new_tokens=N_GREEDY,
                           min_new_tokens=N_GREEDY, eos_token_id=None, pad_token_id=0,
                           use_cache=True, return_dict_in_generate=True, output_logits=True)
        new = g.sequences[0, T_SHORT:]
        assert new.numel() == N_GREEDY
        step_logits = torch.stack([l[0] for l in g.logits]).float()  # (N_GREEDY, V)
        # HF itself: the cached decode must match a full forward without cache.
        full = model(g.sequences, use_cache=False).logits[0, T_SHORT - 1:-1]
        assert torch.equal(full.argmax(-1), new), "HF greedy (cache) != argmax (no cache)"
        err = (full - step_logits).abs().max().item()
        assert err < 1e-4, err
        out["greedy"] = new.float()
        out["greedy_logits"] = step_logits.contiguous()  # logits that chose greedy[i]
        out["greedy_gap"] = top2_gap(step_logits).min().reshape(1)
    return out


def f64_check(model, ids):
    """Max |f32 - f64| of the logits: how much noise the f32 reference itself carries."""
    m64 = LlamaForCausalLM(model.config).double().eval()
    m64.load_state_dict(model.state_dict())
    with torch.no_grad():
        a = model(ids[None].long(), use_cache=False).logits.double()
        b = m64(ids[None].long(), use_cache=False).logits
    return (a - b).abs().max().item()


def write_refs(name, model, ids7, ids33):
    refs = references(model, ids7, ids33)
    # one key: safetensors orders metadata keys at random, which would break reproducibility
    meta = {"generator": f"tests/make_ref.py {name} (transformers {transformers.__version__}, "
                         f"torch {torch.__version__})"}
    path = os.path.join(REF, name + ".ref.safetensors")
    save_file({k: v.contiguous() for k, v in refs.items()}, path, metadata=meta)
    err = f64_check(model, ids33)
    print(f"{name}: greedy {refs['greedy'].long().tolist()} min gap {refs['greedy_gap'].item():.4f} "
          f"loss33 {refs['loss33'].item():.5f} |f32-f64| logits33 {err:.2e}")
    return refs


def main():
    os.makedirs(REF, exist_ok=True)
    torch.set_num_threads(1)  # a fixed summation order: the files are reproducible byte for byte
    g = torch.Generator().manual_seed(42)
    ids7 = torch.randint(3, V, (T_SHORT,), generator=g)
    ids33 = torch.randint(3, V, (T_LONG,), generator=g)
    for name, (seed, tied, theta) in VARIANTS.items():
        model = build(seed, tied, theta)
        d = os.path.join(REF, name)
        model.save_pretrained(d, safe_serialization=True)
        write_refs(name, model, ids7, ids33)
    for name, src, dtype in LOWP:
        d = os.path.join(REF, name)
        LlamaForCausalLM.from_pretrained(os.path.join(REF, src)).to(dtype).save_pretrained(
            d, safe_serialization=True)
        # the rounded weights upcast to f32: what the loader's bf16/f16 path must produce
        model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
        write_refs(name, model, ids7, ids33)
    # only this script's outputs: other generators (make_ref_train.py, ...) share tests/ref/
    mine = [n for n in VARIANTS] + [n for n, _, _ in LOWP]
    total = 0
    for n in mine:
        total += os.path.getsize(os.path.join(REF, n + ".ref.safetensors"))
        total += sum(os.path.getsize(os.path.join(REF, n, f)) for f in os.listdir(os.path.join(REF, n)))
    print(f"tests/ref (make_ref.py outputs): {total / 1e6:.3f} MB; transformers "
          f"{transformers.__version__}, torch {torch.__version__}, safetensors {version('safetensors')}")
    if total > 2_000_000:
        sys.exit("make_ref.py outputs exceed 2 MB")

if __name__ == "__main__":
    main()
