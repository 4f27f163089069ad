/* x86-64 AVX-512 VNNI int8 kernels (zmm). Float weights and elementwise kernels reuse AVX2.
 *
 * Same scheme as the ymm template (kernels/x86_ymm_int8.h) on whole groups of 8 blocks: two
 * (Q4) or eight (Q8) two-source qword permutes put values [8j, 8j + 8) of blocks 0..7 into
 * vector j, so each int32 lane of vpdpbusd only sums one block and the two lanes of a block
 * get its d_w * d_x; activations are packed in natural block order to match. */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels/isa.h"

#define ZTGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define ZINL static inline __attribute__((always_inline)) ZTGT
#define ZTT 8  /* tokens per tile */
#define ZRB 16 /* rows per cache block */

ZINL float hsum16(__m512 v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* A group's 8 f16 block scales spread to 2 lanes each. */
ZINL __m512 dw_group(const uint16_t *wd) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wd));
    return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(d8));
}

/* acc (from cv), scaled by d_w * d_x, into the float accumulator of token t. */
#define ZDOT_ACC(acc, w0, w1, w2, w3, dw, a, t, g)                                            \
    do {                                                                                      \
        const int8_t *xp_ = act_q(a, t) + (g) * GROUP_BYTES;                                  \
        __m512i s_ = _mm512_load_si512((const void *)(act_cv(a, t) + (g) * 16));              \
        s_ = _mm512_dpbusd_epi32(s_, w0, _mm512_load_si512((const void *)xp_));                \
        s_ = _mm512_dpbusd_epi32(s_, w1, _mm512_load_si512((const void *)(xp_ + 64)));         \
        s_ = _mm512_dpbusd_epi32(s_, w2, _mm512_load_si512((const void *)(xp_ + 128)));        \
        s_ = _mm512_dpbusd_epi32(s_, w3, _mm512_load_si512((const void *)(xp_ + 192)));        \
        __m512 sc_ = _mm512_mul_ps(dw, _mm512_load_ps(act_dxv(a, t) + (g) * 16));             \
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_), sc_, acc);                              \
    } while (0)

ZINL void q4_tile_zmm(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, float *out,
                      const int NT) {
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    __m512 acc[ZTT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) acc[i] = _mm512_setzero_ps();
    for (int g = 0; g < a->ng; g++) {
        const uint8_t *wp = wq + g * 128;
        __m512i P = _mm512_loadu_si512((const void *)wp);
        __m512i Q = _mm512_loadu_si512((const void *)(wp + 64));
        __m512i P1 = _mm512_permutex2var_epi64(P, even, Q); /* bytes 0-7 of blocks 0..7 */
        __m512i P2 = _mm512_permutex2var_epi64(P, odd, Q);  /* bytes 8-15 */
        __m512i w0 = _mm512_and_si512(P1, m4), w1 = _mm512_and_si512(P2, m4);
        __m512i w2 = _mm512_and_si512(_mm512_srli_epi16(P1, 4), m4);
        __m512i w3 = _mm512_and_si512(_mm512_srli_epi16(P2, 4), m4);
        __m512 dw = dw_group(wd + g * 8);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) ZDOT_ACC(acc[i], w0, w1, w2, w3, dw, a, t + i, g);
    }
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) out[i] = hsum16(acc[i]);
}

ZINL void q8_tile_zmm(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, float *out,
                      const int NT) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const __m512i lo = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13);
    const __m512i hi = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
    __m512 acc[ZTT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) acc[i] = _mm512_setzero_ps();
    for (int g = 0; g < a->ng; g++) {
        const uint8_t *wp = wq + g * 256;
        __m512i L0 = _mm512_loadu_si512((const void *)wp);
        __m512i L1 = _mm512_loadu_si512((const void *)(wp + 64));
        __m512i L2 = _mm512_loadu_si512((const void *)(wp + 128));
        __m512i L3 = _mm512_loadu_si512((const void *)(wp + 192));
        /* A: qwords 0 then 1 of blocks 0-3; B: qwords 2, 3; C, D: the same for blocks 4-7. */
        __m512i A = _mm512_permutex2var_epi64(L0, lo, L1), B = _mm512_permutex2var_epi64(L0, hi, L1);
        __m512i C = _mm512_permutex2var_epi64(L2, lo, L3), D = _mm512_permutex2var_epi64(L2, hi, L3);
        __m512i w0 = _mm512_xor_si512(_mm512_shuffle_i64x2(A, C, 0x44), bias);
        __m512i w1 = _mm512_xor_si512(_mm512_shuffle_i64x2(A, C, 0xee), bias);
        __m512i w2 = _mm512_xor_si512(_mm512_shuffle_i64x2(B, D, 0x44), bias);
        __m512i w3 = _mm512_xor_si512(_mm512_shuffle_i64x2(B, D, 0xee), bias);
        __m512 dw = dw_group(wd + g * 8);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) ZDOT_ACC(acc[i], w0, w1, w2, w3, dw, a, t + i, g);
    }
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) out[i] = hsum16(acc[i]);
}

/* Row blocks of ZRB rows swept by all token tiles; remainder tokens one at a time. */
#define ZDRIVER(KIND)                                                                          \
    static ZTGT void KIND##_zmm(const MatView *w, const ActBuf *a, int t0, int nt, float *y,  \
                                int ldy, int r0, int r1) {                                     \
        size_t rbytes = (size_t)type_row_bytes(w->type, (uint64_t)w->cols);                   \
        int nb = w->cols / QK;                                                                \
        for (int rb = r0; rb < r1; rb += ZRB) {                                                \
            int re = rb + ZRB < r1 ? rb + ZRB : r1;                                           \
            for (int t = t0; t < t0 + nt;) {                                                   \
                int n = t0 + nt - t;                                                          \
                n = n > ZTT ? ZTT : n;                                                        \
                for (int r = rb; r < re; r++) {                                                \
                    const uint8_t *wq = w->q + (size_t)r * rbytes;                            \
                    const uint16_t *wd = w->d + (size_t)r * nb;                               \
                    float out[ZTT];                                                           \
                    if (n == ZTT) KIND##_tile_zmm(wq, wd, a, t, out, ZTT);                    \
                    else                                                                      \
                        for (int i = 0; i < n; i++) KIND##_tile_zmm(wq, wd, a, t + i, out + i, 1); \
                    for (int i = 0; i < n; i++)                                               \
                        y[(size_t)(t + i) * ldy + r] =                                        \
                            out[i] + (a->ntail ? tail_dot(w, a, t + i, r) : 0.0f);            \
                }                                                                             \
                t += n;                                                                       \
            }                                                                                 \
        }                                                                                     \
    }
ZDRIVER(q4)
ZDRIVER(q8)

static const uint8_t zmm_order[GROUP_BLOCKS] = {0, 1, 2, 3, 4, 5, 6, 7};

const IsaKernels isa_avx512vnni = {
    .name = "avx512vnni",
    .available = cpu_has_avx512vnni,
    .order = zmm_order,
    .k_q8 = 128,
    .k_q4 = 8,
    .quant = quant_blocks_avx2,
    .q8 = q8_zmm,
    .q4 = q4_zmm,
    .f32 = fmat_avx2,
    .f16 = fmat_avx2,
    .rmsnorm = rmsnorm_avx2,
    .softmax = softmax_avx2,
    .silu_mul = silu_mul_avx2,
};

#endif
