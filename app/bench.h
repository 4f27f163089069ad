/* Speed benchmark of a loaded model, printed as a llama-bench style table. */
#ifndef PHI_BENCH_H
#define PHI_BENCH_H

#include <stdio.h>

#include "model/model.h"

#define BENCH_MAX_NP 8

typedef struct {
    int n_prompt;  /* pp test: tokens processed in one batch (0: skip) */
    int n_gen;     /* tg test: tokens generated one at a time (0: skip) */
    int depth;     /* tokens already in the context before the tg test */
    int reps;      /* repetitions; mean and standard deviation are reported */
    int n_threads;
    int use_ref;
    /* parallel decoding: for each np[k] (k < n_np), np[k] streams step together (one
     * model_forward_multi per step) for n_gen steps after depth tokens each; the row is the
     * aggregate tok/s of all streams */
    int n_np, np[BENCH_MAX_NP];
    int state_flags; /* KV cache types: STATE_CACHE_K(t) | STATE_CACHE_V(t) (model/model.h) */
} BenchOptions;

/* 0, or -1 with a one-line message in err. */
int bench_run(const Model *m, const BenchOptions *opt, FILE *out, char *err, size_t errlen);
/* Read bandwidth of this machine in GB/s with n_threads streaming a buffer larger than caches. */
double bench_memory_bandwidth(int n_threads);
/* Bytes of weights one generated token reads (every matrix once, one embedding row). */
double bench_weight_bytes_per_token(const Model *m);
/* Bytes of KV cache the attention of one generated token reads, averaged over n_gen tokens
 * after depth (every layer's keys and values of the positions it attends to). */
double bench_kv_bytes_per_token(const Model *m, const State *s, int depth, int n_gen);

#endif
