/* ymm int8 matrix kernels: a template included by x86_avx2.c once per instruction set, with
 *   YFN(name)  mangles a function name,
 *   YTGT       the target attribute,
 *   YVNNI      1 for vpdpbusd (AVX-VNNI), 0 for vpmaddubsw + vpmaddwd (AVX2).
 *
 * The scheme of x86_avx512.c with ymm: a group is 8 blocks, transposed in registers so that
 * vector m holds values [4m, 4m + 4) of the 8 blocks, one block per int32 lane (lane order
 * 0, 2, 4, 6, 1, 3, 5, 7 for Q4, natural for Q8, matched by the packed activations). Weights
 * are made unsigned (Q4: stored q + 8; Q8 with VNNI: q xor 0x80 = q + 128), the offset being
 * removed by starting the sums at cv = -K * sum(x_q). AVX2 Q8 uses |w| and sign(x, w)
 * instead, because (q + 128) * x pairs overflow vpmaddubsw's int16. */

#define YGB 8                 /* blocks per group */
#define YREC (YGB * (QK + 8)) /* bytes of a (group, token) activation record: 320 */
#define YTT 4                 /* tokens per tile */
#define YINL static inline __attribute__((always_inline)) YTGT

YINL float YFN(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* dst[k] += sum of v[k]'s lanes, k < 4. */
YINL void YFN(reduce4_add)(const __m256 *v, float *dst) {
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    _mm_storeu_ps(dst, _mm_add_ps(_mm_loadu_ps(dst), s));
}

#define YTRANSPOSE4(a, b, c, d, t0, t1, t2, t3)                                                \
    do {                                                                                       \
        __m256i x0_ = _mm256_unpacklo_epi32(a, b), x1_ = _mm256_unpackhi_epi32(a, b);          \
        __m256i x2_ = _mm256_unpacklo_epi32(c, d), x3_ = _mm256_unpackhi_epi32(c, d);          \
        t0 = _mm256_unpacklo_epi64(x0_, x2_);                                                  \
        t1 = _mm256_unpackhi_epi64(x0_, x2_);                                                  \
        t2 = _mm256_unpacklo_epi64(x1_, x3_);                                                  \
        t3 = _mm256_unpackhi_epi64(x1_, x3_);                                                  \
    } while (0)

/* Q4 group (8 blocks x 16 bytes): lane p = block 2 (p % 4) + p / 4. */
YINL void YFN(unpack_q4)(const uint8_t *wp, __m256i *v) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256i t0, t1, t2, t3;
    YTRANSPOSE4(_mm256_loadu_si256((const __m256i *)wp), _mm256_loadu_si256((const __m256i *)(wp + 32)),
                _mm256_loadu_si256((const __m256i *)(wp + 64)), _mm256_loadu_si256((const __m256i *)(wp + 96)),
                t0, t1, t2, t3);
    v[0] = _mm256_and_si256(t0, m4);
    v[1] = _mm256_and_si256(t1, m4);
    v[2] = _mm256_and_si256(t2, m4);
    v[3] = _mm256_and_si256(t3, m4);
    v[4] = _mm256_and_si256(_mm256_srli_epi16(t0, 4), m4);
    v[5] = _mm256_and_si256(_mm256_srli_epi16(t1, 4), m4);
    v[6] = _mm256_and_si256(_mm256_srli_epi16(t2, 4), m4);
    v[7] = _mm256_and_si256(_mm256_srli_epi16(t3, 4), m4);
}

/* Q8 group (8 blocks x 32 bytes): natural lane order, signed values. */
YINL void YFN(unpack_q8)(const uint8_t *wp, __m256i *v) {
    __m256i t[4], u[4];
    YTRANSPOSE4(_mm256_loadu_si256((const __m256i *)wp), _mm256_loadu_si256((const __m256i *)(wp + 32)),
                _mm256_loadu_si256((const __m256i *)(wp + 64)), _mm256_loadu_si256((const __m256i *)(wp + 96)),
                t[0], t[1], t[2], t[3]);
    YTRANSPOSE4(_mm256_loadu_si256((const __m256i *)(wp + 128)), _mm256_loadu_si256((const __m256i *)(wp + 160)),
                _mm256_loadu_si256((const __m256i *)(wp + 192)), _mm256_loadu_si256((const __m256i *)(wp + 224)),
                u[0], u[1], u[2], u[3]);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_permute2x128_si256(t[k], u[k], 0x20);
        v[k + 4] = _mm256_permute2x128_si256(t[k], u[k], 0x31);
    }
}

