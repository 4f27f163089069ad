/* Choosing the next token from logits: greedy (temperature 0) or temperature + top-k + top-p. */
#ifndef PHI_SAMPLER_H
#define PHI_SAMPLER_H

#include <stdint.h>

typedef struct {
    float logit;
    int id;
} Candidate;

typedef struct {
    float temp, top_p;
    int top_k;
    uint64_t rng;
    int n;            /* ids that may be sampled: [0, n) */
    Candidate *cand;  /* scratch, n entries */
} Sampler;

/* n_valid: only ids below it are ever chosen (ids the vocabulary does not name are excluded). */
int sampler_init(Sampler *s, int n_valid, float temp, int top_k, float top_p, uint64_t seed);
void sampler_free(Sampler *s);
int sampler_argmax(const float *logits, int n); /* ties: the lowest id */
int sampler_sample(Sampler *s, const float *logits);

#endif
