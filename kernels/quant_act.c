/* Activation quantization (int8, f32 scale per 32) and the packing of activations into the
 * layout the int8 kernels read (see kernels/isa.h). */
#include <math.h>
#include <string.h>

#include "kernels/fast.h"
#include "kernels/isa.h"

/* Round half to even without libm: adding 1.5 * 2^23 leaves the rounded integer in the low
 * mantissa bits for |v| < 2^22 (here |v| <= 127), in the default rounding mode, the same as
 * the SIMD conversions. */
static inline int round_even(float v) {
    float r = (v + 12582912.0f) - 12582912.0f;
    return (int)r;
}

static void quant_block(const float *x, int8_t *q, float *d, int32_t *s) {
    float amax = 0;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[i]));
    int32_t sum = 0;
    if (amax > 0) {
        float id = 127.0f / amax;
        *d = amax / 127.0f;
        for (int i = 0; i < QK; i++) {
            int v = round_even(x[i] * id);
            v = v > 127 ? 127 : v < -127 ? -127 : v;
            q[i] = (int8_t)v;
            sum += v;
        }
    } else {
        *d = 0;
        memset(q, 0, QK);
    }
    if (s) *s = sum;
}

void quantize_act_q8_ref(const float *x, int8_t *q, float *d, int n) {
    for (int b = 0; b < n / QK; b++) quant_block(x + b * QK, q + b * QK, d + b, NULL);
}

void quant_blocks_scalar(const float *x, int8_t *q, float *d, int32_t *s, int nblocks) {
    for (int b = 0; b < nblocks; b++) quant_block(x + b * QK, q + b * QK, d + b, s + b);
}

int32_t dot_block_q8(const int8_t *w, const int8_t *x) {
    int32_t s = 0;
    for (int i = 0; i < QK; i++) s += (int32_t)w[i] * x[i];
    return s;
}

int32_t dot_block_q4(const uint8_t *w, const int8_t *x) {
    int32_t s = 0;
    for (int i = 0; i < QK / 2; i++)
        s += ((w[i] & 15) - 8) * (int32_t)x[i] + ((w[i] >> 4) - 8) * (int32_t)x[i + QK / 2];
    return s;
}

float tail_dot(const MatView *w, const ActBuf *a, int t, int r) {
    const uint8_t *wq = matview_row(w, r);
    const uint16_t *wd = matview_row_scales(w, r);
    const int8_t *xq = act_q(a, t);
    const float *xd = act_d(a, t);
    float acc = 0;
    for (int b = a->ng * GROUP_BLOCKS; b < a->nb; b++) {
        int32_t s = w->type == TENSOR_Q8 ? dot_block_q8((const int8_t *)wq + b * QK, xq + b * QK)
                                         : dot_block_q4(wq + b * (QK / 2), xq + b * QK);
        acc += half_to_float(wd[b]) * xd[b] * (float)s;
    }
    return acc;
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

void act_layout(ActBuf *a, const IsaKernels *k, int cols) {
    a->cols = cols;
    a->nb = cols / QK;
    a->grouped = k->order != NULL;
    a->ng = a->grouped ? a->nb / GROUP_BLOCKS : 0;
    a->ntail = a->nb - a->ng * GROUP_BLOCKS;
    a->off_d = align64((size_t)cols);
    a->off_s = a->off_d + align64((size_t)a->nb * 4);
    a->off_dxv = a->off_s + align64((size_t)a->nb * 4);
    a->off_cv = a->off_dxv + (size_t)a->ng * 64;
    a->stride = a->off_cv + (size_t)a->ng * 64;
}

void act_pack(const ActBuf *a, const IsaKernels *k, uint32_t wtype, const float *x, int t0,
              int t1) {
    QuantBlocksFn quant = k->quant ? k->quant : quant_blocks_scalar;
    int kk = wtype == TENSOR_Q4 ? k->k_q4 : k->k_q8;
    for (int t = t0; t < t1; t++) {
        const float *xt = x + (size_t)t * a->cols;
        uint8_t *rec = a->base + (size_t)t * a->stride;
        int8_t *q = (int8_t *)rec;
        float *d = (float *)(rec + a->off_d);
        int32_t *s = (int32_t *)(rec + a->off_s);
        if (!a->grouped) {
            quant(xt, q, d, s, a->nb);
            continue;
        }
        float *dxv = (float *)(rec + a->off_dxv);
        int32_t *cv = (int32_t *)(rec + a->off_cv);
        int8_t tmp[GROUP_BYTES];
        for (int g = 0; g < a->ng; g++) {
            int b0 = g * GROUP_BLOCKS;
            quant(xt + b0 * QK, tmp, d + b0, s + b0, GROUP_BLOCKS);
            int8_t *qg = q + (size_t)g * GROUP_BYTES;
            for (int j = 0; j < 4; j++)
                for (int kq = 0; kq < GROUP_BLOCKS; kq++)
                    memcpy(qg + j * 64 + kq * 8, tmp + k->order[kq] * QK + j * 8, 8);
            for (int kq = 0; kq < GROUP_BLOCKS; kq++) {
                int b = b0 + k->order[kq];
                dxv[g * 16 + 2 * kq] = dxv[g * 16 + 2 * kq + 1] = d[b];
                cv[g * 16 + 2 * kq] = -kk * s[b];
                cv[g * 16 + 2 * kq + 1] = 0;
            }
        }
        int bt = a->ng * GROUP_BLOCKS;
        if (a->ntail) quant(xt + bt * QK, q + bt * QK, d + bt, s + bt, a->ntail);
    }
}
