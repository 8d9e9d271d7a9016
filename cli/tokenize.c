// tokenize.c: `pocketlm tokenize`: text to token ids as JSON arrays, and back with --decode.
// Inputs: TEXT, each line of a JSONL file (one JSON string a line; with --decode one array of ids),
// or all of stdin. Output: one JSON value a line, in input order, so tests can diff against the
// reference tokenizer. JSONL lines are parsed with the library's JSON parser (src/json.h) rather
// than a second copy of one here.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"

static const char usage_text[] =
    "usage: pocketlm tokenize -t TOKENIZER [--jsonl FILE] [--decode] [TEXT]\n"
    "\n"
    "Print the token ids of TEXT as a JSON array (no BOS/EOS added). Without TEXT or --jsonl,\n"
    "all of stdin is one text.\n"
    "\n"
    "  -t, --tokenizer PATH  tokenizer.json, a Hugging Face directory holding one, or a .gguf\n"
    "  --jsonl FILE          one JSON string a line; prints one array of ids a line\n"
    "  --decode              the reverse: inputs are JSON arrays of ids, outputs JSON strings\n"
    "                        (bytes that are not valid UTF-8 are printed as they are)\n"
    "  -h, --help            this text\n";

// ---- one input ----

static int print_ids(const char *cmd, const plm_tokenizer *tok, const char *text, size_t len) {
    int32_t cap = (int32_t)(len < 1 << 20 ? len + 16 : 1 << 20);
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int32_t n = ids ? plm_tokenizer_encode(tok, text, len, ids, cap) : PLM_ERR_NOMEM;
    if (n > cap) { // rare: more ids than the guess; the second call is exact
        free(ids);
        cap = n;
        ids = malloc((size_t)cap * sizeof *ids);
        n = ids ? plm_tokenizer_encode(tok, text, len, ids, cap) : PLM_ERR_NOMEM;
    }
    if (n < 0) {
        free(ids);
        plm_error err = {(plm_status)n, "out of memory while encoding"};
        return cli_error(cmd, &err);
    }
    putchar('[');
    for (int32_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", (int)ids[i]);
    puts("]");
    free(ids);
    return 0;
}

// print_decoded: ids given as the JSON array at token arr of j.
static int print_decoded(const char *cmd, const plm_tokenizer *tok, const plm_json *j, int32_t arr,
                         const char *where) {
    if (j->tok[arr].type != PLM_JSON_ARRAY)
        return cli_usage_error(cmd, "%s: want a JSON array of token ids", where);
    int32_t n = j->tok[arr].size;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) return cli_usage_error(cmd, "%s: out of memory", where);
    for (int32_t k = 0; k < n; k++) {
        int64_t v;
        if (plm_json_int(j, plm_json_at(j, arr, k), 0, INT32_MAX, &v)) {
            free(ids);
            return cli_usage_error(cmd, "%s: element %d is not a token id", where, (int)k);
        }
        ids[k] = (int32_t)v;
    }
    int64_t len = plm_tokenizer_decode(tok, ids, n, NULL, 0);
    char *out = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (out) plm_tokenizer_decode(tok, ids, n, out, (size_t)len);
    free(ids);
    if (!out)
        return cli_usage_error(cmd, "%s: an id is out of range [0, %d)", where,
                               (int)plm_tokenizer_n_vocab(tok));
    cli_json_str(stdout, out, (size_t)len);
    putchar('\n');
    free(out);
    return 0;
}

// one_json: a whole input (TEXT or stdin) as a JSON array to decode.
static int one_json(const char *cmd, const plm_tokenizer *tok, const char *text, size_t len) {
    plm_json j;
    plm_error err;
    if (plm_json_parse(&j, text, len, "input", &err)) return cli_error(cmd, &err);
    int rc = print_decoded(cmd, tok, &j, 0, "input");
    plm_json_free(&j);
    return rc;
}

// ---- inputs ----

// run_jsonl: each non-blank line of the file is one input.
static int run_jsonl(const char *cmd, const plm_tokenizer *tok, const char *path, int decode) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return cli_usage_error(cmd, "cannot open %s", path);
    char *line = NULL, where[64];
    size_t cap = 0, len = 0;
    int rc = 0;
    for (long no = 1; rc == 0; no++) {
        int c;
        for (len = 0; (c = getc(f)) != EOF && c != '\n'; line[len++] = (char)c)
            if (len + 1 >= cap) {
                char *l = realloc(line, cap = cap ? 2 * cap : 4096);
                if (!l) return free(line), cli_usage_error(cmd, "out of memory");
                line = l;
            }
        if (len == 0 && c == EOF) break;
        if (len == 0 || (len == 1 && line[0] == '\r')) continue;
        snprintf(where, sizeof where, "%s:%ld", path, no);
        plm_json j;
        plm_error err;
        if (plm_json_parse(&j, line, len, where, &err)) {
            rc = cli_error(cmd, &err);
            break;
        }
        if (decode) {
            rc = print_decoded(cmd, tok, &j, 0, where);
        } else if (j.tok[0].type != PLM_JSON_STRING) {
            rc = cli_usage_error(cmd, "%s: want a JSON string", where);
        } else {
            char *text = malloc(len + 1); // a decoded string is never longer than its JSON
            int64_t n = text ? plm_json_str(&j, 0, text, len + 1) : -1;
            rc = n < 0 ? cli_usage_error(cmd, "%s: out of memory", where)
                       : print_ids(cmd, tok, text, (size_t)n);
            free(text);
        }
        plm_json_free(&j);
        if (c == EOF) break;
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

// read_stdin: all of standard input into a new buffer.
static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    *len = n;
    return buf;
}

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize", *path = NULL, *jsonl = NULL, *text = NULL;
    int decode = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return fputs(usage_text, stdout), 0;
        if (!strcmp(a, "-t") || !strcmp(a, "--tokenizer")) {
            if (!(path = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--jsonl")) {
            if (!(jsonl = cli_value(cmd, argc, argv, &i))) return 2;
        } else if (!strcmp(a, "--decode")) {
            decode = 1;
        } else if (a[0] == '-' && a[1] && !text) {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (!text) {
            text = a;
        } else {
            return cli_usage_error(cmd, "more than one TEXT ('%s')", a);
        }
    }
    if (!path) return cli_usage_error(cmd, "-t TOKENIZER is required");
    if (jsonl && text) return cli_usage_error(cmd, "give TEXT or --jsonl, not both");
    plm_tokenizer *tok;
    plm_error err;
    if (plm_tokenizer_load(&tok, path, &err)) return cli_error(cmd, &err);
    int rc;
    if (jsonl) {
        rc = run_jsonl(cmd, tok, jsonl, decode);
    } else if (text) {
        rc = decode ? one_json(cmd, tok, text, strlen(text))
                    : print_ids(cmd, tok, text, strlen(text));
    } else {
        size_t len;
        char *in = read_stdin(&len);
        if (!in) rc = cli_usage_error(cmd, "out of memory reading stdin");
        else rc = decode ? one_json(cmd, tok, in, len) : print_ids(cmd, tok, in, len);
        free(in);
    }
    plm_tokenizer_free(tok);
    if (fflush(stdout) && !rc) rc = 1;
    return rc;
}
