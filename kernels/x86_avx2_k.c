/* x86-64 ymm kernels of the super-block types (kernels/kquant.h): ggml's K-quant rows for
 * generation, the K panel types (Q4_KP, Q5_KP, Q6_KP, IQ4_XS) decoded straight from their panels
 * for 1-8 tokens (4 per pass, Q6_KP 2), and the tile of unpacked panel records for prompts (AVX2 + FMA + F16C; the
 * AVX-VNNI table uses the same). kq_avx2 is the MatFn the tables of x86_avx2.c name. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/kquant.h"
#include "kernels/x86_ymm.h"

/* ---- super-block types (kernels/kquant.h): unpacked panels, two ymm halves of 8 rows ---- */

/* The tile (KTileFn) G = 1 or 2 tokens at a time (i, i + 1): each weight vector loaded once for
 * both (one token each: 117 GOPS for a 128-token Q4_KP matmul on one Zen 3 core; pairs: 138;
 * threes and fours no better, the multiply ports bind), and each step takes both 8-row halves of
 * the panel line, so each activation broadcast serves 16 rows: with the halves in turn GCC kept
 * a block's 16 broadcasts live across them and spilled (Q4_KP 139 -> 167 GOPS, Q5_KP 136 -> 161,
 * Q6_KP 116 -> 136, IQ4_XS 99 -> 103). A token's bits do not depend on G. Per 16 bytes q of a
 * block of 32:
 *   KT_MIN15 (Q4_K, Q4_KP: KMODE_MIN with u <= 15): both 16-byte halves' eight steps in one int16
 *     chain (<= 16 * 15 * 128 = 30720), one vpmaddwd per half-row and token;
 *   KMODE_MIN (Q5_K, Q5_KP: u <= 31): four steps per chain (<= 8 * 31 * 128 = 31744), one
 *     vpmaddwd each, added; the offset m * sum q from the side record, in float;
 *   KMODE_OFF32 (Q6_K, Q6_KP: u <= 63): two steps per int16 pair sum (<= 32004), from the side
 *     record's -32 sum q;
 *   KMODE_OFF128 (IQ4_XS): u = level + 128 up to 241 would overflow the pairs, so the signed
 *     level u ^ 0x80 through its magnitude and vpsignb, each step widened, from 0; its one scale
 *     per 32 (f1 = f2) lets both 16s share one int32 sum and one float step (IQ4_XS 103 -> 107).
 * The int32 sums are exact integers whatever their grouping (KT_MIN15's one chain or KMODE_MIN's
 * two give the same), so the float steps after them fix the bits. */
#define KT_MIN15 (-1)
/* Step k's 4 activation bytes of tokens i .. i + G - 1 (x: token i's block) in every lane. */
INL void kt_bcast_y(const uint8_t *x, int k, const int G, __m256i xb[2]) {
#pragma GCC unroll 2
    for (int t = 0; t < G; t++) {
        int32_t v;
        memcpy(&v, x + QK * t + 16 * (k >> 2) + 4 * (k & 3), 4);
        xb[t] = _mm256_set1_epi32(v);
    }
}
INL void ktileg_y(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int i, int nblocks,
                  float *y, int ldy, int nr, int acc, const int G, const int kmode) {
    const size_t rec = (size_t)tt * (QK + 8);
    const __m256i one = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    __m256 f[2][2];
#pragma GCC unroll 2
    for (int t = 0; t < G; t++) f[t][0] = f[t][1] = _mm256_setzero_ps();
    const uint8_t *p = pk, *a = ar, *sd = side;
    for (int b = 0; b < nblocks; b++, p += KPANEL_BYTES, a += rec, sd += (size_t)tt * 8) {
        const uint8_t *x = a + QK * i;
        const float *dx = (const float *)(const void *)(a + (size_t)tt * QK) + i;
        if (kmode == KT_MIN15 || kmode == KMODE_MIN) { /* both halves per step: each broadcast serves 16 rows */
            __m256i pr[2][2], sq[2][2]; /* [t][h]: int16 chains; KMODE_MIN: their int32 sums */
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                if (k == 0 || (kmode == KMODE_MIN && k == 4))
#pragma GCC unroll 2
                    for (int t = 0; t < G; t++) pr[t][0] = pr[t][1] = _mm256_setzero_si256();
                __m256i xb[2];
                kt_bcast_y(x, k, G, xb);
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    __m256i wv = _mm256_load_si256((const __m256i *)(const void *)(p + 32 * h + 256 * (k >> 2) + 64 * (k & 3)));
#pragma GCC unroll 2
                    for (int t = 0; t < G; t++) {
                        pr[t][h] = _mm256_add_epi16(pr[t][h], _mm256_maddubs_epi16(wv, xb[t]));
                        __asm__("" : "+x"(pr[t][h]));
                    }
                }
                if (kmode == KMODE_MIN && (k & 3) == 3) /* u <= 31: four steps per chain */
#pragma GCC unroll 2
                    for (int t = 0; t < G; t++)
#pragma GCC unroll 2
                        for (int h = 0; h < 2; h++) {
                            __m256i d = _mm256_madd_epi16(pr[t][h], one);
                            sq[t][h] = k == 3 ? d : _mm256_add_epi32(sq[t][h], d);
                        }
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256 f1 = _mm256_load_ps((const float *)(const void *)(p + QR * QK) + 8 * h);
                __m256 f2 = _mm256_load_ps((const float *)(const void *)(p + QR * QK + 64) + 8 * h);
#pragma GCC unroll 2
                for (int t = 0; t < G; t++) {
                    float xs;
                    memcpy(&xs, sd + 8 * (i + t), 4);
                    __m256 u = _mm256_cvtepi32_ps(kmode == KT_MIN15 ? _mm256_madd_epi16(pr[t][h], one) : sq[t][h]);
                    f[t][h] = _mm256_fmadd_ps(u, _mm256_mul_ps(f1, _mm256_set1_ps(dx[t])), f[t][h]);
                    f[t][h] = _mm256_fnmadd_ps(f2, _mm256_set1_ps(xs), f[t][h]);
                }
            }
            continue;
        }
        if (kmode == KMODE_OFF128) { /* one scale per 32 (f1 = f2): both 16s in one int32 sum */
            __m256i sq[2][2];
#pragma GCC unroll 2
            for (int t = 0; t < G; t++) sq[t][0] = sq[t][1] = _mm256_setzero_si256();
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m256i xb[2];
                kt_bcast_y(x, k, G, xb);
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    __m256i wv = _mm256_xor_si256(_mm256_load_si256((const __m256i *)(const void *)(p + 32 * h + 256 * (k >> 2) + 64 * (k & 3))), flip);
                    __m256i g = _mm256_abs_epi8(wv);
#pragma GCC unroll 2
                    for (int t = 0; t < G; t++) {
                        sq[t][h] = _mm256_add_epi32(sq[t][h], _mm256_madd_epi16(_mm256_maddubs_epi16(g, _mm256_sign_epi8(xb[t], wv)), one));
                        __asm__("" : "+x"(sq[t][h]));
                    }
                }
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256 fq = _mm256_load_ps((const float *)(const void *)(p + QR * QK) + 8 * h);
#pragma GCC unroll 2
                for (int t = 0; t < G; t++) f[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sq[t][h]), _mm256_mul_ps(fq, _mm256_set1_ps(dx[t])), f[t][h]);
            }
            continue;
        }
        if (kmode == KMODE_OFF32) { /* both halves per step, as above */
            __m256 m0[2][2]; /* [t][h]: the first 16 bytes' sums times their scales */
#pragma GCC unroll 2
            for (int q = 0; q < 2; q++) {
                __m256i sq[2][2];
#pragma GCC unroll 2
                for (int t = 0; t < G; t++) {
                    int32_t c;
                    memcpy(&c, sd + 8 * (i + t) + 4 * q, 4);
                    sq[t][0] = sq[t][1] = _mm256_set1_epi32(c);
                }
#pragma GCC unroll 2
                for (int k = 0; k < 4; k += 2) {
                    __m256i x0[2], x1[2];
#pragma GCC unroll 2
                    for (int t = 0; t < G; t++) {
                        int32_t v0, v1;
                        memcpy(&v0, x + QK * t + 16 * q + 4 * k, 4);
                        memcpy(&v1, x + QK * t + 16 * q + 4 * k + 4, 4);
                        x0[t] = _mm256_set1_epi32(v0), x1[t] = _mm256_set1_epi32(v1);
                    }
#pragma GCC unroll 2
                    for (int h = 0; h < 2; h++) {
                        const uint8_t *wq = p + 32 * h + 256 * q + 64 * k;
                        __m256i w0 = _mm256_load_si256((const __m256i *)(const void *)wq);
                        __m256i w1 = _mm256_load_si256((const __m256i *)(const void *)(wq + 64));
#pragma GCC unroll 2
                        for (int t = 0; t < G; t++) {
                            __m256i d = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(w0, x0[t]), _mm256_maddubs_epi16(w1, x1[t])), one);
                            sq[t][h] = _mm256_add_epi32(sq[t][h], d);
                            __asm__("" : "+x"(sq[t][h]));
                        }
                    }
                }
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    /* the scales of bytes 0-15 (q 0) and 16-31 (q 1) */
                    __m256 fq = _mm256_load_ps((const float *)(const void *)(p + QR * QK + 64 * q) + 8 * h);
