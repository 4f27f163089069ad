/* Portable C kernels: the fallback on any CPU and the integer oracle the SIMD int8 paths must
 * match (same int32 block sums, only the float summation order differs). Both matrix kernels
 * serve every type through its row of type_table (to_float, dot_q8). */
#include "kernels/isa.h"
#include "kernels/kquant.h"
#include "kernels/ref.h"

/* Panel by panel and block by block: each lane's block is gathered into natural order once
 * for all tokens. */
static void qmat_scalar(const MatView *w, const void *act, int t0, int nt, float *y, int ldy,
                        int r0, int r1) {
    if (type_table[w->type].unpack) { /* super-block types: their own kernel */
        kmat_scalar(w, act, t0, nt, y, ldy, r0, r1);
        return;
    }
    const ActBuf *a = act;
    int32_t (*dot)(const uint8_t *, const int8_t *) = type_table[w->type].dot_q8;
    for (int t = t0; t < t0 + nt; t++)
        for (int r = r0; r < r1; r++) y[(size_t)t * ldy + r] = 0;
    for (int r = r0; r < r1; r++) {
        for (int b = 0; b < a->nb; b++) {
            uint8_t wb[BLOCK_BYTES_MAX];
            uint16_t d;
            matview_get_block(w, r, b, wb, &d);
            float dw = fp16_to_f32(d);
            for (int t = t0; t < t0 + nt; t++) {
                int32_t s = dot(wb, act_q(a, t, b));
                y[(size_t)t * ldy + r] += dw * act_d(a, t, b) * (float)s;
            }
        }
    }
}

/* Float weights: rows are converted 256 columns at a time (to_float) so that an F16 row is
 * decoded once for all tokens; four partial sums keep the dependency chains short. */
#define FCHUNK 256
static void fmat_scalar(const MatView *w, const void *act, int t0, int nt, float *y, int ldy,
                        int r0, int r1) {
    const TypeTraits *ty = &type_table[w->type];
    const float *x = act;
    float buf[FCHUNK];
    int n = w->cols;
    for (int r = r0; r < r1; r++) {
        for (int t = t0; t < t0 + nt; t++) y[(size_t)t * ldy + r] = 0;
        for (int c0 = 0; c0 < n; c0 += FCHUNK) {
            int m = n - c0 < FCHUNK ? n - c0 : FCHUNK;
            ty->to_float(matview_row(w, r) + (size_t)c0 * (size_t)ty->block_bytes, NULL, buf, m);
            const float *wr = buf;
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

const MatFn scalar_mat[2] = {[ACT_F32] = fmat_scalar, [ACT_Q8] = qmat_scalar};

static int always(void) { return 1; }

const IsaKernels isa_scalar = {
    .name = "scalar",
    .available = always,
    .quant = quant_blocks_scalar,
    /* no mat entries: scalar_mat serves every type; k_off all 0 (the weights as they are) */
    .k_exact = ACT_TT, /* kmat_scalar runs each token alone */
    .rmsnorm = rmsnorm_ref,
    .softmax = softmax_ref,
    .silu_mul = silu_mul_ref,
    .attn = {dot_f16_ref, axpy_f16_ref, dot_f32_ref, axpy_f32_ref, to_f16_ref, scores_f16_ref,
             wsum_f16_ref, to_q8_kv_ref, scores_q8_ref, wsum_q8_ref},
};
