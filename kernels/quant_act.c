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
    if (!(v >= -127.0f && v <= 127.0f)) return v > 0 ? 127 : v < 0 ? -127 : 0; /* and NaN */
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
    for (int b = a->ng * a->gb; b < a->nb; b++) {
        int32_t s = w->type == TENSOR_Q8 ? dot_block_q8((const int8_t *)wq + b * QK, xq + b * QK)
                                         : dot_block_q4(wq + b * (QK / 2), xq + b * QK);
        acc += half_to_float(wd[b]) * xd[b] * (float)s;
    }
    return acc;
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

size_t act_layout(ActBuf *a, const IsaKernels *k, int cols, int n_tok) {
    a->cols = cols;
    a->nb = cols / QK;
    a->n_tok = n_tok;
    a->gb = k->gb;
    a->ng = a->gb ? a->nb / a->gb : 0;
    a->ntail = a->nb - a->ng * a->gb;
    a->rec = (size_t)a->gb * (QK + 8);
    a->off_d = align64((size_t)cols);
    a->off_s = a->off_d + align64((size_t)a->nb * 4);
    a->stride = a->off_s + align64((size_t)a->nb * 4);
    a->base = a->nat = NULL;
    return align64((size_t)a->ng * n_tok * a->rec) + a->stride * (size_t)n_tok;
}

void act_attach(ActBuf *a, uint8_t *buf) {
    a->base = buf;
    a->nat = buf + align64((size_t)a->ng * a->n_tok * a->rec);
}

void act_pack(const ActBuf *a, const IsaKernels *k, uint32_t wtype, const float *x, int t0,
              int t1) {
    QuantBlocksFn quant = k->quant ? k->quant : quant_blocks_scalar;
    int kk = wtype == TENSOR_Q4 ? k->k_q4 : k->k_q8;
    const uint8_t *order = wtype == TENSOR_Q4 ? k->order_q4 : k->order_q8;
    int gb = a->gb;
    for (int t = t0; t < t1; t++) {
        const float *xt = x + (size_t)t * a->cols;
        uint8_t *nat = a->nat + (size_t)t * a->stride;
        int8_t *q = (int8_t *)nat;
        float *d = (float *)(nat + a->off_d);
        int32_t *s = (int32_t *)(nat + a->off_s);
        if (!gb) {
            quant(xt, q, d, s, a->nb);
            continue;
        }
        int8_t tmp[16 * QK];
        for (int g = 0; g < a->ng; g++) {
            int b0 = g * gb;
            quant(xt + b0 * QK, tmp, d + b0, s + b0, gb);
            uint8_t *rec = (uint8_t *)act_rec(a, g, t);
            uint32_t *v = (uint32_t *)rec;
            float *dxv = (float *)(rec + (size_t)gb * QK);
            int32_t *cv = (int32_t *)(dxv + gb);
            for (int p = 0; p < gb; p++) {
                const int8_t *src = tmp + order[p] * QK;
                for (int m = 0; m < QK / 4; m++) memcpy(v + m * gb + p, src + 4 * m, 4);
                dxv[p] = d[b0 + order[p]];
                cv[p] = -kk * s[b0 + order[p]];
            }
        }
        int bt = a->ng * gb;
        if (a->ntail) quant(xt + bt * QK, q + bt * QK, d + bt, s + bt, a->ntail);
    }
}