#pragma GCC unroll 2
                    for (int t = 0; t < G; t++) {
                        if (q == 0) {
                            m0[t][h] = _mm256_mul_ps(_mm256_cvtepi32_ps(sq[t][h]), fq);
                        } else {
                            __m256 u = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sq[t][h]), fq, m0[t][h]);
                            f[t][h] = _mm256_fmadd_ps(u, _mm256_set1_ps(dx[t]), f[t][h]);
                        }
                    }
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < G; t++) {
        float out[16];
        _mm256_storeu_ps(out, f[t][0]);
        _mm256_storeu_ps(out + 8, f[t][1]);
        float *yi = y + (size_t)(i + t) * ldy;
        for (int l = 0; l < nr; l++) yi[l] = acc ? yi[l] + out[l] : out[l];
    }
}

/* One copy per kmode and G: with kmode a variable, GCC kept the accumulators on the stack (a store
 * and a reload in every chain), 85 GOPS on one Zen 3 core for 128 tokens. */
#define KTILE_RUN(KMODE)                                                                         \
    do {                                                                                         \
        int i = 0;                                                                               \
        for (; i + 2 <= n; i += 2) ktileg_y(pk, ar, side, tt, i, nblocks, y, ldy, nr, acc, 2, KMODE); \
        if (i < n) ktileg_y(pk, ar, side, tt, i, nblocks, y, ldy, nr, acc, 1, KMODE);           \
    } while (0)
static TGT void ktile_avx2(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                           int nblocks, float *y, int ldy, int nr, int acc, int kmode) {
    if (kmode == KMODE_MIN) KTILE_RUN(KMODE_MIN);
    else if (kmode == KMODE_OFF32) KTILE_RUN(KMODE_OFF32);
    else KTILE_RUN(KMODE_OFF128);
}
/* Q4_K and Q4_KP (u <= 15; kmat passes their kmode, KMODE_MIN) */
static TGT void ktile_q4_avx2(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                              int nblocks, float *y, int ldy, int nr, int acc, int kmode) {
    (void)kmode;
    KTILE_RUN(KT_MIN15);
}
#undef KTILE_RUN

/* Generation for Q4_K, Q5_K and Q6_K row by row on ggml's bytes (x86_avx512_k.c's krow_* with 8-lane
 * vectors): a sub-block's 32 unsigned quants against the token's, vpmaddubsw then vpmaddwd by 1
 * (pair sums <= 2 * 63 * 128 < 2^15), sums scaled per lane by d sc dx in float. */
