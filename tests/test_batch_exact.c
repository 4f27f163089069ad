/* matmul_batch_exact: for the types it names (Q8, Q4, F16, F32, and the K panel types where the
 * ISA claims them, isa.h k_exact), a batch of up to ACT_TT tokens gives every token exactly the
 * bits that matvec gives it alone, on every ISA of this build and with 1 and 2 threads, for row
 * widths that kernels/tiled.c would otherwise split into several L1 chunks (8192, 17920 columns)
 * and with the cache budgets shrunk to their minimum. This is what makes prompt-lookup
 * verification (model/generate.c gen_loop_ex) choose the tokens one-token decoding chooses. The
 * K row types (Q4_K, Q6_K: their one-token path on x86 is another kernel) say they are not. Also: the two-panel calls of x86 prompts give the one-panel bits, and
 * the AVX2 K tiles give a token the same bits whatever the number of tokens beside it. */
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "tests/harness.h"

static MatView make_mat(uint32_t type, int rows, int cols, uint8_t **data) {
    *data = aligned_alloc(64, (type_tensor_bytes(type, rows, cols) + 63) & ~(uint64_t)63);
    MatView m = matview(type, *data, rows, cols);
    float *row = malloc(sizeof(float) * cols);
    uint8_t *qrow = malloc(sizeof(float) * cols);
    uint16_t *drow = malloc(sizeof(uint16_t) * (cols / QK + 1));
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) row[c] = t_randf() * (0.05f + (float)(r % 5) * 0.2f);
        quantize_row(type, row, qrow, drow, cols);
        matview_put_row(&m, r, qrow, drow);
    }
    free(row);
    free(qrow);
    free(drow);
    return m;
}

