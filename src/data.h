// data.h: task data for fine-tuning: PAWS TSV (id, sentence1, sentence2, label) or JSONL
// ({"input": ..., "output": ...}) into tokenized examples in the task template of
// docs/DESIGN.md, with the loss on {target}<|OUTPUT_END|> only, each with the diversity level of its
// pair when asked, and the copy candidates of each target when asked; a held-out split;
// length-grouped batches.
#ifndef PLM_DATA_H
#define PLM_DATA_H

#include "base.h"

// plm_example (one tokenized example: ids, n, n_prompt) is public: include/pocketlm.h.

typedef struct {
    int reverse;     // PAWS: also add each pair reversed (sentence2 -> sentence1); default 1
    int32_t max_len; // examples longer than this many tokens are bad rows; default 256
    int strict;      // 1: the first bad row is an error; 0: bad rows are counted and skipped
    // The diversity control (task.c): with levels >= 2 (at most PLM_TASK_LEVELS_MAX) every prompt
    // carries the control token of its example's level, which the tokenizer must have. An
    // example's distance is plm_pair_distance(source, target); its level is the number of cuts
    // at or below it. Default 0: no control field.
    int32_t levels;
    const float *cuts;  // (levels - 1) ascending cut points to use (the training data's, for other
                        // data), or NULL: the quantiles of this file's distances (plm_dataset.cuts)
    float min_distance; // drop examples whose distance is below this (near copies); default 0
    int detok;          // detokenize the sentences of a TSV file (plm_detok: PAWS is tokenized
                        // text); JSONL is taken as written. Default 0
    int avoid; // 1: give every example its avoid array (plm_example), the copy candidates of its
               // target (copy_candidates in data.c; the unlikelihood's). Default 0: avoid NULL
    // on_bad_row: called with "name:line: why" for every bad row, or NULL; gets user
    void (*on_bad_row)(void *user, const char *msg);
    void *user;
} plm_data_params;

plm_data_params plm_data_default_params(void);

typedef struct {
    plm_example *ex; // (n) examples, in file order (a reversed pair right after its original)
    int32_t n;
    int64_t rows;         // data rows read (header excluded)
    int64_t not_label1;   // PAWS rows skipped because label != 1 (not bad)
    int64_t bad_fields;   // rows with missing fields or malformed (bad TSV columns, bad JSON)
    int64_t bad_empty;    // rows with an empty input or output
    int64_t bad_long;     // rows whose example exceeds max_len tokens
    char first_bad[200];  // "file:line: why" of the first bad row, or ""
    int jsonl;            // 1: the file was read as JSONL, 0: as TSV
    int32_t *block;       // the one allocation behind every ex[i].ids
    int32_t *avoid_block; // the one allocation behind every ex[i].avoid, or NULL (without them)
    int32_t *src_row;     // (n) the line of the file (1-based) each example came from; a pair and
                          // its reverse share one, so a split keeps them together.
    // May be NULL in a dataset built by hand: then each example is its own row.
    int32_t *group;      // (n) examples linked by a shared sentence (the same text after trimming,
                         // as input or output, in any row) have the same group: PAWS makes several
                         // pairs from one sentence, and a split that parted them would leak it.
                         // A group is named by the index of its first example (group[i] <= i).
                         // May be NULL in a dataset built by hand: then src_row decides.
    int64_t near_copies; // examples dropped for min_distance (not bad)
    int32_t n_levels;    // plm_data_params.levels (0: no control field)
    float cuts[PLM_TASK_LEVELS_MAX - 1];  // (n_levels - 1) the cut points used, ascending
    int64_t level_n[PLM_TASK_LEVELS_MAX]; // examples at each level (file order, before a split)
    double level_distance[PLM_TASK_LEVELS_MAX]; // their mean distance
} plm_dataset;