static TGT void krow_avx2(const MatView *w, const KRowAct *x, float *y, int r0, int r1) {
    int nsb = w->cols / QK_K, q6 = w->type == TENSOR_Q6_K, q5 = w->type == TENSOR_Q5_K;
    const __m256i m10 = _mm256_set1_epi8(0x10);
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30), one = _mm256_set1_epi16(1);
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = matview_row(w, r);
        __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const KRowAct *xs = x + sb;
            if (q6) {
                const uint8_t *blk = row + (size_t)sb * 210;
                __m256 d = _mm256_set1_ps(_cvtsh_ss((unsigned short)(blk[208] | blk[209] << 8)));
                __m256 S[2];
                for (int i = 0; i < 2; i++)
                    S[i] = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(blk + 192 + 8 * i))))),
                                         _mm256_loadu_ps(xs->dx + 8 * i));
                for (int h = 0; h < 2; h++) {
                    __m256i H = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 128 + 32 * h));
                    for (int k = 0; k < 2; k++) {
                        __m256i L = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 64 * h + 32 * k));
                        __m256i t = _mm256_srli_epi16(H, 2 * k);
                        /* sub-block 4h + k: low nibbles, bits 2k, 2k + 1 of qh; 4h + 2 + k: high, bits 4 + 2k.. */
                        __m256i u[2] = {_mm256_or_si256(_mm256_and_si256(L, m4), _mm256_and_si256(_mm256_slli_epi16(t, 4), m30)),
                                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L, 4), m4), _mm256_and_si256(t, m30))};
                        for (int e = 0; e < 2; e++) {
                            int j = 4 * h + 2 * e + k;
                            __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(u[e], _mm256_load_si256((const __m256i *)(const void *)(xs->q + 32 * j))), one);
                            s = _mm256_add_epi32(s, _mm256_load_si256((const __m256i *)(const void *)(xs->c + 8 * j)));
                            __m256i idx = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
                            idx = _mm256_add_epi32(idx, _mm256_set1_epi32((2 * j) & 7));
                            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_permutevar8x32_ps(S[j / 4], idx), acc);
                        }
                    }
                }
                continue;
            }
            const uint8_t *blk = row + (size_t)sb * (q5 ? 176 : 144);
            __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(const void *)(blk + 16)) : m4;
            uint64_t sc, mn;
            kq_k4_scale_words(blk, &sc, &mn);
            __m128i sm = _mm_set_epi64x((long long)mn, (long long)sc);
            __m256 d = _mm256_set1_ps(_cvtsh_ss((unsigned short)(blk[0] | blk[1] << 8)));
            __m256 dm = _mm256_set1_ps(_cvtsh_ss((unsigned short)(blk[2] | blk[3] << 8)));
            __m256 S = _mm256_mul_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm))), _mm256_load_ps(xs->dx));
            __m256 M = _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
            accm = _mm256_fmadd_ps(M, _mm256_load_ps(xs->dxh), accm);
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(blk + (q5 ? 48 : 16) + 32 * c));
                __m256i u[2] = {_mm256_and_si256(v, m4), _mm256_and_si256(_mm256_srli_epi16(v, 4), m4)};
                for (int e = 0; e < 2; e++) {
                    int j = 2 * c + e;
                    if (q5) /* Q5_K: bit j of qh to bit 4 */
                        u[e] = _mm256_or_si256(u[e], _mm256_and_si256(j <= 4 ? _mm256_slli_epi16(qh, 4 - j) : _mm256_srli_epi16(qh, j - 4), m10));
                    __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(u[e], _mm256_load_si256((const __m256i *)(const void *)(xs->q + 32 * j))), one);
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_permutevar8x32_ps(S, _mm256_set1_epi32(j)), acc);
                }
            }
        }
        y[r] = hsum8(acc) - hsum8(accm);
    }
}

/* Q4_KP / Q5_KP panels into panel records (kernels/kquant.h), as x86_avx512_kp.c's kpunpack with a
 * 64-byte line in two ymm: the portable unpacking is scalar here (GCC -O2 leaves its word loop
 * alone), which made generation of a Q4_K_M file 5x slower than these masks and shifts. */
static inline __attribute__((always_inline)) TGT __m256 kp_half_ps(__m256i v) { /* low 16 bits of 8 lanes as f16 */
    return _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}
static inline __attribute__((always_inline)) TGT __m256i kp_bit4_y(__m256i v, int j) {
    return j <= 4 ? _mm256_slli_epi32(v, 4 - j) : _mm256_srli_epi32(v, j - 4);
}
/* The 6-bit scales and mins of 8 rows (half of a 16-row panel line, at s) of a Q4_KP / Q5_KP
 * super-block, from its lines 1-3 (x86_avx512_kp.c's kp_scales; kpunpack_y). */
static inline __attribute__((always_inline)) TGT void kp_scales_y(const uint8_t *s, __m256i sc[2], __m256i mn[2]) {
    const __m256i m4 = _mm256_set1_epi8(15), m6 = _mm256_set1_epi8(63), m30 = _mm256_set1_epi8(0x30);
    __m256i L1 = _mm256_loadu_si256((const __m256i *)(const void *)(s + 64));
    __m256i L2 = _mm256_loadu_si256((const __m256i *)(const void *)(s + 128));
    __m256i L3 = _mm256_loadu_si256((const __m256i *)(const void *)(s + 192));
    sc[0] = _mm256_and_si256(L1, m6);
    mn[0] = _mm256_and_si256(L2, m6);
    sc[1] = _mm256_or_si256(_mm256_and_si256(L3, m4), _mm256_and_si256(_mm256_srli_epi16(L1, 2), m30));
    mn[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L3, 4), m4), _mm256_and_si256(_mm256_srli_epi16(L2, 2), m30));
}
static inline __attribute__((always_inline)) TGT void kpunpack_y(const MatView *w, int p, int sb0, int n, uint8_t *out, const int q5) {
    const __m256i m4 = _mm256_set1_epi8(15);
    const __m256i m10 = _mm256_set1_epi8(0x10), mff = _mm256_set1_epi32(0xff), mffff = _mm256_set1_epi32(0xffff);
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        for (int hf = 0; hf < 2; hf++) { /* lanes 0-7, then 8-15 */
            const uint8_t *s = src + 32 * hf;
            __m256i dd = _mm256_loadu_si256((const __m256i *)(const void *)s);
            __m256 D = kp_half_ps(_mm256_and_si256(dd, mffff)), DM = kp_half_ps(_mm256_srli_epi32(dd, 16));
            __m256i sc[2], mn[2];
            kp_scales_y(s, sc, mn);
            for (int j = 0; j < 8; j++) {
                uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
                const uint8_t *nib = s + (size_t)((q5 ? 12 : 4) + 8 * (j / 2)) * 64;
                for (int k = 0; k < 8; k++) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(nib + 64 * k));
                    v = _mm256_and_si256((j & 1) ? _mm256_srli_epi16(v, 4) : v, m4);
                    if (q5) {
                        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(s + 4 * 64 + 64 * k));
                        v = _mm256_or_si256(v, _mm256_and_si256(kp_bit4_y(h, j), m10));
                    }
                    _mm256_storeu_si256((__m256i *)(void *)(rec + 64 * k + 32 * hf), v);
                }
                int sh = 8 * (j & 3);
                __m256 S = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(sc[j >> 2], sh), mff));
                __m256 M = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(mn[j >> 2], sh), mff));
                _mm256_storeu_ps((float *)(void *)(rec + QR * QK) + 8 * hf, _mm256_mul_ps(D, S));
                _mm256_storeu_ps((float *)(void *)(rec + QR * QK + 4 * QR) + 8 * hf, _mm256_mul_ps(DM, M));
            }
        }
    }
}
static TGT void kpunpack_q4_avx2(const MatView *w, int p, int sb0, int n, uint8_t *out) { kpunpack_y(w, p, sb0, n, out, 0); }
static TGT void kpunpack_q5_avx2(const MatView *w, int p, int sb0, int n, uint8_t *out) { kpunpack_y(w, p, sb0, n, out, 1); }

