/* A generation run: prompt processing, then sampling token by token, streaming the output. */
#ifndef PHI_GENERATE_H
#define PHI_GENERATE_H

#include <stdio.h>

#include "model/model.h"
#include "model/sampler.h"

typedef struct {
    int n_predict;       /* tokens to generate (< 0: until a stop id or the context is full) */
    int ignore_stop;     /* do not stop at the model's stop ids */
    int print_ids;       /* print generated ids as one comma-separated line instead of text */
    FILE *out;           /* where text or ids go */
    const char *logits_path; /* write every prompt position's logits [n][vocab] float32 LE */
    volatile int *stop;  /* if not NULL: generation ends before the next token once *stop != 0 */
    int special;         /* print special tokens (<|end|>, ...) as text (llama.cpp's --special) */
    int draft_max;       /* prompt-lookup drafts per pass (gen_loop_ex; 0: off) */
} GenOptions;

typedef struct {
    int n_prompt, n_gen;
    double prompt_s, gen_s;
    int stopped_by; /* GEN_STOP_*: why generation ended */
    int write_errno; /* GEN_STOP_WRITE: errno of the failed write */
    int n_drafted, n_accepted; /* prompt lookup: draft tokens verified, and those kept */
} GenStats;

/* Why generation ended (GenStats.stopped_by, GenStream.stopped_by). */
enum { GEN_STOP_COUNT, GEN_STOP_ID, GEN_STOP_CONTEXT, GEN_STOP_WRITE, GEN_STOP_NONFINITE, GEN_STOP_CALLER };

/* OR'd into the ignore_stop argument of gen_stream_init and gen_loop (bit 0: ignore the stop ids): the
 * decoder prints special tokens as their text. */
#define GEN_SPECIAL 2

/* -1 with a one-line message when stats end in an error (GEN_STOP_WRITE: the output could not be
 * written; GEN_STOP_NONFINITE: the model produced NaN or infinite logits), else 0. */
int gen_stop_error(const GenStats *stats, char *err, size_t errlen);

/* 1 when all n logits are finite. A NaN or infinite logit means corrupt weights (or an overflow):
 * sampling or scoring it would print nothing or a meaningless number. */
int logits_finite(const float *logits, long n);

/* Process the prompt at position 0, then generate. */
int generate(const Model *m, State *s, Sampler *smp, const int *prompt, int n_prompt,
             const GenOptions *opt, GenStats *stats, char *err, size_t errlen);
/* The same when positions 0..n_cached-1 of the prompt are already in the KV cache (a prompt cache):
 * only the rest is evaluated (n_cached < n_prompt; all of it with opt->logits_path). */
int generate_from(const Model *m, State *s, Sampler *smp, const int *prompt, int n_prompt, int n_cached,
                  const GenOptions *opt, GenStats *stats, char *err, size_t errlen);

/* The one per-token step of generation, shared by the loop below (the CLI, chat, the library's
 * phi_generate) and the server's scheduler, which advances many streams one step at a time:
 * sample from the logits, apply the stop ids and the token budget, and decode the kept token's
 * text (complete UTF-8 characters; special tokens give no text). */
typedef struct {
    const Model *m;
    Sampler *smp;
    int n_predict, ignore_stop;
    int n_gen;      /* tokens kept so far */
    int stopped_by; /* GEN_*: why the stream ended (valid once gen_next or gen_more said so) */
    TokDecoder dec;
} GenStream;

void gen_stream_init(GenStream *g, const Model *m, Sampler *smp, int n_predict, int ignore_stop);
/* Sample the next token from logits. 1: the token is kept: *id is set, its text (possibly empty)
 * is in piece[0..*len) (NUL-terminated; cap >= 16). 0: the stream ended (stop id or budget
 * spent, or non-finite logits: GEN_STOP_NONFINITE; stopped_by says which) and nothing was
 * produced. */
