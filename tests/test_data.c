// test_data.c: task data (src/data.c) with the real SmolLM2 paraphraser tokenizer (which has
// <|OUTPUT_START|> = 49152 and <|OUTPUT_END|> = 49153): the template strings; PAWS dev and test
// (counts, exact ids against tokenizing the whole template string, the loss span); small TSV and
// JSONL files written here into a mkdtemp directory (CRLF/LF, header or not, every kind of bad
// row, strict mode, files with nothing usable); the text pairs read for eval by the same reader;
// the split; the batch order; the diversity levels (cut points, the control token of each prompt,
// given cuts, near copies dropped) and detokenized PAWS rows.
// Run from the repository root: the data is read from data/.
#define _DEFAULT_SOURCE // mkdtemp
#include <stdint.h>
#include <unistd.h>

#include "data.h"
#include "task.h"
#include "test.h"
#include "tokenizer.h"

#define TOKENIZER "data/smollm2-paraphraser/tokenizer.json"
#define PAWS_DEV  "data/paws/dev.tsv"
#define PAWS_TEST "data/paws/test.tsv"
#define ID_START  49152
#define ID_END    49153

static char tmpdir[64];
static const plm_tokenizer *tok;

// ---- helpers ----

// write_file: text into tmpdir/name; returns the path (valid until the 4th next call).
static const char *write_file(const char *name, const char *text) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    FILE *f = fopen(buf[k], "wb");
    if (!f) return buf[k];
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return buf[k];
}

// load: path with default params changed by strict and max_len (0 = default); returns the status.
static plm_status load(plm_dataset *d, const char *path, int strict, int32_t max_len,
                       plm_error *err) {
    plm_data_params p = plm_data_default_params();
    p.strict = strict;
    if (max_len) p.max_len = max_len;
    return plm_dataset_load(d, path, tok, &p, err);
}

// ids_of: tokenize text into a new array (caller frees); *n receives the count.
static int32_t *ids_of(const char *text, int32_t *n) {
    *n = plm_tokenizer_encode(tok, text, strlen(text), NULL, 0);
    int32_t *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    plm_tokenizer_encode(tok, text, strlen(text), ids, *n);
    return ids;
}

// same_ids_at: example e holds exactly the ids of the full template for src -> tgt with the
// control field of level (none when level < 0), and its prompt part is exactly the ids of the
// prompt alone.
static int same_ids_at(const plm_example *e, const char *src, const char *tgt, int32_t level) {
    char prompt[1024], target[1024], full[2048];
    plm_task_prompt_n(src, strlen(src), level, prompt, sizeof prompt);
    plm_task_target(tgt, target, sizeof target);
    snprintf(full, sizeof full, "%s%s", prompt, target);
    int32_t n, np;
    int32_t *ids = ids_of(full, &n), *pids = ids_of(prompt, &np);
    int ok = n == e->n && np == e->n_prompt && !memcmp(ids, e->ids, (size_t)n * sizeof *ids);
    free(ids);
    free(pids);
    return ok;
}

static int same_ids(const plm_example *e, const char *src, const char *tgt) {
    return same_ids_at(e, src, tgt, -1);
}

// decoded: the bytes of ids as a NUL-terminated string in a static buffer.
static const char *decoded(const int32_t *ids, int32_t n) {
    static char buf[4096];
    int64_t m = plm_tokenizer_decode(tok, ids, n, buf, sizeof buf - 1);
    buf[m >= 0 && m < (int64_t)sizeof buf ? m : 0] = 0;
    return buf;
}

// ---- the template ----

static void test_template(void) {
    char buf[128];
    size_t n = plm_task_prompt("Hi there.", buf, sizeof buf);
    CHECK(!strcmp(buf, "Rephrase the following:\nInput: Hi there.\nOutput: <|OUTPUT_START|>"));
    CHECK(n == strlen(buf));
    CHECK(plm_task_prompt("Hi there.", NULL, 0) == n);                              // counting only
    CHECK(plm_task_prompt("Hi there.", buf, 10) == n && !strcmp(buf, "Rephrase ")); // truncated
    n = plm_task_target("Hello.", buf, sizeof buf);
    CHECK(!strcmp(buf, "Hello.<|OUTPUT_END|>") && n == strlen(buf));
    CHECK(plm_tokenizer_token_id(tok, PLM_TASK_START) == ID_START);
    CHECK(plm_tokenizer_token_id(tok, PLM_TASK_END) == ID_END);
}

// ---- PAWS ----

// check_paws: the counts of a PAWS split; every example ends with the end marker, its prompt with
// the start marker, and re-encoding its decoded text gives its ids back (the two parts encoded
// apart equal the whole string encoded at once); prints the token length statistics.
static void check_paws(const char *path, const char *name, int64_t label1) {
    plm_dataset d;
    plm_error err = {0};
    plm_status st = load(&d, path, 1, 0, &err);
    CHECK_MSG(st == PLM_OK, "%s: %s", name, err.msg);
    if (st != PLM_OK) return;
    CHECK(d.rows == 8000 && d.not_label1 == 8000 - label1 && d.n == 2 * label1);
    CHECK(d.bad_fields + d.bad_empty + d.bad_long == 0 && d.first_bad[0] == 0);
    int64_t sum = 0, sum_target = 0;
    int32_t max = 0, bad_marks = 0, bad_round = 0;
    for (int32_t i = 0; i < d.n; i++) {
        const plm_example *e = &d.ex[i];
        // one block, in order: example i starts where i-1 ends
        bad_marks += e->ids != d.block + sum || e->ids[e->n - 1] != ID_END ||
                     e->ids[e->n_prompt - 1] != ID_START;
        sum += e->n, sum_target += e->n - e->n_prompt;
        max = e->n > max ? e->n : max;
        if (i % 7 == 0) { // a sample, to keep the test quick under sanitizers
            int32_t n;
            int32_t *ids = ids_of(decoded(e->ids, e->n), &n);
            bad_round += n != e->n || memcmp(ids, e->ids, (size_t)n * sizeof *ids);
            free(ids);
        }
        if (i % 2 == 1) bad_round += d.src_row[i] != d.src_row[i - 1]; // a pair, then its reverse
    }
    CHECK_MSG(bad_marks == 0, "%s: %d examples with misplaced markers or ids", name,
              (int)bad_marks);
    CHECK_MSG(bad_round == 0, "%s: %d examples differ from encoding the whole text", name,
              (int)bad_round);
    printf("%s: %lld rows, %lld label 1, %d examples; tokens mean %.1f max %d, target mean %.1f\n",
           name, (long long)d.rows, (long long)label1, (int)d.n, (double)sum / d.n, (int)max,
           (double)sum_target / d.n);
    plm_dataset_free(&d);
}