/* Generation and small batches (1 to KPY_TT tokens) for Q4_KP / Q5_KP: x86_avx512_kp.c's
 * kpanel_dec with 8 lanes; one or two tokens take both halves of every 64-byte line in one step so
 * that each activation broadcast serves 16 rows, more tokens a half at a time.
 * Products by vpmaddubsw (u8 x s8 pairs to int16) summed in int16 over a sub-block's 8 steps for
 * Q4 (16 products <= 15 * 127 each: 30480) or 4 steps for Q5 (8 <= 31 * 127), then widened by
 * vpmaddwd against the sub-block's 6-bit scale in both int16 of the row's lane, so a sub-block
 * costs one convert and one FMA by its dx in float (the mins: one more of each). The previous
 * form (one half at a time, the scale applied in float) ran 14.5 GB/s on one Zen 3 core, under
 * the memory's 17-24 (make bench-kernels). */
INL __m256i kp_byte_y(__m256i v, int j, const int both) { /* byte j of each lane to bits 0-7 (and 16-23) */
    const char z = (char)0x80; /* + j keeps bit 7: vpshufb writes 0 */
    __m256i idx = both ? _mm256_setr_epi8(0, z, 0, z, 4, z, 4, z, 8, z, 8, z, 12, z, 12, z,
                                          0, z, 0, z, 4, z, 4, z, 8, z, 8, z, 12, z, 12, z)
                       : _mm256_setr_epi8(0, z, z, z, 4, z, z, z, 8, z, z, z, 12, z, z, z,
                                          0, z, z, z, 4, z, z, z, 8, z, z, z, 12, z, z, z);
    return _mm256_shuffle_epi8(v, _mm256_add_epi8(idx, _mm256_set1_epi8((char)j)));
}
#define KPY_TT 4 /* tokens that kpanel_dec_y decodes in one pass over the panels */
/* Rows 16p .. 16p + 15 of one token's outputs (lanes of v0 then v1), those below r1 only. */
INL void kp_store_y(float *y, int p, int r1, __m256 v0, __m256 v1) {
    float out[QR];
    _mm256_storeu_ps(out, v0);
    _mm256_storeu_ps(out + 8, v1);
    for (int l = 0; l < QR && p * QR + l < r1; l++) y[p * QR + l] = out[l];
}
static inline __attribute__((always_inline)) TGT void kpanel_dec_y(const MatView *w, const ActBuf *a, const uint8_t *side, int t0,
                                                                    float *y, size_t ldy, int r0, int r1, const int q5, const int NT) {
    int nsb = w->cols / QK_K, tt = a->tt, nb = a->nb;
    /* one or two tokens: both halves of a line per step, each broadcast serving 16 rows; more
     * tokens: a half at a time, each line's nibbles serving every token, in 16 registers (two
     * tokens both halves: 3072 x 8192 Q4_KP, 2 threads, 502-515 -> 453-507 us). A token's
     * operations are the same either way: its bits do not change. */
    const int HF = NT <= 2 ? 2 : 1;
    const __m256i m4 = _mm256_set1_epi8(15), m10 = _mm256_set1_epi8(0x10), mffff = _mm256_set1_epi32(0xffff);
    const size_t bb = q5 ? 176 : 144;
    for (int p = r0 / QR; p * QR < r1; p++) {
        __m256 acc[KPY_TT][2], accm[KPY_TT][2];
        for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = accm[t][0] = accm[t][1] = _mm256_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
            /* 2 KB ahead, line by line: the super-block's lines past its nibbles here (what lies
             * 2 KB past them), its nibble lines' 2 KB-ahead lines at their step */
            for (size_t o = 0; o < bb * QR - 32 * 64; o += 64) _mm_prefetch((const char *)(uintptr_t)((uintptr_t)src + 2048 + o), _MM_HINT_T0);
            __m256 A[KPY_TT][2];
            for (int t = 0; t < NT; t++) A[t][0] = A[t][1] = _mm256_setzero_ps();
#pragma GCC unroll 1
            for (int c = 0; c < 4; c++) {
                const uint8_t *nib = src + (size_t)((q5 ? 12 : 4) + 8 * c) * 64;
                const uint8_t *q0[KPY_TT], *q1[KPY_TT];
                for (int t = 0; t < NT; t++)
                    q0[t] = (const uint8_t *)act_q(a, t0 + t, sb * 8 + 2 * c), q1[t] = (const uint8_t *)act_q(a, t0 + t, sb * 8 + 2 * c + 1);
#pragma GCC unroll 2
                for (int h0 = 0; h0 < 2; h0 += HF) {
                    __m256i s[KPY_TT][2][2][2]; /* [token][half - h0][j - 2c][k / 4 (Q5)] int16 sums */
#pragma GCC unroll 2
                    for (int k4 = 0; k4 < 8; k4 += 4) {
                        if (q5 || k4 == 0)
                            for (int t = 0; t < NT; t++)
                                for (int hh = 0; hh < HF; hh++) s[t][hh][0][k4 / 4] = s[t][hh][1][k4 / 4] = _mm256_setzero_si256();
#pragma GCC unroll 4
                        for (int k = k4; k < k4 + 4; k++) {
                            const int g = q5 ? k4 / 4 : 0;
                            if (h0 == 0) _mm_prefetch((const char *)(uintptr_t)((uintptr_t)nib + 64 * k + 2048), _MM_HINT_T0);
#pragma GCC unroll 2
                            for (int hh = 0; hh < HF; hh++) {
                                int hf = h0 + hh;
                                __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(nib + 64 * k + 32 * hf));
                                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                                if (q5) {
                                    __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(src + 4 * 64 + 64 * k + 32 * hf));
                                    lo = _mm256_or_si256(lo, _mm256_and_si256(kp_bit4_y(h, 2 * c), m10));
                                    hi = _mm256_or_si256(hi, _mm256_and_si256(kp_bit4_y(h, 2 * c + 1), m10));
                                }
#pragma GCC unroll 4
                                for (int t = 0; t < NT; t++) {
                                    int32_t x0, x1;
                                    memcpy(&x0, q0[t] + 4 * k, 4), memcpy(&x1, q1[t] + 4 * k, 4);
                                    s[t][hh][0][g] = _mm256_add_epi16(s[t][hh][0][g], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(x0)));
                                    s[t][hh][1][g] = _mm256_add_epi16(s[t][hh][1][g], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(x1)));
                                    /* the chains in order: GCC would form every product first and spill */
                                    __asm__("" : "+x"(s[t][hh][0][g]), "+x"(s[t][hh][1][g]));
                                }
                            }
                        }
                    }
