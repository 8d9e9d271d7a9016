// detok.h: Moses-style English detokenization (src/detok.c), for the PAWS sentences that fine-tuning
// (data.c) and `pocketlm eval` read: PAWS is pre-tokenized ("Hello , world .") and users type
// "Hello, world.".
#ifndef PLM_DETOK_H
#define PLM_DETOK_H

#include <stddef.h>

// plm_detok: s (n bytes, white-space separated tokens) detokenized into out (cap bytes,
// NUL-terminated when cap > 0, truncated when short); returns the whole length without the NUL,
// like snprintf. The result is never longer than n, so cap = n + 1 always suffices; out must not
// overlap s. Tokens are split at ASCII white space and joined by single spaces, except:
//   - no space before a token made of , . ; : ! ? % ) ] } only;
//   - no space after a token made of ( [ { $ £ € ¥ ¿ ¡ only;
//   - English contractions join the word before: "'s", "'re", "'ll", "'d", ... (an apostrophe and
//     a letter) and "n't";
//   - `` and '' become ", and ` becomes '; double quotes (", “, ”, „) and single quotes (')
//     alternate between opening (space before, none after) and closing (none before) in the
//     order they come, each kind counted on its own, as sacremoses does; a single quote after a
//     word ending in s, where an opening one would come, is a possessive: "Jones ' house" ->
//     "Jones' house";
//   - anything else, " - " included, keeps its spaces.
size_t plm_detok(const char *s, size_t n, char *out, size_t cap);

#endif