static void test_paws(void) {
    check_paws(PAWS_DEV, "paws dev", 3539);
    check_paws(PAWS_TEST, "paws test", 3536);

    // the first label-1 row of dev (id 2), forward and reversed, against the whole template string
    static const char *s1 = "They were there to enjoy us and they were there to pray for us .";
    static const char *s2 = "They were there for us to enjoy and they were there for us to pray .";
    plm_dataset d;
    plm_error err;
    if (load(&d, PAWS_DEV, 0, 0, &err) != PLM_OK) return;
    CHECK(same_ids(&d.ex[0], s1, s2));
    CHECK(same_ids(&d.ex[1], s2, s1));
    // the loss span is exactly target + <|OUTPUT_END|>
    const plm_example *e = &d.ex[0];
    char want[256];
    plm_task_target(s2, want, sizeof want);
    CHECK(!strcmp(decoded(e->ids + e->n_prompt, e->n - e->n_prompt), want));
    CHECK(e->ids[e->n - 1] == ID_END);
    plm_task_prompt(s1, want, sizeof want);
    CHECK(!strcmp(decoded(e->ids, e->n_prompt), want));
    plm_dataset_free(&d);

    // reverse = 0: one example per row
    plm_data_params p = plm_data_default_params();
    p.reverse = 0;
    CHECK(plm_dataset_load(&d, PAWS_DEV, tok, &p, &err) == PLM_OK && d.n == 3539);
    CHECK(d.n > 0 && same_ids(&d.ex[0], s1, s2));
    plm_dataset_free(&d);
}

// ---- small files ----

// TSV: the same three rows (label 1, 0, 1) with LF or CRLF, with or without a header, must give
// the same examples; a header is recognised by PAWS's names or by a label that is not a number.
static void test_tsv_forms(void) {
    static const char *rows = "1\tA cat sat .\tThe cat sat .\t1\n"
                              "2\tNot a pair .\tSomething else .\t0\n"
                              "3\t  Dogs run .  \tDogs are running .\t1\n";
    char crlf[256], text[512];
    size_t k = 0;
    for (const char *r = rows; *r; r++) {
        if (*r == '\n') crlf[k++] = '\r';
        crlf[k++] = *r;
    }
    crlf[k] = 0;
    const char *variants[4][2] = {
        {"lf.tsv", rows}, {"crlf.tsv", crlf}, {"header.tsv", NULL}, {"header2.tsv", NULL}};
    snprintf(text, sizeof text, "id\tsentence1\tsentence2\tlabel\r\n%s", crlf);
    char text2[512]; // both texts hold 256 bytes of rows and a header
    snprintf(text2, sizeof text2, "\n\nkey\tleft\tright\tis_paraphrase\n%s\n\n", rows);
    variants[2][1] = text, variants[3][1] = text2;
    plm_dataset ref = {0};
    for (int v = 0; v < 4; v++) {
        plm_dataset d;
        plm_error err = {0};
        plm_status st = load(&d, write_file(variants[v][0], variants[v][1]), 1, 0, &err);
        CHECK_MSG(st == PLM_OK, "%s: %s", variants[v][0], err.msg);
        if (st != PLM_OK) continue;
        CHECK_MSG(d.rows == 3 && d.not_label1 == 1 && d.n == 4, "%s: rows %lld n %d",
                  variants[v][0], (long long)d.rows, (int)d.n);
        if (v == 0) {
            ref = d;
            CHECK(same_ids(&d.ex[2], "Dogs run .", "Dogs are running .")); // trimmed
            CHECK(same_ids(&d.ex[3], "Dogs are running .", "Dogs run ."));
            CHECK(d.src_row[0] == 1 && d.src_row[1] == 1 && d.src_row[2] == 3 && d.src_row[3] == 3);
            continue;
        }
        size_t tokens = (size_t)(d.ex[3].ids + d.ex[3].n - d.block);
        CHECK_MSG(d.n == ref.n && !memcmp(d.block, ref.block, tokens * sizeof *d.block),
                  "%s differs from lf.tsv", variants[v][0]);
        plm_dataset_free(&d);
    }
    plm_dataset_free(&ref);
}

// Every kind of bad row is counted, the first is described, good rows survive; strict mode fails
// on the first with the same message.
static void test_tsv_bad(void) {
    char text[4096], long_s[2048] = "";
    for (int i = 0; i < 100; i++) strcat(long_s, "word ");
    snprintf(text, sizeof text,
             "1\tgood one .\tfine one .\t1\n"
             "2\tonly three\tcolumns\n"    // line 2: bad_fields
             "3\ta\tb\tyes\n"              // line 3: label not a number (not the header line)
             "4\t   \tsomething .\t1\n"    // line 4: bad_empty (sentence1)
             "5\ta\t\t1\n"                 // line 5: bad_empty (sentence2)
             "6\t%s\tshort .\t1\n"         // line 6: bad_long with max_len 64
             "7\tempty but label 0\t\t0\n" // label 0 first: not a bad row
             "8\tinvalid \xff\xfe utf-8 .\tok .\t1\n"
             "9\ta\tb\tc\t1\n", // line 9: five columns
             long_s);
    const char *path = write_file("bad.tsv", text);
    plm_dataset d;
    plm_error err = {0};
    CHECK(load(&d, path, 0, 64, &err) == PLM_OK);
    CHECK_MSG(d.rows == 9 && d.not_label1 == 1 && d.n == 4, "rows %lld n %d", (long long)d.rows,
              (int)d.n);
    CHECK(d.bad_fields == 3 && d.bad_empty == 2 && d.bad_long == 1);
    char want[300];
    snprintf(want, sizeof want,
             "%s:2: expected 4 tab-separated columns (id, sentence1, sentence2, label) or 2 "
             "(input, reference), found 3",
             path);
    CHECK_MSG(!strcmp(d.first_bad, want), "first_bad '%s'", d.first_bad);
    plm_dataset_free(&d);

    // strict: the first bad row is the error, with the same description
    CHECK(load(&d, path, 1, 64, &err) == PLM_ERR_FORMAT && !strcmp(err.msg, want));
    CHECK(d.n == 0 && d.ex == NULL && d.block == NULL);

    // each kind first, to see each description
    static const struct {
        const char *text, *why;
    } first[] = {
        {"id\tsentence1\tsentence2\tlabel\n1\ta\tb\tx1\n", ":2: label 'x1' is not an integer"},
        {"1\t \tb\t1\n", ":1: empty sentence1"},
        {"1\ta\t \t1\n", ":1: empty sentence2"},
        {"1\ta a a a a a a a a a a a a a a a a a a a a a a a a a\tb\t1\n", NULL}, // too long
    };
    for (size_t k = 0; k < sizeof first / sizeof first[0]; k++) {
        path = write_file("first.tsv", first[k].text);
        snprintf(want, sizeof want, "%s%s", path, first[k].why ? first[k].why : "");
        if (!first[k].why) { // the count is that of the row's longer example
            static const char *const side[2] = {
                "a a a a a a a a a a a a a a a a a a a a a a a a a a", "b"};
            int32_t n = 0;
            for (int r = 0; r < 2; r++) {
                char full[256];
                int32_t m;
                size_t np = plm_task_prompt(side[r], full, sizeof full);
                plm_task_target(side[1 - r], full + np, sizeof full - np);
                free(ids_of(full, &m));
                n = m > n ? m : n;
            }
            snprintf(want, sizeof want, "%s:1: %d tokens, more than max_len 40", path, (int)n);
        }
        CHECK(load(&d, path, 1, 40, &err) == PLM_ERR_FORMAT);
        CHECK_MSG(!strcmp(err.msg, want), "got '%s', want '%s'", err.msg, want);
    }
}

