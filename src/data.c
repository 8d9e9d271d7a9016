// data.c: task data for fine-tuning. Reads PAWS TSV (id, sentence1, sentence2, label) or JSONL
// ({"input": ..., "output": ...}), detokenizes PAWS when asked (detok.c), puts each pair in the
// task template (task.c), with the diversity level of its distance (bleu.c) when asked, tokenizes
// it into one block of ids, and marks where the loss starts. Also the held-out split and the
// length-grouped batch order of each epoch.
// Not here: the template's text (task.c), the tokenizer itself (tokenizer.c) and what the trainer
// does with a batch (trainer.c).
// Bad rows are never dropped silently: each kind is counted and the first is described.
// (Over 800 lines: the diversity levels, detokenization and near copies are steps of the one
// loader and use its state; a second file would have to export it.)
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "detok.h"
#include "json.h"
#include "rng.h"
#include "task.h"

plm_data_params plm_data_default_params(void) {
    plm_data_params p = {1, 256, 0, 0, NULL, 0.0f, 0, 0, NULL, NULL};
    return p;
}

void plm_dataset_free(plm_dataset *d) {
    if (!d) return;
    free(d->ex);
    free(d->block);
    free(d->avoid_block);
    free(d->src_row);
    free(d->group);
    memset(d, 0, sizeof *d);
}

// ---- the loader: growing arrays, then one block ----

// While loading, the ids of every example grow in one array (the future block) in file order, so
// ex[i].ids is set only at the end: example i starts where example i-1 ends.
typedef struct {
    const plm_tokenizer *tok;
    plm_data_params p;
    const char *name; // the path, for messages
    plm_dataset *d;   // being filled: ex, n, counters, first_bad
    plm_error *err;
    size_t ex_cap; // capacity of d->ex and d->src_row, and of key in pairs
    uint64_t *key; // (2 * ex_cap) hashes of each example's input and output text
    int32_t *ids;  // (ids_cap) the growing block
    size_t ids_len, ids_cap;
    int32_t *avoid; // (avoid_cap >= ids_len) the growing avoid block, parallel to ids (p.avoid)
    size_t avoid_cap;
    char *text; // (text_cap) scratch: one template string
    size_t text_cap;
    char *field; // (field_cap) scratch: the decoded JSON fields of one line
    size_t field_cap;
    int32_t level_id[PLM_TASK_LEVELS_MAX]; // the control tokens' ids (p.levels of them)
    float *dist;       // (ex_cap) each example's distance, when levels or min_distance are set
    int32_t *level_at; // (ex_cap) where in its example the control token is, when levels are set
    char *clean;       // (clean_cap) scratch: a row's two sentences, detokenized, NUL-terminated
    size_t clean_cap;
    plm_text_pairs *pairs; // text mode (plm_text_pairs_load): rows kept as text, not tokenized
    int32_t limit;         // text mode: stop after this many pairs (0 = all)
    size_t *at;            // text mode: (3 * pair_cap) offsets of id, input, output in pairs->text
    size_t pair_cap, text_len, chars_cap;
} loader;

// grow: make *p hold at least need elements of size bytes (doubling); 0, or -1 when out of memory.
static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / size) return -1;
        c *= 2;
    }
    void *q = realloc(*p, c * size);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

// encode: tokenize text (n bytes) onto the end of the block; returns the ids added or a status < 0.
static int32_t encode(loader *L, const char *text, size_t n) {
    // Byte-level BPE gives at most one id per byte, so n + 1 slots are always enough; the retry
    // below only guards against a tokenizer that breaks that rule.
    if (n > INT32_MAX / 2) return PLM_ERR_UNSUPPORTED;
    for (;;) {
        if (grow((void **)&L->ids, &L->ids_cap, L->ids_len + n + 1, sizeof *L->ids))
            return PLM_ERR_NOMEM;
        size_t free_ids = L->ids_cap - L->ids_len;
        int32_t room = (int32_t)(free_ids < INT32_MAX ? free_ids : INT32_MAX);
        int32_t got = plm_tokenizer_encode(L->tok, text, n, L->ids + L->ids_len, room);
        if (got < 0) return PLM_ERR_NOMEM;
        if (got <= room) {
            L->ids_len += (size_t)got;
            return got;
        }
        n = (size_t)got; // ask for that many slots and encode again
    }
}

// encode_part: the prompt of s (n bytes) at level (plm_task_prompt_n) or, when level is
// TARGET, its target (plm_task_target_n) into L->text, then its ids onto the block.
#define TARGET INT32_MIN
static int32_t encode_part(loader *L, int32_t level, const char *s, size_t n) {
    size_t len = level == TARGET ? plm_task_target_n(s, n, NULL, 0)
                                 : plm_task_prompt_n(s, n, level, NULL, 0);
    if (len == SIZE_MAX || grow((void **)&L->text, &L->text_cap, len + 1, 1)) return PLM_ERR_NOMEM;
    if (level == TARGET) plm_task_target_n(s, n, L->text, L->text_cap);
    else plm_task_prompt_n(s, n, level, L->text, L->text_cap);
    return encode(L, L->text, len);
}

