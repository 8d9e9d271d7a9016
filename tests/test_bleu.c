// test_bleu.c: plm_bleu_tokenize (sacreBLEU's 13a) and plm_bleu (sacreBLEU's corpus_bleu) against
// golden values printed once by PyPI sacrebleu 2.6.0:
//
//   python3 -c 'import sacrebleu, json
//   from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
//   print(json.dumps(Tokenizer13a()(LINE.rstrip())))                    # tokenizer cases
//   x = sacrebleu.corpus_bleu(HYPS, [REFS]); print(repr(x.score), x.precisions, x.bp)'  # BLEU cases
//
// tests/bleu_sacrebleu.test.sh compares 500 random pairs with a live sacrebleu when it is installed.
#include <stdint.h>

#include "pocketlm.h"
#include "test.h"

// ---- 13a tokenization ----

static void test_tokenize(void) {
    static const char *const cases[][2] = {
        {"Hello, world!", "Hello , world !"},
        {"It costs $1,000.50 (or 3.5%) -- really?", "It costs $ 1,000.50 ( or 3.5 % ) -- really ?"},
        {"1990-1995 and x-ray; a-b 5-", "1990 - 1995 and x-ray ; a-b 5 -"},
        {"He said &quot;no&quot; &amp; left &lt;3 &gt;", "He said \" no \" & left < 3 >"},
        {"&amp;quot; stays", "& quot ; stays"}, // entities are replaced one pass each, in order
        {"line one-\nbroken\nnext", "line onebroken next"},
        {"drop <skipped> this", "drop this"},
        {"e.g. U.S. 3.14, 2,5 ,x .5 5. end.", "e . g . U . S . 3.14 , 2,5 , x . 5 5 . end ."},
        {"Caf\xc3\xa9 \xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x80\x94 na\xc3\xafve "
         "\xe6\x9d\xb1\xe4\xba\xac\xe3\x80\x81\xe6\x97\xa5\xe6\x9c\xac\xe3\x80\x82",
         "Caf\xc3\xa9 \xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x80\x94 na\xc3\xafve "
         "\xe6\x9d\xb1\xe4\xba\xac\xe3\x80\x81\xe6\x97\xa5\xe6\x9c\xac\xe3\x80\x82"},
        // U+00A0, U+2003 and U+3000 are white space to Python's split()
        {"non\xc2\xa0"
         "breaking\xe2\x80\x83space\xe3\x80\x80wide",
         "non breaking space wide"},
        {"tabs\tand  spaces   \t\n", "tabs and spaces"},
        {"", ""},
        {"   ", ""},
        {"'apostrophe' isn't", "'apostrophe' isn't"},
        {"a/b\\c{d}|e~f^g_h`i@j", "a / b \\ c { d } | e ~ f ^ g _ h ` i @ j"},
        {"trailing-\n", "trailing-"}, // rstrip first, so "-\n" is not there to remove
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char out[256];
        int64_t n = plm_bleu_tokenize(cases[k][0], strlen(cases[k][0]), out, sizeof out);
        CHECK_MSG(n == (int64_t)strlen(cases[k][1]) && !strcmp(out, cases[k][1]),
                  "tokenize case %zu: got [%s], want [%s]", k, out, cases[k][1]);
    }
    // a short buffer: truncated, NUL-terminated, the full length returned
    char small[5];
    int64_t n = plm_bleu_tokenize("Hello, world!", 13, small, sizeof small);
    CHECK(n == 15 && !strcmp(small, "Hell"));
    CHECK(plm_bleu_tokenize("a,b", 3, NULL, 0) == 5);
}

// ---- corpus BLEU ----

typedef struct {
    const char *hyp[2], *ref[2];
    int32_t n;
    double bleu, p[4], bp;
    int64_t sys_len, ref_len;
} bleu_case;

