/* --prompt-cache FILE (llama.cpp's flag): the KV cache of a prompt saved to a file, and loaded by
 * a later run whose prompt starts with the same tokens, so that only the rest is evaluated. The
 * layout is in docs/FORMAT.md ("Prompt cache"). A file that does not match this model, KV type
 * and context size, or that is damaged, is reported in one line and not used (the prompt is then
 * evaluated in full and the file replaced, unless read-only); nothing in it is trusted before it
 * is checked. */
#ifndef PHI_PROMPT_CACHE_H
#define PHI_PROMPT_CACHE_H

#include <stdint.h>

#include "model/model.h"

typedef struct {
    uint64_t model_size, model_hash; /* the loaded model image: its size, a hash of its ends */
    uint32_t kv_types, n_ctx;        /* the KV types (K | V << 8, model.h KV_*) and the -c it was made with */
} PromptCacheKey;

void prompt_cache_key(const Model *m, const State *s, int n_ctx, PromptCacheKey *k);

/* Restore into s the longest prefix the file shares with ids[0..n_ids), at most n_ids - 1
 * positions (the last one is evaluated for its logits). Returns the positions restored (0 when
 * the file is absent, does not match, or shares nothing); a problem prints one line on stderr. */
int prompt_cache_load(const char *path, const PromptCacheKey *k, State *s, const Model *m, const int *ids,
                      int n_ids);

/* Save positions 0..n-1 of s (their tokens: ids) to path: a temporary file next to it, renamed
 * over it; never over something that is not a regular file. 0, or -1 after one line on stderr. */
int prompt_cache_save(const char *path, const PromptCacheKey *k, const State *s, const Model *m, const int *ids,
                      int n);

#endif
