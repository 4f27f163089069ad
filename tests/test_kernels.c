/* Fast kernels vs the scalar references, for every ISA this CPU runs and several thread counts.
 *
 * Tolerances: for Q8/Q4 weights the fast path quantizes x to int8 per block of 32, so each x
 * moves by at most d/2 = amax_b/254: |y - y_ref| <= sum_b amax_b/254 * sum_{i in b} |w_i| (the
 * "quantization bound", computed per output) plus float rounding (1e-5 of sum |w||x|). SIMD int8
 * paths must match the portable scalar int8 path up to float summation order (the int32 block
 * sums are identical): 4e-6 of sum |w||x|. Float weights: 1e-5 of sum |w||x|. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/isa.h"
#include "kernels/ref.h"
#include "tests/harness.h"

#define MAX_ISA 8
static const int thread_counts[] = {1, 2, 3, 7};
#define N_THREADS 4
/* Every activation tile width (1..7 tokens: one tile), one tile of 12 (the AMX table's tiles are
 * 16 tokens: one partial tile), several tiles with a partial last one (21), and many tiles (130). */
static const int ntoks[] = {1, 2, 3, 4, 5, 6, 7, 12, 21, 130};
#define N_NTOK ((int)(sizeof ntoks / sizeof ntoks[0]))
#define BIG_NTOK_MAX_WORK 100000 /* rows * cols limit for the 130-token runs */

typedef struct {
    int rows, cols;
} Shape;
/* Rows that are not multiples of thread counts or 16-row panels (a partial last panel), and
* columns of 1 to 163 blocks (the super-block types, whose blocks are 256 wide, take the shapes
 * whose columns are multiples of 256). */
static const Shape shapes[] = {{1, 32},   {7, 96},    {37, 352}, {67, 3072}, {130, 256},
                               {45, 1120}, {21, 5216}, {3, 512},  {37, 768}};
#define N_SHAPES ((int)(sizeof(shapes) / sizeof(shapes[0])))
/* Float weights also get odd column counts. */
static const Shape fshapes[] = {{5, 37}, {19, 1001}};

typedef struct {
    double max_ratio;   /* max |y - ref| / tolerance */
    double max_rel;     /* max |y - ref| / sum|w||x| */
    double max_rel_sc;  /* max |y - y_scalar| / sum|w||x| (int8 SIMD vs scalar) */
    int fails, sc_fails, count, unwritten;
} Stats;

static Stats stats[MAX_ISA][N_THREADS][TENSOR_TYPE_COUNT];

typedef struct {
    uint8_t *data;
    float *deq; /* dequantized weights [rows][cols] */
    MatView m;
} TestMat;

static TestMat make_mat(uint32_t type, int rows, int cols) {
    TestMat t;
    t.data = aligned_alloc(64, (type_tensor_bytes(type, rows, cols) + 63) & ~(uint64_t)63);
    t.m = matview(type, t.data, rows, cols);
    t.deq = malloc(sizeof(float) * rows * cols);
    float *row = malloc(sizeof(float) * cols);
    uint8_t *qrow = malloc(sizeof(float) * cols);
    uint16_t *drow = malloc(sizeof(uint16_t) * (cols / QK + 1));
    for (int r = 0; r < rows; r++) {
        float mag = 0.05f + (float)(r % 7) * 0.3f;
        for (int c = 0; c < cols; c++) row[c] = t_randf() * mag * (c % 64 < 3 ? 4.0f : 1.0f);
        quantize_row(type, row, qrow, drow, cols);
        matview_put_row(&t.m, r, qrow, drow);
        dequantize_row(type, qrow, drow, t.deq + (size_t)r * cols, cols);
    }
    free(row);
    free(qrow);
    free(drow);
    return t;
}

static void free_mat(TestMat *t) {
    free(t->data);
    free(t->deq);
}

static void make_x(float *x, int n_tok, int cols, int zero_block) {
    for (int t = 0; t < n_tok; t++)
        for (int c = 0; c < cols; c++) {
            float blockmag = 0.1f + (float)((c / 32 + t) % 5);
            float v = t_randf() * blockmag;
            if (v == 0) v = 1e-3f;
            x[(size_t)t * cols + c] = v;
        }
    if (zero_block && cols >= 64) memset(x + 32, 0, 32 * sizeof(float)); /* d = 0 block */
}