/* ys[i] += row . token t + i over groups [g0, g1), i < NT (a constant). */
YINL void YFN(tile)(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, int g0, int g1,
                    float *ys, const int q4, const int NT) {
    const __m256i didx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m256 acc[YTT];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) acc[i] = _mm256_setzero_ps();
    const uint8_t *rp = act_rec(a, g0, t);
    size_t gstep = (size_t)a->n_tok * YREC;
    for (int g = g0; g < g1; g++, rp += gstep) {
        __m256i v[8];
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(wd + g * YGB)));
        if (q4) {
            YFN(unpack_q4)(wq + (size_t)g * (YGB * QK / 2), v);
            dw = _mm256_permutevar8x32_ps(dw, didx);
        } else {
            YFN(unpack_q8)(wq + (size_t)g * (YGB * QK), v);
        }
#if YVNNI
        if (!q4)
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) v[m] = _mm256_xor_si256(v[m], _mm256_set1_epi8((char)0x80));
#else
        __m256i u[8];
        if (!q4)
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) u[m] = _mm256_abs_epi8(v[m]);
#endif
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) {
            const uint8_t *x = rp + i * YREC;
            __m256i s = _mm256_load_si256((const __m256i *)(x + YGB * QK + YGB * 4));
#if YVNNI
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++)
                s = _mm256_dpbusd_avx_epi32(s, v[m], _mm256_load_si256((const __m256i *)(x + 32 * m)));
#else
            const __m256i ones = _mm256_set1_epi16(1);
            if (q4) { /* 8 pair sums of 15 * 127 stay below 2^15 in int16 */
                __m256i p = _mm256_maddubs_epi16(v[0], _mm256_load_si256((const __m256i *)x));
#pragma GCC unroll 8
                for (int m = 1; m < 8; m++)
                    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(v[m], _mm256_load_si256((const __m256i *)(x + 32 * m))));
                s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
            } else { /* |w| * sign(x, w); one pair sum reaches 2 * 128 * 127: widen each */
#pragma GCC unroll 8
                for (int m = 0; m < 8; m++) {
                    __m256i xs = _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(x + 32 * m)), v[m]);
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(u[m], xs), ones));
                }
            }
#endif
            __m256 sc = _mm256_mul_ps(dw, _mm256_load_ps((const float *)(x + YGB * QK)));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[i]);
        }
    }
    if (NT == 4) {
        YFN(reduce4_add)(acc, ys);
    } else {
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) ys[i] += YFN(hsum)(acc[i]);
    }
}

/* Any n <= YTT tokens, as tiles of 4 and 1. */
static YTGT void YFN(tile_q4)(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, int n,
                              int g0, int g1, float *ys) {
    for (; n >= 4; n -= 4, t += 4, ys += 4) YFN(tile)(wq, wd, a, t, g0, g1, ys, 1, 4);
    for (; n >= 1; n -= 1, t += 1, ys += 1) YFN(tile)(wq, wd, a, t, g0, g1, ys, 1, 1);
}
static YTGT void YFN(tile_q8)(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, int n,
                              int g0, int g1, float *ys) {
    for (; n >= 4; n -= 4, t += 4, ys += 4) YFN(tile)(wq, wd, a, t, g0, g1, ys, 0, 4);
    for (; n >= 1; n -= 1, t += 1, ys += 1) YFN(tile)(wq, wd, a, t, g0, g1, ys, 0, 1);
}
static const TileKernel YFN(tk_q4) = {YTT, YFN(tile_q4)};
static const TileKernel YFN(tk_q8) = {YTT, YFN(tile_q8)};

static void YFN(q4)(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                    int r1) {
    tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, &YFN(tk_q4));
}
static void YFN(q8)(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                    int r1) {
    tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, &YFN(tk_q8));
}

#undef YTRANSPOSE4
#undef YINL
#undef YGB
#undef YREC
#undef YTT
