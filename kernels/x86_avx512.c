/* x86-64 AVX-512 VNNI kernels (zmm): int8 and float matrices; the elementwise kernels and the
 * activation quantizer reuse AVX2.
 *
 * A group is 16 blocks (512 values). Its weights are loaded as 4 (Q4) or 8 (Q8) zmm and
 * transposed in registers (4x4 dword transposes within 128-bit lanes, plus 128-bit lane
 * shuffles for Q8) so that vector m holds values [4m, 4m + 4) of all 16 blocks, one block per
 * int32 lane. Eight vpdpbusd then give one int32 sum per block in one vector, which is scaled by
 * d_w * d_x lane by lane: three float ops per 8 vpdpbusd, no horizontal reduction. The
 * activations are packed to the same lane order (kernels/isa.h).
 *
 * A tile is one row x up to ZTT tokens: the row's weights are unpacked once per group and
 * reused for all the tile's tokens from registers; kernels/tiled.c runs the tiles in its
 * cache-blocked loop nest. */
#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels/isa.h"

#define ZTGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define ZINL static inline __attribute__((always_inline)) ZTGT
#define ZGB 16                 /* blocks per group */
#define ZREC (ZGB * (QK + 8))  /* bytes of a (group, token) activation record: 640 */
#define ZTT 8                  /* tokens per tile */

static const uint8_t order_q4[ZGB] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
static const uint8_t order_q8[ZGB] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};

ZINL float hsum16(__m512 v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* dst[k] += sum of v[k]'s lanes, k < 8: a transposing reduction (24 ops instead of 8 x 9). */
ZINL void reduce8_add(const __m512 *v, float *dst) {
    __m512 u[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
    /* u[i]: 128-bit lanes 0, 1 partial sums of v[2i], lanes 2, 3 of v[2i + 1]. */
    __m512 lo = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xdd));
    __m512 hi = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xdd));
    /* lane k of lo: 4 partials of v[k]; of hi: of v[k + 4]. */
    __m512 r = _mm512_add_ps(_mm512_unpacklo_ps(lo, hi), _mm512_unpackhi_ps(lo, hi));
    r = _mm512_add_ps(r, _mm512_permute_ps(r, 0x4e));
    /* lane k: [S_k, S_k+4, S_k, S_k+4] */
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256 s = _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, r));
    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), s));
}

/* 4x4 transpose of dwords within each 128-bit lane of (a, b, c, d). */
#define ZTRANSPOSE4(a, b, c, d, t0, t1, t2, t3)                                                \
    do {                                                                                       \
        __m512i x0_ = _mm512_unpacklo_epi32(a, b), x1_ = _mm512_unpackhi_epi32(a, b);          \
        __m512i x2_ = _mm512_unpacklo_epi32(c, d), x3_ = _mm512_unpackhi_epi32(c, d);          \
        t0 = _mm512_unpacklo_epi64(x0_, x2_);                                                  \
        t1 = _mm512_unpackhi_epi64(x0_, x2_);                                                  \
        t2 = _mm512_unpacklo_epi64(x1_, x3_);                                                  \
        t3 = _mm512_unpackhi_epi64(x1_, x3_);                                                  \
    } while (0)

/* Q4 group (16 blocks x 16 bytes): lane p = block order_q4[p]; nibbles as stored (q + 8). */
ZINL void unpack_q4(const uint8_t *wp, __m512i *v) {
    const __m512i m4 = _mm512_set1_epi8(15);
    __m512i t0, t1, t2, t3;
    ZTRANSPOSE4(_mm512_loadu_si512((const void *)wp), _mm512_loadu_si512((const void *)(wp + 64)),
                _mm512_loadu_si512((const void *)(wp + 128)), _mm512_loadu_si512((const void *)(wp + 192)),
                t0, t1, t2, t3);
    v[0] = _mm512_and_si512(t0, m4);
    v[1] = _mm512_and_si512(t1, m4);
    v[2] = _mm512_and_si512(t2, m4);
    v[3] = _mm512_and_si512(t3, m4);
    v[4] = _mm512_and_si512(_mm512_srli_epi16(t0, 4), m4);
    v[5] = _mm512_and_si512(_mm512_srli_epi16(t1, 4), m4);
    v[6] = _mm512_and_si512(_mm512_srli_epi16(t2, 4), m4);
    v[7] = _mm512_and_si512(_mm512_srli_epi16(t3, 4), m4);
}

