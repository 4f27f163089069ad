/* AVX-512 VNNI kernels for the K panel types (kernels/blocks.h: Q4_KP, Q5_KP, Q6_KP, IQ4_XS, ggml's
 * super-blocks stored in 16-row panels): generation straight from the panels, a zmm lane per row,
 * and the panels unpacked into the records ktile_zmm (x86_avx512_k.c) runs batches on. */
#include "kernels/x86_zmm.h"
#if defined(__x86_64__)

/* kp_prefetch_next: the Q5_KP and Q6_KP decoders read a super-block's lines out of order (the
 * fifth and sixth bits' lines beside the nibbles', the scales and d last) and run at the speed of
 * memory only when the whole next super-block is on its way into L2 (prefetcht1) while they work
 * on this one. Their prefetches 2 KB ahead into L1, as the other decoders have, kept them at a
 * third of the bandwidth, and prefetching the current or the next super-block into L1 did no
 * better for Q6_KP (this VM has no counters to show why; the likely cause is that each burst of
 * 44-53 L1 prefetches fills the L1 miss queue that the decoder's own loads then wait on).
 * Matvec 3072 x 8192 from memory (huge pages), Zen 4 VM, 1 / 2 threads, GB/s: Q6_KP 9.1-9.4 /
 * 15.2-16.2 -> 20.1-25.2 / 27.6-28.5; Q5_KP 9.9-10.1 / 17.7-18.0 -> 20.2-21.2 / 27.1-30.5.
 * Q4_KP (sequential lines) gains from it with 2-4 tokens: Phi-3-mini Q4_K_M, 4 streams, 2 threads,
 * old / new alternated, 30.3 / 33.4, 31.7 / 35.6, 32.7 / 38.3, 33.9 / 39.7 tok/s. With one token
 * it lost 6 % (four rounds, tg32 12.5 -> 11.8) and keeps PF_AHEAD, as IQ4_XS does. */

/* Tokens the panel decoders take in one pass over the weights (ggml-order K rows take KROW_TT).
 * 4 streams of Phi-3-mini Q4_K_M, 2 threads: 38.6-41.6 tok/s through the tiles (the panels
 * unpacked every step), 43.0-49.0 in one pass; 8 rows in two whole passes lost to the tiles,
 * so 5-8 rows take two groups panel by panel (kp_mat_zmm). */
#define KP_TT 4
#define KP_SWITCH(CALL)                                                                            \
    switch (nt) {                                                                              \
    case 1: { const int NT_ = 1; CALL; } break;                                                \
    case 2: { const int NT_ = 2; CALL; } break;                                                \
    case 3: { const int NT_ = 3; CALL; } break;                                                \
    default: { const int NT_ = 4; CALL; } break;                                               \
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

/* Generation for Q4_KP and Q5_KP (kernels/blocks.h: Q4_K, Q5_K bytes in 16-row panels), 1 to 4
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
        __m512 acc[KP_TT], accm[KP_TT];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[t] = accm[t] = _mm512_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
#pragma GCC unroll 8
            for (size_t o = 0; o < QR * bb; o += 64) {
                if (q5 || NT > 1) prefetch_l2(src, QR * bb + o); /* the next super-block (kp_prefetch_next) */
                else prefetch_ahead(src, PF_AHEAD + o);
            }
            __m512i dd = _mm512_loadu_si512((const void *)src);
            __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
            __m512 DM = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
            __m512i sc[2], mn[2];
            /* bytes j of each lane: sub-block j (j < 4) / 4 + j of the scales and of the mins */
            kp_scales(src, sc, mn);
            __m512 A[KP_TT], B[KP_TT];
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) A[t] = B[t] = _mm512_setzero_ps();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) { /* sub-blocks 2c, 2c + 1: the low and high nibbles of 8 lines */
                const uint8_t *nib = src + (size_t)((q5 ? 12 : 4) + 8 * c) * 64;
                __m512i s0[KP_TT], s1[KP_TT];
                const int8_t *q0[KP_TT], *q1[KP_TT];
#pragma GCC unroll 4
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
#pragma GCC unroll 4
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
#pragma GCC unroll 4
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
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                acc[t] = _mm512_fmadd_ps(D, A[t], acc[t]);
                accm[t] = _mm512_fmadd_ps(DM, B[t], accm[t]);
            }
        }
        int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
        __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 4
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
        __m512 acc[KP_TT];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
        for (int sb = 0; sb < nsb; sb++) {
            const uint8_t *src = matview_panel_q(w, p, sb);
#pragma GCC unroll 8
            for (size_t o = 0; o < QR * 212; o += 64) prefetch_l2(src, QR * 212 + o); /* kp_prefetch_next */
            __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_loadu_si512((const void *)(src + 52 * 64))));
            __m512 A[KP_TT];
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) A[t] = _mm512_setzero_ps();
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                int b = sb * 8 + j;
                __m512i s0[KP_TT], s1[KP_TT];
                const uint8_t *q[KP_TT];
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    int tk = t0 + t;
                    const int32_t *c = (const int32_t *)(const void *)(side + (((size_t)(tk / tt) * nb + b) * tt + tk % tt) * 8);
                    s0[t] = _mm512_set1_epi32(c[0]), s1[t] = _mm512_set1_epi32(c[1]);
                    q[t] = (const uint8_t *)act_q(a, tk, b);
                }
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    __m512i u = kp6_u(src, j, k);
#pragma GCC unroll 4
                    for (int t = 0; t < NT; t++) {
                        if (k < 4) s0[t] = dpbusd_b(s0[t], u, q[t] + 4 * k);
                        else s1[t] = dpbusd_b(s1[t], u, q[t] + 4 * k);
                    }
                }
                __m512 S0 = kp6_scale(src, 2 * j), S1 = kp6_scale(src, 2 * j + 1);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) {
                    __m512 dx = _mm512_set1_ps(act_d(a, t0 + t, b));
                    A[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s0[t]), dx), S0, A[t]);
                    A[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1[t]), dx), S1, A[t]);
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) acc[t] = _mm512_fmadd_ps(D, A[t], acc[t]);
        }
        int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
        __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 4
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
ZINL __m512 iq4_scale_zmm(__m512i dd, __m512i sl, __m512 D, const int j) {
    __m512i lo = _mm512_and_si512(_mm512_srli_epi32(sl, 4 * j), _mm512_set1_epi32(15));
    __m512i hi = _mm512_and_si512(_mm512_srli_epi32(dd, 16 + 2 * j), _mm512_set1_epi32(3));
    __m512i ls = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
    return _mm512_mul_ps(D, _mm512_cvtepi32_ps(ls));
}