#pragma GCC unroll 2
                    for (int hh = 0; hh < HF; hh++) {
                        const uint8_t *l = src + 32 * (h0 + hh);
                        __m256i L1 = _mm256_loadu_si256((const __m256i *)(const void *)(l + 64));
                        __m256i sc = c < 2 ? _mm256_and_si256(L1, _mm256_set1_epi8(63))
                                           : _mm256_or_si256(_mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(l + 192)), m4),
                                                             _mm256_and_si256(_mm256_srli_epi16(L1, 2), _mm256_set1_epi8(0x30)));
#pragma GCC unroll 2
                        for (int e = 0; e < 2; e++) {
                            __m256i S = kp_byte_y(sc, (2 * c + e) & 3, 1);
#pragma GCC unroll 4
                            for (int t = 0; t < NT; t++) {
                                __m256i iv = _mm256_madd_epi16(s[t][hh][e][0], S);
                                if (q5) iv = _mm256_add_epi32(iv, _mm256_madd_epi16(s[t][hh][e][1], S));
                                A[t][h0 + hh] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iv), _mm256_set1_ps(act_d(a, t0 + t, sb * 8 + 2 * c + e)),
                                                                A[t][h0 + hh]);
                            }
                        }
                    }
                }
            }
#pragma GCC unroll 2
            for (int hf = 0; hf < 2; hf++) {
                const uint8_t *l = src + 32 * hf;
                __m256i dd = _mm256_loadu_si256((const __m256i *)(const void *)l);
                __m256i L2 = _mm256_loadu_si256((const __m256i *)(const void *)(l + 128));
                __m256i mn[2] = {_mm256_and_si256(L2, _mm256_set1_epi8(63)),
                                 _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(l + 192)), 4), m4),
                                                 _mm256_and_si256(_mm256_srli_epi16(L2, 2), _mm256_set1_epi8(0x30)))};
                __m256 D = kp_half_ps(_mm256_and_si256(dd, mffff)), DM = kp_half_ps(_mm256_srli_epi32(dd, 16));
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    int tk = t0 + t;
                    __m256 B = _mm256_setzero_ps();
#pragma GCC unroll 8
                    for (int j = 0; j < 8; j++) {
                        float gx;
                        memcpy(&gx, side + (((size_t)(tk / tt) * (size_t)nb + (size_t)(sb * 8 + j)) * (size_t)tt + (size_t)(tk % tt)) * 8, 4);
                        B = _mm256_fmadd_ps(_mm256_cvtepi32_ps(kp_byte_y(mn[j >> 2], j & 3, 0)), _mm256_set1_ps(gx), B);
                    }
                    acc[t][hf] = _mm256_fmadd_ps(D, A[t][hf], acc[t][hf]);
                    accm[t][hf] = _mm256_fmadd_ps(DM, B, accm[t][hf]);
                }
            }
        }
        for (int t = 0; t < NT; t++)
            kp_store_y(y + (size_t)t * ldy, p, r1, _mm256_sub_ps(acc[t][0], accm[t][0]), _mm256_sub_ps(acc[t][1], accm[t][1]));
    }
}
/* Q4_KP (q5 0) or Q5_KP (1) for tokens [t0, t0 + nt), nt <= KPY_TT, outputs y[t * ldy + row]. */
static TGT void kpanel_dec_q45_avx2(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y,
                                    size_t ldy, int r0, int r1, int q5) {
#define KPY_CASE(N)                                                                  \
    case N:                                                                          \
        if (q5) kpanel_dec_y(w, a, side, t0, y, ldy, r0, r1, 1, N);                  \
        else kpanel_dec_y(w, a, side, t0, y, ldy, r0, r1, 0, N);                     \
        break;
    switch (nt) {
        KPY_CASE(1)
        KPY_CASE(2)
        KPY_CASE(3)
        KPY_CASE(4)
    default: break;
    }
#undef KPY_CASE
}

