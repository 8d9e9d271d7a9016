#!/usr/bin/python3
"""make_ref_train_arch.py — make_ref_train.py's LoRA training references for the other families.

The same runs (PEFT LoRA, dropout 0, step-0 gradients, 10 AdamW steps) on tests/make_ref_arch.py's
tiny Qwen3 (q/k norms: the backward goes through them; tied, with trainable token rows) and Qwen2
(q/k/v biases, frozen; untied), every linear adapted, and Llama 3 (llama3 RoPE scaling; q, k, v
adapted), and Gemma 3 (the post norms, GeGLU, the sliding window of 4 over examples of up to 12
tokens, the scaled embedding: its token rows are scaled as the base's rows; every linear
adapted; tied, with trainable token rows). Written to tests/ref/train-<variant>.ref.safetensors. Needs
transformers >= 4.51 (Qwen3), so it runs in the virtual environment of tests/ref/README.md, with
make_ref_arch.py's stand-ins for torch 2 names:
    /tmp/tfnew/bin/python tests/make_ref_train_arch.py [variant ...]    # default: every variant
(LoRA's A starts from torch's global RNG, so a subset gives its variants other initial values:
each file stores its own, init.<name>, and the C test starts from them.)
"""
import os
import sys

import make_ref_arch  # noqa: F401  (first: the stand-ins, before transformers is imported)
import make_ref_train
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM


class Loader:
    """from_pretrained calls a torch 2 API (named_parameters(remove_duplicate=)) under torch 1.13:
    the model is built from its config and given the file's tensors instead (the same weights)"""
    @staticmethod
    def from_pretrained(d, torch_dtype, attn_implementation):
        m = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), torch_dtype=torch_dtype,
                                             attn_implementation=attn_implementation)
        missing, unexpected = m.load_state_dict(load_file(os.path.join(d, "model.safetensors")),
                                                strict=False)
        assert not unexpected and all(k == "lm_head.weight" for k in missing), (missing, unexpected)
        m.tie_weights()
        assert m.dtype == torch.float32
        return m


make_ref_train.AutoModelForCausalLM = Loader

VARIANTS = {
    "train-qwen3": ("tiny-qwen3", make_ref_train.TARGETS_ALL, 4, 8.0, [5, 300]),
    "train-qwen2": ("tiny-qwen2", make_ref_train.TARGETS_ALL, 4, 8.0, []),
    "train-llama3": ("tiny-llama3", ["q_proj", "k_proj", "v_proj"], 8, 16.0, []),
    "train-gemma3": ("tiny-gemma3", make_ref_train.TARGETS_ALL, 4, 8.0, [5, 300]),
}

if __name__ == "__main__":
    picked = {k: v for k, v in VARIANTS.items() if len(sys.argv) < 2 or k in sys.argv[1:]}
    make_ref_train.main(picked, "tests/make_ref_train_arch.py")
