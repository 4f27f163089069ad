/* Activation quantization (int8, f32 scale per 32) and the packing of activations into the
 * layout the int8 kernels read (see kernels/isa.h). */
#include <math.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/kquant.h"
#include "kernels/ref.h"

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

size_t act_layout(ActBuf *a, int cols, int n_tok, int tt_max, int side) {
    a->cols = cols;
    a->nb = cols / QK;
    a->n_tok = n_tok;
    if (tt_max < 1 || tt_max > AMX_TT) tt_max = ACT_TT;
    a->tt = n_tok < tt_max ? n_tok : tt_max;
    if (a->tt < 1) a->tt = 1;
    a->ntiles = (n_tok + a->tt - 1) / a->tt;
    a->rec = (size_t)a->tt * (QK + 8);
    a->base = a->side = NULL;
    uint64_t recs = align64((uint64_t)a->ntiles * (uint64_t)a->nb * a->rec);
    a->side_off = side ? (size_t)recs : 0;
    return (size_t)(recs + (side ? align64((uint64_t)a->ntiles * (uint64_t)a->nb * (uint64_t)a->tt * 8) : 0));
}

void act_attach(ActBuf *a, uint8_t *buf) {
    a->base = buf;
    a->side = a->side_off ? buf + a->side_off : NULL;
}

void act_pack(const ActBuf *a, const IsaKernels *k, uint32_t wtype, const float *x, int t0,
              int t1) {
    QuantBlocksFn quant = k->quant ? k->quant : quant_blocks_scalar;
    int kk = k->k_off[wtype], tt = a->tt;
    int side = a->side && wtype < TENSOR_TYPE_COUNT && type_table[wtype].unpack, kmode = side ? type_table[wtype].kmode : 0;
    enum { CH = 64 }; /* blocks quantized per call */
    int8_t q[CH * QK];
    float d[CH];
    int32_t s[CH];
    int tend = t1 < a->n_tok ? t1 : a->ntiles * tt; /* the last tile's padding too */
    for (int t = t0; t < tend; t++) {
        /* Padding tokens repeat the last real one: finite values, outputs never stored. */
        const float *xt = x + (size_t)(t < a->n_tok ? t : a->n_tok - 1) * a->cols;
        for (int b0 = 0; b0 < a->nb; b0 += CH) {
            int m = a->nb - b0 < CH ? a->nb - b0 : CH;
            quant(xt + (size_t)b0 * QK, q, d, s, m);
            for (int b = 0; b < m; b++) {
                uint8_t *rec = a->base + ((size_t)(t / tt) * (size_t)a->nb + (size_t)(b0 + b)) * a->rec;
                memcpy(rec + (size_t)(t % tt) * QK, q + b * QK, QK);
                ((float *)(rec + (size_t)tt * QK))[t % tt] = d[b];
                /* -K s, wrapping: non-finite activations leave s unspecified (garbage in,
                 * garbage out, but no overflow) */
                ((int32_t *)(rec + (size_t)tt * (QK + 4)))[t % tt] = (int32_t)(0u - (uint32_t)kk * (uint32_t)s[b]);
                if (side) {
                    uint8_t *sr = a->side + (((size_t)(t / tt) * (size_t)a->nb + (size_t)(b0 + b)) * (size_t)tt + (size_t)(t % tt)) * 8;
                    kact_side_rec(q + b * QK, d[b], s[b], kmode, sr);
                }
            }
        }
    }
}