/* Generation for IQ4_XS, 1 to 4 tokens, as kpanel_dec: per sub-block j, its 4 nibble lines'
 * low and high nibbles through the table and one vpdpbusd each against the token's bytes 4k and
 * 16 + 4k, the sums started from the side record's -128 sum q (which removes the + 128), then
 * times dx and the rows' d (ls_j - 32). */
ZINL void kpanel_dec_iq4(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, float *y, size_t ldy,
                         int r0, int r1, const int NT) {
    int nsb = w->cols / QK_K, nb = a->nb, tt = a->tt;
    const __m512i m4 = _mm512_set1_epi8(15), tab = iq4_table();
    for (int p = r0 / QR; p * QR < r1; p++) {
        __m512 acc[KP_TT];
#pragma GCC unroll 4
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
                __m512i s[KP_TT];
                const uint8_t *q[KP_TT];
#pragma GCC unroll 4
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
#pragma GCC unroll 4
                    for (int t = 0; t < NT; t++) {
                        s[t] = dpbusd_b(s[t], lo, q[t] + 4 * k);
                        s[t] = dpbusd_b(s[t], hi, q[t] + 16 + 4 * k);
                    }
                }
                __m512 S = iq4_scale_zmm(dd, sl, D, j);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++)
                    acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s[t]), _mm512_set1_ps(act_d(a, t0 + t, sb * 8 + j))), S, acc[t]);
            }
        }
        int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
        __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 4
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
            __m512 S = iq4_scale_zmm(dd, sl, D, j);
            _mm512_store_ps((float *)(void *)(rec + QR * QK), S);
            _mm512_store_ps((float *)(void *)(rec + QR * QK + 4 * QR), S);
        }
    }
}

static ZTGT void kpanel_dec_zmm(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y,
                                size_t ldy, int r0, int r1) {
    if (w->type == TENSOR_Q6_KP) {
        KP_SWITCH(kpanel_dec6(w, a, side, t0, y, ldy, r0, r1, NT_))
    } else if (w->type == TENSOR_IQ4_XS) {
        KP_SWITCH(kpanel_dec_iq4(w, a, side, t0, y, ldy, r0, r1, NT_))
    } else if (w->type == TENSOR_Q5_KP) {
        KP_SWITCH(kpanel_dec(w, a, side, t0, y, ldy, r0, r1, 1, NT_))
    } else {
        KP_SWITCH(kpanel_dec(w, a, side, t0, y, ldy, r0, r1, 0, NT_))
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

void kp_mat_zmm(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1) {
    const ActBuf *a = act;
    /* Generation and up to 8 rows (parallel streams, prompt-lookup drafts) in the panel decoders,
     * prompts through the tiles. A token's operations in the decoders are the same whatever
     * tokens are beside it, so every batch of up to 8 gives each token its bits alone (isa.h
     * k_exact: prompt lookup on K-quant weights, server slots that do not change each other's
     * output). 5-8 rows run as two groups panel by panel (kmat_dec_groups), where two whole passes
     * read the matrix twice from memory (those lost to the tiles). As x86_avx2_k.c's kq_avx2, where
     * this ran faster than the tiles too; checked bit for bit by make
     * zmm-emu-test, not timed on an AVX-512 CPU yet. */
    if (nt <= 2 * KP_TT) {
        const uint8_t *side = kact_side(a, type_table[w->type].kmode, 0, a->ntiles);
        kmat_dec_groups(w, a, side, t0, nt, y, ldy, r0, r1, KP_TT, kpanel_dec_zmm);
    } else kmat_tiled_pairs(w, act, t0, nt, y, ldy, r0, r1, ktile_zmm, kpair_zmm, kp_unpack_zmm(w->type));
}

KUnpackFn kp_unpack_zmm(uint32_t type) {
    return type == TENSOR_Q6_KP ? kpunpack_q6_zmm : type == TENSOR_Q5_KP ? kpunpack_q5_zmm
           : type == TENSOR_IQ4_XS ? kpunpack_iq4_zmm : kpunpack_q4_zmm;
}

#endif
