/* Attention inner loops over the KV cache: q.k dot products and softmax-weighted sums of v rows,
 * for F16 and F32 cache rows. The variant follows the ISA kernels_init selected (one decision,
 * made there); each SIMD version has the scalar loop below as its reference. */
#include "kernels/attn.h"

#include <stdint.h>
#include <string.h>

#include "kernels/blocks.h"
#include "kernels/kernels.h"

/* ---- scalar (the reference) ---- */

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

static const AttnKernels attn_scalar = {"scalar", dot_f16_ref, axpy_f16_ref, dot_f32_ref,
                                        axpy_f32_ref, to_f16_ref, scores_f16_ref, wsum_f16_ref};

/* ---- x86-64: AVX2 + FMA + F16C (8 lanes) and AVX-512 (16 lanes) ---- */
#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,f16c,fma")))

AVX2 static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static float dot_f16_avx2(const uint16_t *k, const float *q, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))),
                               _mm256_loadu_ps(q + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i + 8))),
                               _mm256_loadu_ps(q + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))),
                               _mm256_loadu_ps(q + i), acc0);
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += fp16_to_f32(k[i]) * q[i];
    return s;
}

AVX2 static void axpy_f16_avx2(float *y, float a, const uint16_t *v, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i))),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * fp16_to_f32(v[i]);
}

AVX2 static float dot_f32_avx2(const float *k, const float *q, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 8), _mm256_loadu_ps(q + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), acc0);
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += k[i] * q[i];
    return s;
}

AVX2 static void axpy_f32_avx2(float *y, float a, const float *v, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * v[i];
}

AVX2 static void to_f16_avx2(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f32_to_fp16(x[i]);
}

AVX512 static float dot_f16_avx512(const uint16_t *k, const float *q, int n) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16)
        acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + i))),
                              _mm512_loadu_ps(q + i), acc);
    if (i < n) { /* tail with a mask: head_dim 96 = 6 x 16, 80 = 5 x 16, ... */
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 kv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, k + i));
        acc = _mm512_fmadd_ps(kv, _mm512_maskz_loadu_ps(m, q + i), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

AVX512 static void axpy_f16_avx512(float *y, float a, const uint16_t *v, int n) {
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + i))),
                                                _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * fp16_to_f32(v[i]);
}

#ifndef ATT_PF
#define ATT_PF 2048 /* bytes of cache rows prefetched ahead */
#endif

/* A hint for p + ahead, possibly past the cache's end: formed as an integer (pointer arithmetic
 * beyond an object is undefined). */
static inline void att_prefetch(const void *p, int ahead) {
    _mm_prefetch((const char *)(uintptr_t)((uintptr_t)p + (uintptr_t)ahead), _MM_HINT_T0);
}

AVX512 static __m512 zload_h(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* Four keys at a time: each chunk of q is loaded once for the four, and the four sums are
 * reduced together (a transposing reduction instead of four horizontal ones). */
AVX512 static void scores_f16_avx512(const uint16_t *k, int n, int hd, const float *q, float scale,
                                     float *out) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint16_t *k0 = k + (size_t)j * hd;
        /* A long context streams the cache from memory: keep misses in flight ahead. */
        for (int i = 0; i < 4 * hd * 2; i += 64) att_prefetch(k0, ATT_PF + i);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < hd; i += 16) {
            __mmask16 m = hd - i >= 16 ? 0xffff : (__mmask16)((1u << (hd - i)) - 1);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
            a0 = _mm512_fmadd_ps(zload_h(k0 + i, m), qv, a0);
            a1 = _mm512_fmadd_ps(zload_h(k0 + hd + i, m), qv, a1);
            a2 = _mm512_fmadd_ps(zload_h(k0 + 2 * hd + i, m), qv, a2);
            a3 = _mm512_fmadd_ps(zload_h(k0 + 3 * hd + i, m), qv, a3);
        }
        /* 256-bit halves summed: [a0 | a1], [a2 | a3]; then 128-bit quarters: one per key. */
        __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xee));
        __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xee));
        __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xdd));
        u = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4e));
        u = _mm512_add_ps(u, _mm512_permute_ps(u, 0xb1));
        __m128 r = _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), u));
        _mm_storeu_ps(out + j, _mm_mul_ps(r, _mm_set1_ps(scale)));
    }
    for (; j < n; j++) out[j] = scale * dot_f16_avx512(k + (size_t)j * hd, q, hd);
}

