#!/usr/bin/python3
"""make_ref_arch.py — references for the families beyond plain Llama, in tests/ref/.

Tiny seeded random models, in the shapes and the weight init of tests/make_ref.py (hidden 64, 2
layers, 4 heads, 2 KV heads, vocab 320), one per family that pocketlm runs besides plain Llama:
    tiny-llama3/  LlamaForCausalLM, rope_scaling llama3 (factor 8, low 1, high 4, original 64:
                  the 8 frequencies of head_dim 16 fall in all three bands), tied
    tiny-qwen2/   Qwen2ForCausalLM (biases on q, k, v), rope_theta 1e6, untied
    tiny-qwen3/   Qwen3ForCausalLM (per-head q_norm, k_norm; head_dim 24 != 64 / 4), tied
    tiny-gemma3/  Gemma3ForCausalLM (gemma3_text), Gemma 3 270M's config scaled down: 3 layers
                  (local, global, local: sliding_window_pattern 2, also as layer_types),
                  sliding_window 4 (the 33-token reference runs far past it), 1 KV head,
                  head_dim 32 != 64 / 4, query_pre_attn_scalar 24 != head_dim, rope_theta 1e6
                  (global) and rope_local_base_freq 1e4, tied; norm weights 0.2 randn around 0
                  (Gemma3RMSNorm multiplies by 1 + w)
    tiny-gemma3-linear/  the same weights with rope_scaling linear, factor 8 (Gemma 3 4B and larger:
                  the global layers' frequencies divided by 8, the local layers' kept); its
                  model.safetensors is a symlink to tiny-gemma3's (checked identical)
and <name>.ref.safetensors with the tensors of make_ref.py's references (input_ids, logits,
input_ids33, logits33, loss, loss33, greedy, greedy_logits, greedy_gap). Greedy is the argmax of
full forwards without a cache, step by step (make_ref.py checks that HF's cached generate gives
the same; generate does not import here, see below). The models with a sliding window also get
input_ids300 and logits300_last4 (the last 4 rows of a 300-token forward: far past a session's
local-layer cache of window - 1 + 128 positions, which slides).

Qwen3 needs transformers >= 4.51, newer than the pinned 4.44.2 (tests/ref/README.md), so this
script runs in a virtual environment over the system torch:
    /usr/bin/python3 -m venv --system-site-packages /tmp/tfnew
    /tmp/tfnew/bin/pip install transformers==4.51.3
    /tmp/tfnew/bin/python tests/make_ref_arch.py [name ...]    # default: every model
transformers 4.51 imports a few torch 2 names at module level (torch.distributed.tensor,
torch.compiler, the float8 dtypes, LRScheduler) that Debian's torch 1.13 lacks; the stand-ins below only let
those imports succeed: none of them is on the path of a float32 eager forward.
Oracle: transformers' own modeling files, eager attention, float32, eval, no_grad, 1 thread.
"""
import os
import sys
import types

import torch

if not hasattr(torch, "compiler"):  # torch 1.13: stand-ins for names transformers 4.51 imports
    _dt = types.ModuleType("torch.distributed.tensor")
    _dt.DTensor = type("DTensor", (), {})
    sys.modules["torch.distributed.tensor"] = _dt
    import torch.distributed
    torch.distributed.tensor = _dt
    torch.compiler = types.SimpleNamespace(
        is_compiling=lambda: False, disable=lambda fn=None, *a, **k: fn if callable(fn) else (lambda f: f))
    sys.modules["torch.compiler"] = torch.compiler
    for _n in ("float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64"):
        if not hasattr(torch, _n):
            setattr(torch, _n, object())
    import torch.optim.lr_scheduler as _lrs  # the class torch 2 renamed (make_ref_train_arch.py)
    if not hasattr(_lrs, "LRScheduler"):
        _lrs.LRScheduler = _lrs._LRScheduler

import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig,  # noqa: E402
                          LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ref")
V, T_SHORT, T_LONG, N_GREEDY = 320, 7, 33, 20
BASE = dict(vocab_size=V, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=1, eos_token_id=2,
            torch_dtype="float32", attn_implementation="eager")
MODELS = {
    # name: (seed, class, config)
    "tiny-llama3": (4321, LlamaForCausalLM, LlamaConfig(
        **BASE, tie_word_embeddings=True, rope_theta=10000.0, attention_bias=False,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=64))),
    "tiny-qwen2": (8765, Qwen2ForCausalLM, Qwen2Config(
        **BASE, tie_word_embeddings=False, rope_theta=1000000.0, use_sliding_window=False)),
    "tiny-qwen3": (2468, Qwen3ForCausalLM, Qwen3Config(
        **BASE, head_dim=24, tie_word_embeddings=True, rope_theta=1000000.0,
        attention_bias=False, use_sliding_window=False)),
    "tiny-gemma3": (1357, Gemma3ForCausalLM, Gemma3TextConfig(
        vocab_size=V, hidden_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=24,
        intermediate_size=128,
        max_position_embeddings=128, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
        sliding_window=4, sliding_window_pattern=2,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_theta=1000000.0, rope_local_base_freq=10000.0, rope_scaling=None,
        attn_logit_softcapping=None, final_logit_softcapping=None, tie_word_embeddings=True,
        bos_token_id=2, eos_token_id=1, pad_token_id=0, torch_dtype="float32",
        attn_implementation="eager")),
}
MODELS["tiny-gemma3-linear"] = (1357, Gemma3ForCausalLM, Gemma3TextConfig(**{
    **MODELS["tiny-gemma3"][2].to_dict(), "rope_scaling": dict(rope_type="linear", factor=8.0)}))