// JSONL: string fields "input" and "output", escapes decoded, no reversal, blank lines ignored.
static void test_jsonl(void) {
    const char *path =
        write_file("a.jsonl",
                   "\n{\"input\": \"Caf\\u00e9 time .\", \"output\": \"Time for caf\\u00e9 .\"}\r\n"
                   "\r\n"
                   "{\"output\": \"b\", \"input\": \"a\", \"extra\": [1]}\n"
                   "{\"input\": \"a\", \"output\": \"b\"\n"      // line 5: bad JSON
                   "{\"input\": \"a\"}\n"                        // line 6: missing output
                   "{\"input\": \"a\", \"output\": 7}\n"         // line 7: not a string
                   "[1, 2]\n"                                    // line 8: not an object
                   "{\"input\": \" \\n \", \"output\": \"b\"}\n" // line 9: empty input
                   "{\"input\": \"x\\ty\", \"output\": \"\\u00ff\"}");
    plm_dataset d;
    plm_error err = {0};
    CHECK_MSG(load(&d, path, 0, 0, &err) == PLM_OK, "%s", err.msg);
    CHECK_MSG(d.rows == 8 && d.n == 3 && d.not_label1 == 0, "rows %lld n %d", (long long)d.rows,
              (int)d.n);
    CHECK(d.bad_fields == 4 && d.bad_empty == 1 && d.bad_long == 0);
    CHECK_MSG(strstr(d.first_bad, "a.jsonl:5: invalid JSON") != NULL, "first_bad '%s'",
              d.first_bad);
    if (d.n == 3) {
        CHECK(same_ids(&d.ex[0], "Café time .", "Time for café ."));
        CHECK(same_ids(&d.ex[1], "a", "b"));
        CHECK(same_ids(&d.ex[2], "x\ty", "ÿ"));
        CHECK(d.src_row[0] == 2 && d.src_row[1] == 4 && d.src_row[2] == 10);
        // its source lines, verbatim (CRLF kept), the last one given a line ending
        char out[128], *got = NULL;
        size_t n = 0;
        snprintf(out, sizeof out, "%s/lines.jsonl", tmpdir);
        CHECK(plm_dataset_write_lines(&d, path, out, &err) == PLM_OK);
        CHECK(plm_file_read(out, &got, &n, &err) == PLM_OK);
        const char *want =
            "{\"input\": \"Caf\\u00e9 time .\", \"output\": \"Time for caf\\u00e9 .\"}\r\n"
            "{\"output\": \"b\", \"input\": \"a\", \"extra\": [1]}\n"
            "{\"input\": \"x\\ty\", \"output\": \"\\u00ff\"}\n";
        CHECK_MSG(got && n == strlen(want) && !memcmp(got, want, n), "got '%.*s'", (int)n,
                  got ? got : "");
        free(got);
    }
    plm_dataset_free(&d);

    static const struct {
        const char *text, *why;
    } first[] = {
        {"{\"input\": \"a\"}\n", ":1: missing string field \"output\""},
        {" {\"output\": \"a\"}\n", ":1: missing string field \"input\""},
        {"{\"input\": \"a\", \"output\": \"b\"}\n[]\n",
         ":2: expected a JSON object {\"input\", \"output\"}"},
        {"{\"input\": \"\", \"output\": \"b\"}", ":1: empty input"},
        {"{\"input\": \"a\", \"output\": \"  \"}", ":1: empty output"},
    };
    char want[300];
    for (size_t k = 0; k < sizeof first / sizeof first[0]; k++) {
        path = write_file("first.jsonl", first[k].text);
        snprintf(want, sizeof want, "%s%s", path, first[k].why);
        CHECK(load(&d, path, 1, 0, &err) == PLM_ERR_FORMAT);
        CHECK_MSG(!strcmp(err.msg, want), "got '%s', want '%s'", err.msg, want);
    }
}

