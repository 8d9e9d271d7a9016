// score.c: the paraphrase metrics of `pocketlm eval` (plm_score_paraphrases): BLEU against the
// references and against the inputs (self-BLEU), iBLEU (Sun & Zhou 2012), exact copies, length
// ratio and distance from the input, and invented content (plm_invented: a number or a name in the
// output that the input does not have, the usual sign of a paraphraser adding facts).
// Not here: BLEU itself (bleu.c), running a model or reading files (cli/eval.c).
#include <stdlib.h>
#include <string.h>

#include "base.h"

// ---- invented content ----

// A word is a maximal run of ASCII letters and digits and of bytes >= 0x80 (so a UTF-8 letter
// stays inside its word: "Köroğlu" is one word); anything else separates words.
static int word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static int has_digit(const char *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (w[i] >= '0' && w[i] <= '9') return 1;
    return 0;
}

// capitalized: the word starts with A-Z, or with a Latin-1 capital (U+00C0-U+00DE but U+00D7 x)
static int capitalized(const char *w, size_t n) {
    unsigned char a = (unsigned char)w[0], b = n > 1 ? (unsigned char)w[1] : 0;
    return (a >= 'A' && a <= 'Z') || (a == 0xC3 && b >= 0x80 && b <= 0x9E && b != 0x97);
}

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

// in_text: whether the word w (n bytes) is a word of s (prefix: the start of one), exactly or
// ignoring ASCII case (fold)
static int in_text(const char *s, const char *w, size_t n, int fold, int prefix) {
    for (size_t i = 0; s[i];) {
        if (!word_byte((unsigned char)s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (s[j] && word_byte((unsigned char)s[j])) j++;
        int same = prefix ? j - i >= n : j - i == n;
        for (size_t k = 0; same && k < n; k++)
            same = fold ? lower(s[i + k]) == lower(w[k]) : s[i + k] == w[k];
        if (same) return 1;
        i = j;
    }
    return 0;
}

// invented: plm_invented on the len bytes of output; partial: they only start an output, so a last
// word that nothing follows may still grow, and is invented only when no input word starts with it
static int invented(const char *input, const char *output, size_t len, int partial) {
    if (!input) input = "";
    int first = 1;
    for (size_t i = 0; i < len;) {
        if (!word_byte((unsigned char)output[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && word_byte((unsigned char)output[j])) j++;
        const char *w = output + i;
        size_t n = j - i;
        int prefix = partial && j == len;
        if (has_digit(w, n) && !in_text(input, w, n, 0, prefix)) return 1;
        if (!first && capitalized(w, n) && !has_digit(w, n) && !in_text(input, w, n, 1, prefix))
            return 1;
        first = 0;
        i = j;
    }
    return 0;
}

int plm_invented(const char *input, const char *output) {
    return invented(input, output ? output : "", output ? strlen(output) : 0, 0);
}

int plm_invented_prefix(const char *input, const char *output, size_t len) {
    return invented(input, output, len, 1);
}

// ---- the metrics of a set of outputs ----

plm_status plm_score_paraphrases(const char *const *inputs, const char *const *refs,
                                 const char *const *outputs, int32_t n, plm_paraphrase_scores *out,
                                 plm_error *err) {
    if (!out || n < 0 || (n > 0 && (!inputs || !refs || !outputs)))
        return plm_fail(err, PLM_ERR_ARG, "plm_score_paraphrases: NULL argument or n < 0");
    memset(out, 0, sizeof *out);
    out->n = n;
    plm_status st = plm_bleu(outputs, refs, n, &out->bleu, err);
    if (st == PLM_OK) st = plm_bleu(outputs, inputs, n, &out->self_bleu, err);
    for (int32_t i = 0; i < n && st == PLM_OK; i++) {
        const char *in = inputs[i] ? inputs[i] : "", *o = outputs[i] ? outputs[i] : "";
        plm_bleu_result r; // this output against its input alone: the lengths
        st = plm_bleu(&o, &in, 1, &r, err);
        double d = plm_pair_distance(in, o);
        int copy = plm_bleu_same_tokens(in, o);
        if (st == PLM_OK && (d < 0 || copy < 0)) st = plm_fail(err, PLM_ERR_NOMEM, "out of memory");
        out->copy_rate += copy;
        out->len_ratio += r.ref_len ? (double)r.sys_len / (double)r.ref_len : 0.0;
        out->distance += d;
        out->invented_rate += plm_invented(in, o);
    }
    if (st != PLM_OK) return st;
    out->ibleu = 0.8 * out->bleu.bleu - 0.2 * out->self_bleu.bleu;
    if (n > 0) {
        out->copy_rate /= n, out->len_ratio /= n, out->distance /= n;
        out->invented_rate /= n;
    }
    return PLM_OK;
}
