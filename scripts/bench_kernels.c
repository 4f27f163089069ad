/* Kernel micro-benchmark: `make bench-kernels`, or bench_kernels [isa ...], or bench_kernels --attn
 * [isa] (attention over an F16 and a q8_0 KV cache at depths 1024, 2047, 4096).
 *
 * For each ISA: matvec of a 3072 x 8192 Q4 / Q8 / F16 / Q4_KP / Q5_KP / Q6_KP / IQ4_XS matrix (Phi-3-mini's down projection)
 * with 1 and 2 threads, in GB/s of weight bytes streamed (several copies of the matrix are
 * cycled so that they come from memory, not from the last-level cache); matmul with 128 tokens,
 * in int8 GOPS (2 per multiply-add) and the tokens/s that rate would give over the whole model
 * (3.72 G multiply-adds per token in Phi-3-mini's matrices), and with 64 tokens on one thread on a
 * 1024-row matrix held in cache (the tiles without the stream from memory); and a read-bandwidth
 * probe. Each number is the best of several runs (other processes make single runs noisy). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fileio.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

#define ROWS 3072
#define COLS 8192
#define MODEL_MACS 3.72e9 /* Phi-3-mini: 32 x (9216 + 3072 + 16384) x 3072 + 32 x 3072 x 8192 + 32064 x 3072 */
#define NTOK 128

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process: CPU / wall time of a run shows how many cores it really got
 * (fewer than its threads when other processes compete). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static float randf(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

/* ---- memory bandwidth probe ---- */

/* Four independent 32-byte accumulators (GCC/Clang vector extension: SSE2 or wider), enough
 * loads in flight to saturate memory from one core. */
typedef uint64_t V4 __attribute__((vector_size(32)));

typedef struct {
    const V4 *buf;
    size_t n; /* vectors */
    uint64_t sum[64];
} ReadJob;

static void read_job(void *arg, int ith, int nth) {
    ReadJob *j = arg;
    size_t i0 = j->n * ith / nth, i1 = j->n * (ith + 1) / nth;
    V4 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    size_t i = i0;
    for (; i + 4 <= i1; i += 4) {
        s0 += j->buf[i];
        s1 += j->buf[i + 1];
        s2 += j->buf[i + 2];
        s3 += j->buf[i + 3];
    }
    V4 s = s0 + s1 + s2 + s3;
    j->sum[ith] = s[0] + s[1] + s[2] + s[3];
}

static void bench_memory(Pool *pools[2]) {
    size_t bytes = (size_t)512 << 20;
    V4 *buf = aligned_alloc(64, bytes);
    if (!buf) return;
    memset(buf, 1, bytes);
    ReadJob j = {buf, bytes / sizeof(V4), {0}};
    for (int p = 0; p < 2; p++) {
        double best = 1e9;
        for (int rep = 0; rep < 10; rep++) {
            double t0 = now();
            pool_run(pools[p], read_job, &j);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("memory read          threads=%d  %6.1f GB/s\n", pool_size(pools[p]), bytes / best / 1e9);
    }
    free(buf);
}

/* ---- kernels ---- */

typedef struct {
    uint32_t type;
    int copies;
    uint8_t **data;
    MatView *m;
    size_t bytes;
} Mats;

static Mats make_mats(uint32_t type, int copies, int rows) {
    Mats s = {type, copies, calloc(copies, sizeof(uint8_t *)), calloc(copies, sizeof(MatView)), 0};
    s.bytes = type_tensor_bytes(type, rows, COLS);
    float *row = malloc(sizeof(float) * COLS);
    static uint8_t q[COLS * 4];
    static uint16_t d[COLS / QK];
    for (int c = 0; c < copies; c++) {
        /* as the model has them: phi copies its weights into transparent huge pages (model/model.c),
         * which a stream from memory through 4 KB pages would not match (a TLB miss every 4 KB) */
        s.data[c] = huge_alloc(s.bytes);
        s.m[c] = matview(type, s.data[c], rows, COLS);
        if (c > 0) {
            memcpy(s.data[c], s.data[0], s.bytes);
            continue;
        }
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < COLS; i++) row[i] = randf();
            quantize_row(type, row, q, d, COLS);
            matview_put_row(&s.m[c], r, q, d);
        }
    }
    free(row);
    return s;
}