// plm_dataset_load: read path (format from its content: a JSONL file's lines start with '{'; a TSV
// file's rows have 4 columns, PAWS's, or 2, a plain pair: input, reference) and
// tokenize with tok, which must know <|OUTPUT_START|> and <|OUTPUT_END|> (and the control tokens
// when p->levels is set: plm_task_level_token). No usable example at all
// is PLM_ERR_FORMAT with a message saying why (empty file, no label-1 rows, every row bad).
plm_status plm_dataset_load(plm_dataset *out, const char *path, const plm_tokenizer *tok,
                            const plm_data_params *p, plm_error *err);
void plm_dataset_free(plm_dataset *d); // accepts a zeroed struct

// plm_dataset_write_lines: copy the lines of src that d's examples came from (each once, in file
// order, verbatim) to path, atomically: e.g. the held-out rows of a split, as a file that
// `pocketlm eval` or another run's --eval-data can read. d must come from src (src_row set).
plm_status plm_dataset_write_lines(const plm_dataset *d, const char *src, const char *path,
                                   plm_error *err);

// plm_dataset_load_buffer: like plm_dataset_load, from len bytes held in memory (wasm, fuzzing);
// name stands for the path in messages. The text is not kept.
plm_status plm_dataset_load_buffer(plm_dataset *out, const char *text, size_t len, const char *name,
                                   const plm_tokenizer *tok, const plm_data_params *p,
                                   plm_error *err);

// plm_dataset_split: move a seeded random share frac of d's examples into *held (a new dataset),
// whole groups at a time (see plm_dataset.group: no sentence is on both sides); d keeps the rest.
// Groups are taken in a seeded order until held has frac * n examples or more. frac in (0, 1); at
// least one group goes each way, so d needs two groups or more (else PLM_ERR_ARG). Both keep file
// order. held->rows is the number of source rows moved and its other counters are 0; d's counters
// still describe the file. The same (d, frac, seed) always gives the same split.
plm_status plm_dataset_split(plm_dataset *d, plm_dataset *held, double frac, uint64_t seed,
                             plm_error *err);

// ---- text pairs (`pocketlm eval`) ----

// One usable row of a data file: its texts, trimmed, NUL-terminated.
typedef struct {
    const char *id;     // PAWS: the id column; JSONL: the line number
    const char *input;  // PAWS: sentence1; JSONL: "input"; a 2-column TSV: the first column
    const char *output; // PAWS: sentence2; JSONL: "output"; a 2-column TSV: the second column
} plm_text_pair;

typedef struct {
    plm_text_pair *pair; // (n) in file order
    int32_t n;
    int64_t rows;        // data rows read (header excluded), up to the limit
    int64_t not_label1;  // PAWS rows skipped because label != 1 (not bad)
    int64_t bad;         // rows skipped as bad (missing or malformed fields, an empty sentence)
    char first_bad[200]; // "file:line: why" of the first bad row, or ""
    int jsonl;           // 1: the file was read as JSONL, 0: as TSV
    char *text;          // the one allocation behind every string
    int paws;            // 1: some rows were PAWS rows (4 columns: tokenized text, see plm_detok)
} plm_text_pairs;

// plm_text_pairs_load: the usable rows of path, read by plm_dataset_load's reader (the format from
// the content, a header, label-1 PAWS rows, bad rows counted and skipped, sentences trimmed) but
// neither tokenized nor reversed: the first limit of them (0 = all). No usable row at all is
// PLM_ERR_FORMAT with a message saying why.
plm_status plm_text_pairs_load(plm_text_pairs *out, const char *path, int32_t limit,
                               plm_error *err);
void plm_text_pairs_free(plm_text_pairs *p); // accepts a zeroed struct

// ---- batches ----

// plm_batch_order: the example order of one epoch in length-grouped batches of B: a seeded shuffle
// (seed and epoch), then within windows of 64*B examples a sort by length, cut into batches of B,
// and the batches shuffled. order (d->n) receives example indices; batch k is order[k*B ..].
// The same (seed, epoch) always gives the same order.
void plm_batch_order(int32_t *order, const plm_dataset *d, int32_t B, uint64_t seed, int32_t epoch);

#endif
