/* Portable C kernels: the fallback on any CPU and the integer oracle the SIMD int8 paths must
 * match (same int32 block sums, only the float summation order differs). */
#include "kernels/isa.h"
#include "kernels/ref.h"

/* Panel by panel and block by block: each lane's block is gathered into natural order once
 * for all tokens. */
static void qmat_scalar(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy,
                        int r0, int r1) {
    int q4 = w->type == TENSOR_Q4;
    for (int t = t0; t < t0 + nt; t++)
        for (int r = r0; r < r1; r++) y[(size_t)t * ldy + r] = 0;
    for (int r = r0; r < r1; r++) {
        for (int b = 0; b < a->nb; b++) {
            uint8_t wb[QK];
            uint16_t d;
            matview_get_block(w, r, b, wb, &d);
            float dw = fp16_to_f32(d);
            for (int t = t0; t < t0 + nt; t++) {
                int32_t s = q4 ? dot_block_q4(wb, act_q(a, t, b)) : dot_block_q8((const int8_t *)wb, act_q(a, t, b));
                y[(size_t)t * ldy + r] += dw * act_d(a, t, b) * (float)s;
            }
        }
    }
}

/* Float weights: rows are converted 256 columns at a time so that an F16 row is decoded once
 * for all tokens; four partial sums keep the dependency chains short. */
#define FCHUNK 256
static void fmat_scalar(const MatView *w, const float *x, int t0, int nt, float *y, int ldy,
                        int r0, int r1) {
    float buf[FCHUNK];
    int n = w->cols;
    for (int r = r0; r < r1; r++) {
        for (int t = t0; t < t0 + nt; t++) y[(size_t)t * ldy + r] = 0;
        for (int c0 = 0; c0 < n; c0 += FCHUNK) {
            int m = n - c0 < FCHUNK ? n - c0 : FCHUNK;
            const float *wr;
            if (w->type == TENSOR_F32) {
                wr = (const float *)matview_row(w, r) + c0;
            } else {
                const uint16_t *h = (const uint16_t *)matview_row(w, r) + c0;
                for (int i = 0; i < m; i++) buf[i] = fp16_to_f32(h[i]);
                wr = buf;
            }
            for (int t = t0; t < t0 + nt; t++) {
                const float *xt = x + (size_t)t * n + c0;
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                int i = 0;
                for (; i + 4 <= m; i += 4) {
                    s0 += wr[i] * xt[i];
                    s1 += wr[i + 1] * xt[i + 1];
                    s2 += wr[i + 2] * xt[i + 2];
                    s3 += wr[i + 3] * xt[i + 3];
                }
                for (; i < m; i++) s0 += wr[i] * xt[i];
                y[(size_t)t * ldy + r] += (s0 + s1) + (s2 + s3);
            }
        }
    }
}

static int always(void) { return 1; }

const IsaKernels isa_scalar = {
    .name = "scalar",
    .available = always,
    .quant = quant_blocks_scalar,
    .q8 = qmat_scalar,
    .q4 = qmat_scalar,
    .f32 = fmat_scalar,
    .f16 = fmat_scalar,
    .rmsnorm = rmsnorm_ref,
    .softmax = softmax_ref,
    .silu_mul = silu_mul_ref,
};
