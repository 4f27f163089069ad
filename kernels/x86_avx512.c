/* x86-64 AVX-512 VNNI kernels (zmm): int8 and float matrices, F16 attention rows; the
 * elementwise kernels, the activation quantizer and F32 attention rows reuse AVX2.
 *
 * Int8: a zmm lane per row of a 16-row weight panel (kernels/blocks.h). A block of the panel is
 * 4 (Q4) or 8 (Q8) 64-byte loads; vector k holds bytes [4k, 4k + 4) of the block of all 16
 * rows, so vpdpbusd against 4 activation bytes broadcast to every lane adds 4 products to each
 * row's sum: 8 vpdpbusd per block and token, then the int32 sums are scaled by d_w * d_x lane
 * by lane (three float ops, no horizontal reduction). A tile is one panel x up to 8 tokens: the
 * panel's block is unpacked once and reused for every token from registers; kernels/tiled.c
 * runs the tiles in its cache-blocked loop nest. Weights are used as unsigned bytes (Q4
 * nibbles as stored, q + 8; Q8 xor 0x80, q + 128); the activation records' c sums remove the
 * offsets. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/kquant.h"

#define ZTGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define ZINL static inline __attribute__((always_inline)) ZTGT
#define KROW_TT 2 /* tokens the K row kernels take at once (kq_zmm says why) */
#ifndef PF_AHEAD
#define PF_AHEAD 2048 /* bytes of quants prefetched ahead in generation (scales: an eighth) */
#endif

typedef int32_t i32_ua __attribute__((aligned(1), may_alias));

/* 4 bytes at p in every lane. Read as one aliasing int32 so that the compiler folds it into the
 * consuming vpdpbusd as an embedded broadcast (m32{1to16}): one uop instead of a separate
 * vpbroadcastd. */
ZINL __m512i bcast32(const uint8_t *p) { return _mm512_set1_epi32(*(const i32_ua *)(const void *)p); }

/* acc + dpbusd(w, the 4 bytes at p in every lane), with the broadcast embedded in the instruction
 * (m32{1to16}): GCC does not fold a broadcast into vpdpbusd by itself, and the separate
 * vpbroadcastd doubles the uops of the int8 tiles. */
ZINL __m512i dpbusd_b(__m512i acc, __m512i w, const uint8_t *p) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const i32_ua *)(const void *)p));
    return acc;
}

/* A prefetch hint for the address p + ahead, which may lie past the end of the object: formed
 * as an integer, since pointer arithmetic beyond an object is undefined. */
ZINL void prefetch_ahead(const void *p, size_t ahead) {
    _mm_prefetch((const char *)(uintptr_t)((uintptr_t)p + ahead), _MM_HINT_T0);
}

/* The panel (wq, wd) against NT tokens of a tile whose records are NT * 40 bytes. */
ZINL void panel_tile(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int n, int nblocks,
                     float *y, int ldy, int nr, int acc, const int q4, const int NT) {
    const __m512i m4 = _mm512_set1_epi8(15), bias = _mm512_set1_epi8((char)0x80);
    const size_t rec = (size_t)NT * (QK + 8), wstep = q4 ? QR * QK / 2 : QR * QK;
    __m512 f[ACT_TT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) f[i] = _mm512_setzero_ps();
    for (int b = 0; b < nblocks; b++, wq += wstep, wd += QR, ar += rec) {
        {
            /* Prefetching a few KB ahead keeps more misses in flight than the out-of-order window
             * alone reaches: generation streams each weight once from memory, and small batches
             * (2-8 rows: parallel streams, short prompts) do too. Measured, Phi-3-mini q4, 2 threads:
             * 4 rows 36 -> 42 tok/s, 8 rows 50 -> 67, and pp128 (weights from L2) 75 -> 78-84. */
#pragma GCC unroll 8
            for (size_t k = 0; k < wstep; k += 64) prefetch_ahead(wq, PF_AHEAD + k);
            if (!(b & 1)) prefetch_ahead(wd, PF_AHEAD / 8);
        }
        __m512i w[8];
        if (q4) {
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(wq + 64 * k));
                w[k] = _mm512_and_si512(v, m4);
                w[k + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
        } else {
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) w[k] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(wq + 64 * k)), bias);
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)wd));
        __m512i s[ACT_TT], s2 = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) s[i] = bcast32(ar + (size_t)NT * (QK + 4) + 4 * i);
        /* Tokens innermost: consecutive vpdpbusd are independent. One token splits its chain. */
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            int off = q4 ? (k < 4 ? 4 * k : QK / 2 + 4 * (k - 4)) : 4 * k;
            if (NT == 1 && (k & 1)) {
                s2 = dpbusd_b(s2, w[k], ar + off);
                continue;
            }
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) s[i] = dpbusd_b(s[i], w[k], ar + QK * i + off);
        }
        if (NT == 1) s[0] = _mm512_add_epi32(s[0], s2);
        const float *xd = (const float *)(const void *)(ar + (size_t)NT * QK);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++)
            f[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[i]), _mm512_mul_ps(dw, _mm512_set1_ps(xd[i])), f[i]);
    }
    __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) {
        if (i >= n) break;
        float *yi = y + (size_t)i * ldy;
        __m512 v = acc ? _mm512_add_ps(f[i], _mm512_maskz_loadu_ps(m, yi)) : f[i];
        _mm512_mask_storeu_ps(yi, m, v);
    }
}

#define ZTILE(KIND, Q4)                                                                         \
    static ZTGT void tile_##KIND(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar,     \
                                 int tt, int n, int nblocks, float *y, int ldy, int nr, int acc) { \
        switch (tt) {                                                                          \
        case 1: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 1); break;             \
        case 2: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 2); break;             \
        case 3: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 3); break;             \
        case 4: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 4); break;             \
        case 5: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 5); break;             \
        case 6: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 6); break;             \
        case 7: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 7); break;             \
        default: panel_tile(wq, wd, ar, n, nblocks, y, ldy, nr, acc, Q4, 8); break;            \
        }                                                                                      \
    }                                                                                          \
    static void KIND##_zmm(const MatView *w, const void *a, int t0, int nt, float *y,         \
                           int ldy, int r0, int r1) {                                          \
        tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, tile_##KIND);                               \
    }
ZTILE(q4, 1)
ZTILE(q8, 0)

/* ---- super-block types (kernels/kquant.h): unpacked panels, a zmm lane per row ---- */

/* The unpacked panel pk against NT tokens: per block of 32, 8 vpdpbusd per token in two chains
 * (bytes 0-15 and 16-31 of the block), then KMODE_MIN: f += dx (s . sum) - (dx sum q) m;
 * KMODE_OFF32: chains started from -32 sum_h q, f += dx (s0 . sum0 + s1 . sum1). */