/* Runs one configuration and updates the stats. */
static void check_one(int ii, int ti, Pool *pool, const TestMat *W, const float *x, int n_tok,
                      const float *yref, const double *wx, const double *qb, const float *ysc) {
    int rows = W->m.rows;
    size_t n = (size_t)rows * n_tok;
    float *y = malloc(sizeof(float) * (n + 16));
    for (size_t i = 0; i < n + 16; i++) y[i] = NAN;
    if (n_tok == 1) matvec(&W->m, x, y, pool);
    else matmul(&W->m, x, n_tok, y, pool);
    Stats *s = &stats[ii][ti][W->m.type];
    int quant = type_table[W->m.type].act == ACT_Q8;
    for (size_t i = 0; i < n; i++) {
        if (isnan(y[i])) {
            s->unwritten++;
            continue;
        }
        double err = fabs((double)y[i] - yref[i]);
        double tol = (quant ? qb[i] * 1.0001 : 0) + 1e-5 * wx[i] + 1e-30;
        if (err / tol > s->max_ratio) s->max_ratio = err / tol;
        if (err / wx[i] > s->max_rel) s->max_rel = err / wx[i];
        if (err > tol) s->fails++;
        if (ysc) {
            double e2 = fabs((double)y[i] - ysc[i]);
            if (e2 / wx[i] > s->max_rel_sc) s->max_rel_sc = e2 / wx[i];
            if (e2 > 4e-6 * wx[i]) s->sc_fails++;
        }
        s->count++;
    }
    for (int i = 0; i < 16; i++)
        if (!isnan(y[n + i])) s->unwritten += 1000000; /* wrote past the end */
    free(y);
}

static void test_matmul(const char *const *isas, int n_isa, Pool **pools, const char *label) {
    memset(stats, 0, sizeof stats);
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
        int nsh = N_SHAPES + (type_table[type].block == 1 ? 2 : 0); /* float types: any cols */
        for (int si = 0; si < nsh; si++) {
            Shape sh = si < N_SHAPES ? shapes[si] : fshapes[si - N_SHAPES];
            if (sh.cols % type_table[type].block) continue;
            TestMat W = make_mat(type, sh.rows, sh.cols);
            for (int ni = 0; ni < N_NTOK; ni++) {
                int n_tok = ntoks[ni], rows = sh.rows, cols = sh.cols;
                if (n_tok > 100 && (long)rows * cols > BIG_NTOK_MAX_WORK) continue;
                size_t n = (size_t)rows * n_tok;
                float *x = malloc(sizeof(float) * (size_t)n_tok * cols);
                float *yref = malloc(sizeof(float) * n), *ysc = malloc(sizeof(float) * n);
                double *wx = malloc(sizeof(double) * n), *qb = malloc(sizeof(double) * n);
                make_x(x, n_tok, cols, ni == 2);
                for (int t = 0; t < n_tok; t++) {
                    const float *xt = x + (size_t)t * cols;
                    matvec_ref(&W.m, xt, yref + (size_t)t * rows);
                    for (int r = 0; r < rows; r++) {
                        const float *wr = W.deq + (size_t)r * cols;
                        double a = 0, b = 0;
                        for (int c0 = 0; c0 < cols; c0 += QK) {
                            double amax = 0, sw = 0;
                            for (int c = c0; c < c0 + QK && c < cols; c++) {
                                a += fabs((double)wr[c] * xt[c]);
                                sw += fabs(wr[c]);
                                amax = fmax(amax, fabs(xt[c]));
                            }
                            b += amax / 254.0 * sw;
                        }
                        wx[(size_t)t * rows + r] = a;
                        qb[(size_t)t * rows + r] = b;
                    }
                }
                int quant = type_table[type].act == ACT_Q8;
                for (int ii = 0; ii < n_isa; ii++) {
                    kernels_init(isas[ii]);
                    for (int ti = 0; ti < N_THREADS; ti++) {
                        const float *cmp = quant && ii > 0 ? ysc : NULL;
                        check_one(ii, ti, pools[ti], &W, x, n_tok, yref, wx, qb, cmp);
                        if (ii == 0 && ti == 0 && quant) { /* the scalar int8 result */
                            if (n_tok == 1) matvec(&W.m, x, ysc, NULL);
                            else matmul(&W.m, x, n_tok, ysc, NULL);
                        }
                    }
                }
                free(x);
                free(yref);
                free(ysc);
                free(wx);
                free(qb);
            }
            free_mat(&W);
        }
    }
    for (int ii = 0; ii < n_isa; ii++)
        for (int ti = 0; ti < N_THREADS; ti++)
            for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++) {
                Stats *s = &stats[ii][ti][type];
                char name[96];
                snprintf(name, sizeof name, "matmul%s %s %s threads=%d", label, isas[ii],
                         type_traits(type)->name, thread_counts[ti]);
                t_check(s->fails == 0 && s->unwritten == 0 && s->count > 0, name,
                        "%d outputs, max err %.3g of tolerance, max rel err %.3g of sum|w||x|%s",
                        s->count, s->max_ratio, s->max_rel, s->unwritten ? " (outputs unwritten or overrun)" : "");
                if (type_table[type].act == ACT_Q8 && ii > 0) {
                    snprintf(name, sizeof name, "matmul%s %s %s threads=%d vs scalar int8", label,
                             isas[ii], type_traits(type)->name, thread_counts[ti]);
                    t_check(s->sc_fails == 0, name, "max diff %.3g of sum|w||x| (limit 4e-6)",
                            s->max_rel_sc);
                }
            }
}

