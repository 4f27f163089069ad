/* The scalar reference kernels (*_ref): the oracle for every fast kernel of kernels/kernels.h
 * (tests compare them on random inputs) and the kernels of the reference forward pass. */
#ifndef PHI_REF_H
#define PHI_REF_H

#include "kernels/blocks.h"
#include "kernels/kernels.h"

/* y[rows] = W x for a matrix of any tensor type (rows dequantized, double accumulation). */
void matvec_ref(const MatView *w, const float *x, float *y);

/* out = x / rms(x) * weight */
void rmsnorm_ref(float *out, const float *x, const float *weight, int n, float eps);
/* In place, numerically stable. */
void softmax_ref(float *x, int n);
/* gate[i] = silu(gate[i]) * up[i] */
void silu_mul_ref(float *gate, const float *up, int n);

/* Attention (AttnKernels, kernels/kernels.h): plain loops, float sums in index order. */
float dot_f16_ref(const uint16_t *k, const float *q, int n);
void axpy_f16_ref(float *y, float a, const uint16_t *v, int n);
float dot_f32_ref(const float *k, const float *q, int n);
void axpy_f32_ref(float *y, float a, const float *v, int n);
void to_f16_ref(const float *x, uint16_t *y, int n);
void scores_f16_ref(const uint16_t *k, int n, int hd, const float *q, float scale, float *out);
void wsum_f16_ref(float *y, const float *a, const uint16_t *v, int n, int hd);
void to_q8_kv_ref(const float *x, int8_t *q, uint16_t *d, int n);
void scores_q8_ref(const int8_t *k, const uint16_t *kd, int n, int hd, const float *q, float scale,
                   float *out);
void wsum_q8_ref(float *y, const float *a, const int8_t *v, const uint16_t *vd, int n, int hd);

/* quantize_act_q8's reference (kernels/kernels.h). */
void quantize_act_q8_ref(const float *x, int8_t *q, float *d, int n);

#endif