static void free_mats(Mats *s) {
    for (int c = 0; c < s->copies; c++) huge_free(s->data[c], s->bytes);
    free(s->data);
    free(s->m);
}

/* Whether name is one of the space-separated words of list. */
static int name_in(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return 1;
    return 0;
}

static void bench_isa(const char *isa, Pool *pools[2], float *x, float *y) {
    if (kernels_init(isa) != 0) return;
    /* phi's q4/q8/f16 and the K panel types a GGUF's Q4_K_M / IQ4_XS file is converted to. */
    static const uint32_t types[] = {TENSOR_Q4, TENSOR_Q8, TENSOR_F16, TENSOR_Q4_KP, TENSOR_Q5_KP, TENSOR_Q6_KP,
                                     TENSOR_IQ4_XS};
    for (int ti = 0; ti < (int)(sizeof types / sizeof types[0]); ti++) {
        uint32_t type = types[ti];
        /* BENCH_TYPES="q4_kp iq4_xs" times only those types (names as type_traits gives them) */
        const char *only = getenv("BENCH_TYPES");
        if (only && *only && !name_in(only, type_traits(type)->name)) continue;
        /* Enough copies to exceed any last-level cache (>= 128 MB). */
        size_t bytes = type_tensor_bytes(type, ROWS, COLS);
        int copies = (int)((128u << 20) / bytes) + 1;
        Mats s = make_mats(type, copies, ROWS);
        const char *tn = type_traits(type)->name;
        for (int p = 0; p < 2; p++) {
            double best = 1e9, cores = 0;
            for (int rep = 0; rep < 5; rep++) {
                double t0 = now(), c0 = cpu_now();
                for (int c = 0; c < copies; c++) matvec(&s.m[c], x, y, pools[p]);
                double t = (now() - t0) / copies, c = (cpu_now() - c0) / copies;
                if (t < best) best = t, cores = c / t;
            }
            printf("%-10s %-3s matvec threads=%d  %6.1f GB/s  (%.0f us, %.2f cores busy)\n", isa, tn,
                   pool_size(pools[p]), s.bytes / best / 1e9, best * 1e6, cores);
        }
        /* Small batches (parallel streams, short prompts): n rows against the matrix streamed
         * from memory, in GB/s of weights and in GOPS. A memory-bound kernel keeps the GB/s of
         * n = 1 up to the n where compute takes over. */
        if (type != TENSOR_F16) {
            /* BENCH_ROWS="1 2 3 4 5 6 7 8": other row counts (at most 8) */
            int ns[8] = {1, 2, 4, 8}, nn = 4;
            const char *rs = getenv("BENCH_ROWS");
            if (rs && *rs) {
                nn = 0;
                for (char *e; nn < 8 && *rs; rs = e) {
                    while (*rs == ',' || *rs == ' ') rs++;
                    long v = strtol(rs, &e, 10);
                    if (e == rs) break;
                    if (v >= 1 && v <= 8) ns[nn++] = (int)v;
                }
            }
            for (int ni = 0; ni < nn; ni++) {
                double best = 1e9;
                for (int rep = 0; rep < 3; rep++) {
                    double t0 = now();
                    for (int c = 0; c < copies; c++) matmul(&s.m[c], x, ns[ni], y, pools[1]);
                    double t = (now() - t0) / copies;
                    best = t < best ? t : best;
                }
                printf("%-10s %-3s n=%d rows threads=2  %6.1f GB/s  %6.1f GOPS  (%.0f us)\n", isa, tn,
                       ns[ni], s.bytes / best / 1e9, 2.0 * ROWS * COLS * ns[ni] / best / 1e9, best * 1e6);
            }
        }
        int reps = type == TENSOR_F16 || strcmp(isa, "scalar") == 0 ? 2 : 8;
        for (int p = 0; p < 2; p++) {
            double best = 1e9, cores = 0;
            for (int rep = 0; rep < reps; rep++) {
                double t0 = now(), c0 = cpu_now();
                matmul(&s.m[rep % copies], x, NTOK, y, pools[p]);
                double t = now() - t0, c = cpu_now() - c0;
                if (t < best) best = t, cores = c / t;
            }
            double macs = (double)ROWS * COLS * NTOK / best;
            printf("%-10s %-3s matmul threads=%d  %6.1f GOPS  %6.1f tok/s-equivalent (%d tokens, %.1f ms, %.2f cores busy)\n",
                   isa, tn, pool_size(pools[p]), 2 * macs / 1e9, macs / MODEL_MACS, NTOK, best * 1e3, cores);
        }
        /* The tile alone: one thread, a matrix that stays in cache (1024 rows: 4.7 MB of q4, in L3), the
         * 64 tokens of one prompt batch (model/forward.c MAX_BATCH), best of 200 (steadier on a
         * busy VM than the runs above, which stream the weights from memory). */
        if (type != TENSOR_F16 && strcmp(isa, "scalar") != 0) {
            enum { CR = 1024, CT = 64 };
            Mats c = make_mats(type, 1, CR);
            double best = 1e9;
            for (int rep = 0; rep < 200; rep++) {
                double t0 = now();
                matmul(&c.m[0], x, CT, y, NULL);
                double t = now() - t0;
                best = t < best ? t : best;
            }
            printf("%-10s %-3s matmul threads=1  %6.1f GOPS in cache (%d x %d, %d tokens, best of 200)\n", isa, tn,
                   2.0 * CR * COLS * CT / best / 1e9, CR, COLS, CT);
            free_mats(&c);
        }
        /* The two-panel prompt tiles against one-panel tiles (kernels/isa.h tiled_pairs; a no-op
         * where the ISA has no pair kernel), alternated so that both see the same machine. */
        if (type != TENSOR_F16) {
            double best[2] = {1e9, 1e9};
            for (int rep = 0; rep < 4 * reps; rep++) { /* weights from memory, as in a prompt */
                tiled_pairs = rep & 1;
                double t0 = now();
                matmul(&s.m[rep % copies], x, NTOK, y, pools[1]);
                double t = now() - t0;
                if (t < best[rep & 1]) best[rep & 1] = t;
            }
            tiled_pairs = 1;
            double ops = 2.0 * ROWS * COLS * NTOK;
            printf("%-10s %-3s matmul threads=2  panel pairs %6.1f GOPS, single panels %6.1f GOPS (alternated)\n", isa,
                   tn, ops / best[1] / 1e9, ops / best[0] / 1e9);
        }
        free_mats(&s);
        fflush(stdout);
    }
}