/* Q8 group (16 blocks x 32 bytes): lane p = block order_q8[p]; q xor 0x80 = q + 128. */
ZINL void unpack_q8(const uint8_t *wp, __m512i *v) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512i t[4], u[4];
    ZTRANSPOSE4(_mm512_loadu_si512((const void *)wp), _mm512_loadu_si512((const void *)(wp + 64)),
                _mm512_loadu_si512((const void *)(wp + 128)), _mm512_loadu_si512((const void *)(wp + 192)),
                t[0], t[1], t[2], t[3]);
    ZTRANSPOSE4(_mm512_loadu_si512((const void *)(wp + 256)), _mm512_loadu_si512((const void *)(wp + 320)),
                _mm512_loadu_si512((const void *)(wp + 384)), _mm512_loadu_si512((const void *)(wp + 448)),
                u[0], u[1], u[2], u[3]);
    /* t[k] lanes: dword k of blocks 0,2,4,6 | dword 4+k of them | dword k of 1,3,5,7 | 4+k. */
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        v[k] = _mm512_xor_si512(_mm512_shuffle_i32x4(t[k], u[k], 0x88), bias);
        v[k + 4] = _mm512_xor_si512(_mm512_shuffle_i32x4(t[k], u[k], 0xdd), bias);
    }
}

/* ys[i] += row . token t + i over groups [g0, g1), i < NT (a constant). */
ZINL void tile_zmm(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, int g0, int g1,
                   float *ys, const int q4, const int NT) {
    const __m512i didx = q4 ? _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
                            : _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
    __m512 acc[ZTT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) acc[i] = _mm512_setzero_ps();
    const uint8_t *rp = act_rec(a, g0, t);
    size_t gstep = (size_t)a->n_tok * ZREC;
    for (int g = g0; g < g1; g++, rp += gstep) {
        __m512i v[8];
        if (q4) unpack_q4(wq + (size_t)g * (ZGB * QK / 2), v);
        else unpack_q8(wq + (size_t)g * (ZGB * QK), v);
        __m512 dw = _mm512_permutexvar_ps(didx, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wd + g * ZGB))));
        /* Tokens innermost: consecutive vpdpbusd are independent (the chains of one token would
         * leave the units waiting on latency). */
        __m512i s[ZTT];
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) s[i] = _mm512_load_si512((const void *)(rp + i * ZREC + ZGB * QK + ZGB * 4));
#pragma GCC unroll 8
        for (int m = 0; m < 8; m++)
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++)
                s[i] = _mm512_dpbusd_epi32(s[i], v[m], _mm512_load_si512((const void *)(rp + i * ZREC + 64 * m)));
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) {
            __m512 sc = _mm512_mul_ps(dw, _mm512_load_ps((const float *)(rp + i * ZREC + ZGB * QK)));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[i]), sc, acc[i]);
        }
    }
    if (NT == 8) {
        reduce8_add(acc, ys);
    } else {
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) ys[i] += hsum16(acc[i]);
    }
}

/* Any n <= ZTT tokens, as tiles of 8, 4 and 1. */
#define ZTILE(KIND, Q4)                                                                         \
    static ZTGT void tile_##KIND(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, \
                                 int n, int g0, int g1, float *ys) {                           \
        for (; n >= 8; n -= 8, t += 8, ys += 8) tile_zmm(wq, wd, a, t, g0, g1, ys, Q4, 8);     \
        for (; n >= 4; n -= 4, t += 4, ys += 4) tile_zmm(wq, wd, a, t, g0, g1, ys, Q4, 4);     \
        for (; n >= 1; n -= 1, t += 1, ys += 1) tile_zmm(wq, wd, a, t, g0, g1, ys, Q4, 1);     \
    }                                                                                          \
    static const TileKernel tk_##KIND = {ZTT, tile_##KIND};                                    \
    static void KIND##_zmm(const MatView *w, const ActBuf *a, int t0, int nt, float *y,        \
                           int ldy, int r0, int r1) {                                          \
        tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, &tk_##KIND);                                \
    }