// Files that give nothing to train on, and a tokenizer without the markers.
static void test_nothing_usable(void) {
    static const struct {
        const char *name, *text, *why;
    } cases[] = {
        {"empty.tsv", "", "no data rows (empty file or header only)"},
        {"blank.tsv", "\n \r\n\n", "no data rows (empty file or header only)"},
        {"header.tsv", "id\tsentence1\tsentence2\tlabel\r\n", "no data rows"},
        {"zeros.tsv", "1\ta\tb\t0\n2\tc\td\t0\n", "no label-1 rows among 2 rows"},
        {"allbad.tsv", "1\ta\tb\t1\tx\n1\ta\t\t1\n", "all 2 rows bad, first: "},
        {"mixed.tsv", "1\ta\tb\t0\n1\ta\t\t1\n", "no usable row: 1 not label 1, 1 bad, first: "},
        {"allbad.jsonl", "{\"input\": 1}\n{]\n", "all 2 rows bad, first: "},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        plm_dataset d;
        plm_error err = {0};
        const char *path = write_file(cases[k].name, cases[k].text);
        CHECK_MSG(load(&d, path, 0, 0, &err) == PLM_ERR_FORMAT && strstr(err.msg, cases[k].why) &&
                      strstr(err.msg, path) == err.msg,
                  "%s: '%s'", cases[k].name, err.msg);
        CHECK(d.n == 0 && d.ex == NULL);
    }
    plm_dataset d;
    plm_error err = {0};
    CHECK(load(&d, "/nonexistent/x.tsv", 0, 0, &err) == PLM_ERR_IO);
    plm_tokenizer *tiny = NULL;
    CHECK(plm_tokenizer_load(&tiny, "tests/data/tiny-bpe/tokenizer.json", &err) == PLM_OK);
    if (tiny) {
        plm_data_params p = plm_data_default_params();
        CHECK(plm_dataset_load(&d, write_file("ok.tsv", "1\ta\tb\t1\n"), tiny, &p, &err) ==
              PLM_ERR_ARG);
        CHECK_MSG(
            !strcmp(err.msg, "the tokenizer lacks <|OUTPUT_START|>: add the task tokens first"),
            "'%s'", err.msg);
    }
    plm_tokenizer_free(tiny);
    // a buffer, without a file
    static const char jl[] = "{\"input\": \"a\", \"output\": \"b\"}";
    CHECK(plm_dataset_load_buffer(&d, jl, sizeof jl - 1, "mem", tok, NULL, &err) == PLM_OK &&
          d.n == 1);
    plm_dataset_free(&d);
    plm_dataset_free(&d); // twice is fine: free zeroes it
}

// ---- split ----

// sum_ids: a checksum of every id of d, to see that a split moves ids without changing them.
static uint64_t sum_ids(const plm_dataset *d) {
    uint64_t s = 0;
    for (int32_t i = 0; i < d->n; i++)
        for (int32_t t = 0; t < d->ex[i].n; t++) s += (uint64_t)d->ex[i].ids[t] * (uint64_t)(t + 1);
    return s;
}

// pairs_whole: every source row of d has exactly its two examples, adjacent (pair, reverse).
static int pairs_whole(const plm_dataset *d) {
    if (d->n % 2) return 0;
    for (int32_t i = 0; i < d->n; i += 2)
        if (d->src_row[i] != d->src_row[i + 1] || (i && d->src_row[i] <= d->src_row[i - 1]))
            return 0;
    return 1;
}

// prompt_key: a hash of the prompt ids of example e: the template is fixed, so it names the input
// sentence, and with reversed pairs every sentence is some example's input.
static uint64_t prompt_key(const plm_example *e) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t t = 0; t < e->n_prompt; t++) h = (h ^ (uint64_t)e->ids[t]) * 1099511628211ull;
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// shared_sentences: how many sentences are inputs in both a and b.
static int shared_sentences(const plm_dataset *a, const plm_dataset *b) {
    uint64_t *ka = malloc((size_t)a->n * sizeof *ka);
    int shared = 0;
    for (int32_t i = 0; i < a->n; i++) ka[i] = prompt_key(&a->ex[i]);
    qsort(ka, (size_t)a->n, sizeof *ka, cmp_u64);
    for (int32_t j = 0; j < b->n; j++) {
        uint64_t k = prompt_key(&b->ex[j]);
        shared += bsearch(&k, ka, (size_t)a->n, sizeof *ka, cmp_u64) != NULL;
    }
    free(ka);
    return shared;
}

// test_groups: rows that share a sentence are one group (named by its first example), however
// far apart; a chain a-b, b-c, c-d links all three rows.
static void test_groups(void) {
    static const char tsv[] = "1\tA one .\tB two .\t1\n"
                              "2\tE five .\tF six .\t1\n"
                              "3\tC three .\t B two .\t1\n" // " B two ." trims to "B two ."
                              "4\tG seven .\tH eight .\t1\n"
                              "5\tC three .\tD four .\t1\n";
    plm_dataset d = {0};
    plm_error err = {0};
    CHECK_MSG(plm_dataset_load_buffer(&d, tsv, sizeof tsv - 1, "mem", tok, NULL, &err) == PLM_OK,
              "%s", err.msg);
    static const int32_t want[10] = {0, 0, 2, 2, 0, 0, 6, 6, 0, 0};
    CHECK(d.n == 10 && d.group && !memcmp(d.group, want, sizeof want));
    plm_dataset h = {0};
    CHECK(plm_dataset_split(&d, &h, 0.5, 3, &err) == PLM_OK);
    CHECK(shared_sentences(&d, &h) == 0 && d.n + h.n == 10 && d.n > 0 && h.n > 0);
    plm_dataset_free(&d), plm_dataset_free(&h);
}