static void test_quant(const char *isa) {
    int n = 32 * 37;
    float *x = malloc(sizeof(float) * n);
    int8_t *q = malloc(n), *qr = malloc(n);
    float *d = malloc(sizeof(float) * (n / 32)), *dr = malloc(sizeof(float) * (n / 32));
    for (int i = 0; i < n; i++) x[i] = t_randf() * (float)(1 + (i / 32) % 9) * 0.37f;
    for (int i = 0; i < 32; i++) x[32 + i] = (float)(i - 16) + 0.5f; /* amax 16.5 */
    for (int i = 0; i < 32; i++) x[64 + i] = (i & 1) ? 2.5f : -127.0f; /* id = 1: exact ties */
    memset(x + 96, 0, 32 * sizeof(float));                              /* zero block */
    /* Denormals, which ARMv7 NEON flushes to zero: a block whose amax 2^-120 is normal while
     * its other values are denormals that still quantize to nonzero, and one with amax 2^-99,
     * where they round to 0. (Below amax ~ 3.7e-37, 127 / amax overflows and the ISAs differ.) */
    for (int i = 0; i < 32; i++) x[128 + i] = i == 5 ? 0x1p-120f : (float)(i - 16) * 0x1p-131f;
    for (int i = 0; i < 32; i++) x[160 + i] = i == 9 ? -0x1p-99f : (float)(i - 16) * 0x1p-131f;
    kernels_init(isa);
    quantize_act_q8(x, q, d, n);
    quantize_act_q8_ref(x, qr, dr, n);
    double maxerr = 0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(x[i] - (double)d[i / 32] * q[i]);
        if (d[i / 32] < 0x1p-126f) continue; /* zero, or a denormal scale (inexact) */
        if (e > d[i / 32] * 0.5 * (1 + 1e-6) + 1e-30) bad++;
        if (e / d[i / 32] > maxerr) maxerr = e / d[i / 32];
    }
    char name[64];
    snprintf(name, sizeof name, "quantize_act_q8 %s", isa);
    t_check(memcmp(q, qr, n) == 0 && memcmp(d, dr, sizeof(float) * (n / 32)) == 0 && bad == 0 &&
                q[64 + 1] == 2,
            name, "bit-identical to the reference, max |x - d q| = %.4f d", maxerr);
    free(x);
    free(q);
    free(qr);
    free(d);
    free(dr);
}

static void test_elementwise(const char *isa) {
    static const int sizes[] = {1, 7, 8, 33, 3072};
    double e_rms = 0, e_sm = 0, e_silu = 0;
    kernels_init(isa);
    for (int si = 0; si < 5; si++) {
        int n = sizes[si];
        float *x = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
        float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) {
            x[i] = t_randf() * 3;
            w[i] = 1 + t_randf() * 0.5f;
        }
        rmsnorm(a, x, w, n, 1e-5f);
        rmsnorm_ref(b, x, w, n, 1e-5f);
        for (int i = 0; i < n; i++) e_rms = fmax(e_rms, fabs(a[i] - b[i]) / (fabs(b[i]) + 1e-6));
        for (int i = 0; i < n; i++) a[i] = b[i] = t_randf() * 30 - (i % 5 == 0 ? 100 : 0);
        softmax(a, n);
        softmax_ref(b, n);
        for (int i = 0; i < n; i++) e_sm = fmax(e_sm, fabs(a[i] - b[i]) / (fabs(b[i]) + 1e-30));
        for (int i = 0; i < n; i++) {
            a[i] = b[i] = t_randf() * 20 + (i % 7 == 0 ? 90 : i % 7 == 1 ? -95 : 0);
            w[i] = t_randf();
        }
        silu_mul(a, w, n);
        silu_mul_ref(b, w, n);
        for (int i = 0; i < n; i++) e_silu = fmax(e_silu, fabs(a[i] - b[i]) / (fabs(b[i]) + 1e-30));
        free(x);
        free(w);
        free(a);
        free(b);
    }
    char name[64];
    snprintf(name, sizeof name, "rmsnorm %s", isa);
    t_check(e_rms < 2e-6, name, "max rel err %.3g", e_rms);
    snprintf(name, sizeof name, "softmax %s", isa);
    t_check(e_sm < 2e-6, name, "max rel err %.3g", e_sm);
    snprintf(name, sizeof name, "silu_mul %s", isa);
    t_check(e_silu < 2e-6, name, "max rel err %.3g", e_silu);
}

