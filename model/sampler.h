/* Choosing the next token from logits, in llama.cpp's order (see sampler.c): repetition
 * penalties over the last N accepted tokens -> top-k -> top-p -> min-p -> temperature ->
 * a random draw; temperature 0 is greedy (after the penalties). */
#ifndef PHI_SAMPLER_H
#define PHI_SAMPLER_H

#include <stdint.h>

typedef struct {
    float logit;
    int id;
} Candidate;

typedef struct {
    float temp, top_p, min_p;
    int top_k;
    /* penalties (llama.cpp's --repeat-penalty, --frequency-penalty, --presence-penalty) over the
     * last `last_n` ids given to sampler_accept; 1 / 0 / 0 = off */
    float repeat, freq, presence;
    int last_n;
    int *hist, n_hist, hist_pos; /* ring of the last last_n accepted ids */
    int *count;                  /* scratch per id, all zero between calls */
    uint64_t rng;
    int n;            /* ids that may be sampled: [0, n) */
    Candidate *cand;  /* scratch, n entries */
} Sampler;

/* n_valid: only ids below it are ever chosen (ids the vocabulary does not name are excluded).
 * min-p starts at 0 and the penalties off; set them with the calls below. */
int sampler_init(Sampler *s, int n_valid, float temp, int top_k, float top_p, uint64_t seed);
/* last_n: how many accepted ids the penalties look at (0: none; -1 is the caller's context
 * size, resolved before). Returns -1 on out of memory. */
int sampler_set_penalties(Sampler *s, int last_n, float repeat, float freq, float presence);
void sampler_set_min_p(Sampler *s, float min_p);
void sampler_accept(Sampler *s, int id); /* a token that is now part of the sequence */
void sampler_reset(Sampler *s);          /* forget the history (a new conversation) */
void sampler_free(Sampler *s);
int sampler_argmax(const float *logits, int n); /* ties: the lowest id */
int sampler_sample(Sampler *s, const float *logits);

/* The penalties alone, on logits[0..n) in place (exposed for the tests). */
void sampler_apply_penalties(Sampler *s, float *logits, int n);

#endif
