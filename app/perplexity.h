/* Perplexity of a model over a text, and KL divergence of its next-token distributions against
 * a base model's saved logits (how much a quantized model drifts from the float one).
 *
 * Two ways to cut the token stream into windows of n_ctx positions:
 *  PPL_LLAMA  llama.cpp's `llama-perplexity -c n_ctx`: tokens = [BOS] + ids of the whole text,
 *             cut into chunks of n_ctx; each chunk's first token is replaced by BOS; positions
 *             n_ctx/2 .. n_ctx-2 are scored, each predicting the next token (so every prediction
 *             sees at least n_ctx/2 tokens of context). A partial last chunk is dropped.
 *  PPL_ALL    every token scored: the text ids are cut into windows of n_ctx tokens, each run as
 *             [BOS] + its first n_ctx-1 tokens, and all n_ctx tokens of the window are predicted
 *             (the first from BOS alone). A partial last window is dropped.
 * NLL is -log softmax(logits)[target], natural log, softmax in double; perplexity = exp(mean NLL).
 *
 * Saved logits file (--save-logits; read back by --kl-base), little-endian:
 *   offset 0  u8[8] magic "PHILOGIT"     32  u64 n_scored: positions stored
 *          8  u32 version 1             40  u64 token_hash: FNV-1a 64 over the int32 ids of
 *         12  u32 header_size 64                every evaluated chunk, as run (BOS included)
 *         16  u32 vocab                 48  u8[16] zero
 *         20  u32 n_ctx
 *         24  u32 method (0 llama, 1 all)
 *         28  u32 n_chunks
 *   then n_scored x vocab float32: the raw logits of each scored position, in scoring order. */
#ifndef PHI_PERPLEXITY_H
#define PHI_PERPLEXITY_H

#include <stdio.h>

#include "model/model.h"

typedef enum { PPL_LLAMA = 0, PPL_ALL = 1 } PplMethod;

#define PPL_LOGITS_HEADER 64

typedef struct {
    PplMethod method;
    int n_ctx;               /* positions per window; the State must hold at least this many */
    int max_chunks;          /* 0: every whole window of the text */
    const char *save_logits; /* write the scored positions' logits here (NULL: no) */
    const char *kl_base;     /* compare with logits saved by another run (NULL: no) */
    int progress;            /* redraw a progress line on stderr */
} PplOptions;

typedef struct {
    int n_chunks;
    long n_scored, n_evaluated; /* predictions scored; positions run through the model */
    double mean_nll, nll_stderr, ppl, ppl_stderr;
    double seconds;
    int has_kl; /* the KL fields are set (kl_base given) */
    double kl_mean, kl_stderr, kl_median, kl_p99, kl_max;
    double top1;                 /* share of positions whose argmax equals the base's */
    double dlogit_mean, dlogit_max; /* |logit - base logit| over every vocab entry */
} PplResult;

/* Smallest n_ctx the method accepts (PPL_LLAMA must score at least one position per chunk). */
int perplexity_min_ctx(PplMethod method);

/* Score text ids (without BOS: the model's BOS id is added here). 0, or -1 with a one-line
 * message (text shorter than one window, unreadable or mismatched --kl-base, write error). */
int perplexity_run(const Model *m, State *s, const int *ids, int n_ids, const PplOptions *o,
                   PplResult *r, char *err, size_t errlen);

/* The result as "key: value" lines (perplexity, mean NLL, and the KL lines when present). */
void perplexity_print(FILE *f, const PplOptions *o, const PplResult *r);

#endif
