/* matmul_batch_exact: for the types it names (Q8, Q4, F16, F32), a batch of up to ACT_TT tokens
 * gives every token exactly the bits that matvec gives it alone, on every ISA of this build and
 * with 1 and 2 threads, for row widths that kernels/tiled.c would otherwise split into several
 * L1 chunks (8192, 17920 columns) and with the cache budgets shrunk to their minimum. This is what
 * makes prompt-lookup verification (model/generate.c gen_loop_ex) choose the tokens one-token
 * decoding chooses. The K-quants are not batch-exact (their one-token path is another kernel on
 * x86) and must say so. */
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
    static const uint32_t types[] = {TENSOR_F32, TENSOR_F16, TENSOR_Q8, TENSOR_Q4};
    static const int widths[] = {96, 3072, 8192, 17920};
    const int rows = 40; /* two full 16-row panels and a partial one */
    Pool *pool2 = pool_create(2);
    const char *const *isas = kernels_isa_list();
    for (int budget = 0; budget < 2; budget++) {
        size_t l1 = tiled_l1_bytes, l2 = tiled_l2_bytes;
        if (budget) tiled_l1_bytes = 1, tiled_l2_bytes = 1; /* every loop of the nests */
        for (int ii = 0; isas[ii]; ii++) {
            if (!kernels_isa_available(isas[ii])) continue;
            kernels_init(isas[ii]);
            for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
                uint32_t type = types[ti];
                int exact = matmul_batch_exact(type);
                long bad = 0, checked = 0;
                for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
                    int cols = widths[wi];
                    uint8_t *data;
                    t_seed(7 + wi);
                    MatView w = make_mat(type, rows, cols, &data);
                    float *x = malloc(sizeof(float) * ACT_TT * cols);
                    float *one = malloc(sizeof(float) * rows), *y = malloc(sizeof(float) * ACT_TT * rows);
                    for (int i = 0; i < ACT_TT * cols; i++) x[i] = t_randf() * (i % 97 == 0 ? 6.0f : 1.0f);
                    for (int th = 0; th < 2; th++) {
                        Pool *p = th ? pool2 : NULL;
                        for (int n = 2; n <= exact; n++) {
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
    kernels_init(NULL);
    t_check(matmul_batch_exact(TENSOR_Q4_K) == 1 && matmul_batch_exact(TENSOR_Q6_K) == 1, "batch_exact_kquants",
            "K-quants say their batches are not exact");
    pool_destroy(pool2);
    return 0;
}