int gen_next(GenStream *g, const float *logits, int *id, char *piece, size_t cap, size_t *len);
/* After a kept token: 1 if another one is wanted and there is room to evaluate the kept one at
 * position pos (< n_ctx); 0 with stopped_by set otherwise. */
int gen_more(GenStream *g, int pos, int n_ctx);
/* The bytes of an incomplete trailing character (as U+FFFD) when the stream ends; 0 if none. */
size_t gen_finish(GenStream *g, char *piece, size_t cap);

/* The generation loop: after the first pos positions are in the KV cache and s->logits holds the
 * logits of position pos - 1, generate up to n_predict tokens (< 0: until a stop id or a full
 * context), calling cb for every kept token with its text (id -1: the trailing bytes
 * gen_finish gives). cb returning non-zero stops generation after that token (stopped_by
 * GEN_STOP_CALLER). Fills the n_gen, gen_s and stopped_by fields of stats. Returns the number of
 * positions now in the cache (the last kept token is not evaluated). */
typedef int (*GenTokenFn)(void *user, int id, const char *piece, size_t len);
int gen_loop(const Model *m, State *s, Sampler *smp, int pos, int n_predict, int ignore_stop,
             GenTokenFn cb, void *user, GenStats *stats);
/* The same with prompt-lookup speculative decoding (model/lookup.h) when draft_max > 0: after a
 * kept token, up to draft_max tokens that followed an earlier occurrence of the sequence's last
 * n-gram are evaluated with it in one pass, and kept while the sampler picks them, so that one
 * pass over the weights can give several tokens. The tokens equal gen_loop's bit for bit: drafting
 * is used only with greedy sampling (temperature 0) and when the batch is exact (lookup_exact);
 * otherwise it is gen_loop. The KV cache and s->logits end as gen_loop leaves them (the positions
 * of rejected drafts are forgotten). Also fills n_drafted and n_accepted. */
int gen_loop_ex(const Model *m, State *s, Sampler *smp, int pos, int n_predict, int ignore_stop,
                int draft_max, GenTokenFn cb, void *user, GenStats *stats);
/* The same with another source of drafts (NULL: prompt lookup): draft writes up to max tokens
 * to follow hist[0..n) (the sequence so far, the kept token last) to out and returns how many. */
typedef struct {
    int (*draft)(void *ctx, const int *hist, int n, int *out, int max);
    void *ctx;
} GenDrafter;
int gen_loop_drafts(const Model *m, State *s, Sampler *smp, int pos, int n_predict, int ignore_stop,
                    int draft_max, const GenDrafter *dr, GenTokenFn cb, void *user, GenStats *stats);
/* 1 when a pass of [token, drafts] gives every row the logits one-token decoding gives: every
 * matrix of m has a batch-exact kernel (kernels/kernels.h matmul_batch_exact; the K-quants where the ISA says so)
 * and no LoRA adapter is applied. s may be NULL: a fast-path state without adapters. */
int lookup_exact(const Model *m, const State *s);
/* How many of want drafts may ride in a pass evaluating a token at pos: room in the context, in
 * the stream's budget and in the state's batch, and no LongRoPE switch inside the pass. */
int gen_draft_room(const Model *m, const State *s, const GenStream *g, int pos, int want);

/* Generate after the first pos positions are in the KV cache and s->logits holds the logits of
 * position pos - 1: samples, streams to opt->out, forwards each kept token. The generated ids
 * (stop id excluded) go to ids[0..cap) when ids is non-NULL. Fills the n_gen, gen_s and
 * stopped_by fields of stats. Returns the number of positions now in the cache. */
int generate_tokens(const Model *m, State *s, Sampler *smp, int pos, const GenOptions *opt,
                    GenStats *stats, int *ids, int cap);

/* The one prompt-length check: 0 when n tokens (of `what`: "the prompt", "the conversation")
 * leave room for `reserve` more in a context of n_ctx positions, else -1 with the message. */
int check_fits_context(const char *what, int n, int reserve, int n_ctx, char *err, size_t errlen);

int is_stop_id(const PhiHParams *hp, int id);

#endif
