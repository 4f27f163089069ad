#include "app/bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "model/generate.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "kernels/peak.h"
#include "model/schema.h"

/* Every tensor of the schema once (a tied LM head is the whole embedding), except that the
 * embedding itself is one row. */
double bench_weight_bytes_per_token(const Model *m) {
    double b = 0;
    SchemaIter it = schema_iter(&m->hp);
    it.with_absent = 1;
    while (schema_next(&it)) {
        const SchemaTensor *t = it.item.t;
        const char *name = schema_present(&m->hp, t) ? it.item.name : t->absent_alias;
        const PhiTensorInfo *ti = name ? phi_file_find(&m->file, name) : NULL;
        if (ti) b += t->role == ROLE_EMBED ? (double)ti->size / (double)ti->ne[0] : (double)ti->size;
    }
    return b;
}

/* Products per prompt token in the layers' weight matrices (the int8 work of prefill; the LM
 * head runs for the last position only, attention is float). */
static double bench_matmul_params(const Model *m) {
    double p = 0;
    SchemaIter it = schema_iter(&m->hp);
    while (schema_next(&it)) {
        const SchemaTensor *t = it.item.t;
        if (t->role != ROLE_QKV && t->role != ROLE_O && t->role != ROLE_GATE_UP && t->role != ROLE_DOWN) continue;
        const PhiTensorInfo *ti = phi_file_find(&m->file, it.item.name);
        if (ti) p += (double)ti->ne[0] * ti->ne[1];
    }
    return p;
}

double bench_kv_bytes_per_token(const Model *m, const State *s, int depth, int n_gen) {
    const PhiHParams *hp = &m->hp;
    double pos = 0;
    for (int i = 0; i < n_gen; i++) {
        int p = depth + i + 1; /* positions attended to, itself included */
        pos += hp->sliding_window && (uint32_t)p > hp->sliding_window ? (double)hp->sliding_window : (double)p;
    }
    double row = (double)hp->n_layers * hp->n_kv_heads * hp->head_dim;
    return n_gen > 0 ? (kv_type_bytes(s->k_type, row) + kv_type_bytes(s->v_type, row)) * pos / n_gen : 0;
}

typedef struct {
    const uint64_t *buf;
    size_t n;
    uint64_t sum[64];
} BwJob;

static void bw_job(void *arg, int ith, int nth) {
    BwJob *j = arg;
    size_t i0 = j->n * (size_t)ith / (size_t)nth, i1 = j->n * (size_t)(ith + 1) / (size_t)nth;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = i0; i + 4 <= i1; i += 4) {
        s0 += j->buf[i];
        s1 += j->buf[i + 1];
        s2 += j->buf[i + 2];
        s3 += j->buf[i + 3];
    }
    j->sum[ith & 63] = s0 + s1 + s2 + s3;
}

double bench_memory_bandwidth(int n_threads) {
    size_t bytes = (size_t)1 << 30, n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    Pool *pool = n_threads > 1 ? pool_create(n_threads) : NULL;
    BwJob j = {buf, n, {0}};
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_seconds();
        pool_run(pool, bw_job, &j);
        double dt = now_seconds() - t0;
        if (bytes / dt > best) best = bytes / dt;
    }
    if (pool) pool_destroy(pool);
    free(buf);
    return best / 1e9;
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

static void row(FILE *out, const char *model, double gib, const char *type, int threads,
                const char *test, const double *tps, int reps) {
    double mean, sd;
    mean_sd(tps, reps, &mean, &sd);
    fprintf(out, "| %-14s | %8.2f GiB | %-4s | %7d | %-12s | %9.2f ± %-6.2f |\n", model, gib, type,
            threads, test, mean, sd);
    fflush(out);
}


/* np streams decoding together: each state holds depth tokens, then n_gen steps of one
 * model_forward_multi over all of them. Returns the aggregate tok/s of each rep in tps. */