// hash_text: FNV-1a, 64 bits, of n bytes. A collision could only put two groups in one.
static uint64_t hash_text(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

// root: the group of example i: follow parent links to the top, halving the path on the way.
static int32_t root(int32_t *parent, int32_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
}

// link_groups: d->group[i] = the first example linked to i by shared texts (key: 2 per example),
// by union-find over an open-addressing table of the texts seen; PLM_ERR_NOMEM or PLM_OK.
static plm_status link_groups(plm_dataset *d, const uint64_t *key) {
    size_t n = (size_t)d->n, cap = 16;
    while (cap < 4 * n) cap *= 2; // at most 2n texts: the table stays under half full
    uint64_t *slot_key = plm_alloc(cap, sizeof *slot_key);
    int32_t *slot_ex = plm_alloc(cap, sizeof *slot_ex);
    d->group = plm_alloc(n ? n : 1, sizeof *d->group);
    if (!slot_key || !slot_ex || !d->group) {
        free(slot_key), free(slot_ex);
        return PLM_ERR_NOMEM;
    }
    for (size_t s = 0; s < cap; s++) slot_ex[s] = -1;
    for (size_t i = 0; i < n; i++) d->group[i] = (int32_t)i;
    for (size_t i = 0; i < 2 * n; i++) {
        size_t s = (size_t)key[i] & (cap - 1);
        while (slot_ex[s] >= 0 && slot_key[s] != key[i]) s = (s + 1) & (cap - 1);
        if (slot_ex[s] < 0) {
            slot_key[s] = key[i], slot_ex[s] = (int32_t)(i / 2);
            continue;
        }
        int32_t a = root(d->group, slot_ex[s]), b = root(d->group, (int32_t)(i / 2));
        if (a < b) d->group[b] = a; // the smaller index stays the root
        else d->group[a] = b;
    }
    for (size_t i = 0; i < n; i++) d->group[i] = root(d->group, (int32_t)i);
    free(slot_key), free(slot_ex);
    return PLM_OK;
}

// copy_candidates: L->avoid for the example at L->ids[start .. start + n) (np of them its prompt),
// whose source is src (ns bytes): -1 on the prompt, and on the target its copy candidates. The
// definition (docs/DESIGN.md, finetune): the source is tokenized as a target would be
// (plm_task_target_n: its first word without a leading space, its end marker last), S = s_0 ..
// s_{m-1}, for the target's tokens y_0 .. (its end marker included). The candidate c_i is the
// token of S that would continue a copy: c_0 = s_0; for i > 0, s_{j+1} where j is the first
// occurrence of y_{i-1} in S at or after `from` (the position after the previous match, 0 at
// first), else its first occurrence anywhere; then from = j + 1. None (-1) when y_{i-1} is not in
// S or only as its last token, and none when c_i == y_i (the reference copies there).
// S is encoded after the example for the look-up, then taken off the block again.
static plm_status copy_candidates(loader *L, size_t start, int32_t np, int32_t n, const char *src,
                                  size_t ns) {
    int32_t m = encode_part(L, TARGET, src, ns);
    if (m < 0 || grow((void **)&L->avoid, &L->avoid_cap, start + (size_t)n, sizeof *L->avoid))
        return plm_fail(L->err, m < 0 ? (plm_status)m : PLM_ERR_NOMEM,
                        "%s: copy candidates of example %d failed", L->name, (int)L->d->n);
    const int32_t *y = L->ids + start + np, *S = L->ids + start + n;
    int32_t *c = L->avoid + start;
    for (int32_t p = 0; p < np; p++) c[p] = -1;
    c += np;
    for (int32_t i = 0, from = 0; i < n - np; i++) {
        int32_t j = -1;
        for (int32_t k = from; i > 0 && k < m && j < 0; k++) j = S[k] == y[i - 1] ? k : -1;
        for (int32_t k = 0; i > 0 && k < m && j < 0; k++) j = S[k] == y[i - 1] ? k : -1;
        if (i > 0 && j >= 0) from = j + 1;
        int32_t next = i == 0 ? 0 : j >= 0 ? j + 1 : m; // m: no candidate
        c[i] = next < m && S[next] != y[i] ? S[next] : -1;
    }
    L->ids_len = start + (size_t)n; // S off the block
    return PLM_OK;
}

// add_example: one example src -> tgt at distance dist, from the row at line; when it has more than
// max_len tokens, *too_long is raised to its length (the caller undoes the row). With levels, its
// prompt gets level 0's control token, which finish_levels later sets to the example's level.
static plm_status add_example(loader *L, int64_t line, const char *src, size_t ns, const char *tgt,
                              size_t nt, float dist, int *too_long) {
    plm_dataset *d = L->d;
    if (d->n == INT32_MAX || line > INT32_MAX)
        return plm_fail(L->err, PLM_ERR_UNSUPPORTED, "%s: too many examples", L->name);
    if (grow((void **)&d->ex, &L->ex_cap, (size_t)d->n + 1, sizeof *d->ex)) goto nomem;
    // src_row shares ex's capacity: grow it to the same size by hand
    int32_t *rows = realloc(d->src_row, L->ex_cap * sizeof *rows);
    if (!rows) goto nomem;
    d->src_row = rows;
    uint64_t *key = realloc(L->key, L->ex_cap * 2 * sizeof *key);
    if (!key) goto nomem;
    L->key = key;
    float *dists = realloc(L->dist, L->ex_cap * sizeof *dists);
    if (!dists) goto nomem;
    L->dist = dists;
    int32_t *at = realloc(L->level_at, L->ex_cap * sizeof *at);
    if (!at) goto nomem;
    L->level_at = at;
    size_t start = L->ids_len;
    // Prompt and target are encoded apart. This equals encoding the whole string because the
    // prompt ends in a special token, which the tokenizer matches before any merge: no BPE merge
    // crosses it (tests/test_data.c checks this on the real tokenizer).
    int32_t np = encode_part(L, L->p.levels ? 0 : -1, src, ns);
    int32_t nt_ids = np < 0 ? 0 : encode_part(L, TARGET, tgt, nt);
    if (np < 0 || nt_ids < 0)
        return plm_fail(L->err, (plm_status)(np < 0 ? np : nt_ids),
                        "%s: tokenizing example %d failed", L->name, (int)d->n);
    int64_t n = (int64_t)np + nt_ids;
    plm_status st = L->p.avoid ? copy_candidates(L, start, np, (int32_t)n, src, ns) : PLM_OK;
    if (st != PLM_OK) return st;
    if (n > L->p.max_len && n > *too_long) *too_long = (int)(n < INT32_MAX ? n : INT32_MAX);
    d->ex[d->n] = (plm_example){NULL, (int32_t)n, np, NULL};
    d->src_row[d->n] = (int32_t)line;
    L->dist[d->n] = dist;
    L->level_at[d->n] = -1; // the template's control token: the last one in the prompt
    for (int32_t k = np - 1; L->p.levels && k >= 0 && L->level_at[d->n] < 0; k--)
        if (L->ids[start + (size_t)k] == L->level_id[0]) L->level_at[d->n] = k;
    L->key[2 * d->n] = hash_text(src, ns);
    L->key[2 * d->n + 1] = hash_text(tgt, nt);
    d->n++;
    return PLM_OK;
nomem:
    return plm_fail(L->err, PLM_ERR_NOMEM, "%s: out of memory at example %d", L->name, (int)d->n);
}

// ---- bad rows ----

// bad_row: count a bad row in *counter and describe it as "name:line: why" in first_bad if it is
// the first. In strict mode that description is the error; otherwise the row is skipped (PLM_OK).
static plm_status bad_row(loader *L, int64_t *counter, int64_t line, const char *fmt, ...)
    PLM_PRINTF(4, 5);
static plm_status bad_row(loader *L, int64_t *counter, int64_t line, const char *fmt, ...) {
    char msg[256];
    int k = snprintf(msg, sizeof msg, "%s:%lld: ", L->name, (long long)line);
    if (k >= 0 && (size_t)k < sizeof msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
        va_end(ap);
    }
    (*counter)++;
    if (L->p.on_bad_row) L->p.on_bad_row(L->p.user, msg);
    if (!L->d->first_bad[0]) { // keep what fits (first_bad is shorter than msg)
        size_t n = strlen(msg) < sizeof L->d->first_bad ? strlen(msg) : sizeof L->d->first_bad - 1;
        memcpy(L->d->first_bad, msg, n);
        L->d->first_bad[n] = 0;
    }
    return L->p.strict ? plm_fail(L->err, PLM_ERR_FORMAT, "%s", msg) : PLM_OK;
}

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

// trim: drop ASCII white space at both ends of s (*n bytes); returns the new start.
static const char *trim(const char *s, size_t *n) {
    while (*n && is_space(*s)) s++, (*n)--;
    while (*n && is_space(s[*n - 1])) (*n)--;
    return s;
}

// add_text: text mode: n bytes of s and a NUL onto pairs->text; its offset goes to *at.
static plm_status add_text(loader *L, const char *s, size_t n, size_t *at) {
    if (grow((void **)&L->pairs->text, &L->chars_cap, L->text_len + n + 1, 1)) return PLM_ERR_NOMEM;
    memcpy(L->pairs->text + L->text_len, s, n);
    L->pairs->text[L->text_len + n] = 0;
    *at = L->text_len;
    L->text_len += n + 1;
    return PLM_OK;
}

// keep_pair: text mode: the row's id (TSV; for JSONL its line number), src and tgt, as text.
static plm_status keep_pair(loader *L, int64_t line, const char *id, size_t nid, const char *src,
                            size_t ns, const char *tgt, size_t nt) {
    plm_text_pairs *P = L->pairs;
    char num[24];
    if (!id) nid = (size_t)snprintf(num, sizeof num, "%lld", (long long)line), id = num;
    id = trim(id, &nid);
    plm_status st = PLM_ERR_NOMEM;
    size_t need = 3 * ((size_t)P->n + 1);
    if (P->n < INT32_MAX && !grow((void **)&L->at, &L->pair_cap, need, sizeof *L->at))
        st = add_text(L, id, nid, &L->at[3 * P->n]);
    if (st == PLM_OK) st = add_text(L, src, ns, &L->at[3 * P->n + 1]);
    if (st == PLM_OK) st = add_text(L, tgt, nt, &L->at[3 * P->n + 2]);
    if (st != PLM_OK)
        return plm_fail(L->err, st, "%s:%lld: out of memory", L->name, (long long)line);
    P->n++;
    return PLM_OK;
}

// measure_pair: a row's sentences as the examples use them: detokenized (when detok) into
// L->clean, NUL-terminated (*src, *tgt then point there); and, when levels or min_distance need
// them, the distances of src -> tgt and tgt -> src into dist (else 0).
static plm_status measure_pair(loader *L, int64_t line, int detok, const char **src, size_t *ns,
                               const char **tgt, size_t *nt, float dist[2]) {
    dist[0] = dist[1] = 0.0f;
    int measure = L->p.levels || L->p.min_distance > 0.0f;
    if (!detok && !measure) return PLM_OK;
    if (grow((void **)&L->clean, &L->clean_cap, *ns + *nt + 2, 1))
        return plm_fail(L->err, PLM_ERR_NOMEM, "%s:%lld: out of memory", L->name, (long long)line);
    char *a = L->clean, *b = L->clean + *ns + 1;
    if (detok) {
        *ns = plm_detok(*src, *ns, a, *ns + 1);
        *nt = plm_detok(*tgt, *nt, b, *nt + 1);
    } else {
        memcpy(a, *src, *ns), a[*ns] = 0;
        memcpy(b, *tgt, *nt), b[*nt] = 0;
    }
    *src = a, *tgt = b;
    if (!measure) return PLM_OK;
    double fwd = plm_pair_distance(a, b), rev = plm_pair_distance(b, a);
    if (fwd < 0 || rev < 0)
        return plm_fail(L->err, PLM_ERR_NOMEM, "%s:%lld: out of memory", L->name, (long long)line);
    dist[0] = (float)fwd, dist[1] = (float)rev;
    return PLM_OK;
}

// add_pair: the examples of one usable row (id: its id column, or NULL): src -> tgt, and for a
// PAWS row (paws) tgt -> src when p.reverse, each unless it is a near copy (p.min_distance); in
// text mode, the row's texts. Sentences are trimmed (and a PAWS row's detokenized when p.detok);
// an empty one is a bad row, and so is a row with any example over max_len (the whole row goes,
// so a pair and its reverse are kept or dropped together).
static plm_status add_pair(loader *L, int64_t line, const char *id, size_t nid, const char *src,
                           size_t ns, const char *src_name, const char *tgt, size_t nt,
                           const char *tgt_name, int paws) {
    src = trim(src, &ns);
    tgt = trim(tgt, &nt);
    if (!ns || !nt)
        return bad_row(L, &L->d->bad_empty, line, "empty %s", !ns ? src_name : tgt_name);
    if (L->pairs) {
        L->pairs->paws |= paws;
        return keep_pair(L, line, id, nid, src, ns, tgt, nt);
    }
    int reverse = paws && L->p.reverse;
    float dist[2];
    plm_status s = measure_pair(L, line, paws && L->p.detok, &src, &ns, &tgt, &nt, dist);
    if (s != PLM_OK) return s;
    int32_t n0 = L->d->n;
    size_t len0 = L->ids_len;
    int too_long = 0, near = 0;
    for (int k = 0; k < 1 + (reverse != 0) && s == PLM_OK; k++) {
        if (dist[k] < L->p.min_distance) near++;
        else if (k == 0) s = add_example(L, line, src, ns, tgt, nt, dist[0], &too_long);
        else s = add_example(L, line, tgt, nt, src, ns, dist[1], &too_long);
    }
    if (s != PLM_OK) return s;
    if (too_long) {
        L->d->n = n0; // undo the row
        L->ids_len = len0;
        return bad_row(L, &L->d->bad_long, line, "%d tokens, more than max_len %d", too_long,
                       (int)L->p.max_len);
    }
    L->d->near_copies += near;
    return PLM_OK;
}

// ---- TSV: PAWS (id, sentence1, sentence2, label) or plain pairs (input, reference) ----

// parse_label: the integer in s (n bytes, trimmed); 0 and *out set, or -1 when it is not one.
static int parse_label(const char *s, size_t n, long *out) {
    s = trim(s, &n);
    if (!n || n > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

// plain_header: a two-column header line: "input", "source" or "sentence1" first (any case)
static int plain_header(const char *s, size_t n) {
    static const char *const names[3] = {"input\t", "source\t", "sentence1\t"};
    for (int k = 0; k < 3; k++) {
        size_t m = strlen(names[k]), i = 0;
        while (i < m && i < n && lower(s[i]) == names[k][i]) i++;
        if (i == m) return 1;
    }
    return 0;
}

// tsv_row: one non-blank line (no line ending) of a TSV file: 4 columns (PAWS: label-1 rows are
// pairs) or 2 (a plain pair: input, reference). The first such line may be a header: PAWS's
// "id\tsentence1\t...", a 4-column line whose label column is not a number, or a 2-column line
// whose first column is named input, source or sentence1.
static plm_status tsv_row(loader *L, const char *s, size_t n, int64_t line, int first) {
    const char *col[4];
    size_t len[4];
    int ncol = 0;
    for (size_t a = 0, b = 0; b <= n; b++) {
        if (b < n && s[b] != '\t') continue;
        if (ncol < 4) col[ncol] = s + a, len[ncol] = b - a;
        ncol++;
        a = b + 1;
    }
    long label = 0;
    int numeric = ncol == 4 && parse_label(col[3], len[3], &label) == 0;
    if (first && ((n >= 12 && !memcmp(s, "id\tsentence1", 12)) || (ncol == 4 && !numeric) ||
                  (ncol == 2 && plain_header(s, n))))
        return PLM_OK; // a header: not a data row
    L->d->rows++;
    if (ncol == 2)
        return add_pair(L, line, NULL, 0, col[0], len[0], "input", col[1], len[1], "reference", 0);
    if (ncol != 4)
        return bad_row(L, &L->d->bad_fields, line,
                       "expected 4 tab-separated columns (id, sentence1, sentence2, label) or 2 "
                       "(input, reference), found %d",
                       ncol);
    if (!numeric) {
        size_t k = len[3] < 40 ? len[3] : 40;
        return bad_row(L, &L->d->bad_fields, line, "label '%.*s' is not an integer", (int)k,
                       col[3]);
    }
    if (label != 1) {
        L->d->not_label1++;
        return PLM_OK;
    }
    return add_pair(L, line, col[0], len[0], col[1], len[1], "sentence1", col[2], len[2],
                    "sentence2", 1);
}

// ---- JSONL ----

// json_fields: decode the string members "input" and "output" of the object at token 0 into
// L->field (one after the other); 1 when both are there, 0 when one is missing or not a string
// (*missing names it), -1 when out of memory.
static int json_fields(loader *L, const plm_json *j, const char *v[2], size_t n[2],
                       const char **missing) {
    static const char *const keys[2] = {"input", "output"};
    int32_t tok[2];
    int64_t len[2];
    for (int k = 0; k < 2; k++) {
        tok[k] = plm_json_get(j, 0, keys[k]);
        len[k] = plm_json_str(j, tok[k], NULL, 0);
        if (len[k] < 0) return *missing = keys[k], 0;
    }
    if (grow((void **)&L->field, &L->field_cap, (size_t)len[0] + (size_t)len[1] + 2, 1)) return -1;
    // pointers are taken only after the one grow, so neither is left dangling
    for (size_t k = 0, at = 0; k < 2; at += (size_t)len[k] + 1, k++) {
        plm_json_str(j, tok[k], L->field + at, (size_t)len[k] + 1);
        v[k] = L->field + at;
        n[k] = (size_t)len[k];
    }
    return 1;
}

// jsonl_row: one non-blank line of a JSONL file: an object with string members "input", "output".
static plm_status jsonl_row(loader *L, const char *s, size_t n, int64_t line) {
    L->d->rows++;
    plm_json j;
    plm_error jerr;
    plm_status st = plm_json_parse(&j, s, n, "", &jerr);
    if (st == PLM_ERR_NOMEM)
        return plm_fail(L->err, st, "%s:%lld: out of memory", L->name, (long long)line);
    if (st != PLM_OK) // the parser's message starts with the (empty) name: ": invalid JSON at ..."
        return bad_row(L, &L->d->bad_fields, line, "%s",
                       strncmp(jerr.msg, ": ", 2) ? jerr.msg : jerr.msg + 2);
    if (j.tok[0].type != PLM_JSON_OBJECT) {
        plm_json_free(&j);
        return bad_row(L, &L->d->bad_fields, line,
                       "expected a JSON object {\"input\", \"output\"}");
    }
    const char *v[2] = {NULL, NULL}, *missing = "";
    size_t n2[2] = {0, 0};
    int got = json_fields(L, &j, v, n2, &missing);
    plm_json_free(&j);
    if (got < 0)
        return plm_fail(L->err, PLM_ERR_NOMEM, "%s:%lld: out of memory", L->name, (long long)line);
    if (got == 0)
        return bad_row(L, &L->d->bad_fields, line, "missing string field \"%s\"", missing);
    return add_pair(L, line, NULL, 0, v[0], n2[0], "input", v[1], n2[1], "output", 0);
}

// ---- loading ----

// special_id: *out = the id of mark in tok, which must be one token that BPE never splits.
static plm_status special_id(const plm_tokenizer *tok, const char *mark, int32_t *out,
                             plm_error *err) {
    int32_t id = *out = plm_tokenizer_token_id(tok, mark), got[4];
    if (id < 0)
        return plm_fail(err, PLM_ERR_ARG, "the tokenizer lacks %s: add the task tokens first",
                        mark);
    int32_t n = plm_tokenizer_encode(tok, mark, strlen(mark), got, 4);
    if (n < 0) return plm_fail(err, PLM_ERR_NOMEM, "out of memory tokenizing %s", mark);
    if (n != 1 || got[0] != id)
        return plm_fail(err, PLM_ERR_ARG,
                        "the tokenizer has %s (id %d) but encodes it as %d tokens: it must "
                        "be a special token",
                        mark, (int)id, (int)n);
    return PLM_OK;
}

// check_tokenizer: L's tokenizer must know both markers and the p.levels control tokens (their ids
// go to L->level_id); the levels and cuts of p must make sense.
static plm_status check_tokenizer(loader *L) {
    const plm_data_params *p = &L->p;
    if (p->levels != 0 && (p->levels < 2 || p->levels > PLM_TASK_LEVELS_MAX))
        return plm_fail(L->err, PLM_ERR_ARG, "diversity levels: want 0 or 2 to %d, found %d",
                        PLM_TASK_LEVELS_MAX, (int)p->levels);
    for (int32_t k = 1; p->cuts && k < p->levels - 1; k++)
        if (!(p->cuts[k - 1] <= p->cuts[k]))
            return plm_fail(L->err, PLM_ERR_ARG, "diversity cuts: %g then %g, want ascending",
                            (double)p->cuts[k - 1], (double)p->cuts[k]);
    int32_t id;
    plm_status st = special_id(L->tok, PLM_TASK_START, &id, L->err);
    if (st == PLM_OK) st = special_id(L->tok, PLM_TASK_END, &id, L->err);
    for (int32_t k = 0; k < p->levels && st == PLM_OK; k++) {
        char name[PLM_TASK_LEVEL_TOKEN_CAP];
        plm_task_level_token(k, name, sizeof name);
        st = special_id(L->tok, name, &L->level_id[k], L->err);
    }
    return st;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// finish_levels: with p.levels, the cuts (p.cuts, or the quantiles of the examples' distances:
// cut j is the distance of the example at rank floor(j n / levels)), then each example's level
// (the cuts at or below its distance) written over the placeholder in its prompt.
static plm_status finish_levels(loader *L) {
    plm_dataset *d = L->d;
    int32_t N = L->p.levels;
    d->n_levels = N;
    if (!N) return PLM_OK;
    if (L->p.cuts) {
        memcpy(d->cuts, L->p.cuts, (size_t)(N - 1) * sizeof *d->cuts);
    } else {
        float *sorted = plm_alloc((size_t)d->n, sizeof *sorted);
        if (!sorted) return plm_fail(L->err, PLM_ERR_NOMEM, "%s: out of memory", L->name);
        memcpy(sorted, L->dist, (size_t)d->n * sizeof *sorted);
        qsort(sorted, (size_t)d->n, sizeof *sorted, cmp_float);
        for (int32_t j = 1; j < N; j++) d->cuts[j - 1] = sorted[(int64_t)j * d->n / N];
        free(sorted);
    }
    size_t at = 0;
    for (int32_t i = 0; i < d->n; at += (size_t)d->ex[i].n, i++) {
        int32_t k = 0;
        while (k < N - 1 && L->dist[i] >= d->cuts[k]) k++;
        assert(L->level_at[i] >= 0);
        L->ids[at + (size_t)L->level_at[i]] = L->level_id[k];
        d->level_n[k]++;
        d->level_distance[k] += (double)L->dist[i];
    }
    for (int32_t k = 0; k < N; k++)
        if (d->level_n[k]) d->level_distance[k] /= (double)d->level_n[k];
    return PLM_OK;
}

// The lines of a data file, as both the loader and plm_dataset_write_lines number them: after a
// byte order mark, each ends after its LF (the last one may have none).
static size_t bom_len(const char *text, size_t len) {
    return len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0;
}

// line_end: the offset just past the line that starts at at (past its LF, or len)
static size_t line_end(const char *text, size_t len, size_t at) {
    const char *nl = memchr(text + at, '\n', len - at);
    return nl ? (size_t)(nl - text) + 1 : len;
}

// read_lines: feed each non-blank line (without its LF or CRLF ending) to tsv_row or jsonl_row.
static plm_status read_lines(loader *L, const char *text, size_t len, int jsonl) {
    int first = 1;
    int64_t line = 0;
    for (size_t at = 0, end; at < len && !(L->limit && L->pairs->n >= L->limit); at = end) {
        end = line_end(text, len, at);
        const char *s = text + at;
        size_t n = end - at;
        line++;
        if (n && s[n - 1] == '\n') n--;
        if (n && s[n - 1] == '\r') n--;
        size_t blank = n;
        trim(s, &blank);
        if (!blank) continue; // blank lines are not rows in either format
        plm_status st = jsonl ? jsonl_row(L, s, n, line) : tsv_row(L, s, n, line, first);
        if (st != PLM_OK) return st;
        first = 0;
    }
    return PLM_OK;
}

// no_example: the error when a file gave nothing to train on, saying why.
static plm_status no_example(const loader *L) {
    const plm_dataset *d = L->d;
    int64_t bad = d->bad_fields + d->bad_empty + d->bad_long;
    if (d->rows == 0)
        return plm_fail(L->err, PLM_ERR_FORMAT, "%s: no data rows (empty file or header only)",
                        L->name);
    if (d->near_copies > 0)
        return plm_fail(L->err, PLM_ERR_FORMAT,
                        "%s: no example left: %lld near copies dropped (distance below %g)",
                        L->name, (long long)d->near_copies, (double)L->p.min_distance);
    if (bad == 0)
        return plm_fail(L->err, PLM_ERR_FORMAT,
                        "%s: no label-1 rows among %lld rows (only paraphrase pairs are used)",
                        L->name, (long long)d->rows);
    if (d->not_label1 == 0)
        return plm_fail(L->err, PLM_ERR_FORMAT, "%s: all %lld rows bad, first: %s", L->name,
                        (long long)d->rows, d->first_bad);
    return plm_fail(L->err, PLM_ERR_FORMAT,
                    "%s: no usable row: %lld not label 1, %lld bad, first: %s", L->name,
                    (long long)d->not_label1, (long long)bad, d->first_bad);
}

// read_file_text: the rows of a whole file's text (after a byte order mark; JSONL when its first
// non-blank byte is '{', else TSV) into L.
static plm_status read_file_text(loader *L, const char *text, size_t len) {
    size_t bom = bom_len(text, len);
    text += bom, len -= bom;
    size_t i = 0;
    while (i < len && is_space(text[i])) i++;
    L->d->jsonl = i < len && text[i] == '{';
    return read_lines(L, text, len, L->d->jsonl);
}

plm_status plm_dataset_load_buffer(plm_dataset *out, const char *text, size_t len, const char *name,
                                   const plm_tokenizer *tok, const plm_data_params *p,
                                   plm_error *err) {
    if (!out || (!text && len) || !tok)
        return plm_fail(err, PLM_ERR_ARG, "plm_dataset_load: out, text and tok must not be NULL");
    memset(out, 0, sizeof *out);
    loader L = {0};
    L.tok = tok;
    L.p = p ? *p : plm_data_default_params();
    L.name = name ? name : "data";
    L.d = out;
    L.err = err;
    if (L.p.max_len < 1)
        return plm_fail(err, PLM_ERR_ARG, "%s: max_len must be at least 1, found %d", L.name,
                        (int)L.p.max_len);
    plm_status st = check_tokenizer(&L);
    if (st != PLM_OK) return st;
    st = read_file_text(&L, text, len);
    if (st == PLM_OK && out->n == 0) st = no_example(&L);
    if (st == PLM_OK) st = finish_levels(&L);
    if (st == PLM_OK && link_groups(out, L.key) != PLM_OK)
        st = plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory grouping %d examples", L.name,
                      (int)out->n);
    free(L.key);
    free(L.text);
    free(L.field);
    free(L.dist);
    free(L.level_at);
    free(L.clean);
    if (st != PLM_OK) {
        free(L.ids);
        free(L.avoid);
        plm_dataset_free(out);
        return st;
    }
    // the blocks are final now: shrink them and point each example at its ids (and avoid)
    int32_t *block = realloc(L.ids, L.ids_len * sizeof *block);
    out->block = block ? block : L.ids;
    block = L.avoid ? realloc(L.avoid, L.ids_len * sizeof *block) : NULL;
    out->avoid_block = block ? block : L.avoid;
    for (size_t k = 0, at = 0; k < (size_t)out->n; at += (size_t)out->ex[k].n, k++) {
        out->ex[k].ids = out->block + at;
        if (out->avoid_block) out->ex[k].avoid = out->avoid_block + at;
    }
    return PLM_OK;
}

plm_status plm_dataset_load(plm_dataset *out, const char *path, const plm_tokenizer *tok,
                            const plm_data_params *p, plm_error *err) {
    if (!out || !path)
        return plm_fail(err, PLM_ERR_ARG, "plm_dataset_load: out and path must not be NULL");
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    plm_status st = plm_file_read(path, &text, &len, err);
    if (st != PLM_OK) return st;
    st = plm_dataset_load_buffer(out, text, len, path, tok, p, err);
    free(text);
    return st;
}

// ---- text pairs (`pocketlm eval`): the same reader, without the tokenizer ----

void plm_text_pairs_free(plm_text_pairs *p) {
    if (!p) return;
    free(p->pair);
    free(p->text);
    memset(p, 0, sizeof *p);
}

plm_status plm_text_pairs_load(plm_text_pairs *out, const char *path, int32_t limit,
                               plm_error *err) {
    if (!out || !path || limit < 0)
        return plm_fail(err, PLM_ERR_ARG, "plm_text_pairs_load: out and path, limit >= 0");
    memset(out, 0, sizeof *out);
    plm_dataset d = {0}; // the counters and first_bad, as the tokenizing loader keeps them
    loader L = {0};
    L.p = plm_data_default_params();
    L.p.reverse = 0;
    L.name = path;
    L.d = &d;
    L.err = err;
    L.pairs = out;
    L.limit = limit;
    char *text = NULL;
    size_t len = 0;
    plm_status st = plm_file_read(path, &text, &len, err);
    if (st == PLM_OK) st = read_file_text(&L, text, len);
    if (st == PLM_OK && out->n == 0) st = no_example(&L);
    if (st == PLM_OK && !(out->pair = plm_alloc(out->n ? (size_t)out->n : 1, sizeof *out->pair)))
        st = plm_fail(err, PLM_ERR_NOMEM, "%s: out of memory", path);
    for (int32_t k = 0; st == PLM_OK && k < out->n; k++) // the text is final: offsets to pointers
        out->pair[k] = (plm_text_pair){out->text + L.at[3 * k], out->text + L.at[3 * k + 1],
                                       out->text + L.at[3 * k + 2]};
    out->rows = d.rows, out->not_label1 = d.not_label1, out->jsonl = d.jsonl;
    out->bad = d.bad_fields + d.bad_empty;
    memcpy(out->first_bad, d.first_bad, sizeof out->first_bad);
    free(L.at);
    free(L.field);
    free(text);
    if (st != PLM_OK) plm_text_pairs_free(out);
    return st;
}

plm_status plm_dataset_write_lines(const plm_dataset *d, const char *src, const char *path,
                                   plm_error *err) {
    if (!d || !d->src_row || !src || !path)
        return plm_fail(err, PLM_ERR_ARG, "write_lines: a dataset with source lines, src and path");
    char *text = NULL;
    size_t len = 0;
    plm_status st = plm_file_read(src, &text, &len, err);
    if (st != PLM_OK) return st;
    plm_writer *w;
    if ((st = plm_writer_open(&w, path, err)) != PLM_OK) return free(text), st;
    int32_t i = 0;
    int64_t line = 0;
    for (size_t at = bom_len(text, len), end; at < len && i < d->n && st == PLM_OK; at = end) {
        end = line_end(text, len, at);
        if (++line == d->src_row[i]) { // the line with its own ending (a last line gets one)
            st = plm_writer_write(w, text + at, end - at, err);
            if (st == PLM_OK && text[end - 1] != '\n') st = plm_writer_write(w, "\n", 1, err);
            while (i < d->n && d->src_row[i] == line) i++;
        }
    }
    free(text);
    if (st == PLM_OK && i < d->n)
        st = plm_fail(err, PLM_ERR_FORMAT,
                      "%s: line %d not found: the file changed since it was read", src,
                      (int)d->src_row[i]);
    if (st != PLM_OK) {
        plm_writer_abort(w);
        return st;
    }
    return plm_writer_commit(w, err);
}

// ---- shuffles (random numbers: rng.h) ----

// shuffle_blocks: Fisher-Yates on the blocks of size w of a (n blocks), so batches move whole.
static void shuffle_blocks(int32_t *a, size_t n, size_t w, uint64_t *s) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(s, i);
        for (size_t k = 0; k < w && j != i - 1; k++) {
            int32_t t = a[(i - 1) * w + k];
            a[(i - 1) * w + k] = a[j * w + k];
            a[j * w + k] = t;
        }
    }
}

// ---- split ----

// subset: a new dataset *out of the examples of d whose group mark equals want (file order kept),
// with its own block. gid[i] is the dense group index (< G) of example i; at is scratch (G).
static plm_status subset(plm_dataset *out, const plm_dataset *d, const int32_t *gid, int32_t G,
                         const uint8_t *mark, uint8_t want, int32_t *at, plm_error *err) {
    memset(out, 0, sizeof *out);
    size_t n = 0, tokens = 0;
    for (int32_t i = 0; i < d->n; i++)
        if (mark[gid[i]] == want) n++, tokens += (size_t)d->ex[i].n;
    out->ex = plm_alloc(n, sizeof *out->ex);
    out->src_row = plm_alloc(n, sizeof *out->src_row);
    out->group = plm_alloc(n, sizeof *out->group);
    out->block = plm_alloc(tokens ? tokens : 1, sizeof *out->block);
    if (d->avoid_block) out->avoid_block = plm_alloc(tokens ? tokens : 1, sizeof *out->block);
    if (!out->ex || !out->src_row || !out->group || !out->block ||
        (d->avoid_block && !out->avoid_block)) {
        plm_dataset_free(out);
        return plm_fail(err, PLM_ERR_NOMEM, "split: out of memory for %zu examples", n);
    }
    for (int32_t g = 0; g < G; g++) at[g] = -1;
    size_t used = 0;
    for (int32_t i = 0; i < d->n; i++) {
        if (mark[gid[i]] != want) continue;
        plm_example e = d->ex[i];
        memcpy(out->block + used, e.ids, (size_t)e.n * sizeof *e.ids);
        e.ids = out->block + used;
        if (out->avoid_block) {
            memcpy(out->avoid_block + used, e.avoid, (size_t)e.n * sizeof *e.avoid);
            e.avoid = out->avoid_block + used;
        }
        used += (size_t)e.n;
        out->src_row[out->n] = d->src_row ? d->src_row[i] : i;
        if (at[gid[i]] < 0) at[gid[i]] = out->n; // a group is named by its first example
        out->group[out->n] = at[gid[i]];
        out->ex[out->n++] = e;
    }
    for (int32_t i = 0; i < out->n; i++) // rows: runs of one source row (file order)
        out->rows += i == 0 || out->src_row[i] != out->src_row[i - 1];
    return PLM_OK;
}

// dense_groups: gid[i] = the group of example i numbered 0.. in order of first appearance; returns
// the number of groups. d->group[i] names a group by its first example (<= i); without d->group,
// a run of examples from one source row is a group.
static int32_t dense_groups(const plm_dataset *d, int32_t *gid) {
    int32_t G = 0;
    for (int32_t i = 0; i < d->n; i++) {
        if (d->group) gid[i] = d->group[i] >= 0 && d->group[i] < i ? gid[d->group[i]] : G++;
        else if (i > 0 && d->src_row && d->src_row[i] == d->src_row[i - 1]) gid[i] = gid[i - 1];
        else gid[i] = G++;
    }
    return G;
}

plm_status plm_dataset_split(plm_dataset *d, plm_dataset *held, double frac, uint64_t seed,
                             plm_error *err) {
    if (!d || !held || d == held)
        return plm_fail(err, PLM_ERR_ARG, "split: d and held must be two datasets");
    memset(held, 0, sizeof *held);
    if (!(frac > 0 && frac < 1))
        return plm_fail(err, PLM_ERR_ARG, "split: frac must be in (0, 1), found %g", frac);
    size_t n = d->n > 0 ? (size_t)d->n : 1;
    int32_t *gid = plm_alloc(n, sizeof *gid), *at = plm_alloc(n, sizeof *at), G = 0;
    int32_t *perm = plm_alloc(n, sizeof *perm), *size = plm_alloc(n, sizeof *size);
    uint8_t *mark = plm_alloc(n, 1);
    plm_dataset keep = {0};
    plm_status st = PLM_ERR_NOMEM;
    if (!gid || !at || !perm || !size || !mark) goto done;
    G = dense_groups(d, gid);
    st = PLM_ERR_ARG;
    if (G < 2) {
        plm_fail(err, st, "split: need at least 2 groups of examples, found %d", (int)G);
        goto done;
    }
    // hold out groups in a seeded order until frac of the examples, at least 1 group each way
    for (int32_t g = 0; g < G; g++) perm[g] = g, size[g] = 0;
    for (int32_t i = 0; i < d->n; i++) size[gid[i]]++;
    uint64_t s = rng_seed(seed);
    shuffle_blocks(perm, (size_t)G, 1, &s);
    double want = frac * d->n;
    int64_t got = 0;
    for (int32_t k = 0; k < G - 1 && (k == 0 || got < want); k++) {
        mark[perm[k]] = 1;
        got += size[perm[k]];
    }
    st = subset(held, d, gid, G, mark, 1, at, err);
    if (st == PLM_OK) st = subset(&keep, d, gid, G, mark, 0, at, err);
    if (st != PLM_OK) {
        plm_dataset_free(held);
        goto done;
    }
    // d keeps its counters (they describe the file) and takes the kept examples
    free(d->ex), free(d->block), free(d->avoid_block), free(d->src_row), free(d->group);
    d->ex = keep.ex, d->n = keep.n, d->block = keep.block, d->src_row = keep.src_row;
    d->group = keep.group, d->avoid_block = keep.avoid_block;
done:
    free(gid), free(at), free(perm), free(size), free(mark);
    if (st == PLM_ERR_NOMEM && !held->ex) return plm_fail(err, st, "split: out of memory");
    return st;
}

// ---- batches ----

// Within a window the order is by length, ties broken by a seeded hash of the example index so
// that equal lengths do not line up by file position. An in-place heap sort keeps this function
// free of allocation (it cannot fail) at O(W log W) per window of W = 64*B.
static int before(const plm_dataset *d, uint64_t salt, int32_t a, int32_t b) {
    if (d->ex[a].n != d->ex[b].n) return d->ex[a].n < d->ex[b].n;
    return rng_seed(salt ^ (uint64_t)a) < rng_seed(salt ^ (uint64_t)b); // a seeded hash
}

static void sift_down(int32_t *a, size_t root, size_t n, const plm_dataset *d, uint64_t salt) {
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && before(d, salt, a[child], a[child + 1])) child++;
        if (!before(d, salt, a[root], a[child])) return;
        int32_t t = a[root];
        a[root] = a[child];
        a[child] = t;
    }
}

