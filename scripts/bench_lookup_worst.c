/* The cost of prompt lookup when nothing is accepted: generation with a drafter whose every
 * proposal is wrong (the plain run's next token + 1), through the real controller (model/lookup.c:
 * first pass at --draft-max, then one draft after pauses of 1, 3, 7, ... 32 steps), against plain
 * greedy decoding, alternately (A B A B) in one process so that load and drift hit both alike.
 *   cc -O2 -std=c11 -D_GNU_SOURCE -I. -o build/bench_lookup_worst scripts/bench_lookup_worst.c build/libphi.a -lm -lpthread
 *   build/bench_lookup_worst MODEL [N_GEN] [REPS] [THREADS] [DRAFT_MAX]
 * Prints each pair's tok/s, the drafted tokens, and the median slowdown; then, steadier on a
 * loaded machine, the time of one pass of 1, 2 and DRAFT_MAX + 1 rows (the fastest of many,
 * interleaved) and the cost those give for the controller's schedule of wasted passes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "model/generate.h"
#include "model/lookup.h"

enum { MAXG = 4096 };
typedef struct {
    int ids[MAXG], n;
} Collect;

static int collect(void *user, int id, const char *piece, size_t len) {
    (void)piece, (void)len;
    Collect *c = user;
    if (id >= 0 && c->n < MAXG) c->ids[c->n++] = id;
    return 0;
}

typedef struct {
    const int *truth;
    int n_truth, vocab;
} Wrong;

static int wrong_draft(void *ctx, const int *hist, int n, int *out, int max) {
    const Wrong *w = ctx;
    (void)hist;
    int k = 0;
    for (; k < max && n + k < w->n_truth; k++) out[k] = (w->truth[n + k] + 1) % w->vocab;
    return k;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [N_GEN] [REPS] [THREADS] [DRAFT_MAX]\n", argv[0]);
        return 1;
    }
    int n_gen = argc > 2 ? atoi(argv[2]) : 64, reps = argc > 3 ? atoi(argv[3]) : 3;
    int threads = argc > 4 ? atoi(argv[4]) : 2, dmax = argc > 5 ? atoi(argv[5]) : LOOKUP_DRAFT_DEFAULT;
    if (n_gen < 1 || n_gen > MAXG - 64 || reps < 1 || threads < 1) return 1;
    char err[512];
    Model m;
    if (model_load_ex(argv[1], &m, MODEL_LOAD_COPY, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int prompt[16] = {1}, n_prompt = 16, vocab = (int)m.hp.vocab_size;
    for (int i = 1; i < n_prompt; i++) prompt[i] = 1000 + 37 * i;
    int n_ctx = n_prompt + n_gen + 8;
    static int truth[MAXG];
    Wrong w = {truth, 0, vocab};
    GenDrafter dr = {wrong_draft, &w};
    double *ratio = calloc((size_t)reps, sizeof(double));
    for (int r = 0; r < reps; r++) {
        double tps[2];
        int drafted = 0, same = 1;
        static Collect c[2];
        for (int mode = 0; mode < 2; mode++) {
            State s;
            Sampler smp;
            if (state_init(&s, &m, n_ctx, threads, err, sizeof err)) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            sampler_init(&smp, vocab, 0, 0, 1, 1);
            model_forward(&m, &s, prompt, n_prompt, 0, NULL);
            GenStats st = {0};
            c[mode].n = 0;
            gen_loop_drafts(&m, &s, &smp, n_prompt, n_gen, 1, mode ? dmax : 0, mode ? &dr : NULL, collect, &c[mode], &st);
            tps[mode] = st.n_gen / st.gen_s;
            if (mode) drafted = st.n_drafted, same = st.n_accepted == 0;
            if (!mode && r == 0) { /* the plain run gives the truth the drafter spoils */
                memcpy(truth, prompt, sizeof(int) * (size_t)n_prompt);
                memcpy(truth + n_prompt, c[0].ids, sizeof(int) * (size_t)c[0].n);
                w.n_truth = n_prompt + c[0].n;
            }
            sampler_free(&smp);
            state_free(&s);
        }
        same = same && c[0].n == c[1].n && !memcmp(c[0].ids, c[1].ids, sizeof(int) * (size_t)c[0].n);
        ratio[r] = tps[0] / tps[1];
        printf("rep %d: plain %.2f tok/s, all-rejected lookup %.2f tok/s (%d drafted, 0 accepted%s): %+.1f%% time\n",
               r + 1, tps[0], tps[1], drafted, same ? ", same tokens" : ", TOKENS DIFFER", 100 * (ratio[r] - 1));
    }
    qsort(ratio, (size_t)reps, sizeof(double), cmp_d);
    printf("median time cost of all-rejected lookup: %+.1f%% (limit +5%%), %d tokens, draft-max %d, %d threads\n",
           100 * (ratio[reps / 2] - 1), n_gen, dmax, threads);

    /* One pass of 1, 2, dmax + 1 rows at the same position (rolled back each time). */
    {
        State s;
        if (state_init(&s, &m, n_ctx, threads, err, sizeof err)) return 1;
        model_forward(&m, &s, prompt, n_prompt, 0, NULL);
        float *lb = malloc((size_t)(LOOKUP_DRAFT_MAX + 1) * vocab * sizeof(float));
        int rows[3] = {1, 2, dmax + 1}, toks[LOOKUP_DRAFT_MAX + 1];
        for (int i = 0; i <= LOOKUP_DRAFT_MAX; i++) toks[i] = 1000 + i;
        double best[3] = {1e30, 1e30, 1e30};
        for (int it = 0; it < 8 * reps; it++)
            for (int k = 0; k < 3; k++) {
                double t0 = now_seconds();
                model_forward(&m, &s, toks, rows[k], n_prompt, rows[k] > 1 ? lb : NULL);
                double t = now_seconds() - t0;
                if (t < best[k]) best[k] = t;
                s.n_cached = n_prompt;
            }
        /* the controller's wasted passes over n_gen steps when nothing is accepted */
        LookupCtl c;
        lookup_ctl_init(&c, dmax);
        double extra = 0;
        int passes = 0;
        for (int step = 0; step < n_gen; step++) {
            int k = lookup_ctl_want(&c);
            if (!k) continue;
            extra += (k == 1 ? best[1] : k == dmax ? best[2] : best[2]) - best[0];
            passes++;
            lookup_ctl_update(&c, k, 0);
        }
        printf("one pass: 1 row %.1f ms, 2 rows %.1f ms (x%.3f), %d rows %.1f ms (x%.3f)\n", 1e3 * best[0],
               1e3 * best[1], best[1] / best[0], dmax + 1, 1e3 * best[2], best[2] / best[0]);
        printf("all-rejected cost from these: %d wasted passes in %d steps, %+.2f%% time (limit +5%%)\n", passes,
               n_gen, 100 * extra / (n_gen * best[0]));
        free(lb);
        state_free(&s);
    }
    free(ratio);
    model_free(&m);
    return 0;
}
