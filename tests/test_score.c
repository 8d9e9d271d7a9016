// test_score.c: the paraphrase metrics of `pocketlm eval` (src/score.c, plm_pair_distance in
// bleu.c): invented content (numbers exact, capitalized words but the first ignoring case, the
// word rule; and of the start of an output, for keep_facts), the distance (0 for a copy, word order counts, 100 for nothing shared, short
// segments by effective order), and
// plm_score_paraphrases on a small set worked out by hand (copies up to spacing, length ratio,
// iBLEU, the BLEUs equal to plm_bleu's).
#include <math.h>
#include <string.h>

#include "pocketlm.h"
#include "test.h"

static void test_invented(void) {
    static const struct {
        const char *input, *output;
        int want;
    } cases[] = {
        // the examples: a year and nothing else new
        {"The company moved its headquarters from Boston to New York .",
         "In 1995 , the company moved its headquarters from Boston to New York .", 1},
        {"later studied music in Vienna", "later studied in Vienna", 0}, // a dropped detail: not
        {"The company moved from Boston to New York.",
         "From Boston, the company moved to New York.", 0}, // the first word may be capitalized
        {"The company moved from Boston.", "The company moved from Chicago.", 1}, // a new name
        {"he went north", "He went North", 0},        // a capital the input has in lower case
        {"It was 1995.", "It was 1996.", 1},          // a number, exact
        {"It was 1.08%.", "It was 1.08 percent.", 0}, // "1" and "08" are both in the input
        {"Thuso Mbedu was born", "Mbedu Thuso was born", 0},
        {"3rd place", "third place", 0},
        {"third place", "3rd place", 1},                 // a number with letters
        {"at the Wilson house", "at Wilson's house", 0}, // "Wilson" and "s"
        {"in K\xC3\xB6ro\xC4\x9Flu", "in K\xC3\xB6ro\xC4\x9Flu", 0},
        {"in the town", "in the town of \xC3\x96rebro", 1}, // a Latin-1 capital starts a name
        {"in the town", "in the town of \xC3\xB6rebro", 0}, // lower case: not a name
        {"x", "A new sentence.", 0},                        // the first word alone
        {"", "", 0},
        {"a", "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(plm_invented(cases[i].input, cases[i].output) == cases[i].want,
                  "invented(\"%s\", \"%s\") != %d", cases[i].input, cases[i].output, cases[i].want);
    CHECK(plm_invented(NULL, NULL) == 0 && plm_invented(NULL, "7") == 1);
    // the start of an output: a last word may still grow into a word of the input
    static const struct {
        const char *input, *output;
        int want;
    } starts[] = {
        {"from Boston to New York", "It moved to Bos", 0},  // "Boston" may follow
        {"from Boston to New York", "It moved to Bos ", 1}, // "Bos" ended
        {"from Boston to New York", "It moved to Chi", 1},  // nothing starts so
        {"from boston", "It moved to BOS", 0},              // ignoring case
        {"It was 1995.", "It was 19", 0},                   // "1995" may follow
        {"It was 1995.", "It was 18", 1},                   // a number, exact
        {"It was 1995.", "It was 1995", 0},                 // done
        {"It was 1995.", "In 19", 0},                       // the first word is free
        {"no numbers", "7", 1},                             // but not of numbers
        {"from Boston", "From Boston, New", 1},             // an earlier word counts
        {"x", "A ne", 0},                                   // lower case grows freely
    };
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
        CHECK_MSG(plm_invented_prefix(starts[i].input, starts[i].output,
                                      strlen(starts[i].output)) == starts[i].want,
                  "invented_prefix(\"%s\", \"%s\") != %d", starts[i].input, starts[i].output,
                  starts[i].want);
    CHECK(plm_invented_prefix(NULL, "7", 0) == 0 && plm_invented_prefix("", "ab", 2) == 0);
}

static void test_distance(void) {
    const char *s = "the cat sat on the mat .";
    CHECK(plm_pair_distance(s, s) == 0.0);
    CHECK(plm_pair_distance(s, "dogs run fast") == 100.0);
    double swap = plm_pair_distance(s, "the mat sat on the cat ."); // same words, new order
    CHECK(swap > 10.0 && swap < 100.0);
    plm_bleu_result r;
    const char *h = "a cat sat on the mat .";
    CHECK(plm_bleu(&h, &s, 1, &r, NULL) == PLM_OK && plm_pair_distance(s, h) == 100.0 - r.bleu);
    CHECK(plm_pair_distance("the  cat.", "the cat .") == 0.0); // equal as 13a tokens
    // effective order, as sentence_bleu: short segments are not 0 for lacking 4-grams
    double short_d = plm_pair_distance("a b c", "a b d");
    CHECK(plm_pair_distance("a b", "a b") == 0.0 && short_d > 0.0 && short_d < 100.0);
    CHECK(plm_pair_distance(NULL, "x") == 100.0 && plm_pair_distance(NULL, NULL) == 100.0);
}

static void test_scores(void) {
    const char *in[4] = {"The cat sat .", "It rained in 1990 .", "He left .", "A B C D"};
    const char *ref[4] = {"A cat sat .", "In 1990 it rained .", "He went away .", "A B C D"};
    const char *out[4] = {"The cat sat .", "It rained in 1991 .", "He went .", "A B"};
    plm_paraphrase_scores sc;
    plm_error err = {0};
    CHECK(plm_score_paraphrases(in, ref, out, 4, &sc, &err) == PLM_OK);
    plm_bleu_result b, self;
    plm_bleu(out, ref, 4, &b, NULL);
    plm_bleu(out, in, 4, &self, NULL);
    CHECK(sc.n == 4 && sc.bleu.bleu == b.bleu && sc.self_bleu.bleu == self.bleu);
    CHECK(fabs(sc.ibleu - (0.8 * b.bleu - 0.2 * self.bleu)) < 1e-12);
    CHECK(sc.copy_rate == 0.25 && sc.invented_rate == 0.25);
    CHECK_MSG(fabs(sc.len_ratio - (1.0 + 1.0 + 3.0 / 3.0 + 2.0 / 4.0) / 4) < 1e-12, "len_ratio %g",
              sc.len_ratio);
    double d = 0;
    for (int i = 0; i < 4; i++) d += plm_pair_distance(in[i], out[i]);
    CHECK(fabs(sc.distance - d / 4) < 1e-12);
    CHECK(plm_score_paraphrases(in, ref, out, 0, &sc, &err) == PLM_OK && sc.n == 0 &&
          sc.copy_rate == 0);
    const char *spaced = "The cat sat.", *typed = "The cat sat .";
    CHECK(plm_score_paraphrases(&typed, &typed, &spaced, 1, &sc, &err) == PLM_OK &&
          sc.copy_rate == 1.0); // a copy up to spacing is a copy
    CHECK(plm_score_paraphrases(NULL, ref, out, 1, &sc, &err) == PLM_ERR_ARG);
}

int main(void) {
    test_self();
    test_invented();
    test_distance();
    test_scores();
    return test_main_end("test_score");
}