/* ---- attention over the KV cache: F16 against q8_0 rows ---- */

/* Phi-3-mini's attention for one generated token: 32 heads of 96, depth D keys and values per
 * head, over enough layers that the cache comes from memory; in GB/s of cache bytes read (the
 * decode-time cost that grows with the context). */
#define AH 32
#define AHD 96
typedef struct {
    const AttnKernels *a;
    int q8, depth, layers;
    void *k, *v;        /* [layer][head][depth][96]: f16, or int8 with the scales after */
    uint16_t *kd, *vd;  /* q8_0 scales [layer][head][depth][3] */
    const float *q;
    float *att, *out;   /* per thread */
} AttJob;

static void att_job(void *arg, int ith, int nth) {
    AttJob *j = arg;
    float *att = j->att + (size_t)ith * j->depth, *out = j->out + (size_t)ith * AHD;
    for (int t = ith; t < j->layers * AH; t += nth) {
        size_t at = (size_t)t * j->depth * AHD;
        if (j->q8) {
            j->a->scores_q8((const int8_t *)j->k + at, j->kd + at / 32, j->depth, AHD, j->q, 0.1f, att);
            for (int i = 0; i < j->depth; i++) att[i] = 1.0f / j->depth;
            memset(out, 0, sizeof(float) * AHD);
            j->a->wsum_q8(out, att, (const int8_t *)j->v + at, j->vd + at / 32, j->depth, AHD);
        } else {
            const AttnKernels *a = j->a;
            if (a->scores_f16) a->scores_f16((const uint16_t *)j->k + at, j->depth, AHD, j->q, 0.1f, att);
            else
                for (int i = 0; i < j->depth; i++) att[i] = 0.1f * a->dot_f16((const uint16_t *)j->k + at + (size_t)i * AHD, j->q, AHD);
            for (int i = 0; i < j->depth; i++) att[i] = 1.0f / j->depth;
            memset(out, 0, sizeof(float) * AHD);
            if (a->wsum_f16) a->wsum_f16(out, att, (const uint16_t *)j->v + at, j->depth, AHD);
            else
                for (int i = 0; i < j->depth; i++) a->axpy_f16(out, att[i], (const uint16_t *)j->v + at + (size_t)i * AHD, AHD);
        }
    }
}

