/* The scalar reference kernels (*_ref): the oracle for every fast kernel of kernels/kernels.h
 * (tests compare them on random inputs) and the kernels of the reference forward pass. */
#ifndef PHI_REF_H
#define PHI_REF_H

#include "kernels/blocks.h"

/* y[rows] = W x for a matrix of any tensor type (rows dequantized, double accumulation). */
void matvec_ref(const MatView *w, const float *x, float *y);

/* out = x / rms(x) * weight */
void rmsnorm_ref(float *out, const float *x, const float *weight, int n, float eps);
/* In place, numerically stable. */
void softmax_ref(float *x, int n);
/* gate[i] = silu(gate[i]) * up[i] */
void silu_mul_ref(float *gate, const float *up, int n);

/* quantize_act_q8's reference (kernels/kernels.h). */
void quantize_act_q8_ref(const float *x, int8_t *q, float *d, int n);

#endif