static void test_split(const plm_dataset *paws) {
    plm_dataset a = {0}, b = {0}, ha = {0}, hb = {0};
    plm_error err = {0};
    // two copies of PAWS dev through the buffer loader would re-tokenize; a split of a split is
    // cheaper: take everything but one row as the copy under test.
    CHECK(load(&a, PAWS_DEV, 0, 0, &err) == PLM_OK && load(&b, PAWS_DEV, 0, 0, &err) == PLM_OK);
    uint64_t total = sum_ids(&a);
    CHECK(plm_dataset_split(&a, &ha, 0.1, 7, &err) == PLM_OK);
    CHECK(plm_dataset_split(&b, &hb, 0.1, 7, &err) == PLM_OK);
    // whole groups (at most 12 rows here) until a tenth of the examples
    CHECK_MSG(ha.n >= paws->n / 10 && ha.n < paws->n / 10 + 24 && a.n == paws->n - ha.n &&
                  ha.rows * 2 == ha.n,
              "held rows %lld n %d", (long long)ha.rows, (int)ha.n);
    CHECK(shared_sentences(&a, &ha) == 0 && shared_sentences(&ha, &a) == 0);
    CHECK(a.rows == paws->rows &&
          a.not_label1 == paws->not_label1); // d's counters describe the file
    CHECK(sum_ids(&a) + sum_ids(&ha) == total);
    CHECK(pairs_whole(&a) && pairs_whole(&ha));
    // no source row on both sides (both are sorted by row, so a merge walk finds any overlap)
    int overlap = 0;
    for (int32_t i = 0, j = 0; i < a.n && j < ha.n;) {
        if (a.src_row[i] == ha.src_row[j]) overlap++, i++, j++;
        else if (a.src_row[i] < ha.src_row[j]) i++;
        else j++;
    }
    CHECK(overlap == 0);
    // deterministic: the same seed gives the same split, another seed another one
    CHECK(a.n == b.n && ha.n == hb.n &&
          !memcmp(ha.src_row, hb.src_row, (size_t)ha.n * sizeof(int32_t)));
    CHECK(sum_ids(&ha) == sum_ids(&hb));
    plm_dataset c = {0}, hc = {0};
    CHECK(load(&c, PAWS_DEV, 0, 0, &err) == PLM_OK);
    CHECK(plm_dataset_split(&c, &hc, 0.1, 8, &err) == PLM_OK);
    CHECK(hc.n != ha.n || memcmp(hc.src_row, ha.src_row, (size_t)ha.n * sizeof(int32_t)));
    // the held-out lines written out and read back are the held-out examples
    char held[128];
    snprintf(held, sizeof held, "%s/held.tsv", tmpdir);
    plm_dataset r = {0};
    CHECK_MSG(plm_dataset_write_lines(&ha, PAWS_DEV, held, &err) == PLM_OK, "%s", err.msg);
    CHECK_MSG(load(&r, held, 1, 0, &err) == PLM_OK, "%s", err.msg);
    CHECK(r.n == ha.n && r.rows == ha.rows && r.not_label1 == 0 && sum_ids(&r) == sum_ids(&ha));
    plm_dataset_free(&r);
    CHECK(plm_dataset_write_lines(&ha, write_file("short.tsv", "1\ta\tb\t1\n"), held, &err) ==
              PLM_ERR_FORMAT &&
          strstr(err.msg, "not found"));
    // a split of the held part, and the argument errors
    plm_dataset h2 = {0};
    int32_t n_held = ha.n;
    CHECK(plm_dataset_split(&ha, &h2, 0.5, 1, &err) == PLM_OK && h2.n >= n_held / 2 &&
          h2.n + ha.n == n_held && shared_sentences(&ha, &h2) == 0);
    plm_dataset_free(&h2);
    CHECK(plm_dataset_split(&ha, &h2, 1.0, 1, &err) == PLM_ERR_ARG);
    CHECK(plm_dataset_split(&ha, &h2, 0.0, 1, &err) == PLM_ERR_ARG);
    const char *one = write_file("one.tsv", "1\ta\tb\t1\n");
    plm_dataset o = {0};
    CHECK(load(&o, one, 0, 0, &err) == PLM_OK && o.n == 2);
    CHECK(plm_dataset_split(&o, &h2, 0.5, 1, &err) == PLM_ERR_ARG && strstr(err.msg, "2 groups"));
    plm_dataset_free(&o);
    plm_dataset_free(&a), plm_dataset_free(&b), plm_dataset_free(&c);
    plm_dataset_free(&ha), plm_dataset_free(&hb), plm_dataset_free(&hc);
}

// ---- batch order ----

// spread: mean over the full batches of (longest - shortest) example in the batch.
static double spread(const int32_t *order, const plm_dataset *d, int32_t B) {
    double s = 0;
    int32_t nb = d->n / B;
    for (int32_t k = 0; k < nb; k++) {
        int32_t lo = INT32_MAX, hi = 0;
        for (int32_t i = 0; i < B; i++) {
            int32_t n = d->ex[order[k * B + i]].n;
            lo = n < lo ? n : lo, hi = n > hi ? n : hi;
        }
        s += hi - lo;
    }
    return s / nb;
}