/* IQ4_XS's 16 levels + off (0: signed, 128: as unsigned u) as a vpshufb table in both lanes. */
static inline __attribute__((always_inline)) TGT __m256i iq4_levels_y(const int off) {
    static const int8_t lv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    __m128i t = _mm_add_epi8(_mm_loadu_si128((const __m128i *)(const void *)lv), _mm_set1_epi8((char)off));
    return _mm256_broadcastsi128_si256(t);
}
/* ls_j - 32 of 8 rows as floats, from their d | scales_h words (dd) and scales_l words (sl). */
static inline __attribute__((always_inline)) TGT __m256 iq4_scale_y(__m256i dd, __m256i sl, int j) {
    __m256i ls = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(sl, 4 * j), _mm256_set1_epi32(15)),
                                 _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(dd, 16 + 2 * j), _mm256_set1_epi32(3)), 4));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32)));
}


/* IQ4_XS generation (1 to 4 tokens; x86_avx512_kp.c's kpanel_dec_iq4 with 8 lanes, two halves per
 * line, taken as kpanel_dec_y takes them): a nibble line half becomes the signed levels by one
 * vpshufb, multiplied with the token's bytes through magnitude and sign (as ktileg_y's KMODE_OFF128:
 * level + 128 would overflow vpmaddubsw's pairs), so the sums need no side record. */
INL void kpanel_dec_iq4_y(const MatView *w, const ActBuf *a, int t0, float *y, size_t ldy, int r0, int r1, const int NT) {
    int nsb = w->cols / QK_K;
    const int HF = NT <= 2 ? 2 : 1; /* halves per pass over the lines, as kpanel_dec_y */
    const __m256i m4 = _mm256_set1_epi8(15), one = _mm256_set1_epi16(1), mffff = _mm256_set1_epi32(0xffff);
    const __m256i tab = iq4_levels_y(0);
    for (int p = r0 / QR; p * QR < r1; p++) {
        __m256 acc[KPY_TT][2];
        for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
            /* 2 KB ahead, line by line: two lines here, the others at their step */
            _mm_prefetch((const char *)(uintptr_t)((uintptr_t)src + 2048), _MM_HINT_T0);
            _mm_prefetch((const char *)(uintptr_t)((uintptr_t)src + 2048 + 64), _MM_HINT_T0);
            __m256 A[KPY_TT][2];
            for (int t = 0; t < NT; t++) A[t][0] = A[t][1] = _mm256_setzero_ps();
#pragma GCC unroll 1
            for (int j = 0; j < 8; j++) {
                const uint8_t *nib = src + (size_t)(2 + 4 * j) * 64, *q[KPY_TT];
                for (int t = 0; t < NT; t++) q[t] = (const uint8_t *)act_q(a, t0 + t, sb * 8 + j);
#pragma GCC unroll 2
                for (int h0 = 0; h0 < 2; h0 += HF) {
                    __m256i i0[KPY_TT][2];
                    for (int t = 0; t < NT; t++) i0[t][0] = i0[t][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        if (h0 == 0) _mm_prefetch((const char *)(uintptr_t)((uintptr_t)nib + 64 * k + 2048), _MM_HINT_T0);
#pragma GCC unroll 2
                        for (int hh = 0; hh < HF; hh++) {
                            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(nib + 64 * k + 32 * (h0 + hh)));
                            __m256i lo = _mm256_shuffle_epi8(tab, _mm256_and_si256(v, m4));
                            __m256i hi = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                            __m256i alo = _mm256_abs_epi8(lo), ahi = _mm256_abs_epi8(hi);
#pragma GCC unroll 4
                            for (int t = 0; t < NT; t++) {
                                int32_t x0, x1;
                                memcpy(&x0, q[t] + 4 * k, 4), memcpy(&x1, q[t] + 16 + 4 * k, 4);
                                __m256i p0 = _mm256_maddubs_epi16(alo, _mm256_sign_epi8(_mm256_set1_epi32(x0), lo));
                                __m256i p1 = _mm256_maddubs_epi16(ahi, _mm256_sign_epi8(_mm256_set1_epi32(x1), hi));
                                i0[t][hh] = _mm256_add_epi32(i0[t][hh], _mm256_add_epi32(_mm256_madd_epi16(p0, one), _mm256_madd_epi16(p1, one)));
                                __asm__("" : "+x"(i0[t][hh])); /* in order: GCC would spill the products */
                            }
                        }
                    }
#pragma GCC unroll 2
                    for (int hh = 0; hh < HF; hh++) {
                        const uint8_t *l = src + 32 * (h0 + hh);
                        __m256i dd = _mm256_loadu_si256((const __m256i *)(const void *)l);
                        __m256i sl = _mm256_loadu_si256((const __m256i *)(const void *)(l + 64));
                        __m256 S = iq4_scale_y(dd, sl, j);
#pragma GCC unroll 4
                        for (int t = 0; t < NT; t++) {
                            __m256 dx = _mm256_set1_ps(act_d(a, t0 + t, sb * 8 + j));
                            A[t][h0 + hh] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i0[t][hh]), dx), S, A[t][h0 + hh]);
                        }
                    }
                }
            }
            for (int hf = 0; hf < 2; hf++) {
                __m256i dd = _mm256_loadu_si256((const __m256i *)(const void *)(src + 32 * hf));
                __m256 D = kp_half_ps(_mm256_and_si256(dd, mffff));
                for (int t = 0; t < NT; t++) acc[t][hf] = _mm256_fmadd_ps(D, A[t][hf], acc[t][hf]);
            }
        }
        for (int t = 0; t < NT; t++) kp_store_y(y + (size_t)t * ldy, p, r1, acc[t][0], acc[t][1]);
    }
}
/* IQ4_XS for tokens [t0, t0 + nt), nt <= KPY_TT, outputs y[t * ldy + row]. */
static TGT void kpanel_dec_iq4_avx2(const MatView *w, const ActBuf *a, int t0, int nt, float *y, size_t ldy, int r0, int r1) {
    switch (nt) {
    case 1: kpanel_dec_iq4_y(w, a, t0, y, ldy, r0, r1, 1); break;
    case 2: kpanel_dec_iq4_y(w, a, t0, y, ldy, r0, r1, 2); break;
    case 3: kpanel_dec_iq4_y(w, a, t0, y, ldy, r0, r1, 3); break;
    case 4: kpanel_dec_iq4_y(w, a, t0, y, ldy, r0, r1, 4); break;
    default: break;
    }
}

