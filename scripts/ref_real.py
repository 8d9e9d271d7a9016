#!/usr/bin/python3
"""ref_real.py — PyTorch/transformers reference outputs for the real SmolLM2-135M.

    /usr/bin/python3 scripts/ref_real.py HFDIR OUT.json
        For 20 fixed prompts: prompt text, ids (HF tokenizer from HFDIR, no special tokens added),
        log p(x_t | x_<t) for t = 1..T-1, and a greedy 64-token continuation (HF generate, no EOS
        stop) with the top-2 logit gap at each step. Writes compact JSON, one prompt per line.
    /usr/bin/python3 scripts/ref_real.py --from-gguf GGUF TOKDIR OUTDIR
        An independent GGUF -> HF f32 dir (gguf-py dequantize, llama.cpp Q/K permutation undone,
        tokenizer files copied from TOKDIR), to cross-check `pocketlm convert`; not used by tests.
The oracle is transformers.LlamaForCausalLM in float32, eager attention. Needs scripts/setup_ref.sh.
"""
import json
import os
import shutil
import sys
from importlib.metadata import version

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAWS = os.path.join(ROOT, "data", "paws", "test.tsv")
N_NEW = 64
N_PAWS = 5
LONG_TOKENS = 300

# The paraphrase task template without the <|OUTPUT_START|> marker (not in the base vocab).
TEMPLATE = "Rephrase the following:\nInput: {source}\nOutput: "


def chat(msg):
    return f"<|im_start|>user\n{msg}<|im_end|>\n<|im_start|>assistant\n"


FIXED = [
    ("chat-capital", chat("What is the capital of France?")),
    ("chat-system", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                    "Hugging Face<|im_end|>\n" + chat("Write a haiku about the sea.")),
    ("chat-explain", chat("Explain gravity to a five-year-old in two sentences.")),
    ("chat-rephrase", chat("Rephrase: The cat sat on the mat because it was tired.")),
    ("code-python", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n"),
    ("code-c", "#include <stdio.h>\n\nint main(void) {\n\tfor (int i = 0; i < 10; i++) {\n\t\tprintf(\"%d\\n\", i"),
    ("numbers", "The first prime numbers are 2, 3, 5, 7, 11, 13, 17, 19, 23,"),
    ("arith", "Q: 1234 + 5678 = ?\nA: 6912\nQ: 3.14159 * 2 = ?\nA:"),
    ("one-token", "The"),
    ("french", "La tour Eiffel est située à Paris. Elle a été construite en"),
    ("german", "Die Straßenbahn fährt über die Brücke, während die Kinder"),
    ("cjk-emoji", "東京は日本の首都です。 今日はいい天気ですね 😀👍 Привет, мир!"),
    ("whitespace", "  Leading spaces,\ttabs\tand\n\nnewlines   end.  "),
]


def paws_rows(n):
    """First n label-1 (paraphrase) rows of PAWS test as sentence1 strings."""
    if not os.path.exists(PAWS):
        sys.exit(f"ref_real: {PAWS} not found (the PAWS data of the repository, see data/README.md)")
    out = []
    with open(PAWS, encoding="utf-8", newline="") as f:
        next(f)
        for line in f:
            cols = line.rstrip("\r\n").split("\t")
            if cols[3] == "1":
                out.append(cols[1])
            if len(out) == n:
                break
    return out


def prompts(tok):
    """20 (name, text) pairs: 5 PAWS task prompts, 13 fixed, a ~300-token prompt, a bare PAWS one."""
    rows = paws_rows(N_PAWS + 40)
    ps = [(f"paws-{i}", TEMPLATE.format(source=s)) for i, s in enumerate(rows[:N_PAWS])]
    ps += FIXED
    long = ""
    for s in rows[N_PAWS:]:
        long += s + " "
        if len(tok(long, add_special_tokens=False)["input_ids"]) >= LONG_TOKENS:
            break
    ps.append(("long", long.rstrip() + "\nSummary:"))
    ps.append(("paws-plain", rows[N_PAWS]))
    assert len(ps) == 20
    return ps


def load_tokenizer(d):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    try:
        return AutoTokenizer.from_pretrained(d)
    except (OSError, ValueError, KeyError):
        return PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))