ZINL void ktile_z(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int n, int nblocks,
                  float *y, int ldy, int nr, int acc, const int off32, const int NT) {
    const size_t rec = (size_t)NT * (QK + 8);
    __m512 f[ACT_TT];
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) f[i] = _mm512_setzero_ps();
    for (int b = 0; b < nblocks; b++, pk += KPANEL_BYTES, ar += rec, side += (size_t)NT * 8) {
        const int32_t *sd = (const int32_t *)(const void *)side;
        const float *xd = (const float *)(const void *)(ar + (size_t)NT * QK), *xs = (const float *)(const void *)side;
        if (!off32) {
            /* One scale for all 32: one chain per token (8 accumulators, no spills at NT = 8). */
            __m512i s[ACT_TT];
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) s[i] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512i w = _mm512_load_si512((const void *)(pk + 64 * k));
#pragma GCC unroll 8
                for (int i = 0; i < NT; i++) s[i] = dpbusd_b(s[i], w, ar + QK * i + 4 * k);
            }
            __m512 f1 = _mm512_load_ps((const void *)(pk + QR * QK)), f2 = _mm512_load_ps((const void *)(pk + QR * QK + 64));
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) {
                __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(s[i]), f1);
                f[i] = _mm512_fmadd_ps(t, _mm512_set1_ps(xd[i]), f[i]);
                f[i] = _mm512_fnmadd_ps(f2, _mm512_set1_ps(xs[2 * i]), f[i]);
            }
            continue;
        }
        /* Q6_K: a scale per 16, so two chains per token, started from -32 sum_h q; the weights
         * are loaded as used (16 sums + 8 totals + 2 weight vectors stay in registers). */
        __m512i s0[ACT_TT], s1[ACT_TT];
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) {
            s0[i] = _mm512_set1_epi32(sd[2 * i]);
            s1[i] = _mm512_set1_epi32(sd[2 * i + 1]);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m512i w0 = _mm512_load_si512((const void *)(pk + 64 * k)), w1 = _mm512_load_si512((const void *)(pk + 64 * (k + 4)));
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) {
                s0[i] = dpbusd_b(s0[i], w0, ar + QK * i + 4 * k);
                s1[i] = dpbusd_b(s1[i], w1, ar + QK * i + 16 + 4 * k);
            }
        }
        __m512 f1 = _mm512_load_ps((const void *)(pk + QR * QK)), f2 = _mm512_load_ps((const void *)(pk + QR * QK + 64));
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) {
            __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1[i]), f2, _mm512_mul_ps(_mm512_cvtepi32_ps(s0[i]), f1));
            f[i] = _mm512_fmadd_ps(t, _mm512_set1_ps(xd[i]), f[i]);
        }
    }
    __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) {
        if (i >= n) break;
        float *yi = y + (size_t)i * ldy;
        __m512 v = acc ? _mm512_add_ps(f[i], _mm512_maskz_loadu_ps(m, yi)) : f[i];
        _mm512_mask_storeu_ps(yi, m, v);
    }
}

#define KTILE_CASE(NT) \
    case NT: kmode ? ktile_z(pk, ar, side, n, nblocks, y, ldy, nr, acc, 1, NT) : ktile_z(pk, ar, side, n, nblocks, y, ldy, nr, acc, 0, NT); break;
static ZTGT void ktile_zmm(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                           int nblocks, float *y, int ldy, int nr, int acc, int kmode) {
    switch (tt) {
        KTILE_CASE(1) KTILE_CASE(2) KTILE_CASE(3) KTILE_CASE(4)
        KTILE_CASE(5) KTILE_CASE(6) KTILE_CASE(7)
    default:
        kmode ? ktile_z(pk, ar, side, n, nblocks, y, ldy, nr, acc, 1, 8) : ktile_z(pk, ar, side, n, nblocks, y, ldy, nr, acc, 0, 8);
    }
}
#undef KTILE_CASE

/* Panel unpacking: 16 rows' 32 bytes (at src + l rs) transposed to 8 vectors, vector k holding
 * bytes [4k, 4k + 4) of row l in lane l: rows i and i + 8 share a vector, an 8 x 8 dword
 * transpose runs in both 256-bit halves (unpack 32, unpack 64), and vpermt2d interleaves the
 * halves. The K-quants' bit fields are then cut out of the transposed bytes (a byte's bits stay
 * in its lane), so one transpose serves both nibbles (Q4_K), the fifth bits (Q5_K) or the two
 * high bits of four groups (Q6_K). */
ZINL void transpose16x32(const uint8_t *src, size_t rs, __m512i *o) {
    __m512i z[8], t[8], s[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        z[i] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(src + i * rs))),
                                  _mm256_loadu_si256((const __m256i *)(const void *)(src + (i + 8) * rs)), 1);
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
    }
#pragma GCC unroll 2
    for (int g = 0; g < 8; g += 4) {
        s[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
        s[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
        s[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
        s[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
    }
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    const __m512i hi = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        o[k] = _mm512_permutex2var_epi32(s[k], lo, s[k + 4]);
        o[k + 4] = _mm512_permutex2var_epi32(s[k], hi, s[k + 4]);
    }
}

ZINL void kstore(uint8_t *rec, const __m512i *v) {
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) _mm512_store_si512((void *)(rec + 64 * k), v[k]);
}

/* The scales of super-block blk for the 16 rows (rs bytes apart), a lane per row, gathered and
 * decoded in vectors (as kq_block_scales does per row). */
ZINL __m512 kgather_f16(const uint8_t *p, __m512i idx, const int high) {
    __m512i v = _mm512_i32gather_epi32(idx, (const void *)p, 1);
    v = high ? _mm512_srli_epi32(v, 16) : _mm512_and_si512(v, _mm512_set1_epi32(0xffff));
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

/* Dwords 0-3 of the 16 bytes at p + l rs for the rows l < 16, a lane per row: o[k] = dword k.
 * Vector i holds rows i, 4 + i, 8 + i, 12 + i in its 128-bit lanes; a 4 x 4 dword transpose in
 * each lane then puts row 4j + i in element 4j + i. */
ZINL void transpose16x4(const uint8_t *p, size_t rs, __m512i *o) {
    __m512i z[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)(p + (size_t)i * rs)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + (size_t)(4 + i) * rs)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + (size_t)(8 + i) * rs)), 2);
        z[i] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(p + (size_t)(12 + i) * rs)), 3);
    }
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    o[0] = _mm512_unpacklo_epi64(t0, t2);
    o[1] = _mm512_unpackhi_epi64(t0, t2);
    o[2] = _mm512_unpacklo_epi64(t1, t3);
    o[3] = _mm512_unpackhi_epi64(t1, t3);
}

ZINL void kscales_zmm(uint32_t type, const uint8_t *blk, size_t rs, __m512 *F1, __m512 *F2) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)rs));
    if (type == TENSOR_Q6_K) {
        __m512 d = kgather_f16(blk + 206, idx, 1);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            __m512i v = _mm512_i32gather_epi32(idx, (const void *)(blk + 192 + 4 * g), 1);
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++) { /* scale 4g + b: block 2g + b / 2, first or second 16 */
                __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * b), 24);
                (b & 1 ? F2 : F1)[2 * g + b / 2] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
            }
        }
        return;
    }
    /* The 16 header bytes of each row (d, dmin, scales) transposed: gathers cost 21 % of the
     * unpacking (perf, the first one waiting for the super-block's rows). */
    __m512i o[4];
    transpose16x4(blk, rs, o);
    const __m512i lo16 = _mm512_set1_epi32(0xffff);
    __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_and_si512(o[0], lo16)));
    __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(o[0], 16)));
    __m512i A = o[1], B = o[2], C = o[3];
    const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15), m48 = _mm512_set1_epi32(48);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        __m512i sc, mn;
        if (j < 4) {
            sc = _mm512_and_si512(_mm512_srli_epi32(A, 8 * j), m63);
            mn = _mm512_and_si512(_mm512_srli_epi32(B, 8 * j), m63);
        } else { /* low 4 bits from C, high 2 from the top of A's (B's) byte j - 4 */
            int s = 8 * (j - 4);
            sc = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(C, s), m15), _mm512_and_si512(_mm512_srli_epi32(A, s + 2), m48));
            mn = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(C, s + 4), m15), _mm512_and_si512(_mm512_srli_epi32(B, s + 2), m48));
        }
        F1[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
        F2[j] = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(mn));
    }
}