/* The K kernels at their int16 bounds: every quant at its largest (Q4 15, Q5 31, Q6 63, IQ4_XS
 * level 113) against activations all +127 or all -127 of one sign per token, where the
 * vpmaddubsw chains reach their documented maxima (x86_avx2_k.c: 30480 for Q4's chain of 16
 * products). A wrapped int16 sum would be off by 65536 steps; every ISA must agree with the
 * scalar kernel within rounding, for one token, the panel decoders' 2-8 and the prompt tiles. */
static void test_k_extremes(const char *const *isas, int n_isa, Pool *pool) {
    static const struct {
        uint32_t type;
        int q0, q1; /* the quant bytes of a block (natural order) set to 0xff */
    } kt[] = {{TENSOR_Q4_KP, 16, 144}, {TENSOR_Q5_KP, 16, 176}, {TENSOR_Q6_KP, 0, 192}, {TENSOR_IQ4_XS, 8, 136},
              {TENSOR_Q4_K, 16, 144},  {TENSOR_Q5_K, 16, 176},  {TENSOR_Q6_K, 0, 192}};
    static const int ns[] = {1, 2, 5, 8, 21};
    const int rows = 37, cols = 512;
    for (size_t ti = 0; ti < sizeof kt / sizeof *kt; ti++) {
        uint32_t type = kt[ti].type;
        int bb = type_table[type].block_bytes, nsb = cols / type_table[type].block;
        uint8_t *data = aligned_alloc(64, (type_tensor_bytes(type, rows, cols) + 63) & ~(uint64_t)63);
        MatView m = matview(type, data, rows, cols);
        float *row = malloc(sizeof(float) * cols);
        uint8_t *q = malloc((size_t)bb * nsb);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) row[c] = t_randf();
            quantize_row(type, row, q, NULL, cols);
            for (int b = 0; b < nsb; b++) memset(q + (size_t)b * bb + kt[ti].q0, 0xff, (size_t)(kt[ti].q1 - kt[ti].q0));
            matview_put_row(&m, r, q, NULL);
        }
        float *x = malloc(sizeof(float) * 21 * cols), *ysc = malloc(sizeof(float) * 21 * rows),
              *y = malloc(sizeof(float) * 21 * rows);
        for (int t = 0; t < 21; t++)
            for (int c = 0; c < cols; c++) x[(size_t)t * cols + c] = t % 2 ? -1.0f : 1.0f;
        double worst = 0;
        int bad = 0;
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            kernels_init("scalar");
            matmul(&m, x, ns[ni], ysc, NULL);
            for (int ii = 0; ii < n_isa; ii++) {
                kernels_init(isas[ii]);
                matmul(&m, x, ns[ni], y, pool);
                for (int i = 0; i < ns[ni] * rows; i++) {
                    double e = fabs((double)y[i] - ysc[i]) / (fabs((double)ysc[i]) + 1e-3);
                    worst = e > worst ? e : worst;
                    bad += !(e < 1e-4);
                }
            }
        }
        t_check(bad == 0, "k_extremes", "%s: every quant at its largest, activations +-127: %d of the outputs of "
                "%d ISAs x 1, 2, 5, 8, 21 tokens off the scalar kernel's (max rel diff %.2g)", type_table[type].name,
                bad, n_isa, worst);
        free(x), free(y), free(ysc), free(q), free(row), free(data);
    }
    kernels_init(NULL);
}

int main(void) {
    t_seed(12345);
    const char *const *all = kernels_isa_list();
    const char *isas[MAX_ISA];
    int n_isa = 0;
    for (int i = 0; all[i]; i++) {
        if (kernels_isa_available(all[i])) isas[n_isa++] = all[i];
        else t_skip(all[i], "this CPU does not support it");
    }
    t_check(kernels_init("no-such-isa") == -1, "kernels_init rejects an unknown ISA", "");
    t_check(kernels_init(NULL) == 0, "kernels_init picks the best ISA", "%s", kernels_isa_name());
    Pool *pools[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) pools[i] = pool_create(thread_counts[i]);
    for (int i = 0; i < n_isa; i++) test_quant(isas[i]);
    for (int i = 0; i < n_isa; i++) test_elementwise(isas[i]);
    test_matmul(isas, n_isa, pools, "");
    test_k_extremes(isas, n_isa, pools[N_THREADS - 1]);
    /* Tiny cache budgets: block chunks of one block and panel groups of one panel, so that
     * every loop of the blocked nest (kernels/tiled.c) runs on these small matrices. */
    tiled_l1_bytes = 1;
    tiled_l2_bytes = 1;
    test_matmul(isas, n_isa, pools, " (small blocks)");
    for (int i = 0; i < N_THREADS; i++) pool_destroy(pools[i]);
    kernels_free_scratch();
    return t_done();
}