static void sort_by_length(int32_t *a, size_t n, const plm_dataset *d, uint64_t salt) {
    for (size_t i = n / 2; i-- > 0;) sift_down(a, i, n, d, salt);
    for (size_t end = n; end > 1; end--) {
        int32_t t = a[0];
        a[0] = a[end - 1];
        a[end - 1] = t;
        sift_down(a, 0, end - 1, d, salt);
    }
}

void plm_batch_order(int32_t *order, const plm_dataset *d, int32_t B, uint64_t seed,
                     int32_t epoch) {
    if (!order || !d || d->n <= 0) return;
    if (B < 1) B = 1;
    size_t n = (size_t)d->n, W = (size_t)B * 64;
    uint64_t s = rng_seed(seed ^ rng_seed((uint64_t)(int64_t)epoch)); // a stream per (seed, epoch)
    for (size_t i = 0; i < n; i++) order[i] = (int32_t)i;
    shuffle_blocks(order, n, 1, &s);
    uint64_t salt = rng_seed(s);
    for (size_t w = 0; w < n; w += W) sort_by_length(order + w, n - w < W ? n - w : W, d, salt);
    // Windows hold whole batches, so cutting into batches of B never mixes windows. Only the
    // full batches are shuffled: a short last batch stays last, so batch k is order[k*B ..].
    shuffle_blocks(order, n / (size_t)B, (size_t)B, &s);
}