ZTILE(q4, 1)
ZTILE(q8, 0)

/* ---- float weights: 4 rows x 4 tokens per tile, 16 columns per step, masked tail ---- */

ZINL __m512 zload_w(const uint8_t *row, int i, __mmask16 m, const int f16) {
    return f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * (size_t)i))
               : _mm512_maskz_loadu_ps(m, (const float *)row + i);
}

ZINL void zftile(const uint8_t *w0, size_t rs, const float *x, size_t xs, int n, float *y,
                 int ldy, int accumulate, const int f16, const int NR, const int NT) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++)
            wv[r] = f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w0 + r * rs + 2 * (size_t)i)))
                        : _mm512_loadu_ps((const float *)(w0 + r * rs) + i);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            __m512 xv = _mm512_loadu_ps(x + t * xs + i);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    if (i < n) { /* masked tail */
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) wv[r] = zload_w(w0 + r * rs, i, m, f16);
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + t * xs + i);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++)
            y[(size_t)t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]) + (accumulate ? y[(size_t)t * ldy + r] : 0.0f);
}

/* Any nr <= 4 rows x nt <= 4 tokens. */
#define FTILE_ZMM(NAME, F16)                                                                   \
    static ZTGT void NAME(const uint8_t *w0, size_t rs, int nr, const float *x, size_t xs,    \
                          int nt, int cols, float *y, int ldy, int acc) {                               \
        for (; nr >= 4; nr -= 4, w0 += 4 * rs, y += 4) {                                       \
            int t = 0;                                                                         \
            if (nt == 4) zftile(w0, rs, x, xs, cols, y, ldy, acc, F16, 4, 4), t = 4;                \
            for (; t < nt; t++) zftile(w0, rs, x + t * xs, xs, cols, y + (size_t)t * ldy, ldy, acc, F16, 4, 1); \
        }                                                                                      \
        for (; nr >= 1; nr -= 1, w0 += rs, y += 1) {                                           \
            int t = 0;                                                                         \
            if (nt == 4) zftile(w0, rs, x, xs, cols, y, ldy, acc, F16, 1, 4), t = 4;                \
            for (; t < nt; t++) zftile(w0, rs, x + t * xs, xs, cols, y + (size_t)t * ldy, ldy, acc, F16, 1, 1); \
        }                                                                                      \
    }
FTILE_ZMM(ftile_f16_zmm, 1)
FTILE_ZMM(ftile_f32_zmm, 0)
static const FTileKernel ftk_f16_zmm = {4, 4, ftile_f16_zmm};
static const FTileKernel ftk_f32_zmm = {4, 4, ftile_f32_zmm};

static void fmat_zmm(const MatView *w, const float *x, int t0, int nt, float *y, int ldy, int r0,
                     int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, w->type == TENSOR_F16 ? &ftk_f16_zmm : &ftk_f32_zmm);
}

const IsaKernels isa_avx512vnni = {
    .name = "avx512vnni",
    .available = cpu_has_avx512vnni,
    .gb = ZGB,
    .order_q8 = order_q8,
    .order_q4 = order_q4,
    .k_q8 = 128,
    .k_q4 = 8,
    .quant = quant_blocks_avx2,
    .q8 = q8_zmm,
    .q4 = q4_zmm,
    .f32 = fmat_zmm,
    .f16 = fmat_zmm,
    .rmsnorm = rmsnorm_avx2,
    .softmax = softmax_avx2,
    .silu_mul = silu_mul_avx2,
};

#endif
