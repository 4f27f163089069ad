/* ymm int8 matrix kernels: a template included by x86_avx2.c once per instruction set, with
 *   YFN(name)  mangles a function name,
 *   YTGT       the target attribute,
 *   YVNNI      1 for vpdpbusd (AVX-VNNI), 0 for vpmaddubsw + vpmaddwd (AVX2).
 *
 * The panel scheme of x86_avx512.c with 8-lane vectors: a lane per row, a 16-row panel as two
 * halves (the low and high 32 bytes of each 64-byte chunk), and each 4 activation bytes
 * broadcast serve both halves. 16 registers cannot hold a block's weights (16 vectors) and 8
 * tokens' sums, so a tile runs each block for groups of at most 4 tokens (8 int32 sums), each
 * group reloading the block's weights from L1. The float accumulators stay in registers for
 * 1 or 2 tokens and go to a stack array for more (a load and a store per block and half).
 * VNNI: weights unsigned (Q4 as stored, q + 8; Q8 xor 0x80, q + 128), sums started from c.
 * AVX2: vpmaddubsw (u8 x s8 pairs to int16), then vpmaddwd by 1 (int32). Q4: a block adds
 * 16 products of |.| <= 15 * 127 per int16 lane (< 2^15), so it widens once per block.
 * Q8: |w| x sign(x, w), whose pair sums (<= 2 * 128 * 127) fit int16 but two of them do not,
 * so every step widens; no offset (k_q8 = 0). */

#define YINL static inline __attribute__((always_inline)) YTGT

YINL __m256i YFN(bcast4)(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Step j (0..7) of a block multiplies its elements [4j, 4j + 4) by those 4 activation bytes:
 * weights from chunk j (Q8; q4 2: Q4 unpacked to bytes) or from chunk j % 4, low nibbles for
 * j < 4, high ones after (q4 1: Q4 as stored), half h, as the instructions take them (AVX2 Q8:
 * signed). */
YINL __m256i YFN(wvec)(const uint8_t *wq, int j, int h, const int q4) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(wq + 64 * (q4 == 1 ? j & 3 : j) + 32 * h));
    if (q4 == 2) return v;
    if (q4) return _mm256_and_si256(j >= 4 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(15));
    return YVNNI ? _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)) : v;
}

/* acc + weights w . 4 activation bytes x, per lane (AVX2 Q4: int16 lanes, widened later). */
YINL __m256i YFN(dot)(__m256i acc, __m256i w, __m256i x, const int q4) {
#if YVNNI
    (void)q4;
    return _mm256_dpbusd_avx_epi32(acc, w, x);
#else
    __m256i r;
    if (q4) {
        r = _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, x));
    } else {
        __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
        r = _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
    }
    __asm__("" : "+x"(r)); /* keeps the chain in order: GCC would add pairs of products
                              * first, holding one per sum, and spill */
    return r;
#endif
}

#define YS(i, h, e) s[G == 1 ? (h) + 2 * (e) : 2 * (i) + (h)]
/* Steps m and m + 4 (Q4: both nibbles of chunk m) for tokens i < G. One token gives each
 * half two chains (e = 0, 1) so that consecutive steps are independent. */
YINL void YFN(pair)(const uint8_t *wq, const uint8_t *xq, __m256i *s, int m, const int q4, const int G) {
#pragma GCC unroll 2
    for (int e = 0; e < 2; e++) {
        int j = m + 4 * e;
        __m256i w0 = YFN(wvec)(wq, j, 0, q4), w1 = YFN(wvec)(wq, j, 1, q4);
#pragma GCC unroll 4
        for (int i = 0; i < G; i++) {
            __m256i x = YFN(bcast4)(xq + QK * i + 4 * j);
            YS(i, 0, e) = YFN(dot)(YS(i, 0, e), w0, x, q4);
            YS(i, 1, e) = YFN(dot)(YS(i, 1, e), w1, x, q4);
        }
    }
}
#undef YS