/* Block j's 8 unpacked vectors W either stored as its panel record (with its scales), or, in
 * generation (one token, tt = 1: records of 40 bytes), multiplied at once with the token's block
 * (as ktile_z with NT = 1) into f: nothing goes through memory. */
ZINL void ksink(int j, const __m512i *W, const __m512 *F1, const __m512 *F2, uint8_t *rec, __m512 *f,
                const uint8_t *ar, const uint8_t *sd, const int off32, const int fused) {
    if (!fused) {
        uint8_t *r = rec + (size_t)j * KPANEL_BYTES;
        kstore(r, W);
        _mm512_store_ps((void *)(r + QR * QK), F1[j]);
        _mm512_store_ps((void *)(r + QR * QK + 64), F2[j]);
        return;
    }
    const uint8_t *x = ar + (size_t)j * (QK + 8);
    const int32_t *c = (const int32_t *)(const void *)(sd + 8 * j);
    __m512i s0 = off32 ? _mm512_set1_epi32(c[0]) : _mm512_setzero_si512();
    __m512i s1 = off32 ? _mm512_set1_epi32(c[1]) : _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        s0 = dpbusd_b(s0, W[k], x + 4 * k);
        s1 = dpbusd_b(s1, W[k + 4], x + 16 + 4 * k);
    }
    float dx = *(const float *)(const void *)(x + QK);
    if (off32) {
        __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), F2[j], _mm512_mul_ps(_mm512_cvtepi32_ps(s0), F1[j]));
        *f = _mm512_fmadd_ps(t, _mm512_set1_ps(dx), *f);
    } else {
        float xs = *(const float *)(const void *)(sd + 8 * j);
        __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), F1[j]);
        *f = _mm512_fmadd_ps(t, _mm512_set1_ps(dx), *f);
        *f = _mm512_fnmadd_ps(F2[j], _mm512_set1_ps(xs), *f);
    }
}

/* One super-block of 16 rows (blk: row 0's block, rows rs bytes apart) to ksink, block by block. */
ZINL void kunpack_sb(uint32_t type, const uint8_t *blk, size_t rs, uint8_t *rec, __m512 *f,
                     const uint8_t *ar, const uint8_t *sd, const int fused) {
    const __m512i m4 = _mm512_set1_epi8(15), m10 = _mm512_set1_epi8(0x10), m30 = _mm512_set1_epi8(0x30);
    __m512 F1[8], F2[8];
    kscales_zmm(type, blk, rs, F1, F2);
    __m512i v[8], h[8], a[8], c[8], o[8];
    if (type == TENSOR_Q6_K) {
        for (int half = 0; half < 2; half++) {
            transpose16x32(blk + 64 * half, rs, a);
            transpose16x32(blk + 64 * half + 32, rs, v);
            transpose16x32(blk + 128 + 32 * half, rs, c);
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                o[k] = _mm512_or_si512(_mm512_and_si512(a[k], m4), _mm512_and_si512(_mm512_slli_epi16(c[k], 4), m30));
                h[k] = _mm512_or_si512(_mm512_and_si512(v[k], m4), _mm512_and_si512(_mm512_slli_epi16(c[k], 2), m30));
            }
            ksink(4 * half, o, F1, F2, rec, f, ar, sd, 1, fused);
            ksink(4 * half + 1, h, F1, F2, rec, f, ar, sd, 1, fused);
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                o[k] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a[k], 4), m4), _mm512_and_si512(c[k], m30));
                h[k] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v[k], 4), m4), _mm512_and_si512(_mm512_srli_epi16(c[k], 2), m30));
            }
            ksink(4 * half + 2, o, F1, F2, rec, f, ar, sd, 1, fused);
            ksink(4 * half + 3, h, F1, F2, rec, f, ar, sd, 1, fused);
        }
        return;
    }
    int q5 = type == TENSOR_Q5_K;
    if (q5) transpose16x32(blk + 16, rs, h);
    for (int cc = 0; cc < 4; cc++) {
        transpose16x32(blk + (q5 ? 48 : 16) + 32 * cc, rs, v);
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            o[k] = _mm512_and_si512(v[k], m4);
            a[k] = _mm512_and_si512(_mm512_srli_epi16(v[k], 4), m4);
            if (q5) {
                /* bit 2cc (then 2cc + 1) of each qh byte to bit 4 */
                __m512i b0 = 2 * cc <= 4 ? _mm512_slli_epi16(h[k], 4 - 2 * cc) : _mm512_srli_epi16(h[k], 2 * cc - 4);
                __m512i b1 = 2 * cc + 1 <= 4 ? _mm512_slli_epi16(h[k], 3 - 2 * cc) : _mm512_srli_epi16(h[k], 2 * cc - 3);
                o[k] = _mm512_or_si512(o[k], _mm512_and_si512(b0, m10));
                a[k] = _mm512_or_si512(a[k], _mm512_and_si512(b1, m10));
            }
        }
        ksink(2 * cc, o, F1, F2, rec, f, ar, sd, 0, fused);
        ksink(2 * cc + 1, a, F1, F2, rec, f, ar, sd, 0, fused);
    }
}

#define KTYPE_SWITCH(type, CALL)                                                                \
    switch (type) {                                                                            \
    case TENSOR_Q4_K: { const uint32_t T_ = TENSOR_Q4_K; CALL; } break;                        \
    case TENSOR_Q5_K: { const uint32_t T_ = TENSOR_Q5_K; CALL; } break;                        \
    default: { const uint32_t T_ = TENSOR_Q6_K; CALL; } break;                                 \
    }

static ZTGT void kunpack_zmm(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    size_t rs = type_row_bytes(w->type, (uint64_t)w->cols), bb = (size_t)type_table[w->type].block_bytes;
    const uint8_t *base = matview_row(w, p * QR);
    KTYPE_SWITCH(w->type, for (int sb = 0; sb < n; sb++)
                 kunpack_sb(T_, base + (size_t)(sb0 + sb) * bb, rs, out + (size_t)sb * 8 * KPANEL_BYTES, NULL, NULL, NULL, 0))
}

/* Generation: whole panels unpacked and multiplied in registers, a super-block at a time. */
static ZTGT void kdecode_zmm(const MatView *w, const ActBuf *a, const uint8_t *side, float *y, int r0, int r1) {
    size_t rs = type_row_bytes(w->type, (uint64_t)w->cols), bb = (size_t)type_table[w->type].block_bytes;
    int nsb = w->cols / QK_K;
    for (int p = r0 / QR; p < r1 / QR; p++) {
        const uint8_t *base = matview_row(w, p * QR);
        __m512 f = _mm512_setzero_ps();
        KTYPE_SWITCH(w->type, for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *blk = base + (size_t)sb * bb;
            /* The panel's 16 rows are one contiguous run of 16 rs bytes and the next panel's follow:
             * per block, prefetch the next panel linearly, 16 bb bytes a step (the rows are too short
             * for the hardware prefetchers to follow 16 streams; prefetch_ahead: no bound check). */
            for (size_t o = 0; o < QR * bb; o += 64) prefetch_ahead(base, QR * rs + (size_t)sb * QR * bb + o);
            kunpack_sb(T_, blk, rs, NULL, &f, act_rec(a, 0, sb * 8), side + (size_t)sb * 64, 1);
        })
        _mm512_storeu_ps(y + (size_t)p * QR, f);
    }
}