/* The sums stay in registers over all rows, 128 values (8 vectors) at a time. */
AVX512 static void wsum_f16_avx512(float *y, const float *a, const uint16_t *v, int n, int hd) {
    for (int c = 0; c < hd; c += 128) {
        int w = hd - c < 128 ? hd - c : 128, nv = (w + 15) / 16;
        __mmask16 mt = w % 16 ? (__mmask16)((1u << (w % 16)) - 1) : 0xffff;
        __m512 acc[8];
#pragma GCC unroll 8
        for (int m = 0; m < 8; m++)
            acc[m] = m < nv ? _mm512_maskz_loadu_ps(m == nv - 1 ? mt : 0xffff, y + c + 16 * m) : _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            const uint16_t *vj = v + (size_t)j * hd + c;
            if (c == 0)
                for (int i = 0; i < hd * 2; i += 64) att_prefetch(vj, ATT_PF + i);
            __m512 aj = _mm512_set1_ps(a[j]);
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++)
                if (m < nv) acc[m] = _mm512_fmadd_ps(aj, zload_h(vj + 16 * m, m == nv - 1 ? mt : 0xffff), acc[m]);
        }
#pragma GCC unroll 8
        for (int m = 0; m < 8; m++)
            if (m < nv) _mm512_mask_storeu_ps(y + c + 16 * m, m == nv - 1 ? mt : 0xffff, acc[m]);
    }
}

static const AttnKernels attn_avx2 = {"avx2", dot_f16_avx2, axpy_f16_avx2, dot_f32_avx2,
                                      axpy_f32_avx2, to_f16_avx2, NULL, NULL};
static const AttnKernels attn_avx512 = {"avx512", dot_f16_avx512, axpy_f16_avx512, dot_f32_avx2,
                                        axpy_f32_avx2, to_f16_avx2, scores_f16_avx512, wsum_f16_avx512};
#endif

/* ---- aarch64: NEON (float16 conversion is part of the base architecture) ---- */
#if defined(__aarch64__)
#include <arm_neon.h>

static float dot_f16_neon(const uint16_t *k, const float *q, int n) {
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(k + i));
        acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(q + i));
        acc1 = vfmaq_f32(acc1, vcvt_high_f32_f16(h), vld1q_f32(q + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) s += fp16_to_f32(k[i]) * q[i];
    return s;
}

static void axpy_f16_neon(float *y, float a, const uint16_t *v, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(v + i));
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vcvt_f32_f16(vget_low_f16(h)), a));
        vst1q_f32(y + i + 4, vfmaq_n_f32(vld1q_f32(y + i + 4), vcvt_high_f32_f16(h), a));
    }
    for (; i < n; i++) y[i] += a * fp16_to_f32(v[i]);
}

static float dot_f32_neon(const float *k, const float *q, int n) {
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(k + i), vld1q_f32(q + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(k + i + 4), vld1q_f32(q + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) s += k[i] * q[i];
    return s;
}

static void axpy_f32_neon(float *y, float a, const float *v, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(v + i), a));
    for (; i < n; i++) y[i] += a * v[i];
}

static void to_f16_neon(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) y[i] = f32_to_fp16(x[i]);
}

static const AttnKernels attn_neon = {"neon", dot_f16_neon, axpy_f16_neon, dot_f32_neon,
                                      axpy_f32_neon, to_f16_neon, NULL, NULL};
#endif

const AttnKernels *attn_kernels_for(const char *isa) {
#if defined(__x86_64__)
    if (!strncmp(isa, "avx512", 6)) return &attn_avx512;
    if (!strncmp(isa, "avx", 3)) return &attn_avx2;
#endif
#if defined(__aarch64__)
    if (!strcmp(isa, "neon") || !strcmp(isa, "dotprod")) return &attn_neon;
#endif
    return &attn_scalar;
}

const AttnKernels *attn_kernels(void) { return attn_kernels_for(kernels_isa_name()); }