int main(void) {
    /* and the K panel types (what a GGUF's K-quants load as) where the ISA claims them exact */
    static const uint32_t types[] = {TENSOR_F32,   TENSOR_F16,   TENSOR_Q8,    TENSOR_Q4,
                                     TENSOR_Q4_KP, TENSOR_Q5_KP, TENSOR_Q6_KP, TENSOR_IQ4_XS};
    static const int widths[] = {96, 3072, 8192, 17920};
    const int rows = 40; /* two full 16-row panels and a partial one */
    Pool *pool2 = pool_create(2);
    const char *const *isas = kernels_isa_list();
    if (t_emulated()) t_skip("batch_exact_sizes", "under an emulator: batch sizes 2, 3 and 8 only (4-7 run natively in make test, make asan)");
    for (int budget = 0; budget < 2; budget++) {
        size_t l1 = tiled_l1_bytes, l2 = tiled_l2_bytes;
        if (budget) tiled_l1_bytes = 1, tiled_l2_bytes = 1; /* every loop of the nests */
        for (int ii = 0; isas[ii]; ii++) {
            if (!kernels_isa_available(isas[ii])) continue;
            kernels_init(isas[ii]);
            for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
                uint32_t type = types[ti];
                int exact = matmul_batch_exact(type), kp = type_table[type].kpanel;
                if (kp && exact < 2) {
                    t_skip("batch_exact", "%s %s: this ISA claims no batch-exact K panel kernel (isa.h k_exact)", isas[ii],
                           type_table[type].name);
                    continue;
                }
                long bad = 0, checked = 0;
                for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
                    int cols = widths[wi];
                    if (cols % type_table[type].block) continue; /* 96: not a whole K super-block */
                    uint8_t *data;
                    t_seed(7 + wi);
                    MatView w = make_mat(type, rows, cols, &data);
                    float *x = malloc(sizeof(float) * ACT_TT * cols);
                    float *one = malloc(sizeof(float) * rows), *y = malloc(sizeof(float) * ACT_TT * rows);
                    for (int i = 0; i < ACT_TT * cols; i++) x[i] = t_randf() * (i % 97 == 0 ? 6.0f : 1.0f);
                    for (int th = 0; th < 2; th++) {
                        Pool *p = th ? pool2 : NULL;
                        /* every batch size; under an emulator 2, 3 and the full tile (the sizes
                         * between take the same code: 254 of the armv7 leg's seconds in all) */
                        for (int n = 2; n <= exact; n += t_emulated() && n >= 3 && n < exact ? exact - n : 1) {
                            matmul(&w, x, n, y, p);
                            for (int t = 0; t < n; t++) {
                                matvec(&w, x + (size_t)t * cols, one, p);
                                bad += memcmp(one, y + (size_t)t * rows, sizeof(float) * rows) != 0;
                                checked++;
                            }
                        }
                    }
                    free(x);
                    free(one);
                    free(y);
                    free(data);
                }
                t_check(exact == ACT_TT && bad == 0, "batch_exact",
                        "%s %s%s: %ld of %ld (batch, token) results differ from the token alone (exact up to %d)",
                        isas[ii], type_table[type].name, budget ? " (budgets 1 byte)" : "", bad, checked, exact);
            }
        }
        tiled_l1_bytes = l1, tiled_l2_bytes = l2;
    }
    /* Prompts on x86 run two panels per call (TilePairFn, KTilePairFn) where the one-panel tile would take two
     * calls: the same bits for every (token, row), with partial panels and tiles (n % 8 of 1-5),
     * whole rows or one-block chunks (the y accumulation), 1 and 2 threads. */
    for (int ii = 0; isas[ii]; ii++) {
        /* the best ISA of the CPU, the last available in the list (the others take no pairs;
         * this test's K matrices would take the scalar kernels seconds) */
        int later = 0;
        for (int jj = ii + 1; isas[jj]; jj++) later |= kernels_isa_available(isas[jj]);
        if (!kernels_isa_available(isas[ii]) || later) continue;
        /* only ISAs with pair kernels (isa.h pairs: AVX-512) take two paths; elsewhere both
         * settings take one (230 s under qemu-arm) */
        kernels_init(isas[ii]);
        if (!kernels_isa()->pairs) {
            t_skip("pairs_exact", "%s runs no panel pairs (isa.h pairs: AVX-512 only)", isas[ii]);
            continue;
        }
        static const uint32_t qtypes[] = {TENSOR_Q8,    TENSOR_Q4,    TENSOR_Q4_K,  TENSOR_Q5_K,  TENSOR_Q6_K,
                                          TENSOR_Q4_KP, TENSOR_Q5_KP, TENSOR_Q6_KP, TENSOR_IQ4_XS};
        /* rows: 17.5, 18.5 and 20 panels, so that the row chunks of dispatch.c (a quarter of a
         * thread's share) hold pairs, a pair with a partial second panel, and a lone panel */
        static const int prow[] = {280, 296, 320}, pcol[] = {96, 3072}, ptok[] = {9, 12, 13, 20, 24, 37};
        for (size_t ti = 0; ti < sizeof qtypes / sizeof *qtypes; ti++) {
            long bad = 0, checked = 0;
            for (int budget = 0; budget < 2; budget++) {
                size_t l1 = tiled_l1_bytes;
                if (budget) tiled_l1_bytes = 1; /* one block per chunk: the calls accumulate into y */
                for (size_t ri = 0; ri < 3; ri++)
                    for (size_t ci = 0; ci < 2; ci++) {
                        int rows2 = prow[ri], cols = pcol[ci] < type_table[qtypes[ti]].block ? 256 : pcol[ci];
                        uint8_t *data;
                        t_seed(31 + ri * 2 + ci);
                        MatView w = make_mat(qtypes[ti], rows2, cols, &data);
                        float *x = malloc(sizeof(float) * 37 * cols);
                        float *ya = malloc(sizeof(float) * 37 * rows2), *yb = malloc(sizeof(float) * 37 * rows2);
                        for (int i = 0; i < 37 * cols; i++) x[i] = t_randf() * (i % 89 == 0 ? 5.0f : 1.0f);
                        for (int th = 0; th < 2; th++)
                            for (size_t ni = 0; ni < sizeof ptok / sizeof *ptok; ni++) {
                                int n = ptok[ni];
                                tiled_pairs = 0;
                                matmul(&w, x, n, ya, th ? pool2 : NULL);
                                tiled_pairs = 1;
                                matmul(&w, x, n, yb, th ? pool2 : NULL);
                                bad += memcmp(ya, yb, sizeof(float) * (size_t)n * rows2) != 0;
                                checked++;
                            }
                        free(x);
                        free(ya);
                        free(yb);
                        free(data);
                    }
                tiled_l1_bytes = l1;
            }
            t_check(bad == 0, "pairs_exact", "%s %s: %ld of %ld matmuls differ between panel pairs and single panels",
                    isas[ii], type_table[qtypes[ti]].name, bad, checked);
        }
    }
    /* In prompts (past the 8 tokens of one tile) a token's K outputs do not depend on how many
     * others share its tile: the AVX2 K tiles take tokens in pairs and a last one alone with the
     * same operations, NEON's and the scalar kernel one at a time. Tokens 0-8 of 9 (token 8 alone
     * in its tile), 13 and 24 (paired), on every ISA without panel pairs (AVX-512's pair
     * kernels are checked against single panels above instead). */
    for (int ii = 0; isas[ii]; ii++) {
        if (!kernels_isa_available(isas[ii])) continue;
        kernels_init(isas[ii]);
        if (kernels_isa()->pairs) continue;
        static const uint32_t kt[] = {TENSOR_Q4_KP, TENSOR_Q5_KP, TENSOR_Q6_KP, TENSOR_IQ4_XS, TENSOR_Q4_K, TENSOR_Q6_K};
        for (size_t ti = 0; ti < sizeof kt / sizeof *kt; ti++) {
            const int rows2 = 40, cols = 512;
            uint8_t *data;
            t_seed(71 + ti);
            MatView w = make_mat(kt[ti], rows2, cols, &data);
            float *x = malloc(sizeof(float) * 24 * cols), *y9 = malloc(sizeof(float) * 24 * rows2),
                  *yn = malloc(sizeof(float) * 24 * rows2);
            for (int i = 0; i < 24 * cols; i++) x[i] = t_randf();
            matmul(&w, x, 9, y9, NULL);
            long bad = 0;
            for (int n = 13; n <= 24; n += 11) {
                matmul(&w, x, n, yn, pool2);
                bad += memcmp(y9, yn, sizeof(float) * 9 * rows2) != 0;
            }
            t_check(bad == 0, "ktile_token_bits", "%s %s: tokens 0-8 of 9, 13 and 24 %s", isas[ii],
                    type_table[kt[ti]].name, bad ? "differ" : "the same bits");
            free(x);
            free(y9);
            free(yn);
            free(data);
        }
    }
    kernels_init(NULL);
    t_check(matmul_batch_exact(TENSOR_Q4_K) == 1 && matmul_batch_exact(TENSOR_Q6_K) == 1, "batch_exact_kquants",
            "the K row types say their batches are not exact");
    pool_destroy(pool2);
    return 0;
}