/* Generation for Q4_K, Q5_K and Q6_K, row by row on ggml's bytes as stored (no transpose, no gathers: one
 * linear stream through the matrix, which the hardware prefetchers follow). Per super-block of a
 * row: the 12 bytes of 6-bit scales/mins decoded with 32-bit masks; the 128 bytes of nibbles as
 * two 64-byte loads, each split into its low and high nibbles, so the four vectors hold
 * sub-blocks (0 2), (1 3), (4 6), (5 7) — the order in which krow_acts' KROW_PAIRED records keep
 * the token's quants (a broadcast and a variable shift per vector instead cost 8 % of Q4_K_M
 * decode); one vpdpbusd per 64 weights, its 16 sums scaled per lane by d sc_j dx_j (a vpermps of
 * 8 scales). The mins are one ymm FMA per super-block against dx_j * sum q_j; Q5_K adds its fifth
 * bits to the nibbles (one rotation per vector). Q6_K the same way: a vector per 64 quants (low
 * nibbles with bits 0-1 / 2-3 of qh, high nibbles with 4-5 / 6-7), its sums started at -32 times
 * the token's sums of 4 (which removes the offset), 16 scales d sc_g dx_(g/2) a lane per group
 * of 16. The tokens' side of a super-block (KRowAct) is made once per call, in a buffer of 640
 * bytes per 256 columns and token (kernels/kquant.h). */
ZINL void krow_q6k(const MatView *w, const KRowAct *x, float *y, size_t ldy, int r0, int r1, const int NT) {
    int nsb = w->cols / QK_K;
    const __m512i cnt = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    const __m512i i0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i four = _mm512_set1_epi32(4);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = matview_row(w, r);
        __m512 acc[KROW_TT];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *blk = row + (size_t)sb * 210;
            __m512 d = _mm512_set1_ps(_cvtsh_ss((unsigned short)(blk[208] | blk[209] << 8)));
            __m512 Sd = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(blk + 192)))));
            __m512i u[4];
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m512i L = _mm512_loadu_si512((const void *)(blk + 64 * h));
                __m512i t = _mm512_srlv_epi64(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * h))), cnt);
                u[2 * h] = _mm512_or_si512(_mm512_and_si512(L, m4), _mm512_and_si512(_mm512_slli_epi64(t, 4), m30));
                u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi64(L, 4), m4), _mm512_and_si512(t, m30));
            }
            /* the unpacked super-block against each token in turn, in the one-token order */
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                const KRowAct *xt = x + (size_t)t * (size_t)nsb + sb;
                __m512 S = _mm512_mul_ps(Sd, _mm512_load_ps(xt->dx));
                __m512i idx = i0;
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    int o = 64 * k;
                    __m512i s = _mm512_dpbusd_epi32(_mm512_load_si512((const void *)(xt->c + o / 4)), u[k],
                                                    _mm512_load_si512((const void *)(xt->q + o)));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(idx, S), acc[t]);
                    idx = _mm512_add_epi32(idx, four);
                }
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) y[(size_t)t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
    }
}

ZINL void krow_k4(const MatView *w, const KRowAct *x, float *y, size_t ldy, int r0, int r1, const int q5, const int NT) {
    int nsb = w->cols / QK_K;
    const size_t bb = q5 ? 176 : 144;
    const __m512i m10 = _mm512_set1_epi8(0x10);
    const __m512i m4 = _mm512_set1_epi8(15);
    /* product vector c holds sub-blocks (0 2), (1 3), (4 6), (5 7) in its lanes 0-7 / 8-15
     * (the KROW_PAIRED activations): the scale of each, and the left rotation that brings a
     * Q5_K fifth bit (bit j of qh[l] for sub-block j) to bit 4 of its byte (4 - j mod 64) */
    const __m512i idx[4] = {_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2),
                            _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3),
                            _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6),
                            _mm512_setr_epi32(5, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7)};
    const __m512i rot[4] = {_mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2), _mm512_setr_epi64(3, 3, 3, 3, 1, 1, 1, 1),
                            _mm512_setr_epi64(0, 0, 0, 0, 62, 62, 62, 62), _mm512_setr_epi64(63, 63, 63, 63, 61, 61, 61, 61)};
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = matview_row(w, r);
        __m512 acc[KROW_TT];
        __m256 accm[KROW_TT];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps(), accm[t] = _mm256_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *blk = row + (size_t)sb * bb;
            /* Q5_K: the fifth bits, bit j of qh[l] for sub-block j, both halves of a vector */
            __m512i qh = q5 ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 16))) : m10;
            uint32_t A, B, C;
            memcpy(&A, blk + 4, 4), memcpy(&B, blk + 8, 4), memcpy(&C, blk + 12, 4);
            /* sub-blocks 0..3: low 6 bits of bytes 0..3 (scales) and 4..7 (mins); 4..7: low
             * (scales) / high (mins) nibbles of bytes 8..11, bits 4-5 from the top of 0..7 */
            uint64_t sc = (A & 0x3f3f3f3fu) | (uint64_t)((C & 0x0f0f0f0fu) | ((A >> 2) & 0x30303030u)) << 32;
            uint64_t mn = (B & 0x3f3f3f3fu) | (uint64_t)(((C >> 4) & 0x0f0f0f0fu) | ((B >> 2) & 0x30303030u)) << 32;
            __m128i sm = _mm_set_epi64x((long long)mn, (long long)sc);
            __m256 d = _mm256_set1_ps(_cvtsh_ss((unsigned short)(blk[0] | blk[1] << 8)));
            __m256 dm = _mm256_set1_ps(_cvtsh_ss((unsigned short)(blk[2] | blk[3] << 8)));
            __m256 Sd = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
            __m256 M = _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
            /* two 64-byte loads: bytes 0-31 hold sub-blocks 0 (low nibbles) and 1 (high), 32-63
             * sub-blocks 2 and 3, and so on */
            __m512i v[4];
            const uint8_t *qs = blk + (q5 ? 48 : 16);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m512i L = _mm512_loadu_si512((const void *)(qs + 64 * h));
                v[2 * h] = _mm512_and_si512(L, m4);
                v[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(L, 4), m4);
            }
            if (q5)
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) v[c] = _mm512_or_si512(v[c], _mm512_and_si512(_mm512_rolv_epi64(qh, rot[c]), m10));
            /* the unpacked super-block against each token in turn, in the one-token order */
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                const KRowAct *xt = x + (size_t)t * (size_t)nsb + sb;
                __m256 S = _mm256_mul_ps(Sd, _mm256_load_ps(xt->dx));
                accm[t] = _mm256_fmadd_ps(M, _mm256_load_ps(xt->dxh), accm[t]);
                __m512 Sz = _mm512_castps256_ps512(S);
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[c], _mm512_load_si512((const void *)(xt->q + 64 * c)));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(idx[c], Sz), acc[t]);
                }
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++)
            y[(size_t)t * ldy + r] = _mm512_reduce_add_ps(acc[t]) - _mm512_reduce_add_ps(_mm512_zextps256_ps512(accm[t]));
    }
}
/* NT tokens (1 or 2) of a row kernel: each token's sums run in the order they run alone, so a
 * token's outputs do not depend on the batch it came in. */
#define KROW_SWITCH(CALL)                                                                         \
    if (nt == 1) {                                                                             \
        const int NT_ = 1;                                                                     \
        CALL;                                                                                  \
    } else {                                                                                   \
        const int NT_ = 2;                                                                     \
        CALL;                                                                                  \
    }
