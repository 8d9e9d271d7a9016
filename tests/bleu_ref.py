#!/usr/bin/env python3
"""bleu_ref.py: random hypothesis/reference pairs for tests/bleu_sacrebleu.test.sh, and sacreBLEU's
corpus BLEU of them (the reference pocketlm's plm_bleu must match).

  bleu_ref.py make PAWS.tsv N SEED HYP.txt REF.txt   write N line-aligned pairs made from the PAWS
                                                     sentences with random edits
  bleu_ref.py score HYP.txt REF.txt                  print sacrebleu.corpus_bleu(hyps, [refs]).score
"""
import random
import sys

# Characters the 13a tokenizer treats specially, and some non-ASCII text and white space.
EXTRA = [",", ".", "-", "'", '"', "&quot;", "&amp;", "&lt;", "(", ")", "$", "%", "1,000", "3.5",
         "1990-1995", "e.g.", "U.S.", "--", "/", "caf\u00e9", "\u201cquoted\u201d", "\u2014",
         "\u6771\u4eac", "a\u00a0b", "x\u3000y", "<skipped>", "end.", ";", "!", "?"]


def edit(words, rng):
    """A random edit of a word list: drop, repeat, swap, replace or insert words, or none."""
    w = list(words)
    for _ in range(rng.randint(0, 4)):
        op = rng.random()
        i = rng.randrange(len(w)) if w else 0
        if op < 0.2 and w:
            del w[i]
        elif op < 0.35 and w:
            w.insert(i, w[i])
        elif op < 0.5 and len(w) > 1:
            j = rng.randrange(len(w))
            w[i], w[j] = w[j], w[i]
        elif op < 0.7:
            w.insert(i, rng.choice(EXTRA))
        elif w:
            w[i] = rng.choice(EXTRA)
    return w


def make(paws, n, seed, hyp_path, ref_path):
    rng = random.Random(seed)
    sents = []
    with open(paws, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) == 4 and cols[0] != "id":
                sents.append((cols[1].strip(), cols[2].strip()))
    hyps, refs = [], []
    for k in range(n):
        s1, s2 = rng.choice(sents)
        kind = k % 10
        if kind == 0:
            h, r = s1, s1  # identical
        elif kind == 1:
            h, r = "", s2  # empty hypothesis
        elif kind == 2:
            h, r = " ".join(s1.split()[:3]), s2  # very short
        else:
            h = " ".join(edit(s1.split(), rng))
            r = " ".join(edit(s2.split(), rng))
            if kind == 3:  # glue punctuation to words, as untokenized text has it
                h = h.replace(" ,", ",").replace(" .", ".")
        hyps.append(h)
        refs.append(r)
    for path, lines in ((hyp_path, hyps), (ref_path, refs)):
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(x + "\n" for x in lines))


def score(hyp_path, ref_path):
    import sacrebleu

    def read(p):
        with open(p, encoding="utf-8", newline="\n") as f:
            return [x[:-1] if x.endswith("\n") else x for x in f]

    print("%.10f" % sacrebleu.corpus_bleu(read(hyp_path), [read(ref_path)]).score)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        score(sys.argv[2], sys.argv[3])