/* s[2i + h] = int32 sums of half h of the block with token i < G (xq its quants, xc its c). */
YINL void YFN(sums)(const uint8_t *wq, const uint8_t *xq, const int32_t *xc, __m256i *s,
                    const int q4, const int G) {
    const int w16 = !YVNNI && q4; /* int16 sums from 0, c added when widened */
#pragma GCC unroll 4
    for (int i = 0; i < G; i++)
        s[2 * i] = s[2 * i + 1] = w16 ? _mm256_setzero_si256() : _mm256_set1_epi32(xc[i]);
    if (G == 1) s[2] = s[3] = _mm256_setzero_si256();
    /* Unrolled for 3-4 tokens, GCC hoists and spills; rolled, 1-2 tokens lose the overlap
     * between steps. */
    if (G <= 2) {
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++) YFN(pair)(wq, xq, s, m, q4, G);
    } else {
#pragma GCC unroll 1
        for (int m = 0; m < 4; m++) YFN(pair)(wq, xq, s, m, q4, G);
    }
    if (G == 1) {
        s[0] = w16 ? _mm256_add_epi16(s[0], s[2]) : _mm256_add_epi32(s[0], s[2]);
        s[1] = w16 ? _mm256_add_epi16(s[1], s[3]) : _mm256_add_epi32(s[1], s[3]);
    }
    if (w16)
#pragma GCC unroll 8
        for (int k = 0; k < 2 * G; k++)
            s[k] = _mm256_add_epi32(_mm256_madd_epi16(s[k], _mm256_set1_epi16(1)),
                                    _mm256_set1_epi32(xc[k / 2]));
}

/* f[2i + h] += float(s[2i + h]) * d_w * d_x: the block's contribution, lane by lane. */
YINL void YFN(scale)(const __m256i *s, const uint16_t *wd, const float *xd, __m256 *f, const int G) {
    __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)wd));
    __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(wd + 8)));
#pragma GCC unroll 4
    for (int i = 0; i < G; i++) {
        __m256 dx = _mm256_set1_ps(xd[i]);
        f[2 * i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[2 * i]), _mm256_mul_ps(d0, dx), f[2 * i]);
        f[2 * i + 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[2 * i + 1]), _mm256_mul_ps(d1, dx), f[2 * i + 1]);
    }
}

/* Group G of a block at token i0: sums, then scaled into f (the tile's accumulators). */
YINL void YFN(group)(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt, int i0,
                     __m256 *f, const int q4, const int G) {
    __m256i s[8];
    YFN(sums)(wq, ar + QK * i0, (const int32_t *)(const void *)(ar + (size_t)tt * (QK + 4)) + i0, s, q4, G);
    YFN(scale)(s, wd, (const float *)(const void *)(ar + (size_t)tt * QK) + i0, f + 2 * i0, G);
}

/* The panel against tokens i < n of a tile of tt: G = n (1 or 2, accumulators in registers)
 * or 0 (any n, groups of 4 and a remainder, accumulators in memory). */
YINL void YFN(panel_tile)(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt, int n,
                          int nblocks, float *y, int ldy, int nr, int acc, const int q4, const int G) {
    const size_t rec = (size_t)tt * (QK + 8), wstep = q4 == 1 ? QR * QK / 2 : QR * QK;
    __m256 f[2 * ACT_TT];
    int nf = G ? 2 * G : 2 * n;
    for (int k = 0; k < nf; k++) f[k] = _mm256_setzero_ps();
    for (int b = 0; b < nblocks; b++, wq += wstep, wd += QR, ar += rec) {
        /* One token streams the weights from memory, faster when prefetched 8 KB ahead (Q4 on
         * one core: 25% over the hardware prefetchers alone); addresses past the end do not
         * fault. */
        if (G == 1)
            for (size_t l = 0; l < wstep; l += 64)
                _mm_prefetch((const char *)((uintptr_t)wq + 8192 + l), _MM_HINT_T0);
        if (G) {
            YFN(group)(wq, wd, ar, tt, 0, f, q4, G);
            continue;
        }
        int i0 = 0;
        for (; i0 + 4 <= n; i0 += 4) YFN(group)(wq, wd, ar, tt, i0, f, q4, 4);
        switch (n - i0) {
        case 3: YFN(group)(wq, wd, ar, tt, i0, f, q4, 3); break;
        case 2: YFN(group)(wq, wd, ar, tt, i0, f, q4, 2); break;
        case 1: YFN(group)(wq, wd, ar, tt, i0, f, q4, 1); break;
        default: break;
        }
    }
    /* Lanes l < nr only: masked loads and stores for a partial panel. */
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), iota);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), iota);
    const int nt = G ? G : n;