static ZTGT void krow_q4k_zmm(const MatView *w, const KRowAct *x, int nt, float *y, size_t ldy, int r0, int r1) {
    KROW_SWITCH(krow_k4(w, x, y, ldy, r0, r1, 0, NT_))
}
static ZTGT void krow_q5k_zmm(const MatView *w, const KRowAct *x, int nt, float *y, size_t ldy, int r0, int r1) {
    KROW_SWITCH(krow_k4(w, x, y, ldy, r0, r1, 1, NT_))
}
static ZTGT void krow_q6k_zmm(const MatView *w, const KRowAct *x, int nt, float *y, size_t ldy, int r0, int r1) {
    KROW_SWITCH(krow_q6k(w, x, y, ldy, r0, r1, NT_))
}

/* Bit j of each byte of v moved to bit 4 (other bits: garbage for the caller to mask). */
ZINL __m512i kp_bit4(__m512i v, const int j) {
    return j <= 4 ? _mm512_slli_epi32(v, 4 - j) : _mm512_srli_epi32(v, j - 4);
}

/* The 6-bit scales and mins of a Q4_KP / Q5_KP super-block's 16 rows, from its lines 1-3: byte j
 * (j < 4) of lane l of sc[0] / mn[0] is sub-block j's scale / min, of sc[1] / mn[1] sub-block
 * 4 + j's (kpanel_dec and kpunpack). */
ZINL void kp_scales(const uint8_t *src, __m512i sc[2], __m512i mn[2]) {
    const __m512i m4 = _mm512_set1_epi8(15), m6 = _mm512_set1_epi8(63), m30 = _mm512_set1_epi8(0x30);
    __m512i L1 = _mm512_loadu_si512((const void *)(src + 64)), L2 = _mm512_loadu_si512((const void *)(src + 128));
    __m512i L3 = _mm512_loadu_si512((const void *)(src + 192));
    sc[0] = _mm512_and_si512(L1, m6);
    mn[0] = _mm512_and_si512(L2, m6);
    sc[1] = _mm512_or_si512(_mm512_and_si512(L3, m4), _mm512_and_si512(_mm512_srli_epi16(L1, 2), m30));
    mn[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L3, 4), m4), _mm512_and_si512(_mm512_srli_epi16(L2, 2), m30));
}

/* Generation for Q4_KP and Q5_KP (kernels/blocks.h: Q4_K, Q5_K bytes in 16-row panels), 1 or 2
 * tokens, a lane per row as the Q4 tiles (Q5_KP adds its fifth bits from 8 lines of qh): per super-block of a panel, the 16 rows' d and dmin from one 64-byte
 * line, their 6-bit scales and mins from three (byte masks and shifts of whole lines, then one
 * conversion per sub-block for 16 rows at once), and per 64-byte line of nibbles two vpdpbusd
 * against 4 activation bytes broadcast. Per sub-block j and token: the 16 sums times dx_j, times
 * the rows' scales, plus the rows' mins against dx_j * sum q_j (the side records); d and dmin
 * multiply once per super-block. No horizontal sums, no scalar work per row (ggml's row order
 * needs both: krow_k4 above), and one linear stream through the matrix. */
ZINL void kpanel_dec(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, float *y, size_t ldy,
                     int r0, int r1, const int q5, const int NT) {
    int nsb = w->cols / QK_K, nb = a->nb, tt = a->tt;
    const __m512i m4 = _mm512_set1_epi8(15);
    const __m512i mff = _mm512_set1_epi32(0xff), m10 = _mm512_set1_epi8(0x10);
    const size_t bb = q5 ? 176 : 144;
    for (int p = r0 / QR; p * QR < r1; p++) {
        __m512 acc[KROW_TT], accm[KROW_TT];
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) acc[t] = accm[t] = _mm512_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
#pragma GCC unroll 8
            for (size_t o = 0; o < QR * bb; o += 64) prefetch_ahead(src, PF_AHEAD + o);
            __m512i dd = _mm512_loadu_si512((const void *)src);
            __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
            __m512 DM = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
            __m512i sc[2], mn[2];
            /* bytes j of each lane: sub-block j (j < 4) / 4 + j of the scales and of the mins */
            kp_scales(src, sc, mn);
            __m512 A[KROW_TT], B[KROW_TT];
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) A[t] = B[t] = _mm512_setzero_ps();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) { /* sub-blocks 2c, 2c + 1: the low and high nibbles of 8 lines */
                const uint8_t *nib = src + (size_t)((q5 ? 12 : 4) + 8 * c) * 64;
                __m512i s0[KROW_TT], s1[KROW_TT];
                const int8_t *q0[KROW_TT], *q1[KROW_TT];
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++) {
                    s0[t] = s1[t] = _mm512_setzero_si512();
                    q0[t] = act_q(a, t0 + t, sb * 8 + 2 * c), q1[t] = act_q(a, t0 + t, sb * 8 + 2 * c + 1);
                }
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    __m512i v = _mm512_loadu_si512((const void *)(nib + 64 * k));
                    __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                    if (q5) { /* bits 2c and 2c + 1 of the qh line to bit 4 of each byte */
                        __m512i h = _mm512_loadu_si512((const void *)(src + 4 * 64 + 64 * k));
                        lo = _mm512_or_si512(lo, _mm512_and_si512(kp_bit4(h, 2 * c), m10));
                        hi = _mm512_or_si512(hi, _mm512_and_si512(kp_bit4(h, 2 * c + 1), m10));
                    }
#pragma GCC unroll 2
                    for (int t = 0; t < NT; t++) {
                        s0[t] = dpbusd_b(s0[t], lo, (const uint8_t *)q0[t] + 4 * k);
                        s1[t] = dpbusd_b(s1[t], hi, (const uint8_t *)q1[t] + 4 * k);
                    }
                }
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    int j = 2 * c + h, sh = 8 * (j & 3);
                    __m512 S = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(sc[j >> 2], sh), mff));
                    __m512 M = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(mn[j >> 2], sh), mff));
#pragma GCC unroll 2
                    for (int t = 0; t < NT; t++) {
                        int tk = t0 + t, b = sb * 8 + j;
                        float dx = act_d(a, tk, b), gx;
                        memcpy(&gx, side + (((size_t)(tk / tt) * nb + b) * tt + tk % tt) * 8, 4);
                        __m512 T = _mm512_mul_ps(_mm512_cvtepi32_ps(h ? s1[t] : s0[t]), _mm512_set1_ps(dx));
                        A[t] = _mm512_fmadd_ps(T, S, A[t]);
                        B[t] = _mm512_fmadd_ps(M, _mm512_set1_ps(gx), B[t]);
                    }
                }
            }
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) {
                acc[t] = _mm512_fmadd_ps(D, A[t], acc[t]);
                accm[t] = _mm512_fmadd_ps(DM, B[t], accm[t]);
            }
        }
        int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
        __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++)
            _mm512_mask_storeu_ps(y + (size_t)t * ldy + (size_t)p * QR, m, _mm512_sub_ps(acc[t], accm[t]));
    }
}
/* Q6_KP (Q6_K blocks padded to 212 bytes, in panels; words: ql 0-31, qh 32-47, scales 48-51, d
 * 52): sub-block j = 4h + s is the low (s < 2) or high nibbles of ql lines 16h + 8 (s & 1) .. + 7
 * with bits 2s, 2s + 1 of qh lines 32 + 8h .. + 7 above them (q in 0 ... 63); its two 16s start
 * their sums at -32 times the token's sums (the side records), which removes the offset, and
 * take the int8 scales of their lanes. */
