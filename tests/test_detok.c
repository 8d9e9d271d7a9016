// test_detok.c: plm_detok (src/detok.c), Moses-style English detokenization: PAWS sentences and
// the rules one by one (closing punctuation, openers, contractions, PTB and straight quotes by
// parity, possessives, hyphens kept), white space, already normal text unchanged, the snprintf
// contract (counting, truncation) and that the result is never longer than the input.
#include "detok.h"
#include "test.h"

static void check_one(const char *in, const char *want) {
    char out[512];
    size_t n = plm_detok(in, strlen(in), out, sizeof out);
    CHECK_MSG(!strcmp(out, want) && n == strlen(want), "detok(\"%s\")\n   = \"%s\"\n want \"%s\"",
              in, out, want);
    CHECK_MSG(n <= strlen(in), "detok(\"%s\") is longer than its input", in);
}

static void test_cases(void) {
    static const char *const cases[][2] = {
        // PAWS sentences (data/paws), as typed
        {"Despite the late hour , the restaurant was still full of customers .",
         "Despite the late hour, the restaurant was still full of customers."},
        {"It is situated south of Köroğlu - mountains and north of the Bolu .",
         "It is situated south of Köroğlu - mountains and north of the Bolu."},
        {"The spectral levels of light is similar to , but not the same as what 's used by lumens "
         ".",
         "The spectral levels of light is similar to, but not the same as what's used by lumens."},
        {"The `` Fallbeil '' was used for the last time in 1966 .",
         "The \"Fallbeil\" was used for the last time in 1966."},
        {"also spelled as '' Macpelah Cemetery `` , is a cemetery",
         "also spelled as \"Macpelah Cemetery\", is a cemetery"},
        {"33.7 % were born in the US ; 1.08 % has water .",
         "33.7% were born in the US; 1.08% has water."},
        {"The album ( released in 1999 ) sold well : it went gold !",
         "The album (released in 1999) sold well: it went gold!"},
        {"Was it [ really ] { this } good ?", "Was it [really] {this} good?"},
        {"Wait ... what ?", "Wait... what?"},
        // contractions
        {"He does n't know what they 're doing , and I 'll go .",
         "He doesn't know what they're doing, and I'll go."},
        {"I 'm sure she 'd say it 's fine ; we 've seen it .",
         "I'm sure she'd say it's fine; we've seen it."},
        {"DO N'T", "DON'T"},
        // quotes
        {"He said \" hello \" and left .", "He said \"hello\" and left."},
        {"\" One \" , \" two \" .", "\"One\", \"two\"."},
        {"the ' Big One ' arrived", "the 'Big One' arrived"},
        {"the Jones ' house", "the Jones' house"},
        {"` quoted '", "'quoted'"},
        {"a \xE2\x80\x9C curly \xE2\x80\x9D quote", "a \xE2\x80\x9C"
                                                    "curly\xE2\x80\x9D quote"},
        // openers: brackets and currency
        {"It cost $ 5 , or \xC2\xA3 4 .", "It cost $5, or \xC2\xA3"
                                          "4."},
        {"\xC2\xBF Qué ?", "\xC2\xBFQué?"},
        // kept as they are
        {"SBP - President Manuel V. Pangilinan", "SBP - President Manuel V. Pangilinan"},
        {"Despite the late hour, the restaurant was full.",
         "Despite the late hour, the restaurant was full."},
        {"She learned to play the violin when she was seven years old.",
         "She learned to play the violin when she was seven years old."},
        {"e-mail at 10:30 on 1.2.2003", "e-mail at 10:30 on 1.2.2003"},
        {"U.S. and U.K.", "U.S. and U.K."},
        // white space: any ASCII run is one space, none at the ends
        {"  a \t b\n\nc  ", "a b c"},
        {"", ""},
        {"   ", ""},
        // punctuation at the start, and a lone opener at the end
        {", and so", ", and so"},
        {"end (", "end ("},
        {"'s start", "'s start"}, // a contraction needs a word before it
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_one(cases[i][0], cases[i][1]);
}

// snprintf contract: counting with cap 0, truncation, NUL termination
static void test_contract(void) {
    const char *in = "Hello , world .";
    char out[8];
    CHECK(plm_detok(in, strlen(in), NULL, 0) == strlen("Hello, world."));
    size_t n = plm_detok(in, strlen(in), out, sizeof out);
    CHECK(n == strlen("Hello, world.") && !strcmp(out, "Hello, "));
    CHECK(plm_detok(in, 7, out, sizeof out) == 6 && !strcmp(out, "Hello,")); // n bytes only
}

int main(void) {
    test_self();
    test_cases();
    test_contract();
    return test_main_end("test_detok");
}