static int bench_parallel(const Model *m, const BenchOptions *o, int np, Pool *pool, const int *toks,
                          double *tps, char *err, size_t errlen) {
    int n_ctx = o->depth + o->n_gen;
    State *s = calloc((size_t)np, sizeof *s);
    State **sp = calloc((size_t)np, sizeof *sp);
    int *step = calloc((size_t)np, sizeof *step), made = 0, rc = 0;
    if (!s || !sp || !step) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (; !rc && made < np; made++) {
        if (state_init_pool(&s[made], m, n_ctx, pool, o->state_flags, err, errlen)) rc = -1;
        else s[made].use_ref = o->use_ref;
        sp[made] = &s[made];
    }
    for (int r = 0; !rc && r < o->reps; r++) {
        for (int k = 0; k < np; k++) {
            s[k].n_cached = 0;
            if (o->depth > 0) model_forward(m, &s[k], toks, o->depth, 0, NULL);
        }
        double t0 = now_seconds();
        for (int i = 0; i < o->n_gen && !rc; i++) {
            for (int k = 0; k < np; k++) step[k] = toks[(o->depth + i + 7 * k) % n_ctx];
            rc = model_forward_multi(m, sp, step, np, NULL);
        }
        tps[r] = (double)np * o->n_gen / (now_seconds() - t0);
        if (rc) snprintf(err, errlen, "model_forward_multi failed");
    }
    for (int k = 0; k < made; k++) state_free(&s[k]);
    free(s);
    free(sp);
    free(step);
    return rc;
}