/* IQ4_XS panels into panel records (x86_avx512_kp.c's kpunpack_iq4_zmm with two ymm per line): the
 * portable unpacking's byte loop made prompts 2x slower than q4_k's. */
static TGT void kpunpack_iq4_avx2(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    const __m256i m4 = _mm256_set1_epi8(15), mffff = _mm256_set1_epi32(0xffff);
    const __m256i tab = iq4_levels_y(128);
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        for (int hf = 0; hf < 2; hf++) {
            const uint8_t *s = src + 32 * hf;
            __m256i dd = _mm256_loadu_si256((const __m256i *)(const void *)s);
            __m256i sl = _mm256_loadu_si256((const __m256i *)(const void *)(s + 64));
            __m256 D = kp_half_ps(_mm256_and_si256(dd, mffff));
            for (int j = 0; j < 8; j++) {
                uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
                const uint8_t *nib = s + (size_t)(2 + 4 * j) * 64;
                for (int k = 0; k < 4; k++) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(nib + 64 * k));
                    _mm256_storeu_si256((__m256i *)(void *)(rec + 64 * k + 32 * hf), _mm256_shuffle_epi8(tab, _mm256_and_si256(v, m4)));
                    _mm256_storeu_si256((__m256i *)(void *)(rec + 64 * (k + 4) + 32 * hf),
                                        _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4)));
                }
                __m256 S = _mm256_mul_ps(D, iq4_scale_y(dd, sl, j));
                _mm256_storeu_ps((float *)(void *)(rec + QR * QK) + 8 * hf, S);
                _mm256_storeu_ps((float *)(void *)(rec + QR * QK + 4 * QR) + 8 * hf, S);
            }
        }
    }
}

/* Q6_KP for AVX2 (x86_avx512_kp.c's kp6_u / kpanel_dec6 with 8 lanes, half hf of each line):
 * vpmaddubsw pair sums of q <= 63 reach 2 * 63 * 127, so every two steps widen. */
static inline __attribute__((always_inline)) TGT __m256i kp6_u_y(const uint8_t *s, int j, int k) {
    int h = j >> 2, sx = j & 3;
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(s + (size_t)(16 * h + 8 * (sx & 1) + k) * 64));
    __m256i hb = _mm256_loadu_si256((const __m256i *)(const void *)(s + (size_t)(32 + 8 * h + k) * 64));
    v = _mm256_and_si256((sx >> 1) ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(15));
    return _mm256_or_si256(v, _mm256_and_si256(kp_bit4_y(hb, 2 * sx), _mm256_set1_epi8(0x30)));
}
static inline __attribute__((always_inline)) TGT __m256 kp6_scale_y(const uint8_t *s, int g) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(s + (size_t)(48 + g / 4) * 64));
    return _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 24 - 8 * (g & 3)), 24));
}
/* As kpanel_dec_y: one or two tokens take both halves of each line per step (each activation
 * broadcast serving 16 rows; two tokens, 3072 x 8192, 2 threads: 939-1008 -> 858-940 us), more
 * tokens a half at a time; two lines 2 KB ahead are prefetched per step
 * (64 a super-block of 53 lines: the excess fetches the next one's first lines twice). */
