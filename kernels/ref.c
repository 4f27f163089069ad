/* Scalar reference kernels: the oracle that every fast kernel is tested against. */
#include "kernels/ref.h"

#include <math.h>

float matrow_dot_ref(const MatView *w, int r, const float *x) {
    int n = w->cols;
    double sum = 0;
    uint8_t qb[QK];
    uint16_t d;
    switch (w->type) {
    case TENSOR_F32:
        for (int i = 0; i < n; i++) sum += (double)((const float *)matview_row(w, r))[i] * x[i];
        break;
    case TENSOR_F16:
        for (int i = 0; i < n; i++) sum += (double)fp16_to_f32(((const uint16_t *)matview_row(w, r))[i]) * x[i];
        break;
    case TENSOR_Q8:
        for (int b = 0; b < n / QK; b++) {
            matview_get_block(w, r, b, qb, &d);
            double s = 0;
            for (int i = 0; i < QK; i++) s += (double)(int8_t)qb[i] * x[b * QK + i];
            sum += s * fp16_to_f32(d);
        }
        break;
    case TENSOR_Q4:
        for (int b = 0; b < n / QK; b++) {
            matview_get_block(w, r, b, qb, &d);
            const float *xb = x + b * QK;
            double s = 0;
            for (int i = 0; i < QK / 2; i++)
                s += (double)((qb[i] & 15) - 8) * xb[i] + (double)((qb[i] >> 4) - 8) * xb[i + QK / 2];
            sum += s * fp16_to_f32(d);
        }
        break;
    }
    return (float)sum;
}

void matvec_rows_ref(const MatView *w, const float *x, float *y, int r0, int r1) {
    for (int r = r0; r < r1; r++) y[r] = matrow_dot_ref(w, r, x);
}

void matvec_ref(const MatView *w, const float *x, float *y) {
    matvec_rows_ref(w, x, y, 0, w->rows);
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
