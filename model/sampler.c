/* The sampler chain follows llama.cpp's default (common/common.h, common_params_sampling::samplers:
 * penalties, DRY, top-n-sigma, top-k, typical-p, top-p, min-p, XTC, temperature; phi implements
 * penalties, top-k, top-p, min-p and temperature, in that order), with its semantics
 * (src/llama-sampling.cpp):
 * - penalties: for each id seen c > 0 times in the last N: logit /= repeat when logit > 0, else
 *   logit *= repeat; then logit -= c * freq + presence;
 * - top-k keeps the k largest logits; top-p the smallest prefix (by probability, descending) whose
 *   cumulative probability reaches p; min-p the ids whose probability is at least min_p times the
 *   largest. These three see the probabilities at temperature 1: temperature comes last and
 *   only reshapes what is left before the draw. */
#include "model/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

int sampler_init(Sampler *s, int n_valid, float temp, int top_k, float top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->temp = temp;
    s->top_k = top_k;
    s->top_p = top_p;
    s->repeat = 1;
    s->rng = seed ? seed : 0x853c49e6748fea9bull;
    s->n = n_valid;
    s->cand = malloc((size_t)n_valid * sizeof *s->cand);
    return s->cand ? 0 : -1;
}

int sampler_set_penalties(Sampler *s, int last_n, float repeat, float freq, float presence) {
    s->repeat = repeat;
    s->freq = freq;
    s->presence = presence;
    free(s->hist);
    free(s->count);
    s->hist = NULL;
    s->count = NULL;
    s->last_n = last_n > 0 ? last_n : 0;
    s->n_hist = s->hist_pos = 0;
    if (!s->last_n) return 0;
    s->hist = malloc((size_t)s->last_n * sizeof *s->hist);
    s->count = calloc((size_t)s->n, sizeof *s->count);
    return s->hist && s->count ? 0 : -1;
}

void sampler_set_min_p(Sampler *s, float min_p) { s->min_p = min_p; }

void sampler_accept(Sampler *s, int id) {
    if (!s->last_n) return;
    s->hist[s->hist_pos] = id;
    s->hist_pos = (s->hist_pos + 1) % s->last_n;
    if (s->n_hist < s->last_n) s->n_hist++;
}

void sampler_reset(Sampler *s) { s->n_hist = s->hist_pos = 0; }

void sampler_free(Sampler *s) {
    free(s->cand);
    free(s->hist);
    free(s->count);
    s->cand = NULL;
    s->hist = s->count = NULL;
}

int sampler_argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static int penalties_on(const Sampler *s) {
    return s->n_hist > 0 && (s->repeat != 1 || s->freq != 0 || s->presence != 0);
}

/* logit of id i at l[i * stride] (floats, or the logit field of Candidates in id order) */
static void penalize(Sampler *s, float *l, size_t stride, int n) {
    for (int i = 0; i < s->n_hist; i++)
        if (s->hist[i] >= 0 && s->hist[i] < n) s->count[s->hist[i]]++;
    for (int i = 0; i < s->n_hist; i++) {
        int id = s->hist[i];
        if (id < 0 || id >= n || !s->count[id]) continue; /* out of range, or done already */
        float v = l[(size_t)id * stride];
        float r = s->repeat > 0 ? s->repeat : 1; /* 0 would divide by zero: off */
        v = v > 0 ? v / r : v * r;
        l[(size_t)id * stride] = v - (float)s->count[id] * s->freq - s->presence;
        s->count[id] = 0;
    }
}

void sampler_apply_penalties(Sampler *s, float *logits, int n) {
    if (penalties_on(s)) penalize(s, logits, 1, n < s->n ? n : s->n);
}

static int by_logit_desc(const void *a, const void *b) {
    const Candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

int sampler_sample(Sampler *s, const float *logits) {
    int n = s->n, k = s->top_k > 0 && s->top_k < n ? s->top_k : n;
    Candidate *c = s->cand;
    if (s->temp <= 0 && !penalties_on(s)) return sampler_argmax(logits, n);
    for (int i = 0; i < n; i++) c[i] = (Candidate){logits[i], i};
    /* on the copy: the caller's logits stay as the model gave them */
    if (penalties_on(s)) penalize(s, &c[0].logit, sizeof *c / sizeof(float), n);
    if (s->temp <= 0) { /* greedy after the penalties; ties: the lowest id */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        return best;
    }
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
    int keep = k;
    /* top-p on the temperature-1 probabilities: the smallest prefix whose probability reaches p */
    if (s->top_p < 1) { /* p = 0 keeps the top token alone (llama.cpp; OpenAI clients send it) */
        double sum = 0, acc = 0;
        for (int i = 0; i < k; i++) sum += exp((double)c[i].logit - max);
        for (int i = 0; i < k; i++) {
            acc += exp((double)c[i].logit - max) / sum;
            if (acc >= s->top_p) { keep = i + 1; break; }
        }
    }
    /* min-p: p_i >= min_p * p_max, i.e. logit_i >= max + ln(min_p) */
    if (s->min_p > 0 && s->min_p <= 1) {
        double floor_l = max + log(s->min_p);
        int m = 1;
        while (m < keep && c[m].logit >= floor_l) m++;
        keep = m;
    }
    double sum = 0;
    for (int i = 0; i < keep; i++) sum += (c[i].logit = expf((c[i].logit - max) / s->temp));
    double r = rng_float01(&s->rng) * sum, acc = 0;
    for (int i = 0; i < keep; i++) {
        acc += c[i].logit;
        if (r < acc) return c[i].id;
    }
    return c[keep - 1].id;
}