ZINL __m512i kp6_u(const uint8_t *src, int j, int k) {
    int h = j >> 2, s = j & 3;
    __m512i v = _mm512_loadu_si512((const void *)(src + (size_t)(16 * h + 8 * (s & 1) + k) * 64));
    __m512i hb = _mm512_loadu_si512((const void *)(src + (size_t)(32 + 8 * h + k) * 64));
    v = _mm512_and_si512((s >> 1) ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(15));
    return _mm512_or_si512(v, _mm512_and_si512(kp_bit4(hb, 2 * s), _mm512_set1_epi8(0x30)));
}
/* Scale g (0 ... 15) of each lane, as a float: byte g % 4 of scale word g / 4, sign-extended. */
ZINL __m512 kp6_scale(const uint8_t *src, int g) {
    __m512i v = _mm512_loadu_si512((const void *)(src + (size_t)(48 + g / 4) * 64));
    return _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * (g & 3)), 24));
}
ZINL void kpanel_dec6(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, float *y, size_t ldy,
                      int r0, int r1, const int NT) {
    int nsb = w->cols / QK_K, nb = a->nb, tt = a->tt;
    for (int p = r0 / QR; p * QR < r1; p++) {
        __m512 acc[KROW_TT];
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
#pragma GCC unroll 8
            for (size_t o = 0; o < QR * 212; o += 64) prefetch_ahead(src, PF_AHEAD + o);
            __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_loadu_si512((const void *)(src + 52 * 64))));
            __m512 A[KROW_TT];
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) A[t] = _mm512_setzero_ps();
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                int b = sb * 8 + j;
                __m512i s0[KROW_TT], s1[KROW_TT];
                const uint8_t *q[KROW_TT];
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++) {
                    int tk = t0 + t;
                    const int32_t *c = (const int32_t *)(const void *)(side + (((size_t)(tk / tt) * nb + b) * tt + tk % tt) * 8);
                    s0[t] = _mm512_set1_epi32(c[0]), s1[t] = _mm512_set1_epi32(c[1]);
                    q[t] = (const uint8_t *)act_q(a, tk, b);
                }
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    __m512i u = kp6_u(src, j, k);
#pragma GCC unroll 2
                    for (int t = 0; t < NT; t++) {
                        if (k < 4) s0[t] = dpbusd_b(s0[t], u, q[t] + 4 * k);
                        else s1[t] = dpbusd_b(s1[t], u, q[t] + 4 * k);
                    }
                }
                __m512 S0 = kp6_scale(src, 2 * j), S1 = kp6_scale(src, 2 * j + 1);
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++) {
                    __m512 dx = _mm512_set1_ps(act_d(a, t0 + t, b));
                    A[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s0[t]), dx), S0, A[t]);
                    A[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1[t]), dx), S1, A[t]);
                }
            }
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++) acc[t] = _mm512_fmadd_ps(D, A[t], acc[t]);
        }
        int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
        __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(y + (size_t)t * ldy + (size_t)p * QR, m, acc[t]);
    }
}
static ZTGT void kpunpack_q6_zmm(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_loadu_si512((const void *)(src + 52 * 64))));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) _mm512_store_si512((void *)(rec + 64 * k), kp6_u(src, j, k));
            _mm512_store_ps((float *)(void *)(rec + QR * QK), _mm512_mul_ps(D, kp6_scale(src, 2 * j)));
            _mm512_store_ps((float *)(void *)(rec + QR * QK + 4 * QR), _mm512_mul_ps(D, kp6_scale(src, 2 * j + 1)));
        }
    }
}

/* IQ4_XS panels (kernels/kquant.c: words d | scales_h 0, scales_l 1, nibbles 2-33). The levels
 * + 128 as a vpshufb table (the same 16 bytes in each 128-bit lane): a nibble line becomes the
 * u bytes of KMODE_OFF128 in one shuffle. ls_j of the 16 rows: nibble j of line 1's lanes and bits
 * 2j, 2j + 1 of the scales_h halves of line 0. */
ZINL __m512i iq4_table(void) {
    return _mm512_broadcast_i32x4(_mm_setr_epi8(1, 24, 45, 63, 79, 93, 106, (char)118, (char)129, (char)141,
                                                 (char)153, (char)166, (char)181, (char)197, (char)217, (char)241));
}
/* d (ls_j - 32) of the 16 rows, from line 0 (dd) and line 1 (sl). */
ZINL __m512 iq4_scale(__m512i dd, __m512i sl, __m512 D, const int j) {
    __m512i lo = _mm512_and_si512(_mm512_srli_epi32(sl, 4 * j), _mm512_set1_epi32(15));
    __m512i hi = _mm512_and_si512(_mm512_srli_epi32(dd, 16 + 2 * j), _mm512_set1_epi32(3));
    __m512i ls = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
    return _mm512_mul_ps(D, _mm512_cvtepi32_ps(ls));
}

/* Generation for IQ4_XS, 1 or 2 tokens, as kpanel_dec: per sub-block j, its 4 nibble lines'
 * low and high nibbles through the table and one vpdpbusd each against the token's bytes 4k and
 * 16 + 4k, the sums started from the side record's -128 sum q (which removes the + 128), then
 * times dx and the rows' d (ls_j - 32). */
ZINL void kpanel_dec_iq4(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, float *y, size_t ldy,
                         int r0, int r1, const int NT) {
    int nsb = w->cols / QK_K, nb = a->nb, tt = a->tt;
    const __m512i m4 = _mm512_set1_epi8(15), tab = iq4_table();
    for (int p = r0 / QR; p * QR < r1; p++) {
        __m512 acc[KROW_TT];
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
#pragma GCC unroll 8
            for (size_t o = 0; o < QR * 136; o += 64) prefetch_ahead(src, PF_AHEAD + o);
            __m512i dd = _mm512_loadu_si512((const void *)src), sl = _mm512_loadu_si512((const void *)(src + 64));
            __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const uint8_t *nib = src + (size_t)(2 + 4 * j) * 64;
                __m512i s[KROW_TT];
                const uint8_t *q[KROW_TT];
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++) {
                    int tk = t0 + t, b = sb * 8 + j;
                    int32_t c[2];
                    memcpy(c, side + (((size_t)(tk / tt) * nb + b) * tt + tk % tt) * 8, 8);
                    s[t] = _mm512_set1_epi32(c[0] + c[1]);
                    q[t] = (const uint8_t *)act_q(a, tk, b);
                }
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    __m512i v = _mm512_loadu_si512((const void *)(nib + 64 * k));
                    __m512i lo = _mm512_shuffle_epi8(tab, _mm512_and_si512(v, m4));
                    __m512i hi = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
#pragma GCC unroll 2
                    for (int t = 0; t < NT; t++) {
                        s[t] = dpbusd_b(s[t], lo, q[t] + 4 * k);
                        s[t] = dpbusd_b(s[t], hi, q[t] + 16 + 4 * k);
                    }
                }
                __m512 S = iq4_scale(dd, sl, D, j);
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++)
                    acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s[t]), _mm512_set1_ps(act_d(a, t0 + t, sb * 8 + j))), S, acc[t]);
            }
        }
        int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
        __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) _mm512_mask_storeu_ps(y + (size_t)t * ldy + (size_t)p * QR, m, acc[t]);
    }
}

/* IQ4_XS panels into panel records for the tiles: u lines 0-3 of sub-block j the levels of the
 * low nibbles of its 4 lines, 4-7 of their high nibbles; f1 = f2 = d (ls_j - 32). */