SAME_WEIGHTS = {"tiny-gemma3-linear": "tiny-gemma3"}  # name: the model whose weights it shares
# Gemma: norms around 0 (Gemma3RMSNorm adds the 1 itself); the embedding 0.05 randn, as it is
# scaled by sqrt(64) = 8 (with 0.2 the residual stream is mostly the token's own row and the greedy
# continuation repeats the last token)
INIT = {"tiny-gemma3": dict(norm_center=0.0, embed_std=0.05),
        "tiny-gemma3-linear": dict(norm_center=0.0, embed_std=0.05)}


def build(seed, cls, cfg, norm_center=1.0, embed_std=0.2):
    torch.manual_seed(seed)
    model = cls(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # around 1 but not 1: a misplaced norm shows
                p.copy_(norm_center + 0.2 * torch.randn(p.shape, generator=g))
            else:  # weights and biases
                std = embed_std if name.endswith("embed_tokens.weight") else 0.2
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model.eval()


def references(model, ids7, ids33, ids300):
    out = {}
    with torch.no_grad():
        for key, ids in (("", ids7), ("33", ids33)):
            x = ids[None].long()
            r = model(x, labels=x, use_cache=False)
            out["input_ids" + key] = ids.float()
            out["logits" + key] = r.logits[0].float().contiguous()
            out["loss" + key] = r.loss.float().reshape(1)
        seq, steps = ids7.long(), []
        for _ in range(N_GREEDY):  # greedy by full forwards
            logits = model(seq[None], use_cache=False).logits[0, -1]
            steps.append(logits)
            seq = torch.cat([seq, logits.argmax().reshape(1)])
        step_logits = torch.stack(steps).float()
        out["greedy"] = seq[T_SHORT:].float()
        out["greedy_logits"] = step_logits.contiguous()
        top = torch.topk(step_logits, 2, dim=-1).values
        out["greedy_gap"] = (top[:, 0] - top[:, 1]).min().reshape(1)
        if getattr(model.config, "sliding_window_pattern", None):
            out["input_ids300"] = ids300.float()
            logits = model(ids300[None].long(), use_cache=False).logits[0]
            out["logits300_last4"] = logits[-4:].float().contiguous()
    return out


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(42)  # the ids of make_ref.py
    ids7 = torch.randint(3, V, (T_SHORT,), generator=g)
    ids33 = torch.randint(3, V, (T_LONG,), generator=g)
    ids300 = torch.randint(3, V, (300,), generator=g)
    total = 0
    for name, (seed, cls, cfg) in MODELS.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        model = build(seed, cls, cfg, **INIT.get(name, {}))
        d = os.path.join(REF, name)
        model.save_pretrained(d, safe_serialization=True)
        refs = references(model, ids7, ids33, ids300)
        if name in SAME_WEIGHTS:  # the shared file, and the config's effect on the logits
            st = os.path.join(d, "model.safetensors")
            other = os.path.join(REF, SAME_WEIGHTS[name], "model.safetensors")
            with open(st, "rb") as f, open(other, "rb") as g:
                assert f.read() == g.read(), f"{name}: weights differ from {SAME_WEIGHTS[name]}'s"
            os.remove(st)
            os.symlink(os.path.join("..", SAME_WEIGHTS[name], "model.safetensors"), st)
            base = build(seed, cls, MODELS[SAME_WEIGHTS[name]][2], **INIT.get(name, {}))
            with torch.no_grad():
                diff = base(ids33[None].long(), use_cache=False).logits[0] - refs["logits33"]
            assert diff.abs().max() > 0.1, f"{name}: the config had no effect"
            print(f"{name}: max |logits33 - {SAME_WEIGHTS[name]}'s| {diff.abs().max():.3f}")
        if getattr(cfg, "sliding_window_pattern", None):  # the window changes the 33-token logits
            wide = build(seed, cls, type(cfg)(**{**cfg.to_dict(), "sliding_window": 128}),
                         **INIT.get(name, {}))
            with torch.no_grad():
                diff = (wide(ids33[None].long(), use_cache=False).logits[0] - refs["logits33"])
            assert diff.abs().max() > 0.1, "sliding_window had no effect"
            print(f"{name}: max |logits33 - logits33 without the window| {diff.abs().max():.3f}")
        meta = {"generator": f"tests/make_ref_arch.py {name} (transformers "
                             f"{transformers.__version__}, torch {torch.__version__})"}
        path = os.path.join(REF, name + ".ref.safetensors")
        save_file({k: v.contiguous() for k, v in refs.items()}, path, metadata=meta)
        total += os.path.getsize(path) + sum(os.lstat(os.path.join(d, f)).st_size
                                             for f in os.listdir(d))
        print(f"{name}: greedy {refs['greedy'].long().tolist()} min gap "
              f"{refs['greedy_gap'].item():.4f} loss33 {refs['loss33'].item():.5f}")
    print(f"tests/ref (make_ref_arch.py outputs): {total / 1e6:.3f} MB; transformers "
          f"{transformers.__version__}, torch {torch.__version__}")
    if total > 2_500_000:
        sys.exit("make_ref_arch.py outputs exceed 2.5 MB")


if __name__ == "__main__":
    main()