static void bench_attn(const char *isa, Pool *pools[2]) {
    if (kernels_init(isa) != 0) return;
    /* the last row: one layer at depth 512 (6 MB of F16, in the last-level cache): the kernels'
     * compute rate, which must exceed the memory's for decoding to stay bound by the memory */
    static const int depths[] = {1024, 2047, 4096, 512};
    float q[AHD];
    for (int i = 0; i < AHD; i++) q[i] = randf();
    for (int di = 0; di < 4; di++) {
        int d = depths[di];
        size_t per_layer = (size_t)AH * d * AHD; /* values per layer, each of K and V */
        int layers = di == 3 ? 1 : (int)(((size_t)256 << 20) / (per_layer * 4)) + 1;
        size_t n = per_layer * layers;
        uint16_t *kh = malloc(n * 2), *vh = malloc(n * 2), *kd = malloc(n / 16), *vd = malloc(n / 16);
        int8_t *kq = malloc(n), *vq = malloc(n);
        float *row = malloc(sizeof(float) * AHD), *att = malloc(sizeof(float) * 2 * d), *out = malloc(sizeof(float) * 2 * AHD);
        for (size_t r = 0; r < n / AHD; r++) {
            for (int i = 0; i < AHD; i++) row[i] = randf();
            attn_kernels()->to_f16(row, kh + r * AHD, AHD);
            attn_kernels()->to_f16(row, vh + r * AHD, AHD);
            attn_kernels()->to_q8(row, kq + r * AHD, kd + r * 3, AHD);
            attn_kernels()->to_q8(row, vq + r * AHD, vd + r * 3, AHD);
        }
        for (int p = 0; p < 2; p++) {
            double gb[2] = {0, 0};
            for (int rep = 0; rep < (di == 3 ? 200 : 6); rep++) /* alternately, best of each */
                for (int q8 = 0; q8 < 2; q8++) {
                    AttJob j = {attn_kernels(), q8, d, layers, q8 ? (void *)kq : kh, q8 ? (void *)vq : vh, kd, vd, q, att, out};
                    double t0 = now();
                    pool_run(pools[p], att_job, &j);
                    double t = now() - t0, bytes = (double)n * 2 * (q8 ? 34.0 / 32 : 2);
                    if (bytes / t / 1e9 > gb[q8]) gb[q8] = bytes / t / 1e9;
                }
            printf("%-10s attention depth %4d%s threads=%d  f16 %6.1f GB/s (%5.2f ms/token)  q8_0 %6.1f GB/s (%5.2f ms/token)\n",
                   isa, d, di == 3 ? " cached" : "", pool_size(pools[p]), gb[0], 32.0 * per_layer * 2 * 2 / gb[0] / 1e6, gb[1],
                   32.0 * per_layer * 2 * 34 / 32 / gb[1] / 1e6);
            fflush(stdout);
        }
        free(kh), free(vh), free(kd), free(vd), free(kq), free(vq), free(row), free(att), free(out);
    }
}

int main(int argc, char **argv) {
    Pool *pools[2] = {pool_create(1), pool_create(2)};
    float *x = malloc(sizeof(float) * (size_t)NTOK * COLS);
    float *y = malloc(sizeof(float) * (size_t)NTOK * ROWS);
    for (size_t i = 0; i < (size_t)NTOK * COLS; i++) x[i] = randf();
    bench_memory(pools);
    if (argc > 1 && !strcmp(argv[1], "--attn")) { /* bench_kernels --attn [isa]: the attention part alone */
        bench_attn(argc > 2 ? argv[2] : kernels_isa_name(), pools);
    } else if (argc > 1) {
        for (int i = 1; i < argc; i++) bench_isa(argv[i], pools, x, y);
    } else {
        const char *const *list = kernels_isa_list();
        for (int i = 0; list[i]; i++)
            if (kernels_isa_available(list[i])) bench_isa(list[i], pools, x, y);
    }
    free(x);
    free(y);
    pool_destroy(pools[0]);
    pool_destroy(pools[1]);
    return 0;
}
