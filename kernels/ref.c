/* Scalar reference kernels: the oracle that every fast kernel is tested against. */
#include "kernels/ref.h"

#include <math.h>

/* Row r of W . x in double: a float row at once, a quantized one block by block (each block's
 * sum times its scale). */
static float matrow_dot(const MatView *w, int r, const float *x) {
    const TypeTraits *t = &type_table[w->type];
    if (!t->has_scales && !t->kpanel) return (float)t->dot_ref(matview_row(w, r), x, w->cols);
    double sum = 0;
    uint8_t qb[BLOCK_BYTES_MAX];
    if (t->kpanel) { /* super-blocks carry their scales: dot_ref of each (the sum is in double) */
        for (int b = 0; b < w->cols / t->block; b++)
            sum += t->dot_ref(matview_kblock(w, r, b, qb), x + (size_t)b * t->block, t->block);
        return (float)sum;
    }
    uint16_t d;
    for (int b = 0; b < w->cols / t->block; b++) {
        matview_get_block(w, r, b, qb, &d);
        sum += t->dot_ref(qb, x + (size_t)b * t->block, t->block) * fp16_to_f32(d);
    }
    return (float)sum;
}

void matvec_ref(const MatView *w, const float *x, float *y) {
    for (int r = 0; r < w->rows; r++) y[r] = matrow_dot(w, r, x);
}

void rmsnorm_ref(float *out, const float *x, const float *weight, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

void softmax_ref(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void silu_mul_ref(float *gate, const float *up, int n) {
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* ---- attention ---- */

float dot_f16_ref(const uint16_t *k, const float *q, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += fp16_to_f32(k[i]) * q[i];
    return s;
}

void axpy_f16_ref(float *y, float a, const uint16_t *v, int n) {
    for (int i = 0; i < n; i++) y[i] += a * fp16_to_f32(v[i]);
}

float dot_f32_ref(const float *k, const float *q, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += k[i] * q[i];
    return s;
}

void axpy_f32_ref(float *y, float a, const float *v, int n) {
    for (int i = 0; i < n; i++) y[i] += a * v[i];
}

void to_f16_ref(const float *x, uint16_t *y, int n) {
    for (int i = 0; i < n; i++) y[i] = f32_to_fp16(x[i]);
}

void scores_f16_ref(const uint16_t *k, int n, int hd, const float *q, float scale, float *out) {
    for (int j = 0; j < n; j++) out[j] = scale * dot_f16_ref(k + (size_t)j * hd, q, hd);
}

void wsum_f16_ref(float *y, const float *a, const uint16_t *v, int n, int hd) {
    for (int j = 0; j < n; j++) axpy_f16_ref(y, a[j], v + (size_t)j * hd, hd);
}

/* ---- the q8_0 KV cache: per 32 values one f16 scale d = amax / 127 and int8 quants ---- */

void to_q8_kv_ref(const float *x, int8_t *q, uint16_t *d, int n) {
    for (int b = 0; b < n / QK_KV; b++) {
        const float *xb = x + b * QK_KV;
        float amax = 0;
        for (int i = 0; i < QK_KV; i++) amax = fmaxf(amax, fabsf(xb[i]));
        /* The quants are made with the stored (f16-rounded) scale, so d * q is the nearest
         * value of the grid the reader sees: |x - d q| <= d / 2 (bar the clamp at 127, a
         * fraction 2^-11 of a step when the scale rounded down). */
        float ds = amax / 127.0f;
        if (ds > 65504.0f) ds = 65504.0f;
        d[b] = f32_to_fp16(ds);
        float dd = fp16_to_f32(d[b]), id = dd > 0 ? 1.0f / dd : 0.0f;
        for (int i = 0; i < QK_KV; i++) {
            float v = rintf(xb[i] * id);
            q[b * QK_KV + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
    }
}

void scores_q8_ref(const int8_t *k, const uint16_t *kd, int n, int hd, const float *q, float scale,
                   float *out) {
    int nb = hd / QK_KV;
    for (int j = 0; j < n; j++) {
        float s = 0;
        for (int b = 0; b < nb; b++) {
            const int8_t *kb = k + (size_t)j * hd + b * QK_KV;
            float bs = 0;
            for (int i = 0; i < QK_KV; i++) bs += (float)kb[i] * q[b * QK_KV + i];
            s += fp16_to_f32(kd[(size_t)j * nb + b]) * bs;
        }
        out[j] = scale * s;
    }
}

void wsum_q8_ref(float *y, const float *a, const int8_t *v, const uint16_t *vd, int n, int hd) {
    int nb = hd / QK_KV;
    for (int j = 0; j < n; j++)
        for (int b = 0; b < nb; b++) {
            float c = a[j] * fp16_to_f32(vd[(size_t)j * nb + b]);
            const int8_t *vb = v + (size_t)j * hd + b * QK_KV;
            for (int i = 0; i < QK_KV; i++) y[b * QK_KV + i] += c * (float)vb[i];
        }
}