def reference(hfdir, out_path):
    from transformers import LlamaForCausalLM
    import transformers
    # one thread: a fixed summation order, and OpenMP spin-waits badly when other jobs share the cores
    torch.set_num_threads(1)
    tok = load_tokenizer(hfdir)
    model = LlamaForCausalLM.from_pretrained(hfdir, torch_dtype=torch.float32,
                                             attn_implementation="eager").eval()
    lines = []
    with torch.no_grad():
        for name, text in prompts(tok):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            x = torch.tensor([ids])
            logits = model(x, use_cache=False).logits[0].double()
            lp = torch.log_softmax(logits, -1)
            logprobs = [round(lp[t - 1, ids[t]].item(), 6) for t in range(1, len(ids))]
            g = model.generate(x, do_sample=False, max_new_tokens=N_NEW, min_new_tokens=N_NEW,
                               eos_token_id=None, pad_token_id=0, use_cache=True,
                               return_dict_in_generate=True, output_logits=True)
            new = g.sequences[0, len(ids):].tolist()
            assert len(new) == N_NEW, (name, len(new))
            steps = torch.stack([l[0] for l in g.logits])
            top2 = torch.topk(steps, 2, -1).values
            gaps = [round(v, 5) for v in (top2[:, 0] - top2[:, 1]).tolist()]
            # HF itself: cached decode vs one full forward; differ only at near-ties
            full = model(g.sequences, use_cache=False).logits[0, len(ids) - 1:-1].argmax(-1).tolist()
            nodiff = full == new
            rec = {"name": name, "text": text, "ids": ids, "logprobs": logprobs, "greedy": new,
                   "greedy_gap": gaps, "greedy_text": tok.decode(new),
                   "cache_equals_full": nodiff}
            lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
            print(f"{name}: T={len(ids)} nll={-sum(logprobs) / max(1, len(logprobs)):.3f} "
                  f"min gap {min(gaps):.4f} cache==full {nodiff} | {tok.decode(new)[:60]!r}",
                  file=sys.stderr)
    head = {"model": os.path.basename(os.path.normpath(hfdir)), "dtype": "float32",
            "generator": f"scripts/ref_real.py (transformers {transformers.__version__}, "
                         f"torch {torch.__version__}, tokenizers {version('tokenizers')})",
            "template": TEMPLATE, "max_new_tokens": N_NEW,
            "logprobs": "log p(ids[t] | ids[:t]) for t = 1..T-1, float64 log_softmax of f32 logits",
            "greedy_gap": "top1 - top2 logit at each greedy step"}
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("{\"meta\":" + json.dumps(head, separators=(",", ":")) + ",\n\"prompts\":[\n")
        f.write(",\n".join(lines))
        f.write("\n]}\n")


# ---- independent GGUF -> HF conversion (cross-check only) ----
def unpermute(w, n_head):
    """Undo llama.cpp convert_hf_to_gguf.py `permute`: w (n_head*D, C) from interleaved pairs
    back to HF rotate_half halves."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def from_gguf(gguf_path, tokdir, outdir):
    from gguf import GGUFReader, dequantize
    from safetensors.numpy import save_file
    r = GGUFReader(gguf_path)

    def field(k):
        f = r.fields[k]
        return f.parts[f.data[0]].tolist()[0]
    nl, nh, nkv = field("llama.block_count"), field("llama.attention.head_count"), field("llama.attention.head_count_kv")
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": field("llama.embedding_length"), "intermediate_size": field("llama.feed_forward_length"),
           "num_hidden_layers": nl, "num_attention_heads": nh, "num_key_value_heads": nkv,
           "rms_norm_eps": float(field("llama.attention.layer_norm_rms_epsilon")),
           "rope_theta": float(field("llama.rope.freq_base")),
           "max_position_embeddings": field("llama.context_length"), "vocab_size": field("llama.vocab_size"),
           "hidden_act": "silu", "bos_token_id": field("tokenizer.ggml.bos_token_id"),
           "eos_token_id": field("tokenizer.ggml.eos_token_id"),
           "pad_token_id": field("tokenizer.ggml.padding_token_id"),
           "attention_bias": False, "mlp_bias": False, "rope_scaling": None, "torch_dtype": "float32",
           "tie_word_embeddings": not any(t.name == "output.weight" for t in r.tensors)}
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    out = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(s) for s in reversed(t.shape.tolist())])  # GGUF dims are innermost-first
        parts = t.name.split(".")
        if t.name == "token_embd.weight":
            hf = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            hf = "model.norm.weight"
        elif t.name == "output.weight":
            hf = "lm_head.weight"
        else:
            hf = f"model.layers.{parts[1]}.{names[parts[2]]}.weight"
            if parts[2] == "attn_q":
                w = unpermute(w, nh)
            elif parts[2] == "attn_k":
                w = unpermute(w, nkv)
        out[hf] = np.ascontiguousarray(w)
    os.makedirs(outdir, exist_ok=True)
    save_file(out, os.path.join(outdir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(outdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(outdir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}, f, indent=2)
    for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(tokdir, fn)):
            shutil.copyfile(os.path.join(tokdir, fn), os.path.join(outdir, fn))
    print(f"ref_real: wrote {outdir}: {len(out)} tensors, {sum(v.size for v in out.values())} params")


def main(argv):
    if len(argv) == 4 and argv[0] == "--from-gguf":
        from_gguf(*argv[1:])
    elif len(argv) == 2 and not argv[0].startswith("-"):
        reference(*argv)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
