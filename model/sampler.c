#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "base/rng.h"

int sampler_init(Sampler *s, int n_valid, float temp, int top_k, float top_p, uint64_t seed) {
    s->temp = temp;
    s->top_k = top_k;
    s->top_p = top_p;
    s->rng = seed ? seed : 0x853c49e6748fea9bull;
    s->n = n_valid;
    s->cand = malloc((size_t)n_valid * sizeof *s->cand);
    return s->cand ? 0 : -1;
}

void sampler_free(Sampler *s) {
    free(s->cand);
    s->cand = NULL;
}

int sampler_argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static int by_logit_desc(const void *a, const void *b) {
    const Candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

int sampler_sample(Sampler *s, const float *logits) {
    if (s->temp <= 0) return sampler_argmax(logits, s->n);
    int n = s->n, k = s->top_k > 0 && s->top_k < n ? s->top_k : n;
    Candidate *c = s->cand;
    for (int i = 0; i < n; i++) c[i] = (Candidate){logits[i], i};
    if (k < n) { /* keep the k best in front (selection by a threshold pass), then sort them */
        int m = 0;
        float worst_kept = -INFINITY;
        for (int i = 0; i < n; i++) {
            if (m < k) {
                c[m++] = c[i];
                if (m == k) qsort(c, (size_t)k, sizeof *c, by_logit_desc), worst_kept = c[k - 1].logit;
            } else if (c[i].logit > worst_kept) { /* insert into the sorted top k */
                Candidate v = c[i];
                int j = k - 1;
                while (j > 0 && c[j - 1].logit < v.logit) { c[j] = c[j - 1]; j--; }
                c[j] = v;
                worst_kept = c[k - 1].logit;
            }
        }
    } else {
        qsort(c, (size_t)n, sizeof *c, by_logit_desc);
    }
    float max = c[0].logit;
    double sum = 0;
    for (int i = 0; i < k; i++) sum += (c[i].logit = expf((c[i].logit - max) / s->temp));
    /* top-p: the smallest prefix whose probability reaches p */
    int keep = k;
    if (s->top_p > 0 && s->top_p < 1) {
        double acc = 0;
        for (int i = 0; i < k; i++) {
            acc += c[i].logit / sum;
            if (acc >= s->top_p) { keep = i + 1; break; }
        }
        sum = 0;
        for (int i = 0; i < keep; i++) sum += c[i].logit;
    }
    double r = rng_float01(&s->rng) * sum, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += c[i].logit;
        if (r < acc) return c[i].id;
    }
    return c[keep - 1].id;
}
