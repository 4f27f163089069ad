/* Attention over the KV cache: dot products of a query with cached key rows and weighted sums
 * of value rows, for F16 and F32 rows; scalar references (*_ref) and SIMD variants. */
#ifndef PHI_ATTN_H
#define PHI_ATTN_H

#include <stdint.h>

typedef struct {
    const char *name;
    float (*dot_f16)(const uint16_t *k, const float *q, int n);   /* sum k[i] q[i] */
    void (*axpy_f16)(float *y, float a, const uint16_t *v, int n); /* y += a v */
    float (*dot_f32)(const float *k, const float *q, int n);
    void (*axpy_f32)(float *y, float a, const float *v, int n);
    void (*to_f16)(const float *x, uint16_t *y, int n); /* round to nearest even */
    /* Whole-row forms over n F16 rows of hd values stored back to back (NULL: the caller loops
     * over dot_f16 / axpy_f16): out[j] = scale * (row j . q); y[0..hd) += sum_j a[j] row j. */
    void (*scores_f16)(const uint16_t *k, int n, int hd, const float *q, float scale, float *out);
    void (*wsum_f16)(float *y, const float *a, const uint16_t *v, int n, int hd);
} AttnKernels;

/* The variant for the ISA kernels_init selected, and for a named one (tests). */
const AttnKernels *attn_kernels(void);
const AttnKernels *attn_kernels_for(const char *isa);

float dot_f16_ref(const uint16_t *k, const float *q, int n);
void axpy_f16_ref(float *y, float a, const uint16_t *v, int n);
float dot_f32_ref(const float *k, const float *q, int n);
void axpy_f32_ref(float *y, float a, const float *v, int n);
void to_f16_ref(const float *x, uint16_t *y, int n);
void scores_f16_ref(const uint16_t *k, int n, int hd, const float *q, float scale, float *out);
void wsum_f16_ref(float *y, const float *a, const uint16_t *v, int n, int hd);

#endif