static ZTGT void kpunpack_iq4_zmm(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    const __m512i m4 = _mm512_set1_epi8(15), tab = iq4_table();
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        __m512i dd = _mm512_loadu_si512((const void *)src), sl = _mm512_loadu_si512((const void *)(src + 64));
        __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *nib = src + (size_t)(2 + 4 * j) * 64;
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(nib + 64 * k));
                _mm512_store_si512((void *)(rec + 64 * k), _mm512_shuffle_epi8(tab, _mm512_and_si512(v, m4)));
                _mm512_store_si512((void *)(rec + 64 * (k + 4)),
                                   _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4)));
            }
            __m512 S = iq4_scale(dd, sl, D, j);
            _mm512_store_ps((float *)(void *)(rec + QR * QK), S);
            _mm512_store_ps((float *)(void *)(rec + QR * QK + 4 * QR), S);
        }
    }
}

static ZTGT void kpanel_dec_zmm(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y,
                                size_t ldy, int r0, int r1) {
    if (w->type == TENSOR_Q6_KP) {
        KROW_SWITCH(kpanel_dec6(w, a, side, t0, y, ldy, r0, r1, NT_))
    } else if (w->type == TENSOR_IQ4_XS) {
        KROW_SWITCH(kpanel_dec_iq4(w, a, side, t0, y, ldy, r0, r1, NT_))
    } else if (w->type == TENSOR_Q5_KP) {
        KROW_SWITCH(kpanel_dec(w, a, side, t0, y, ldy, r0, r1, 1, NT_))
    } else {
        KROW_SWITCH(kpanel_dec(w, a, side, t0, y, ldy, r0, r1, 0, NT_))
    }
}

/* Q4_KP / Q5_KP panels into panel records for the tiles (kernels/kquant.h: u lines, then s and m per
 * lane): the nibble lines split into the low and high halves of a sub-block pair, the scales
 * decoded for 16 rows at once as kpanel_dec does (kq_unpack_kp is the portable one). */
ZINL void kpunpack(const MatView *w, int p, int sb0, int n, uint8_t *out, const int q5) {
    const __m512i m4 = _mm512_set1_epi8(15), m10 = _mm512_set1_epi8(0x10);
    const __m512i mff = _mm512_set1_epi32(0xff);
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        __m512i dd = _mm512_loadu_si512((const void *)src);
        __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        __m512 DM = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        __m512i sc[2], mn[2];
        kp_scales(src, sc, mn);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *nib = src + (size_t)((q5 ? 12 : 4) + 8 * (j / 2)) * 64;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512i v = _mm512_loadu_si512((const void *)(nib + 64 * k));
                v = _mm512_and_si512((j & 1) ? _mm512_srli_epi16(v, 4) : v, m4);
                if (q5) v = _mm512_or_si512(v, _mm512_and_si512(kp_bit4(_mm512_loadu_si512((const void *)(src + 4 * 64 + 64 * k)), j), m10));
                _mm512_store_si512((void *)(rec + 64 * k), v);
            }
            int sh = 8 * (j & 3);
            __m512 S = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(sc[j >> 2], sh), mff));
            __m512 M = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(mn[j >> 2], sh), mff));
            _mm512_store_ps((float *)(void *)(rec + QR * QK), _mm512_mul_ps(D, S));
            _mm512_store_ps((float *)(void *)(rec + QR * QK + 4 * QR), _mm512_mul_ps(DM, M));
        }
    }
}

static ZTGT void kpunpack_q4_zmm(const MatView *w, int p, int sb0, int n, uint8_t *out) { kpunpack(w, p, sb0, n, out, 0); }
static ZTGT void kpunpack_q5_zmm(const MatView *w, int p, int sb0, int n, uint8_t *out) { kpunpack(w, p, sb0, n, out, 1); }

static void kq_zmm(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1) {
    const ActBuf *a = act;
    KRowAct *x = NULL;
    if (type_table[w->type].kpanel) { /* K panel types: generation in panels, batches through the tiles */
        if (nt <= KROW_TT) kpanel_dec_zmm(w, a, kact_side(a, type_table[w->type].kmode, 0, a->ntiles), t0, nt,
                                          y + (size_t)t0 * (size_t)ldy, (size_t)ldy, r0, r1);
        else kmat_tiled(w, act, t0, nt, y, ldy, r0, r1, ktile_zmm,
                        w->type == TENSOR_Q6_KP ? kpunpack_q6_zmm : w->type == TENSOR_Q5_KP ? kpunpack_q5_zmm
                        : w->type == TENSOR_IQ4_XS ? kpunpack_iq4_zmm : kpunpack_q4_zmm);
        return;
    }
    /* Generation and two-token batches (two parallel streams): the row kernels, each super-block
     * unpacked once for both tokens. Each further token costs a row kernel its own convert,
     * permute and FMA per vpdpbusd, more float work per product than the panel tiles spend: from
     * 3 tokens on the tiles are as fast or faster (Phi-3-mini Q4_K_M, 2 threads, --parallel: np2
     * 14.8 -> 17.6 tok/s with rows; np3 20.3 / 20.1, np4 25.4 / 19.7, np8 36.5 / 22.3 tiles / rows). */
    if (nt >= 1 && nt <= KROW_TT && (x = krow_acts(a, t0, nt, w->cols / QK_K, w->type == TENSOR_Q6_K ? KROW_Q6 : KROW_PAIRED)) != NULL) {
        int re = r1 < w->rows ? r1 : w->rows;
        float *yt = y + (size_t)t0 * (size_t)ldy;
        if (r0 < re && w->type == TENSOR_Q6_K) krow_q6k_zmm(w, x, nt, yt, (size_t)ldy, r0, re);
        else if (r0 < re && w->type == TENSOR_Q5_K) krow_q5k_zmm(w, x, nt, yt, (size_t)ldy, r0, re);
        else if (r0 < re) krow_q4k_zmm(w, x, nt, yt, (size_t)ldy, r0, re);
        free(x);
        for (int t = 0; t < nt; t++) /* rows past the matrix, as the tiles */
            for (int r = re > r0 ? re : r0; r < r1; r++) yt[(size_t)t * ldy + r] = 0;
        return;
    }
    int full = (r1 < w->rows ? r1 : w->rows) / QR * QR; /* rows of whole panels inside the matrix */
    if (a->n_tok == 1 && full > r0) {
        kdecode_zmm(w, a, kact_side(a, type_table[w->type].kmode, 0, 1), y, r0, full);
        r0 = full;
    }
    if (r0 < r1) kmat_tiled(w, act, t0, nt, y, ldy, r0, r1, ktile_zmm, kunpack_zmm);
}

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

static void fmat_f32_zmm(const MatView *w, const void *x, int t0, int nt, float *y, int ldy,
                         int r0, int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, &ftk_f32_zmm);
}

static void fmat_f16_zmm(const MatView *w, const void *x, int t0, int nt, float *y, int ldy,
                         int r0, int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, &ftk_f16_zmm);
}

/* ---- attention (AttnKernels; the F32 rows and f16 rounding reuse AVX2's) ---- */

