/* ymm int8 matrix kernels: a template included by x86_avx2.c once per instruction set, with
 *   YFN(name)  mangles a function name,
 *   YTGT       the target attribute,
 *   YVNNI      1 for vpdpbusd (AVX-VNNI), 0 for vpmaddubsw + vpmaddwd (AVX2).
 *
 * Work unit: one weight row against YTT tokens, over half-groups of 4 blocks. The row's quants
 * are rearranged in registers (qword unpacks) so that vector j holds values [8j, 8j + 8) of
 * each of the 4 blocks, in block order 0, 2, 1, 3 (what the unpacks produce; the activations
 * are packed to match). Every int32 lane then sums values of one block only, so a block's two
 * lanes are scaled by that block's d_w * d_x without any horizontal reduction.
 *
 * Weights are made unsigned (Q4: the stored q + 8; Q8 with VNNI: q xor 0x80 = q + 128) and the
 * offset is removed by starting the int32 sums at -K * sum(x_q) (the packed cv vectors). AVX2
 * Q8 instead uses |w| and sign(x, w), because (q + 128) * x pairs overflow vpmaddubsw's int16. */

#define YTT 4  /* tokens per tile */
#define YRB 16 /* rows per cache block: reused by all token tiles while hot */
#define YINL static inline __attribute__((always_inline)) YTGT

YINL float YFN(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Block scales of a half-group (4 f16) spread to 2 lanes each, in block order 0, 2, 1, 3. */
YINL __m256 YFN(dw_half)(const uint16_t *wd) {
    const __m256i idx = _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3);
    __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)wd));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), idx);
}

/* int32 lanes += 4-byte dot products of unsigned w and signed x. */
#if YVNNI
#define YDOT4(acc, w0, w1, w2, w3, xp)                                                        \
    do {                                                                                      \
        acc = _mm256_dpbusd_avx_epi32(acc, w0, _mm256_load_si256((const __m256i *)(xp)));      \
        acc = _mm256_dpbusd_avx_epi32(acc, w1, _mm256_load_si256((const __m256i *)(xp + 64))); \
        acc = _mm256_dpbusd_avx_epi32(acc, w2, _mm256_load_si256((const __m256i *)(xp + 128)));\
        acc = _mm256_dpbusd_avx_epi32(acc, w3, _mm256_load_si256((const __m256i *)(xp + 192)));\
    } while (0)
#else
/* Q4 only (w <= 15): four vpmaddubsw pair sums stay below 4 * 2 * 15 * 127 in int16. */
#define YDOT4(acc, w0, w1, w2, w3, xp)                                                        \
    do {                                                                                      \
        __m256i p01_ = _mm256_add_epi16(                                                      \
            _mm256_maddubs_epi16(w0, _mm256_load_si256((const __m256i *)(xp))),               \
            _mm256_maddubs_epi16(w1, _mm256_load_si256((const __m256i *)(xp + 64))));         \
        __m256i p23_ = _mm256_add_epi16(                                                      \
            _mm256_maddubs_epi16(w2, _mm256_load_si256((const __m256i *)(xp + 128))),         \
            _mm256_maddubs_epi16(w3, _mm256_load_si256((const __m256i *)(xp + 192))));        \
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(p01_, p23_),           \
                                                      _mm256_set1_epi16(1)));                 \
    } while (0)
#endif

/* out[i] = sum over full groups of row (wq, wd) . token t + i, i < NT (a constant). */
YINL void YFN(q4_tile)(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t,
                       float *out, const int NT) {
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[YTT];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) acc[i] = _mm256_setzero_ps();
    for (int g = 0; g < a->ng; g++) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const uint8_t *wp = wq + g * 128 + h * 64;
            __m256i P = _mm256_loadu_si256((const __m256i *)wp);
            __m256i Q = _mm256_loadu_si256((const __m256i *)(wp + 32));
            __m256i P1 = _mm256_unpacklo_epi64(P, Q), P2 = _mm256_unpackhi_epi64(P, Q);
            __m256i w0 = _mm256_and_si256(P1, m4), w1 = _mm256_and_si256(P2, m4);
            __m256i w2 = _mm256_and_si256(_mm256_srli_epi16(P1, 4), m4);
            __m256i w3 = _mm256_and_si256(_mm256_srli_epi16(P2, 4), m4);
            __m256 dw = YFN(dw_half)(wd + g * 8 + h * 4);
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                const int8_t *xp = act_q(a, t + i) + g * GROUP_BYTES + h * 32;
                __m256i s = _mm256_load_si256((const __m256i *)(act_cv(a, t + i) + g * 16 + h * 8));
                YDOT4(s, w0, w1, w2, w3, xp);
                __m256 sc = _mm256_mul_ps(dw, _mm256_load_ps(act_dxv(a, t + i) + g * 16 + h * 8));
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) out[i] = YFN(hsum)(acc[i]);
}