int bench_run(const Model *m, const BenchOptions *o, FILE *out, char *err, size_t errlen) {
    const PhiHParams *hp = &m->hp;
    int n_ctx = o->n_prompt > o->depth + o->n_gen ? o->n_prompt : o->depth + o->n_gen;
    if (n_ctx < 1) n_ctx = 1;
    if ((uint32_t)n_ctx > hp->max_seq_len) {
        snprintf(err, errlen, "the benchmark needs %d positions but the model has %u", n_ctx,
                 hp->max_seq_len);
        return -1;
    }
    State s;
    if (state_init_ex(&s, m, n_ctx, o->use_ref ? 1 : o->n_threads, o->state_flags, err, errlen)) return -1;
    s.use_ref = o->use_ref;
    int *toks = malloc((size_t)n_ctx * sizeof *toks);
    double *tps = malloc((size_t)(o->reps > 0 ? o->reps : 1) * sizeof *tps);
    if (!toks || !tps) {
        free(toks);
        free(tps);
        state_free(&s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint64_t rng = 12345;
    for (int i = 0; i < n_ctx; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        toks[i] = (int)((rng >> 33) % hp->vocab_size);
    }
    double params = 0;
    for (uint32_t i = 0; i < m->file.n_tensors; i++)
        params += (double)m->file.tensors[i].ne[0] * m->file.tensors[i].ne[1];
    char model[64];
    snprintf(model, sizeof model, "phi3 %.2fB", params / 1e9);
    double gib = m->map_size / (double)(1 << 30);
    const char *type = type_traits(hp->file_type)->name;
    int threads = s.n_threads;
    fprintf(out, "| model          |         size | type | threads | test         |          t/s      |\n");
    fprintf(out, "| -------------- | -----------: | ---- | ------: | ------------ | ----------------: |\n");
    /* warm-up: map the weights in, grow scratch buffers */
    model_forward(m, &s, toks, 1, 0, NULL);
    char test[32];
    double tg_mean = 0, pp_mean = 0, sd;
    if (o->n_prompt > 0) {
        for (int r = 0; r < o->reps; r++) {
            double t0 = now_seconds();
            model_forward(m, &s, toks, o->n_prompt, 0, NULL);
            tps[r] = o->n_prompt / (now_seconds() - t0);
        }
        snprintf(test, sizeof test, "pp%d", o->n_prompt);
        row(out, model, gib, type, threads, test, tps, o->reps);
        pp_mean = 0;
        mean_sd(tps, o->reps, &pp_mean, &sd);
    }
    if (o->n_gen > 0) {
        for (int r = 0; r < o->reps; r++) {
            if (o->depth > 0) model_forward(m, &s, toks, o->depth, 0, NULL);
            double t0 = now_seconds();
            for (int i = 0; i < o->n_gen; i++) model_forward(m, &s, toks + o->depth + i, 1, o->depth + i, NULL);
            tps[r] = o->n_gen / (now_seconds() - t0);
        }
        if (o->depth > 0) snprintf(test, sizeof test, "tg%d@d%d", o->n_gen, o->depth);
        else snprintf(test, sizeof test, "tg%d", o->n_gen);
        row(out, model, gib, type, threads, test, tps, o->reps);
        mean_sd(tps, o->reps, &tg_mean, &sd);
    }
    if (o->n_gen > 0 && o->n_np > 0) {
        /* the streams share the single state's pool (as a server's slots do) */
        double np_mean[BENCH_MAX_NP] = {0};
        for (int k = 0; k < o->n_np; k++) {
            int np = o->np[k];
            if (bench_parallel(m, o, np, s.pool, toks, tps, err, errlen)) {
                free(toks);
                free(tps);
                state_free(&s);
                return -1;
            }
            if (o->depth > 0) snprintf(test, sizeof test, "tg%d@d%d np%d", o->n_gen, o->depth, np);
            else snprintf(test, sizeof test, "tg%d np%d", o->n_gen, np);
            row(out, model, gib, type, threads, test, tps, o->reps);
            mean_sd(tps, o->reps, &np_mean[k], &sd);
        }
        for (int k = 0, first = 1; k < o->n_np; k++)
            if (o->np[k] > 1 && tg_mean > 0)
                fprintf(out, "%s%d streams: %.2f tok/s in all, %.2f each, %.2fx the single-stream tg\n",
                        first ? (first = 0, "\n") : "", o->np[k], np_mean[k], np_mean[k] / o->np[k],
                        np_mean[k] / tg_mean);
    }
    if (o->n_gen > 0) {
        double wb = bench_weight_bytes_per_token(m);
        double kb = bench_kv_bytes_per_token(m, &s, o->depth, o->n_gen), tb = wb + kb;
        double bw = bench_memory_bandwidth(threads);
        fprintf(out, "\n%s kernels; generation streams %.2f GB of weights + %.3f GB of KV cache (K %s, V %s, "
                "depth %d) per token: %.1f GB/s at %.2f tok/s; this machine reads %.1f GB/s with %d "
                "threads (%.0f%% of it)\n",
                o->use_ref ? "reference" : kernels_isa_name(), wb / 1e9, kb / 1e9, kv_type_name(s.k_type),
                kv_type_name(s.v_type), o->depth, tb * tg_mean / 1e9, tg_mean, bw, threads,
                bw > 0 ? 100 * tb * tg_mean / 1e9 / bw : 0);
    }
    if (o->n_prompt > 0 && pp_mean > 0 && !o->use_ref) {
        /* Prompt processing is compute-bound: its int8 operations per second against the peak of
         * the instruction the tiles use, measured here on the same threads (issue 14). */
        const char *how;
        double peak = int8_peak_ops(s.pool, threads, hp->file_type, &how), ops = 2 * bench_matmul_params(m) * pp_mean;
        if (peak > 0)
            fprintf(out, "%sprompt: %.0f GOPS in the weight matrices (int8 products and adds) at %.2f tok/s; "
                    "the int8 peak of %s is %.0f GOPS with %d threads (%.0f%% of it)\n",
                    o->n_gen > 0 ? "" : "\n", ops / 1e9, pp_mean, how, peak / 1e9, threads, 100 * ops / peak);
    }
    free(toks);
    free(tps);
    state_free(&s);
    return 0;
}