static void test_bleu(void) {
    static const bleu_case cases[] = {
        // identical corpus: 100 (sacrebleu's own double is 100.00000000000004)
        {{"The cat sat on the mat ."},
         {"The cat sat on the mat ."},
         1,
         100.00000000000004,
         {100, 100, 100, 100},
         1.0,
         7,
         7},
        // empty hypothesis: no n-grams, no matches, bp 0
        {{""}, {"The cat sat on the mat ."}, 1, 0.0, {0, 0, 0, 0}, 0.0, 0, 7},
        // zero matches
        {{"dog"}, {"The cat sat on the mat ."}, 1, 0.0, {0, 0, 0, 0}, 0.0024787521766663585, 1, 7},
        // short: no 3-grams, so log(0) is floored and the score is 0; "exp" smooths the 2-gram
        {{"the cat"},
         {"The cat sat on the mat ."},
         1,
         0.0,
         {100, 50, 0, 0},
         0.0820849986238988,
         2,
         7},
        {{"The cat sat on a rug ."},
         {"The cat sat on the mat ."},
         1,
         43.47208719449914,
         {71.42857142857143, 50.0, 40.0, 25.0},
         1.0,
         7,
         7},
        // clipping ("the" x4 against one "the") and two segments summed
        {{"a b c d e f", "the the the the"},
         {"a b c x e f g", "the cat"},
         2,
         26.165878484802647,
         {60.0, 37.5, 16.666666666666668, 12.5},
         1.0,
         10,
         9},
        // tokenization decides the matches; brevity penalty
        {{"It was built in 1,990-1995, by &quot;Smith&quot;.", "Hello there"},
         {"It was built in 1,990 - 1995 , by \"Smith\" .", "Hello there, friend"},
         2,
         87.51733190429479,
         {100, 100, 100, 100},
         0.8751733190429475,
         15,
         17},
        // no 3- or 4-gram match: "exp" smoothing gives 1/2 and 1/4 of a count
        {{"a b x y"},
         {"a b z y"},
         1,
         35.35533905932737,
         {75.0, 33.333333333333336, 25.0, 25.0},
         1.0,
         4,
         4},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const bleu_case *c = &cases[k];
        plm_bleu_result r;
        plm_error err = {0};
        CHECK(plm_bleu(c->hyp, c->ref, c->n, &r, &err) == PLM_OK);
        int ok = fabs(r.bleu - c->bleu) <= 1e-9 && fabs(r.bp - c->bp) <= 1e-12 &&
                 r.sys_len == c->sys_len && r.ref_len == c->ref_len;
        for (int i = 0; i < 4; i++) ok = ok && fabs(r.precisions[i] - c->p[i]) <= 1e-9;
        CHECK_MSG(ok, "bleu case %zu: %.17g (bp %.17g, p %g/%g/%g/%g, len %lld/%lld), want %.17g",
                  k, r.bleu, r.bp, r.precisions[0], r.precisions[1], r.precisions[2],
                  r.precisions[3], (long long)r.sys_len, (long long)r.ref_len, c->bleu);
    }
    // n = 0 is a zero score; bad arguments are errors, not crashes
    plm_bleu_result r;
    plm_error err = {0};
    CHECK(plm_bleu(NULL, NULL, 0, &r, &err) == PLM_OK && r.bleu == 0.0);
    CHECK(plm_bleu(NULL, NULL, 1, &r, &err) == PLM_ERR_ARG && err.msg[0]);
    CHECK(plm_bleu(NULL, NULL, -1, &r, NULL) == PLM_ERR_ARG);
    // a perturbed hypothesis must change the score (the test can fail)
    const char *h[1] = {"The cat sat on the mat !"}, *f[1] = {"The cat sat on the mat ."};
    CHECK(plm_bleu(h, f, 1, &r, &err) == PLM_OK && r.bleu < 99.0);
}

int main(void) {
    test_self();
    test_tokenize();
    test_bleu();
    return test_main_end("test_bleu");
}
