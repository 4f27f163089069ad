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
#include "kernels/x86_zmm.h"
#if defined(__x86_64__)

/* The panel (wq, wd) against NT tokens of a tile whose records are NT * 40 bytes. */
ZINL void panel_tile(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int n, int nblocks,
                     float *y, int ldy, int nr, int acc, const int q4, const int NT) {
    const __m512i m4 = _mm512_set1_epi8(15), bias = _mm512_set1_epi8((char)0x80);
    const size_t rec = (size_t)NT * (QK + 8), wstep = q4 ? QR * QK / 2 : QR * QK;
    __m512 f[ACT_TT];
    /* 3-7 rows (parallel streams) prefetch 4x further: their step is longer than one row's, yet
     * with PF_AHEAD alone the panel stream still waited on memory. Phi-3-mini Q4_0, 2 threads,
     * idle, alternated: 4 streams 68.0-68.3 -> 75.9-77.4 tok/s (one stream 19.2-19.7 either way);
     * full 8-row tiles keep PF_AHEAD: prompts (weights from L2) lost 4 % with the longer one. */
    const size_t pf = NT >= 3 && NT < ACT_TT ? 4 * PF_AHEAD : PF_AHEAD;
#pragma GCC unroll 8
    for (int i = 0; i < NT; i++) f[i] = _mm512_setzero_ps();
    for (int b = 0; b < nblocks; b++, wq += wstep, wd += QR, ar += rec) {
        {
            /* Prefetching a few KB ahead keeps more misses in flight than the out-of-order window
             * alone reaches: generation streams each weight once from memory, and small batches
             * (2-8 rows: parallel streams, short prompts) do too. Measured, Phi-3-mini q4, 2 threads:
             * 4 rows 36 -> 42 tok/s, 8 rows 50 -> 67, and pp128 (weights from L2) 75 -> 78-84. */
#pragma GCC unroll 8
            for (size_t k = 0; k < wstep; k += 64) prefetch_ahead(wq, pf + k);
            if (!(b & 1)) prefetch_ahead(wd, pf / 8);
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

/* Two panels against a full tile (TilePairFn), in two halves of 4 tokens: each activation
 * broadcast goes to a register once and feeds a vpdpbusd of each panel. The one-panel tile
 * issues a load per vpdpbusd (its embedded broadcast) and ~25 more per block, ~89 per 64
 * vpdpbusd, and the Zen 5 class host does 2 loads a cycle: 64 vpdpbusd with embedded broadcasts
 * ran 5.6-5.7 G/s per core, 4.3-4.4 with 24 more loads, the tile 4.6-4.7, vpdpbusd's peak
 * 6.6-6.9 with register operands (make bench-ports and /tmp microbenchmarks, 6 Dec 2026). Here a block of 2 panels x 4 tokens loads ~50 times per 64
 * vpdpbusd: 5.0-5.1 G/s alone. What holds it then is the float work on vpdpbusd's two pipes (a
 * multiply and an FMA per 8; without them 6.0). In matmul, 2 threads, 128 tokens, pairs against
 * single panels alternated in one process: Q4 +4.5-8 %, Q8 +9-11 % (9216 x 3072, 16384 x 3072,
 * 3072 x 8192). Each (token, row) runs the one-panel tile's operations in its order: same bits.
 * Each (panel, token) sum then ran as one chain 8 vpdpbusd deep a block, 8 chains side by side;
 * two chains of 4 (16 side by side) gave, on a Zen 5 class VM (7 Dec 2026), one thread, 64
 * tokens, 1024 x 3072 in cache, best of 200, runs alternated: Q4 630-725 -> 685-755 GOPS (six
 * runs), Q8 645-687 -> 654-719 (three); Phi-3-mini q4 pp128, 2 threads, 5 rounds alternated,
 * median 141.6 -> 154.3 tok/s (best 160.7 -> 163.1). */
ZINL void pair_half(const uint8_t *wq0, const uint16_t *wd0, const uint8_t *wq1, const uint16_t *wd1,
                    const uint8_t *ar, int h, int n, int nblocks, float *y, int ldy, int nr1, int acc,
                    const int q4) {
    const __m512i m4 = _mm512_set1_epi8(15), bias = _mm512_set1_epi8((char)0x80);
    const size_t rec = (size_t)ACT_TT * (QK + 8), wstep = q4 ? QR * QK / 2 : QR * QK;
    const int nk = q4 ? 4 : 8; /* 64-byte lines of a panel's block */
    __m512 f0[4], f1[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) f0[i] = f1[i] = _mm512_setzero_ps();
    for (int b = 0; b < nblocks; b++, wq0 += wstep, wd0 += QR, wq1 += wstep, wd1 += QR, ar += rec) {
        if (!h) { /* the first token tile of a group reads the weights from memory (panel_tile) */
#pragma GCC unroll 8
            for (size_t k = 0; k < wstep; k += 64) prefetch_ahead(wq0, PF_AHEAD + k), prefetch_ahead(wq1, PF_AHEAD + k);
            if (!(b & 1)) prefetch_ahead(wd0, PF_AHEAD / 8), prefetch_ahead(wd1, PF_AHEAD / 8);
        }
        /* Two int32 chains per (panel, token): s (starting at the record's c sum) takes the low
         * nibbles (Q8: even steps), t the high nibbles (Q8: odd steps), so each chain is 4 deep a
         * block, not 8, and 16 run side by side (make bench-ports: 8 chains 7.26 G vpdpbusd/s, 12
         * chains 7.99). Integer sums: the same bits in any order. */
        __m512i s0[4], s1[4], t0[4], t1[4];
        const int32_t *xc = (const int32_t *)(const void *)(ar + (size_t)ACT_TT * (QK + 4));
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            s0[i] = s1[i] = _mm512_set1_epi32(xc[4 * h + i]);
            t0[i] = t1[i] = _mm512_setzero_si512();
        }
#pragma GCC unroll 8
        for (int k = 0; k < nk; k++) {
            __m512i v0 = _mm512_loadu_si512((const void *)(wq0 + 64 * k));
            __m512i v1 = _mm512_loadu_si512((const void *)(wq1 + 64 * k));
            ZKEEP2(v0, v1); /* one load each (GCC folds it into both nibble ops) */
            __m512i a0, a1, b0, b1; /* a: bytes 4k.. of the tokens (Q8: 8 steps; Q4 low nibbles), b: Q4 high */
            if (q4) {
                a0 = _mm512_and_si512(v0, m4), b0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
                a1 = _mm512_and_si512(v1, m4), b1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
            } else {
                a0 = _mm512_xor_si512(v0, bias), a1 = _mm512_xor_si512(v1, bias), b0 = a0, b1 = a1; /* b unused */
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const uint8_t *x = ar + QK * (4 * h + i) + 4 * k;
                __m512i xa = _mm512_set1_epi32(*(const i32_ua *)(const void *)x);
                if (q4) {
                    __m512i xb = _mm512_set1_epi32(*(const i32_ua *)(const void *)(x + QK / 2));
                    s0[i] = _mm512_dpbusd_epi32(s0[i], a0, xa), s1[i] = _mm512_dpbusd_epi32(s1[i], a1, xa);
                    t0[i] = _mm512_dpbusd_epi32(t0[i], b0, xb), t1[i] = _mm512_dpbusd_epi32(t1[i], b1, xb);
                } else if (k & 1) {
                    t0[i] = _mm512_dpbusd_epi32(t0[i], a0, xa), t1[i] = _mm512_dpbusd_epi32(t1[i], a1, xa);
                } else {
                    s0[i] = _mm512_dpbusd_epi32(s0[i], a0, xa), s1[i] = _mm512_dpbusd_epi32(s1[i], a1, xa);
                }
            }
        }
        __m512 dw0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)wd0));
        __m512 dw1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)wd1));
        const float *xd = (const float *)(const void *)(ar + (size_t)ACT_TT * QK);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512 x = _mm512_set1_ps(xd[4 * h + i]);
            ZKEEP(x); /* loaded once for both panels */
            f0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0[i], t0[i])), _mm512_mul_ps(dw0, x), f0[i]);
            f1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s1[i], t1[i])), _mm512_mul_ps(dw1, x), f1[i]);
        }
    }
    pair_store(f0, f1, h, n, y, ldy, nr1, acc);
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
    static ZTGT void pair_##KIND(const uint8_t *wq0, const uint16_t *wd0, const uint8_t *wq1,  \
                                 const uint16_t *wd1, const uint8_t *ar, int n, int nblocks,   \
                                 float *y, int ldy, int nr1, int acc) {                        \
        pair_half(wq0, wd0, wq1, wd1, ar, 0, n, nblocks, y, ldy, nr1, acc, Q4);                \
        if (n > 4) pair_half(wq0, wd0, wq1, wd1, ar, 1, n, nblocks, y, ldy, nr1, acc, Q4);     \
    }                                                                                          \
    void KIND##_zmm(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, \
                    int r1) {                                                                  \
        tiled_matmul_pairs(w, a, t0, nt, y, ldy, r0, r1, tile_##KIND, pair_##KIND);            \
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

/* scores_f16_avx512 for four queries (AttnKernels.scores4_f16): each group of four keys is
 * converted once and used by all four; per query the same products, sums and reduction. */
static ZTGT void scores4_f16_avx512(const uint16_t *k, int n, int hd, const float *q, size_t qs, float scale,
                                   float *out, size_t os) {
    for (int j = 0; j + 4 <= n; j += 4) {
        const uint16_t *k0 = k + (size_t)j * hd;
        for (int i = 0; i < 4 * hd * 2; i += 64) prefetch_ahead(k0, ATT_PF + (size_t)i);
        __m512 a[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = a[r][2] = a[r][3] = _mm512_setzero_ps();
        for (int i = 0; i < hd; i += 16) {
            __mmask16 m = hd - i >= 16 ? 0xffff : (__mmask16)((1u << (hd - i)) - 1);
            __m512 kv[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) kv[t] = zload_h(k0 + (size_t)t * hd + i, m);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512 qv = _mm512_maskz_loadu_ps(m, q + r * qs + i);
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) a[r][t] = _mm512_fmadd_ps(kv[t], qv, a[r][t]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) store4_scaled(out + r * os + j, a[r][0], a[r][1], a[r][2], a[r][3], scale);
    }
}

/* wsum_f16_avx512 for four queries (AttnKernels.wsum4_f16): each value row is converted once,
 * 64 values (4 vectors) at a time; every output value sums its rows in the same order. */
static ZTGT void wsum4_f16_avx512(float *y, size_t ys, const float *a, size_t as, const uint16_t *v, int n, int hd) {
    for (int c = 0; c < hd; c += 64) {
        int w = hd - c < 64 ? hd - c : 64, nv = (w + 15) / 16;
        __mmask16 mt = w % 16 ? (__mmask16)((1u << (w % 16)) - 1) : 0xffff;
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++)
                acc[r][m] = m < nv ? _mm512_maskz_loadu_ps(m == nv - 1 ? mt : 0xffff, y + r * ys + c + 16 * m)
                                   : _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            const uint16_t *vj = v + (size_t)j * hd + c;
            if (c == 0)
                for (int i = 0; i < hd * 2; i += 64) prefetch_ahead(vj, ATT_PF + (size_t)i);
            __m512 vv[4];
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++) vv[m] = m < nv ? zload_h(vj + 16 * m, m == nv - 1 ? mt : 0xffff) : _mm512_setzero_ps();
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512 aj = _mm512_set1_ps(a[r * as + j]);
#pragma GCC unroll 4
                for (int m = 0; m < 4; m++)
                    if (m < nv) acc[r][m] = _mm512_fmadd_ps(aj, vv[m], acc[r][m]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++)
                if (m < nv) _mm512_mask_storeu_ps(y + r * ys + c + 16 * m, m == nv - 1 ? mt : 0xffff, acc[r][m]);
    }
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

/* The AVX-512 VNNI table, and the AMX one (kernels/x86_amx.c), which differs only in its Q8, Q4,
 * Q4_KP, Q5_KP and IQ4_XS entries and their activation tiles of 16 tokens. */
#define ZMM_TABLE(NAME, AVAILABLE, Q8, Q4, KP, TT)                                                 \
    {                                                                                              \
        .name = NAME, .available = AVAILABLE, .quant = quant_blocks_avx2,                          \
        .mat = {[TENSOR_F32] = fmat_f32_zmm, [TENSOR_F16] = fmat_f16_zmm, [TENSOR_Q8] = Q8,       \
                [TENSOR_Q4] = Q4, [TENSOR_Q4_K] = kq_mat_zmm, [TENSOR_Q5_K] = kq_mat_zmm,          \
                [TENSOR_Q6_K] = kq_mat_zmm, [TENSOR_Q4_KP] = KP, [TENSOR_Q5_KP] = KP,              \
                [TENSOR_Q6_KP] = kp_mat_zmm, [TENSOR_IQ4_XS] = KP},                                \
        .k_off = {[TENSOR_Q8] = 128, [TENSOR_Q4] = 8},                                             \
        .act_tt = {[TENSOR_Q8] = TT, [TENSOR_Q4] = TT, [TENSOR_Q4_KP] = TT, [TENSOR_Q5_KP] = TT,  \
                   [TENSOR_IQ4_XS] = TT},                                                          \
        /* kp_mat_zmm: up to ACT_TT tokens in the panel decoders, whose sums per token do not      \
         * depend on the others */                                                                 \
        .k_exact = ACT_TT, .pairs = 1, /* tiled_matmul_pairs, kmat_tiled_pairs */                  \
        .rmsnorm = rmsnorm_avx2, .softmax = softmax_avx2, .silu_mul = silu_mul_avx2,               \
        .attn = {dot_f16_avx512, axpy_f16_avx512, dot_f32_avx2, axpy_f32_avx2, to_f16_avx2,        \
                 scores_f16_avx512, wsum_f16_avx512, NULL, scores_q8_avx512, wsum_q8_avx512,       \
                 scores4_f16_avx512, wsum4_f16_avx512},                                            \
    }

const IsaKernels isa_avx512vnni = ZMM_TABLE("avx512vnni", cpu_has_avx512vnni, q8_zmm, q4_zmm, kp_mat_zmm, 0);
const IsaKernels isa_amx = ZMM_TABLE("amx", cpu_has_amx, q8_amx, q4_amx, kp_amx, AMX_TT);

#endif