INL void kpanel_dec6_y(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, float *y, size_t ldy,
                       int r0, int r1, const int NT) {
    int nsb = w->cols / QK_K, tt = a->tt, nb = a->nb;
    const int HF = NT <= 2 ? 2 : 1;
    const __m256i one = _mm256_set1_epi16(1);
    for (int p = r0 / QR; p * QR < r1; p++) {
        __m256 acc[KPY_TT][2];
        for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
            __m256 A[KPY_TT][2];
            for (int t = 0; t < NT; t++) A[t][0] = A[t][1] = _mm256_setzero_ps();
#pragma GCC unroll 1
            for (int j = 0; j < 8; j++) {
                int b = sb * 8 + j;
                const uint8_t *q[KPY_TT];
                for (int t = 0; t < NT; t++) q[t] = (const uint8_t *)act_q(a, t0 + t, b);
#pragma GCC unroll 2
                for (int h0 = 0; h0 < 2; h0 += HF) {
                    __m256i is[KPY_TT][2][2]; /* [token][half - h0][g] */
#pragma GCC unroll 2
                    for (int g = 0; g < 2; g++) {
                        for (int t = 0; t < NT; t++) {
                            int32_t c;
                            int tk = t0 + t;
                            memcpy(&c, side + (((size_t)(tk / tt) * (size_t)nb + (size_t)b) * (size_t)tt + (size_t)(tk % tt)) * 8 + 4 * g, 4);
                            for (int hh = 0; hh < HF; hh++) is[t][hh][g] = _mm256_set1_epi32(c);
                        }
#pragma GCC unroll 2
                        for (int k2 = 0; k2 < 4; k2 += 2) {
                            int k = 4 * g + k2;
                            if (h0 == 0) {
                                const uintptr_t pf = (uintptr_t)src + 2048 + 128 * (size_t)(4 * j + 2 * g + k2 / 2);
                                _mm_prefetch((const char *)pf, _MM_HINT_T0);
                                _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
                            }
#pragma GCC unroll 2
                            for (int hh = 0; hh < HF; hh++) {
                                const uint8_t *s = src + 32 * (h0 + hh);
                                __m256i u0 = kp6_u_y(s, j, k), u1 = kp6_u_y(s, j, k + 1);
#pragma GCC unroll 4
                                for (int t = 0; t < NT; t++) {
                                    int32_t x0, x1;
                                    memcpy(&x0, q[t] + 4 * k, 4), memcpy(&x1, q[t] + 4 * k + 4, 4);
                                    __m256i h16 = _mm256_add_epi16(_mm256_maddubs_epi16(u0, _mm256_set1_epi32(x0)),
                                                                   _mm256_maddubs_epi16(u1, _mm256_set1_epi32(x1)));
                                    is[t][hh][g] = _mm256_add_epi32(is[t][hh][g], _mm256_madd_epi16(h16, one));
                                    __asm__("" : "+x"(is[t][hh][g])); /* in order: GCC would spill the products */
                                }
                            }
                        }
                    }
#pragma GCC unroll 2
                    for (int hh = 0; hh < HF; hh++) {
                        const uint8_t *s = src + 32 * (h0 + hh);
                        __m256 S0 = kp6_scale_y(s, 2 * j), S1 = kp6_scale_y(s, 2 * j + 1);
#pragma GCC unroll 4
                        for (int t = 0; t < NT; t++) {
                            __m256 dx = _mm256_set1_ps(act_d(a, t0 + t, b));
                            __m256 *Ah = &A[t][h0 + hh];
                            *Ah = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(is[t][hh][0]), dx), S0, *Ah);
                            *Ah = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(is[t][hh][1]), dx), S1, *Ah);
                        }
                    }
                }
            }
            for (int hf = 0; hf < 2; hf++) {
                __m256i dd = _mm256_loadu_si256((const __m256i *)(const void *)(src + 32 * hf + 52 * 64));
                __m256 D = kp_half_ps(_mm256_and_si256(dd, _mm256_set1_epi32(0xffff)));
                for (int t = 0; t < NT; t++) acc[t][hf] = _mm256_fmadd_ps(D, A[t][hf], acc[t][hf]);
            }
        }
        for (int t = 0; t < NT; t++) kp_store_y(y + (size_t)t * ldy, p, r1, acc[t][0], acc[t][1]);
    }
}
/* Q6_KP for tokens [t0, t0 + nt), nt <= 2 (kq_avx2 says why), outputs y[t * ldy + row]. */
static TGT void kpanel_dec_q6_avx2(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y,
                                   size_t ldy, int r0, int r1) {
    switch (nt) {
    case 1: kpanel_dec6_y(w, a, side, t0, y, ldy, r0, r1, 1); break;
    case 2: kpanel_dec6_y(w, a, side, t0, y, ldy, r0, r1, 2); break;
    default: break;
    }
}
static TGT void kpunpack_q6_avx2(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        for (int hf = 0; hf < 2; hf++) {
            const uint8_t *s = src + 32 * hf;
            __m256i dd = _mm256_loadu_si256((const __m256i *)(const void *)(s + 52 * 64));
            __m256 D = kp_half_ps(_mm256_and_si256(dd, _mm256_set1_epi32(0xffff)));
            for (int j = 0; j < 8; j++) {
                uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
                for (int k = 0; k < 8; k++) _mm256_storeu_si256((__m256i *)(void *)(rec + 64 * k + 32 * hf), kp6_u_y(s, j, k));
                _mm256_storeu_ps((float *)(void *)(rec + QR * QK) + 8 * hf, _mm256_mul_ps(D, kp6_scale_y(s, 2 * j)));
                _mm256_storeu_ps((float *)(void *)(rec + QR * QK + 4 * QR) + 8 * hf, _mm256_mul_ps(D, kp6_scale_y(s, 2 * j + 1)));
            }
        }
    }
}

/* The panel decoders of x86_avx2_k.c as one KDecFn (kq_avx2's groups). */
static TGT void kpanel_dec_avx2(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y,
                                size_t ldy, int r0, int r1) {
    if (w->type == TENSOR_IQ4_XS) kpanel_dec_iq4_avx2(w, a, t0, nt, y, ldy, r0, r1);
    else if (w->type == TENSOR_Q6_KP) kpanel_dec_q6_avx2(w, a, side, t0, nt, y, ldy, r0, r1);
    else kpanel_dec_q45_avx2(w, a, side, t0, nt, y, ldy, r0, r1, w->type == TENSOR_Q5_KP);
}

void kq_avx2(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    const ActBuf *ab = a;
    KRowAct *x = NULL;
    if (ab->n_tok == 1 && !type_table[w->type].kpanel &&
        (x = krow_act(ab, w->cols / QK_K, w->type == TENSOR_Q6_K)) != NULL) {
        int re = r1 < w->rows ? r1 : w->rows;
        if (r0 < re) krow_avx2(w, x, y, r0, re);
        free(x);
        for (int r = re > r0 ? re : r0; r < r1; r++) y[r] = 0; /* rows past the matrix, as the tiles */
        return;
    }
    /* the K panel types (Q4_KP, Q5_KP, Q6_KP, IQ4_XS): generation, and a few tokens (parallel
     * streams, drafts: up to 8 rows, one activation tile) in one pass over
     * the panels, rather than unpacked to records for the tiles at every call (3x the time of one
     * token): 4 tokens at a time, Q6_KP 2 (its 4 ran 8 % slower than the tiles). Past one group,
     * panel by panel (kmat_dec_groups; Q4_KP 3072 x 8192, 8 tokens, 2 threads: 2264 us by the
     * tiles, 1637 here). A token's sums do not depend on the tokens beside it in these decoders, so every
     * batch of up to 8 gives each token its bits alone (isa.h k_exact: prompt lookup on K-quant
     * weights); Q6_KP's pairs cost that (8 tokens: 2868 us by the tiles, 3638 here). */
    if (nt <= 2 * KPY_TT && type_table[w->type].kpanel) {
        const uint8_t *side = w->type == TENSOR_IQ4_XS ? NULL : kact_side(ab, type_table[w->type].kmode, 0, ab->ntiles);
        kmat_dec_groups(w, ab, side, t0, nt, y, ldy, r0, r1, w->type == TENSOR_Q6_KP ? 2 : KPY_TT, kpanel_dec_avx2);
        return;
    }
    KUnpackFn kp = w->type == TENSOR_Q4_KP   ? kpunpack_q4_avx2
                   : w->type == TENSOR_Q5_KP ? kpunpack_q5_avx2
                   : w->type == TENSOR_Q6_KP ? kpunpack_q6_avx2
                   : w->type == TENSOR_IQ4_XS ? kpunpack_iq4_avx2
                                             : NULL;
    kmat_tiled(w, a, t0, nt, y, ldy, r0, r1, w->type == TENSOR_Q4_KP || w->type == TENSOR_Q4_K ? ktile_q4_avx2 : ktile_avx2, kp);
}

#endif