static ZTGT float dot_f16_avx512(const uint16_t *k, const float *q, int n) {
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

static ZTGT void axpy_f16_avx512(float *y, float a, const uint16_t *v, int n) {
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

static ZTGT __m512 zload_h(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* Four keys at a time: each chunk of q is loaded once for the four, and the four sums are
 * reduced together (a transposing reduction instead of four horizontal ones). */
/* The four keys' sums a0..a3 (16 lanes each) reduced and stored, times scale, to out[0..4): the
 * 256-bit halves summed ([a0 | a1], [a2 | a3]), then the 128-bit quarters, one per key. */
ZINL void store4_scaled(float *out, __m512 a0, __m512 a1, __m512 a2, __m512 a3, float scale) {
    __m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xee));
    __m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xee));
    __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xdd));
    u = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4e));
    u = _mm512_add_ps(u, _mm512_permute_ps(u, 0xb1));
    __m128 r = _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), u));
    _mm_storeu_ps(out, _mm_mul_ps(r, _mm_set1_ps(scale)));
}

static ZTGT void scores_f16_avx512(const uint16_t *k, int n, int hd, const float *q, float scale,
                                     float *out) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint16_t *k0 = k + (size_t)j * hd;
        /* A long context streams the cache from memory: keep misses in flight ahead. */
        for (int i = 0; i < 4 * hd * 2; i += 64) prefetch_ahead(k0, ATT_PF + (size_t)i);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < hd; i += 16) {
            __mmask16 m = hd - i >= 16 ? 0xffff : (__mmask16)((1u << (hd - i)) - 1);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
            a0 = _mm512_fmadd_ps(zload_h(k0 + i, m), qv, a0);
            a1 = _mm512_fmadd_ps(zload_h(k0 + hd + i, m), qv, a1);
            a2 = _mm512_fmadd_ps(zload_h(k0 + 2 * hd + i, m), qv, a2);
            a3 = _mm512_fmadd_ps(zload_h(k0 + 3 * hd + i, m), qv, a3);
        }
        store4_scaled(out + j, a0, a1, a2, a3, scale);
    }
    for (; j < n; j++) out[j] = scale * dot_f16_avx512(k + (size_t)j * hd, q, hd);
}

/* The sums stay in registers over all rows, 128 values (8 vectors) at a time. */
static ZTGT void wsum_f16_avx512(float *y, const float *a, const uint16_t *v, int n, int hd) {
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
                for (int i = 0; i < hd * 2; i += 64) prefetch_ahead(vj, ATT_PF + (size_t)i);
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

/* ---- the q8_0 cache: quants widened to f32 on the fly (dequantizing costs less than rounding
 * the query to int8 would save, and keeps the query exact) ---- */

static ZTGT __m512 zload_q8(const int8_t *p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}

/* Four keys at a time as scores_f16_avx512: per block of 32 the two halves' products are summed
 * and scaled by the key's block scale into the key's accumulator. */
static ZTGT void scores_q8_avx512(const int8_t *k, const uint16_t *kd, int n, int hd, const float *q,
                                    float scale, float *out) {
    int nb = hd / QK_KV, j = 0;
    for (; j + 4 <= n; j += 4) {
        const int8_t *k0 = k + (size_t)j * hd;
        const uint16_t *d0 = kd + (size_t)j * nb;
        for (int i = 0; i < 4 * hd; i += 64) prefetch_ahead(k0, ATT_PF + (size_t)i);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < nb; b++) {
            const int8_t *kb = k0 + b * QK_KV;
            __m512 ql = _mm512_loadu_ps(q + b * QK_KV), qh = _mm512_loadu_ps(q + b * QK_KV + 16);
#define KQ8_ROW(acc, r)                                                                              \
    acc = _mm512_fmadd_ps(_mm512_fmadd_ps(zload_q8(kb + (r) * hd + 16), qh, _mm512_mul_ps(zload_q8(kb + (r) * hd), ql)), \
                          _mm512_set1_ps(_cvtsh_ss(d0[(r) * nb + b])), acc)
            KQ8_ROW(a0, 0);
            KQ8_ROW(a1, 1);
            KQ8_ROW(a2, 2);
            KQ8_ROW(a3, 3);
#undef KQ8_ROW
        }
        store4_scaled(out + j, a0, a1, a2, a3, scale);
    }
    for (; j < n; j++) {
        const int8_t *kj = k + (size_t)j * hd;
        __m512 acc = _mm512_setzero_ps();
        for (int b = 0; b < nb; b++) {
            __m512 t = _mm512_fmadd_ps(zload_q8(kj + b * QK_KV + 16), _mm512_loadu_ps(q + b * QK_KV + 16),
                                       _mm512_mul_ps(zload_q8(kj + b * QK_KV), _mm512_loadu_ps(q + b * QK_KV)));
            acc = _mm512_fmadd_ps(t, _mm512_set1_ps(_cvtsh_ss(kd[(size_t)j * nb + b])), acc);
        }
        out[j] = scale * _mm512_reduce_add_ps(acc);
    }
}

/* The sums stay in registers over all rows, 128 values (4 blocks, 8 vectors) at a time; each
 * block's weight is a[j] times its scale. */
static ZTGT void wsum_q8_avx512(float *y, const float *a, const int8_t *v, const uint16_t *vd, int n,
                                 int hd) {
    int nb = hd / QK_KV;
    for (int c = 0; c < nb; c += 4) {
        int bw = nb - c < 4 ? nb - c : 4;
        __m512 acc[8];
#pragma GCC unroll 8
        for (int m = 0; m < 8; m++) acc[m] = m < 2 * bw ? _mm512_loadu_ps(y + c * QK_KV + 16 * m) : _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            const int8_t *vj = v + (size_t)j * hd + c * QK_KV;
            if (c == 0)
                for (int i = 0; i < hd; i += 64) prefetch_ahead(vj, ATT_PF + (size_t)i);
#pragma GCC unroll 4
            for (int b = 0; b < 4; b++)
                if (b < bw) {
                    __m512 cj = _mm512_set1_ps(a[j] * _cvtsh_ss(vd[(size_t)j * nb + c + b]));
                    acc[2 * b] = _mm512_fmadd_ps(cj, zload_q8(vj + b * QK_KV), acc[2 * b]);
                    acc[2 * b + 1] = _mm512_fmadd_ps(cj, zload_q8(vj + b * QK_KV + 16), acc[2 * b + 1]);
                }
        }
#pragma GCC unroll 8
        for (int m = 0; m < 8; m++)
            if (m < 2 * bw) _mm512_storeu_ps(y + c * QK_KV + 16 * m, acc[m]);
    }
}

const IsaKernels isa_avx512vnni = {
    .name = "avx512vnni",
    .available = cpu_has_avx512vnni,
    .quant = quant_blocks_avx2,
    .mat = {[TENSOR_F32] = fmat_f32_zmm, [TENSOR_F16] = fmat_f16_zmm, [TENSOR_Q8] = q8_zmm,
            [TENSOR_Q4] = q4_zmm, [TENSOR_Q4_K] = kq_zmm, [TENSOR_Q5_K] = kq_zmm,
            [TENSOR_Q6_K] = kq_zmm, [TENSOR_Q4_KP] = kq_zmm, [TENSOR_Q5_KP] = kq_zmm, [TENSOR_Q6_KP] = kq_zmm, [TENSOR_IQ4_XS] = kq_zmm},
    .k_off = {[TENSOR_Q8] = 128, [TENSOR_Q4] = 8},
    .rmsnorm = rmsnorm_avx2,
    .softmax = softmax_avx2,
    .silu_mul = silu_mul_avx2,
    .attn = {dot_f16_avx512, axpy_f16_avx512, dot_f32_avx2, axpy_f32_avx2, to_f16_avx2,
             scores_f16_avx512, wsum_f16_avx512, NULL, scores_q8_avx512, wsum_q8_avx512},
};

#endif