YINL void YFN(q8_tile)(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t,
                       float *out, const int NT) {
    __m256 acc[YTT];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) acc[i] = _mm256_setzero_ps();
    for (int g = 0; g < a->ng; g++) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const uint8_t *wp = wq + g * 256 + h * 128;
            __m256i L0 = _mm256_loadu_si256((const __m256i *)wp);
            __m256i L1 = _mm256_loadu_si256((const __m256i *)(wp + 32));
            __m256i L2 = _mm256_loadu_si256((const __m256i *)(wp + 64));
            __m256i L3 = _mm256_loadu_si256((const __m256i *)(wp + 96));
            __m256i A = _mm256_unpacklo_epi64(L0, L2), B = _mm256_unpacklo_epi64(L1, L3);
            __m256i C = _mm256_unpackhi_epi64(L0, L2), D = _mm256_unpackhi_epi64(L1, L3);
            __m256i w0 = _mm256_permute2x128_si256(A, B, 0x20);
            __m256i w1 = _mm256_permute2x128_si256(C, D, 0x20);
            __m256i w2 = _mm256_permute2x128_si256(A, B, 0x31);
            __m256i w3 = _mm256_permute2x128_si256(C, D, 0x31);
            __m256 dw = YFN(dw_half)(wd + g * 8 + h * 4);
#if YVNNI
            const __m256i bias = _mm256_set1_epi8((char)0x80);
            w0 = _mm256_xor_si256(w0, bias);
            w1 = _mm256_xor_si256(w1, bias);
            w2 = _mm256_xor_si256(w2, bias);
            w3 = _mm256_xor_si256(w3, bias);
#else
            __m256i u0 = _mm256_abs_epi8(w0), u1 = _mm256_abs_epi8(w1);
            __m256i u2 = _mm256_abs_epi8(w2), u3 = _mm256_abs_epi8(w3);
#endif
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                const int8_t *xp = act_q(a, t + i) + g * GROUP_BYTES + h * 32;
#if YVNNI
                __m256i s = _mm256_load_si256((const __m256i *)(act_cv(a, t + i) + g * 16 + h * 8));
                YDOT4(s, w0, w1, w2, w3, xp);
#else
                /* |w| * sign(x, w) = w * x; a pair sum is at most 2 * 128 * 127 < 2^15. */
                const __m256i ones = _mm256_set1_epi16(1);
                __m256i x0 = _mm256_load_si256((const __m256i *)xp);
                __m256i x1 = _mm256_load_si256((const __m256i *)(xp + 64));
                __m256i x2 = _mm256_load_si256((const __m256i *)(xp + 128));
                __m256i x3 = _mm256_load_si256((const __m256i *)(xp + 192));
                __m256i s0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, _mm256_sign_epi8(x0, w0)), ones);
                __m256i s1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, _mm256_sign_epi8(x1, w1)), ones);
                __m256i s2 = _mm256_madd_epi16(_mm256_maddubs_epi16(u2, _mm256_sign_epi8(x2, w2)), ones);
                __m256i s3 = _mm256_madd_epi16(_mm256_maddubs_epi16(u3, _mm256_sign_epi8(x3, w3)), ones);
                __m256i s = _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3));
#endif
                __m256 sc = _mm256_mul_ps(dw, _mm256_load_ps(act_dxv(a, t + i) + g * 16 + h * 8));
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) out[i] = YFN(hsum)(acc[i]);
}

/* Drivers: row blocks of YRB rows, each swept by all token tiles (so the block's weights are
 * read from memory once and from cache after); tail blocks (cols % 256) go through the scalar
 * integer helper. */
#define YDRIVER(KIND)                                                                          \
    static YTGT void YFN(KIND)(const MatView *w, const ActBuf *a, int t0, int nt, float *y,   \
                               int ldy, int r0, int r1) {                                      \
        size_t rbytes = (size_t)type_row_bytes(w->type, (uint64_t)w->cols);                   \
        int nb = w->cols / QK;                                                                \
        for (int rb = r0; rb < r1; rb += YRB) {                                                \
            int re = rb + YRB < r1 ? rb + YRB : r1;                                           \
            for (int t = t0; t < t0 + nt;) {                                                   \
                int n = t0 + nt - t;                                                          \
                n = n > YTT ? YTT : n;                                                        \
                for (int r = rb; r < re; r++) {                                                \
                    const uint8_t *wq = w->q + (size_t)r * rbytes;                            \
                    const uint16_t *wd = w->d + (size_t)r * nb;                               \
                    float out[YTT];                                                           \
                    if (n == YTT) YFN(KIND##_tile)(wq, wd, a, t, out, YTT);                   \
                    else                                                                      \
                        for (int i = 0; i < n; i++) YFN(KIND##_tile)(wq, wd, a, t + i, out + i, 1); \
                    for (int i = 0; i < n; i++)                                               \
                        y[(size_t)(t + i) * ldy + r] =                                        \
                            out[i] + (a->ntail ? tail_dot(w, a, t + i, r) : 0.0f);            \
                }                                                                             \
                t += n;                                                                       \
            }                                                                                 \
        }                                                                                     \
    }
YDRIVER(q4)
YDRIVER(q8)

#undef YDRIVER
#undef YDOT4
#undef YINL
#undef YTT
#undef YRB
