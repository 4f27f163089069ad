/* What the AVX2 kernel files share (x86_avx2.c: float, attention, the int8 Q4/Q8 tables;
 * x86_avx2_k.c: the K-quant and K panel types): the target attribute, a horizontal sum, and the K
 * entry point the kernel tables name. x86-64 only. */
#ifndef PHI_KERNELS_X86_YMM_H
#define PHI_KERNELS_X86_YMM_H
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels/isa.h"

#define TGT __attribute__((target("avx2,fma,f16c")))
#define INL static inline __attribute__((always_inline)) TGT

INL float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The MatFn of every K type (Q4_K, Q5_K, Q6_K as ggml stores them; Q4_KP, Q5_KP, Q6_KP, IQ4_XS):
 * generation and small batches in panels, prompts through the tiles (x86_avx2_k.c). */
void kq_avx2(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, int r1);

#endif
#endif
