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
} GenOptions;

typedef struct {
    int n_prompt, n_gen;
    double prompt_s, gen_s;
    int stopped_by; /* 0: count reached, 1: stop id, 2: context full */
} GenStats;

/* Process the prompt at position 0, then generate. */
int generate(const Model *m, State *s, Sampler *smp, const int *prompt, int n_prompt,
             const GenOptions *opt, GenStats *stats, char *err, size_t errlen);

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
