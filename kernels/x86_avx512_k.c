/* AVX-512 VNNI kernels for the K-quant types as ggml stores them (Q4_K, Q5_K, Q6_K rows: the row
 * kernels for generation, panels unpacked on the fly for batches) and the tile every super-block
 * type runs its batches on (ktile_zmm; the K panel types' unpacking: x86_avx512_kp.c). The int8
 * panel scheme of x86_avx512.c: a zmm lane per row of a 16-row panel. */
#include "kernels/x86_zmm.h"
#if defined(__x86_64__)

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
ZTGT void ktile_zmm(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                       int nblocks, float *y, int ldy, int nr, int acc, int kmode) {
    switch (tt) {
        KTILE_CASE(1) KTILE_CASE(2) KTILE_CASE(3) KTILE_CASE(4)
        KTILE_CASE(5) KTILE_CASE(6) KTILE_CASE(7)
    default:
        kmode ? ktile_z(pk, ar, side, n, nblocks, y, ldy, nr, acc, 1, 8) : ktile_z(pk, ar, side, n, nblocks, y, ldy, nr, acc, 0, 8);
    }
}
#undef KTILE_CASE

/* Two unpacked panels of an offset type (Q6_K, Q6_KP: KMODE_OFF32; IQ4_XS: KMODE_OFF128, the same
 * code) against tokens 4h..4h+3 of a full tile (KTilePairFn; x86_avx512.c's pair_half says
 * why): each activation broadcast and chain start is loaded once into a register for both
 * panels. Every (token, row) runs ktile_z's operations in its order, so the bits are its. 2
 * threads, 128 tokens, pairs against single panels in one process: Q6_K 9216 x 3072 +6.5 %,
 * Q6_KP +8.4-8.9 %, IQ4_XS +2.7-7.5 %. The KMODE_MIN types gained nothing (their three float
 * operations per token and block, not the loads, hold the tile), so kpair_zmm gives them the
 * one-panel tile. */
ZINL void kpair_half(const uint8_t *pk0, const uint8_t *pk1, const uint8_t *ar, const uint8_t *side, int h,
                     int n, int nblocks, float *y, int ldy, int nr1, int acc) {
    const size_t rec = (size_t)ACT_TT * (QK + 8);
    __m512 f0[4], f1[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) f0[i] = f1[i] = _mm512_setzero_ps();
    for (int b = 0; b < nblocks; b++, pk0 += KPANEL_BYTES, pk1 += KPANEL_BYTES, ar += rec, side += (size_t)ACT_TT * 8) {
        const int32_t *sd = (const int32_t *)(const void *)side + 8 * h;
        const float *xd = (const float *)(const void *)(ar + (size_t)ACT_TT * QK) + 4 * h;
        const uint8_t *x = ar + (size_t)QK * 4 * h;
        __m512i s0a[4], s1a[4], s0b[4], s1b[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512i c0 = _mm512_set1_epi32(sd[2 * i]), c1 = _mm512_set1_epi32(sd[2 * i + 1]);
            ZKEEP2(c0, c1);
            s0a[i] = s0b[i] = c0, s1a[i] = s1b[i] = c1;
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m512i wa0 = _mm512_load_si512((const void *)(pk0 + 64 * k)), wa1 = _mm512_load_si512((const void *)(pk0 + 64 * (k + 4)));
            __m512i wb0 = _mm512_load_si512((const void *)(pk1 + 64 * k)), wb1 = _mm512_load_si512((const void *)(pk1 + 64 * (k + 4)));
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m512i xa = _mm512_set1_epi32(*(const i32_ua *)(const void *)(x + QK * i + 4 * k));
                __m512i xb = _mm512_set1_epi32(*(const i32_ua *)(const void *)(x + QK * i + 16 + 4 * k));
                s0a[i] = _mm512_dpbusd_epi32(s0a[i], wa0, xa), s0b[i] = _mm512_dpbusd_epi32(s0b[i], wb0, xa);
                s1a[i] = _mm512_dpbusd_epi32(s1a[i], wa1, xb), s1b[i] = _mm512_dpbusd_epi32(s1b[i], wb1, xb);
            }
        }
        __m512 g1a = _mm512_load_ps((const void *)(pk0 + QR * QK)), g2a = _mm512_load_ps((const void *)(pk0 + QR * QK + 64));
        __m512 g1b = _mm512_load_ps((const void *)(pk1 + QR * QK)), g2b = _mm512_load_ps((const void *)(pk1 + QR * QK + 64));
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512 d = _mm512_set1_ps(xd[i]);
            ZKEEP(d);
            __m512 ta = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1a[i]), g2a, _mm512_mul_ps(_mm512_cvtepi32_ps(s0a[i]), g1a));
            __m512 tb = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1b[i]), g2b, _mm512_mul_ps(_mm512_cvtepi32_ps(s0b[i]), g1b));
            f0[i] = _mm512_fmadd_ps(ta, d, f0[i]);
            f1[i] = _mm512_fmadd_ps(tb, d, f1[i]);
        }
    }
    pair_store(f0, f1, h, n, y, ldy, nr1, acc);
}

ZTGT void kpair_zmm(const uint8_t *pk0, const uint8_t *pk1, const uint8_t *ar, const uint8_t *side, int n,
                    int nblocks, float *y, int ldy, int nr1, int acc, int kmode) {
    if (!kmode) {
        ktile_zmm(pk0, ar, side, ACT_TT, n, nblocks, y, ldy, QR, acc, kmode);
        ktile_zmm(pk1, ar, side, ACT_TT, n, nblocks, y + QR, ldy, nr1, acc, kmode);
        return;
    }
    kpair_half(pk0, pk1, ar, side, 0, n, nblocks, y, ldy, nr1, acc);
    if (n > 4) kpair_half(pk0, pk1, ar, side, 1, n, nblocks, y, ldy, nr1, acc);
}

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
            uint64_t sc, mn;
            kq_k4_scale_words(blk, &sc, &mn);
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
static ZTGT void krow_q4k_zmm(const MatView *w, const KRowAct *x, int nt, float *y, size_t ldy, int r0, int r1) {
    KROW_SWITCH(krow_k4(w, x, y, ldy, r0, r1, 0, NT_))
}
static ZTGT void krow_q5k_zmm(const MatView *w, const KRowAct *x, int nt, float *y, size_t ldy, int r0, int r1) {
    KROW_SWITCH(krow_k4(w, x, y, ldy, r0, r1, 1, NT_))
}
static ZTGT void krow_q6k_zmm(const MatView *w, const KRowAct *x, int nt, float *y, size_t ldy, int r0, int r1) {
    KROW_SWITCH(krow_q6k(w, x, y, ldy, r0, r1, NT_))
}

void kq_mat_zmm(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1) {
    const ActBuf *a = act;
    KRowAct *x = NULL;
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
    if (r0 < r1) kmat_tiled_pairs(w, act, t0, nt, y, ldy, r0, r1, ktile_zmm, kpair_zmm, kunpack_zmm);
}

#endif