#pragma GCC unroll 4
    for (int i = 0; i < nt; i++) {
        float *yi = y + (size_t)i * ldy;
        __m256 v0 = f[2 * i], v1 = f[2 * i + 1];
        if (nr == QR) {
            if (acc) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(yi));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(yi + 8));
            }
            _mm256_storeu_ps(yi, v0);
            _mm256_storeu_ps(yi + 8, v1);
        } else {
            if (acc) {
                v0 = _mm256_add_ps(v0, _mm256_maskload_ps(yi, m0));
                v1 = _mm256_add_ps(v1, _mm256_maskload_ps(yi + 8, m1));
            }
            _mm256_maskstore_ps(yi, m0, v0);
            _mm256_maskstore_ps(yi + 8, m1, v1);
        }
    }
}

#define YTILE(KIND, Q4)                                                                        \
    static YTGT void YFN(tile_##KIND)(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, \
                                      int tt, int n, int nblocks, float *y, int ldy, int nr,  \
                                      int acc) {                                              \
        if (n == 1) YFN(panel_tile)(wq, wd, ar, tt, n, nblocks, y, ldy, nr, acc, Q4, 1);      \
        else if (n == 2) YFN(panel_tile)(wq, wd, ar, tt, n, nblocks, y, ldy, nr, acc, Q4, 2); \
        else YFN(panel_tile)(wq, wd, ar, tt, n, nblocks, y, ldy, nr, acc, Q4, 0);             \
    }
YTILE(q4, 1)
YTILE(q8, 0)

static void YFN(q8)(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, YFN(tile_q8));
}
#if YVNNI
static void YFN(q4)(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, YFN(tile_q4));
}
#else
/* AVX2 prompts: the nibbles split once per group of panels into bytes laid out as Q8's panels (step
 * j: chunk j), which every tile then reads. Split in the tile, they cost an and (and a shift) per
 * weight vector and group of 4 tokens, about a sixth of the tile's integer operations beside its
 * 16 vpmaddubsw and 16 vpaddw: 128-token matmul on one Zen 3 core 177-179 -> 199-200 GOPS. The
 * same integer sums, so the same bits. */
YTILE(q4u, 2)
static YTGT void YFN(unpack_q4)(const uint8_t *wq, int n, uint8_t *out) {
    const __m256i m = _mm256_set1_epi8(15);
    for (int b = 0; b < n; b++, wq += QR * QK / 2, out += QR * QK)
        for (int c = 0; c < 4; c++)
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(wq + 64 * c + 32 * h));
                _mm256_store_si256((__m256i *)(void *)(out + 64 * c + 32 * h), _mm256_and_si256(v, m));
                _mm256_store_si256((__m256i *)(void *)(out + 64 * (c + 4) + 32 * h), _mm256_and_si256(_mm256_srli_epi16(v, 4), m));
            }
}
static void YFN(q4)(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    tiled_matmul_unpacked(w, a, t0, nt, y, ldy, r0, r1, YFN(tile_q4), YFN(tile_q4u), YFN(unpack_q4), QR * QK);
}
#endif

#undef YTILE
#undef YINL