static int is_permutation(const int32_t *order, int32_t n) {
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int32_t i = 0; i < n && ok; i++) {
        ok = order[i] >= 0 && order[i] < n && !seen[order[i]];
        if (ok) seen[order[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_batch_order(const plm_dataset *d) {
    size_t bytes = (size_t)d->n * sizeof(int32_t);
    int32_t *o1 = malloc(bytes), *o2 = malloc(bytes), *rnd = malloc(bytes);
    const int32_t Bs[] = {1, 8, 16, 7, 10000};
    for (size_t k = 0; k < sizeof Bs / sizeof Bs[0]; k++) {
        plm_batch_order(o1, d, Bs[k], 42, 0);
        plm_batch_order(o2, d, Bs[k], 42, 0);
        CHECK_MSG(is_permutation(o1, d->n), "B %d", (int)Bs[k]);
        CHECK(!memcmp(o1, o2, bytes));
    }
    int32_t B = 8;
    plm_batch_order(o1, d, B, 42, 0);
    plm_batch_order(o2, d, B, 42, 1);
    CHECK(memcmp(o1, o2, bytes) != 0); // another epoch, another order
    plm_batch_order(o2, d, B, 43, 0);
    CHECK(memcmp(o1, o2, bytes) != 0); // another seed, another order
    // length grouping: batches are much tighter than those of a plain shuffle
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int32_t i = 0; i < d->n; i++) rnd[i] = i;
    for (int32_t i = d->n - 1; i > 0; i--) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int32_t j = (int32_t)(s % (uint64_t)(i + 1)), t = rnd[i];
        rnd[i] = rnd[j], rnd[j] = t;
    }
    double grouped = spread(o1, d, B), random = spread(rnd, d, B);
    printf("batch order: mean length spread in batches of %d: %.2f grouped, %.2f shuffled\n",
           (int)B, grouped, random);
    CHECK(grouped < 0.1 * random);
    // batches are shuffled: the first batches are not simply the shortest examples
    CHECK(d->ex[o1[0]].n != d->ex[o1[B]].n || d->ex[o1[B]].n != d->ex[o1[2 * B]].n);
    free(o1), free(o2), free(rnd);
}

// ---- text pairs: the same reader without the tokenizer (`pocketlm eval`) ----

static void test_text_pairs(void) {
    plm_text_pairs p = {0};
    plm_error err = {0};
    const char *tsv = write_file("pairs.tsv", "\xEF\xBB\xBFid\tsentence1\tsentence2\tlabel\r\n"
                                              " 7 \t  A cat.\t One cat. \t1\r\n"
                                              "8\tNot\tthis\t0\n\n"
                                              "9\t \tempty\t1\n"
                                              "10\tonly three\t1\n"
                                              "11\tB.\tb.\t1\n"
                                              "12\tC.\tc.\t1\n");
    CHECK_MSG(plm_text_pairs_load(&p, tsv, 0, &err) == PLM_OK, "%s", err.msg);
    CHECK(p.n == 3 && !p.jsonl && p.rows == 6 && p.not_label1 == 1 && p.bad == 2);
    if (p.n == 3) {
        CHECK(!strcmp(p.pair[0].id, "7") && !strcmp(p.pair[0].input, "A cat.") &&
              !strcmp(p.pair[0].output, "One cat."));
        CHECK(!strcmp(p.pair[2].id, "12") && !strcmp(p.pair[2].input, "C."));
    }
    CHECK(strstr(p.first_bad, "pairs.tsv:5: empty sentence1") != NULL);
    plm_text_pairs_free(&p);
    CHECK(plm_text_pairs_load(&p, tsv, 2, &err) == PLM_OK && p.n == 2 &&
          !strcmp(p.pair[1].id, "11")); // the first limit pairs
    plm_text_pairs_free(&p);
    const char *jsonl = write_file("pairs.jsonl", "{\"input\": \"x \\u00e9\", \"output\": \"y\"}\n"
                                                  "{\"input\": \"no output\"}\n"
                                                  "{\"output\": \"z\", \"input\": \" w \"}\n");
    CHECK_MSG(plm_text_pairs_load(&p, jsonl, 0, &err) == PLM_OK, "%s", err.msg);
    CHECK(p.n == 2 && p.jsonl && p.bad == 1);
    if (p.n == 2) {
        CHECK(!strcmp(p.pair[0].id, "1") && !strcmp(p.pair[0].input, "x \xc3\xa9"));
        CHECK(!strcmp(p.pair[1].id, "3") && !strcmp(p.pair[1].input, "w") &&
              !strcmp(p.pair[1].output, "z"));
    }
    plm_text_pairs_free(&p);
    const char *none = write_file("none.tsv", "id\tsentence1\tsentence2\tlabel\n1\ta\tb\t0\n");
    CHECK(plm_text_pairs_load(&p, none, 0, &err) == PLM_ERR_FORMAT && strstr(err.msg, "label-1"));
    CHECK(p.n == 0 && !p.pair && !p.text);
    CHECK(plm_text_pairs_load(&p, write_file("x", ""), -1, &err) == PLM_ERR_ARG);
    // the pairs are the tokenizing loader's rows: PAWS dev, first 100
    plm_dataset d = {0};
    plm_data_params dp = plm_data_default_params();
    dp.reverse = 0;
    CHECK(plm_dataset_load(&d, PAWS_DEV, tok, &dp, &err) == PLM_OK);
    CHECK(plm_text_pairs_load(&p, PAWS_DEV, 100, &err) == PLM_OK && p.n == 100 && d.n >= 100);
    for (int32_t i = 0; i < p.n && i < d.n; i++) {
        char full[2048];
        size_t np = plm_task_prompt(p.pair[i].input, full, sizeof full);
        plm_task_target(p.pair[i].output, full + np, sizeof full - np);
        CHECK_MSG(!strcmp(decoded(d.ex[i].ids, d.ex[i].n), full), "PAWS dev pair %d", (int)i);
    }
    plm_text_pairs_free(&p);
    plm_dataset_free(&d);
}

// ---- the diversity levels, near copies and detokenization ----

// load_with: path with p's levels, cuts, min_distance and detok (reverse and the rest default)
static plm_status load_with(plm_dataset *d, const char *path, const plm_tokenizer *t,
                            int32_t levels, const float *cuts, float min_distance, int detok,
                            plm_error *err) {
    plm_data_params p = plm_data_default_params();
    p.levels = levels, p.cuts = cuts, p.min_distance = min_distance, p.detok = detok;
    return plm_dataset_load(d, path, t, &p, err);
}

// Ten pairs whose k-th target has its first k words replaced: distances rise with k, the cuts are
// the quantiles (the distances of targets 2, 4, 6, 8), two examples a level, each prompt with its
// level's token; given cuts are used as they are; near copies are dropped and counted. tok has the
// control tokens here; plain is the tokenizer without them.
static void test_levels(const plm_tokenizer *plain) {
    const plm_tokenizer *leveled = tok;
    static const char *const words[10] = {"one", "two",   "three", "four", "five",
                                          "six", "seven", "eight", "nine", "ten"};
    char src[128] = "", tgt[10][128], text[4096] = "";
    for (int w = 0; w < 10; w++) strcat(strcat(src, words[w]), " ");
    strcat(src, ".");
    for (int k = 0; k < 10; k++) {
        tgt[k][0] = 0;
        for (int w = 0; w < 10; w++) strcat(strcat(tgt[k], w < k ? "other" : words[w]), " ");
        strcat(tgt[k], ".");
        snprintf(text + strlen(text), sizeof text - strlen(text),
                 "{\"input\": \"%s\", \"output\": \"%s\"}\n", src, tgt[k]);
    }
    const char *path = write_file("levels.jsonl", text);
    double dist[10];
    for (int k = 0; k < 10; k++) dist[k] = plm_pair_distance(src, tgt[k]);
    CHECK(dist[0] == 0.0);
    for (int k = 1; k < 10; k++) CHECK_MSG(dist[k] > dist[k - 1], "distance %d", k);
    plm_dataset d;
    plm_error err = {0};
    CHECK_MSG(load_with(&d, path, leveled, 5, NULL, 0, 1, &err) == PLM_OK, "%s", err.msg);
    CHECK(d.n == 10 && d.n_levels == 5 && d.near_copies == 0);
    for (int j = 1; j < 5; j++)
        CHECK_MSG(d.cuts[j - 1] == (float)dist[2 * j], "cut %d: %g, want %g", j,
                  (double)d.cuts[j - 1], dist[2 * j]);
    for (int k = 0; k < 10 && d.n == 10; k++)
        CHECK_MSG(same_ids_at(&d.ex[k], src, tgt[k], k / 2), "pair %d at level %d", k, k / 2);
    for (int j = 0; j < 5; j++) {
        CHECK(d.level_n[j] == 2);
        CHECK(fabs(d.level_distance[j] - (dist[2 * j] + dist[2 * j + 1]) / 2) < 1e-4);
    }
    plm_dataset_free(&d);
    // given cuts: the copy below 0.5, the rest below 100
    const float cuts[4] = {0.5f, 100.0f, 100.0f, 100.0f};
    CHECK_MSG(load_with(&d, path, leveled, 5, cuts, 0, 1, &err) == PLM_OK, "%s", err.msg);
    CHECK(d.level_n[0] == 1 && d.level_n[1] == 9 && d.level_n[4] == 0 && d.cuts[0] == 0.5f);
    if (d.n == 10)
        CHECK(same_ids_at(&d.ex[0], src, tgt[0], 0) && same_ids_at(&d.ex[9], src, tgt[9], 1));
    plm_dataset_free(&d);
    // near copies: the copy and the one-word change go below distance dist[2]
    CHECK_MSG(load_with(&d, path, leveled, 0, NULL, (float)dist[2] - 0.01f, 1, &err) == PLM_OK,
              "%s", err.msg);
    CHECK(d.n == 8 && d.near_copies == 2 && d.n_levels == 0 && d.rows == 10);
    if (d.n == 8) CHECK(same_ids(&d.ex[0], src, tgt[2]));
    plm_dataset_free(&d);
    // bad settings: one level, too many, cuts not ascending, a tokenizer without the tokens
    const float down[4] = {5, 4, 3, 2};
    CHECK(load_with(&d, path, leveled, 1, NULL, 0, 1, &err) == PLM_ERR_ARG);
    CHECK(load_with(&d, path, leveled, PLM_TASK_LEVELS_MAX + 1, NULL, 0, 1, &err) == PLM_ERR_ARG);
    CHECK(load_with(&d, path, leveled, 5, down, 0, 1, &err) == PLM_ERR_ARG &&
          strstr(err.msg, "ascending"));
    CHECK(load_with(&d, path, plain, 5, NULL, 0, 1, &err) == PLM_ERR_ARG &&
          strstr(err.msg, "lacks <|DIVERSITY_0|>"));
    CHECK(load_with(&d, path, leveled, 6, NULL, 0, 1, &err) == PLM_ERR_ARG &&
          strstr(err.msg, "lacks <|DIVERSITY_5|>"));
}

// detok: PAWS TSV sentences detokenized (both directions) when asked, JSONL taken as written
static void test_detok_rows(void) {
    const char *tsv = write_file("detok.tsv", "id\tsentence1\tsentence2\tlabel\n"
                                              "1\tHello , `` world '' .\tWorld , hello .\t1\n");
    const char *jsonl =
        write_file("detok.jsonl", "{\"input\": \"a , b\", \"output\": \"b , a\"}\n");
    plm_dataset d;
    plm_error err = {0};
    CHECK_MSG(load_with(&d, tsv, tok, 0, NULL, 0, 1, &err) == PLM_OK, "%s", err.msg);
    CHECK(d.n == 2 && same_ids(&d.ex[0], "Hello, \"world\".", "World, hello.") &&
          same_ids(&d.ex[1], "World, hello.", "Hello, \"world\"."));
    plm_dataset_free(&d);
    CHECK(load_with(&d, tsv, tok, 0, NULL, 0, 0, &err) == PLM_OK);
    CHECK(d.n == 2 && same_ids(&d.ex[0], "Hello , `` world '' .", "World , hello ."));
    plm_dataset_free(&d);
    CHECK(load_with(&d, jsonl, tok, 0, NULL, 0, 1, &err) == PLM_OK);
    CHECK(d.n == 1 && same_ids(&d.ex[0], "a , b", "b , a"));
    plm_dataset_free(&d);
    // a two-column TSV: plain pairs, a header named input/source/sentence1, never reversed nor
    // detokenized; a 2-column first line without such a name is a row
    const char *plain = write_file("plain.tsv", "Input\tReference\na , b\tb , a\n c \t d\n");
    CHECK_MSG(load_with(&d, plain, tok, 0, NULL, 0, 1, &err) == PLM_OK, "%s", err.msg);
    CHECK(d.n == 2 && d.rows == 2 && same_ids(&d.ex[0], "a , b", "b , a") &&
          same_ids(&d.ex[1], "c", "d"));
    plm_dataset_free(&d);
    plain = write_file("plain.tsv", "in\tout\n");
    CHECK(load_with(&d, plain, tok, 0, NULL, 0, 1, &err) == PLM_OK && d.n == 1);
    plm_dataset_free(&d);
    plm_text_pairs p;
    CHECK(plm_text_pairs_load(&p, plain, 0, &err) == PLM_OK && p.n == 1 && !p.paws &&
          !strcmp(p.pair[0].input, "in") && !strcmp(p.pair[0].output, "out") &&
          !strcmp(p.pair[0].id, "1"));
    plm_text_pairs_free(&p);
    CHECK(plm_text_pairs_load(&p, tsv, 0, &err) == PLM_OK && p.n == 1 && p.paws &&
          !strcmp(p.pair[0].input, "Hello , `` world '' ."));
    plm_text_pairs_free(&p);
}

// PAWS dev with 5 levels, detokenized: five near-equal shares, rising mean distance, and every
// prompt with one control token, the one of its level (tok has the control tokens here)
static void test_paws_levels(void) {
    const plm_tokenizer *leveled = tok;
    plm_dataset d;
    plm_error err = {0};
    CHECK_MSG(load_with(&d, PAWS_DEV, leveled, 5, NULL, 0, 1, &err) == PLM_OK, "%s", err.msg);
    int64_t sum = 0;
    for (int j = 0; j < 5; j++) {
        sum += d.level_n[j];
        CHECK_MSG(d.level_n[j] > d.n / 5 - d.n / 50 && d.level_n[j] < d.n / 5 + d.n / 50,
                  "level %d: %lld of %d examples", j, (long long)d.level_n[j], (int)d.n);
        CHECK(j == 0 || d.level_distance[j] > d.level_distance[j - 1]);
    }
    CHECK(sum == d.n);
    printf("PAWS dev, 5 levels: cuts %.2f %.2f %.2f %.2f; mean distance %.1f %.1f %.1f %.1f %.1f\n",
           (double)d.cuts[0], (double)d.cuts[1], (double)d.cuts[2], (double)d.cuts[3],
           d.level_distance[0], d.level_distance[1], d.level_distance[2], d.level_distance[3],
           d.level_distance[4]);
    int32_t first = plm_tokenizer_token_id(leveled, "<|DIVERSITY_0|>"), bad = 0;
    int64_t seen[5] = {0};
    for (int32_t i = 0; i < d.n; i++) {
        int found = 0;
        for (int32_t k = 0; k < d.ex[i].n_prompt; k++) {
            int32_t level = d.ex[i].ids[k] - first;
            if (level >= 0 && level < 5) found++, seen[level]++;
        }
        bad += found != 1;
    }
    CHECK_MSG(bad == 0, "%d examples without exactly one control token", (int)bad);
    for (int j = 0; j < 5; j++) CHECK(seen[j] == d.level_n[j]);
    CHECK(strstr(decoded(d.ex[0].ids, d.ex[0].n_prompt), "\nDiversity: <|DIVERSITY_") != NULL);
    CHECK(strstr(decoded(d.ex[0].ids, d.ex[0].n), " ,") == NULL);
    plm_dataset_free(&d);
}

// ---- copy candidates (the unlikelihood's: plm_data_params.avoid) ----

// test_copy_candidates: the candidates of a hand-made pair, worked out from the definition in
// copy_candidates (src/data.c) word by word. Source S (target form): the ␣cat ␣sat ␣on ␣the ␣mat
// . END; target y: on ␣the ␣mat . ␣the ␣cat ␣sat . END. c_0 = "the" (S's first token, without the
// space a prompt would give it); y_0 "on" is not in S (-1); "␣the" matches S[4], "␣mat" continues
// the copy as the reference does (-1, and "." next too); "." at S[6] is followed by END while the
// reference goes on (END); "␣the" again: none after S[6], so its first occurrence S[4] (␣mat);
// "␣cat" S[1] -> ␣sat, copied (-1); "␣sat" S[2] -> ␣on; "." S[6] -> END, copied (-1). Then: without
// the option avoid is NULL, and a split carries the candidates with the ids.
static void test_copy_candidates(void) {
    const char *text =
        "{\"input\": \"the cat sat on the mat.\", "
        "\"output\": \"on the mat. the cat sat.\"}\n"
        "{\"input\": \"a dog ran.\", \"output\": \"the dog ran.\"}\n"
        "{\"input\": \"birds sing at dawn.\", \"output\": \"at dawn birds sing.\"}\n";
    const char *ys[9] = {"on", " the", " mat", ".", " the", " cat", " sat", ".", PLM_TASK_END};
    const char *cs[9] = {"the", NULL, NULL, NULL, PLM_TASK_END, " mat", NULL, " on", NULL};
    const char *path = write_file("copy.jsonl", text);
    plm_data_params p = plm_data_default_params();
    plm_dataset d = {0}, held = {0}, plain = {0};
    plm_error err = {0};
    CHECK(plm_dataset_load(&plain, path, tok, &p, &err) == PLM_OK && plain.n == 3);
    CHECK(plain.avoid_block == NULL && plain.ex[0].avoid == NULL);
    p.avoid = 1;
    plm_status st = plm_dataset_load(&d, path, tok, &p, &err);
    CHECK_MSG(st == PLM_OK && d.n == 3, "%s", err.msg);
    if (st != PLM_OK) return;
    const plm_example *e = &d.ex[0];
    CHECK(e->n == plain.ex[0].n && !memcmp(e->ids, plain.ex[0].ids, (size_t)e->n * sizeof *e->ids));
    CHECK_MSG(e->n - e->n_prompt == 9, "target of %d tokens", (int)(e->n - e->n_prompt));
    for (int32_t k = 0; k < e->n_prompt; k++) CHECK(e->avoid[k] == -1);
    for (int32_t i = 0; i < 9 && e->n - e->n_prompt == 9; i++) {
        int32_t want_y = plm_tokenizer_token_id(tok, ys[i]), want_c = -1, n;
        if (want_y < 0) CHECK(plm_tokenizer_encode(tok, ys[i], strlen(ys[i]), &want_y, 1) == 1);
        if (cs[i] && (want_c = plm_tokenizer_token_id(tok, cs[i])) < 0)
            CHECK((n = plm_tokenizer_encode(tok, cs[i], strlen(cs[i]), &want_c, 1)) == 1);
        const int32_t y = e->ids[e->n_prompt + i], c = e->avoid[e->n_prompt + i];
        CHECK_MSG(y == want_y && c == want_c, "target token %d: '%s' avoid %d, want '%s' avoid %d",
                  (int)i, decoded(&y, 1), (int)c, ys[i], (int)want_c);
    }
    // "a dog ran." -> "the dog ran.": c_0 = "a"; then "␣dog" continues a copy (-1) and so on
    e = &d.ex[1];
    int32_t a_id;
    CHECK(plm_tokenizer_encode(tok, "a", 1, &a_id, 1) == 1);
    CHECK(e->avoid[e->n_prompt] == a_id);
    for (int32_t p2 = e->n_prompt + 1; p2 < e->n; p2++) CHECK(e->avoid[p2] == -1);
    // a split copies the candidates with their examples
    CHECK(plm_dataset_split(&d, &held, 0.3, 7, &err) == PLM_OK && d.n + held.n == 3);
    const plm_dataset *sets[2] = {&d, &held};
    for (int k = 0; k < 2; k++)
        for (int32_t i = 0; i < sets[k]->n; i++) {
            const plm_example *a = &sets[k]->ex[i];
            int32_t row = sets[k]->src_row[i] - 1; // one example per line
            CHECK(a->avoid && a->avoid >= sets[k]->avoid_block &&
                  a->avoid < sets[k]->avoid_block + 64 * 3);
            int ok = 0;
            plm_dataset again = {0};
            if (plm_dataset_load(&again, path, tok, &p, &err) == PLM_OK)
                ok = a->n == again.ex[row].n &&
                     !memcmp(a->avoid, again.ex[row].avoid, (size_t)a->n * sizeof *a->avoid);
            CHECK_MSG(ok, "split: example %d of side %d lost its candidates", (int)i, k);
            plm_dataset_free(&again);
        }
    plm_dataset_free(&d), plm_dataset_free(&held), plm_dataset_free(&plain);
}

int main(void) {
    test_self();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plm_test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    plm_tokenizer *t = NULL;
    plm_error err = {0};
    if (plm_tokenizer_load(&t, TOKENIZER, &err) != PLM_OK) {
        fprintf(stderr, "test_data needs %s (run from the repository root): %s\n", TOKENIZER,
                err.msg);
        return 1;
    }
    tok = t;
    test_template();
    test_paws();
    test_tsv_forms();
    test_tsv_bad();
    test_jsonl();
    test_nothing_usable();
    test_text_pairs();
    test_detok_rows();
    test_copy_candidates();
    plm_tokenizer *leveled = NULL;
    const char *names[5] = {"<|DIVERSITY_0|>", "<|DIVERSITY_1|>", "<|DIVERSITY_2|>",
                            "<|DIVERSITY_3|>", "<|DIVERSITY_4|>"};
    CHECK_MSG(plm_tokenizer_add_tokens(&leveled, t, names, 5, 1, &err) == PLM_OK, "%s", err.msg);
    if (leveled) {
        tok = leveled; // same_ids_at and decoded see the control tokens through it
        test_levels(t);
        test_paws_levels();
        tok = t;
    }
    plm_tokenizer_free(leveled);
    plm_dataset paws = {0};
    CHECK(load(&paws, PAWS_DEV, 0, 0, &err) == PLM_OK);
    if (paws.n) {
        test_groups();
        test_split(&paws);
        test_batch_order(&paws);
    }
    plm_dataset_free(&paws);
    plm_tokenizer_free(t);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_main_end("test_data");
}
