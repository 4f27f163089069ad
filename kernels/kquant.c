/* The K-quant types' rows: dequantization (ggml's reference dequantizers, kernels/ggml_types.c),
 * phi's own quantizers, the reference dots and the unpacking the kernels use (kernels/kquant.h).
 *
 * Quantizers. Q4_K / Q5_K: each 32-weight sub-block is fitted as x ~ a q + b (q in 0..nmax,
 * b <= 0) by weighted least squares: candidate grids put the sub-block's range at nmax - 1.5 ..
 * nmax + 1.5 steps (0.25 apart), each quantized and refitted (the 2x2 normal equations, b clamped
 * at 0; candidates ranked by the fit's error for their q, from the same sums), the best refined
 * by two requantize / refit rounds. Then the 8 scales a and the 8 mins -b
 * are quantized to 6 bits against the super-block's largest (d = max a / 63, dmin = max -b / 63,
 * both f16), and the weights requantized with the stored values. Q6_K: each 16-weight group's
 * symmetric scale (q in -32..31) by the same search (largest magnitude at 28 .. 36 steps, both
 * signs, 1 apart), the 16 scales quantized to int8 against the largest (d = max |a| / 127).
 * Importances w weight every fit (NULL: all 1). On blk.3.ffn_down of phi3-trained-tiny the
 * squared error is 1 % (Q4_K), 2 % (Q5_K), 11 % (Q6_K) below llama-quantize's (tests/test_ktypes.c). */
#include "kernels/kquant.h"

#include <math.h>
#include <string.h>

#include "kernels/ggml_types.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- dequantization: the reference dequantizers, bit-exact ---- */

void kq_to_float_q4_k(const void *q, const uint16_t *d, float *y, int n) {
    (void)d;
    ggml_dequantize_row(GGML_TYPE_Q4_K, q, y, n, NULL, 0);
}
void kq_to_float_q5_k(const void *q, const uint16_t *d, float *y, int n) {
    (void)d;
    ggml_dequantize_row(GGML_TYPE_Q5_K, q, y, n, NULL, 0);
}
void kq_to_float_q6_k(const void *q, const uint16_t *d, float *y, int n) {
    (void)d;
    ggml_dequantize_row(GGML_TYPE_Q6_K, q, y, n, NULL, 0);
}

static double dot_ref(uint32_t gtype, int bytes, const void *q, const float *x, int n) {
    float y[QK_K];
    double s = 0;
    for (int b = 0; b < n / QK_K; b++) {
        ggml_dequantize_row(gtype, (const uint8_t *)q + (size_t)b * bytes, y, QK_K, NULL, 0);
        for (int i = 0; i < QK_K; i++) s += (double)y[i] * x[b * QK_K + i];
    }
    return s;
}
double kq_dot_ref_q4_k(const void *q, const float *x, int n) { return dot_ref(GGML_TYPE_Q4_K, 144, q, x, n); }
double kq_dot_ref_q5_k(const void *q, const float *x, int n) { return dot_ref(GGML_TYPE_Q5_K, 176, q, x, n); }
double kq_dot_ref_q6_k(const void *q, const float *x, int n) { return dot_ref(GGML_TYPE_Q6_K, 210, q, x, n); }

/* ---- unpacking (x_i = s[i/16] u_i - m[i/16]) ---- */

/* The 6-bit scale and min of sub-block j of a Q4_K / Q5_K block (12 bytes at p). */
static void get_scale_min(int j, const uint8_t *p, int *sc, int *mn) {
    if (j < 4) {
        *sc = p[j] & 63;
        *mn = p[j + 4] & 63;
    } else {
        *sc = (p[j + 4] & 15) | ((p[j - 4] >> 6) << 4);
        *mn = (p[j + 4] >> 4) | ((p[j] >> 6) << 4);
    }
}

static void unpack_scales_k4(const uint8_t *blk, float *s, float *m) {
    float d = fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8)), dmin = fp16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
    for (int j = 0; j < 8; j++) {
        int sc, mn;
        get_scale_min(j, blk + 4, &sc, &mn);
        s[2 * j] = s[2 * j + 1] = d * (float)sc;
        m[2 * j] = m[2 * j + 1] = dmin * (float)mn;
    }
}

void kq_unpack_q4_k(const uint8_t *blk, uint8_t *u, float *s, float *m) {
    unpack_scales_k4(blk, s, m);
    const uint8_t *qs = blk + 16;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            u[64 * c + l] = qs[32 * c + l] & 15;
            u[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
}

void kq_unpack_q5_k(const uint8_t *blk, uint8_t *u, float *s, float *m) {
    unpack_scales_k4(blk, s, m);
    const uint8_t *qh = blk + 16, *qs = blk + 48;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            u[64 * c + l] = (uint8_t)((qs[32 * c + l] & 15) | ((qh[l] >> (2 * c)) & 1) << 4);
            u[64 * c + 32 + l] = (uint8_t)((qs[32 * c + l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4);
        }
}

void kq_unpack_q6_k(const uint8_t *blk, uint8_t *u, float *s, float *m) {
    const uint8_t *ql = blk, *qh = blk + 128;
    const int8_t *sc = (const int8_t *)(blk + 192);
    float d = fp16_to_f32((uint16_t)(blk[208] | blk[209] << 8));
    for (int g = 0; g < 16; g++) {
        s[g] = d * (float)sc[g];
        m[g] = 32.0f * s[g];
    }
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *L = ql + 64 * h, *H = qh + 32 * h;
            uint8_t *o = u + 128 * h;
            o[l] = (uint8_t)((L[l] & 15) | ((H[l] >> 0) & 3) << 4);
            o[l + 32] = (uint8_t)((L[l + 32] & 15) | ((H[l] >> 2) & 3) << 4);
            o[l + 64] = (uint8_t)((L[l] >> 4) | ((H[l] >> 4) & 3) << 4);
            o[l + 96] = (uint8_t)((L[l + 32] >> 4) | ((H[l] >> 6) & 3) << 4);
        }
}

/* ---- quantizers ---- */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
/* Round half away from zero, inline (lrintf may be a libm call); |v| < 2^23 here. */
static inline int nearest(float v) { return (int)(v + (v >= 0 ? 0.5f : -0.5f)); }

/* Weighted least-squares fit x ~ a q + b (b <= 0) of n weights for q = round((x - lo) * is);
 * returns the error, sets a, b. */
static float fit_affine(const float *x, const float *w, int n, int nmax, float lo, float is,
                        float *a, float *b) {
    double sw = 0, sq = 0, sx = 0, sqq = 0, sqx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        float q = (float)clampi(nearest((x[i] - lo) * is), 0, nmax);
        sw += w[i], sq += (double)w[i] * q, sx += (double)w[i] * x[i], sxx += (double)w[i] * x[i] * x[i];
        sqq += (double)w[i] * q * q, sqx += (double)w[i] * q * x[i];
    }
    double det = sw * sqq - sq * sq, A, B;
    if (det > 0) {
        A = (sw * sqx - sq * sx) / det;
        B = (sx - A * sq) / sw;
    } else {
        A = 0, B = sw > 0 ? sx / sw : 0;
    }
    if (B > 0) { /* the min is stored as a non-negative offset */
        B = 0;
        A = sqq > 0 ? sqx / sqq : 0;
    }
    if (A < 0) A = 0;
    *a = (float)A, *b = (float)B;
    /* the error of the fit with these q, from the sums */
    return (float)(sxx - 2 * A * sqx - 2 * B * sx + A * A * sqq + 2 * A * B * sq + B * B * sw);
}

/* The best (a, b) for one sub-block: a >= 0, b <= 0. */
static void search_affine(const float *x, const float *w, int n, int nmax, float *a, float *b) {
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    if (hi - lo <= 0) {
        *a = 0, *b = lo;
        return;
    }
    float best = INFINITY;
    for (int k = -6; k <= 6; k++) {
        float ta, tb, is = ((float)nmax + 0.25f * (float)k) / (hi - lo);
        float e = fit_affine(x, w, n, nmax, lo, is, &ta, &tb);
        if (e < best) best = e, *a = ta, *b = tb;
    }
    for (int it = 0; it < 2 && *a > 0; it++) {
        float ta, tb, e = fit_affine(x, w, n, nmax, *b, 1.0f / *a, &ta, &tb);
        if (e < best) best = e, *a = ta, *b = tb;
    }
}

/* Weighted error of x ~ s q (q in -nmax-1..nmax) with q = round(x * is), and the refit scale. */
static float fit_sym(const float *x, const float *w, int n, int nmax, float is, float *a) {
    double sqq = 0, sqx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        float q = (float)clampi(nearest(x[i] * is), -nmax - 1, nmax);
        sqq += (double)w[i] * q * q, sqx += (double)w[i] * q * x[i], sxx += (double)w[i] * x[i] * x[i];
    }
    *a = sqq > 0 ? (float)(sqx / sqq) : 0;
    return (float)(sqq > 0 ? sxx - sqx * sqx / sqq : sxx);
}

static float search_sym(const float *x, const float *w, int n, int nmax) {
    float amax = 0;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    if (amax == 0) return 0;
    float best = INFINITY, a = 0;
    for (int sign = -1; sign <= 1; sign += 2)
        for (int k = 0; k <= 8; k++) {
            float ta, e = fit_sym(x, w, n, nmax, (float)sign * (28.0f + (float)k) / amax, &ta);
            if (e < best) best = e, a = ta;
        }
    for (int it = 0; it < 2 && a != 0; it++) {
        float ta, e = fit_sym(x, w, n, nmax, 1.0f / a, &ta);
        if (e < best) best = e, a = ta;
    }
    return a;
}

static void put_f16(uint8_t *p, float v) {
    uint16_t h = f32_to_fp16(v);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* Q4_K (nmax 15) or Q5_K (31) block: d, dmin, scales[12], [qh[32]], qs[128]. */
static void quantize_block_k4(const float *x, const float *w, uint8_t *blk, int nmax) {
    float a[8], b[8], amax = 0, bmax = 0;
    for (int j = 0; j < 8; j++) {
        search_affine(x + 32 * j, w + 32 * j, 32, nmax, &a[j], &b[j]);
        amax = fmaxf(amax, a[j]), bmax = fmaxf(bmax, -b[j]);
    }
    memset(blk, 0, nmax == 15 ? 144 : 176);
    put_f16(blk, amax / 63.0f);
    put_f16(blk + 2, bmax / 63.0f);
    float d = fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8)), dm = fp16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
    int sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = d > 0 ? clampi(nearest(a[j] / d), 0, 63) : 0;
        mn[j] = dm > 0 ? clampi(nearest(-b[j] / dm), 0, 63) : 0;
    }
    uint8_t *p = blk + 4;
    for (int j = 0; j < 4; j++) {
        p[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        p[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        p[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
    }
    uint8_t *qh = blk + 16, *qs = blk + (nmax == 15 ? 16 : 48);
    for (int j = 0; j < 8; j++) {
        float s = d * (float)sc[j], m = dm * (float)mn[j], is = s > 0 ? 1.0f / s : 0;
        for (int l = 0; l < 32; l++) {
            int q = clampi(nearest((x[32 * j + l] + m) * is), 0, nmax);
            qs[32 * (j / 2) + l] |= (uint8_t)((q & 15) << (4 * (j & 1)));
            if (nmax == 31) qh[l] |= (uint8_t)((q >> 4) << j);
        }
    }
}

/* Q6_K block: ql[128], qh[64], scales[16] (int8), d. */
static void quantize_block_q6_k(const float *x, const float *w, uint8_t *blk) {
    float a[16], amax = 0;
    for (int g = 0; g < 16; g++) {
        a[g] = search_sym(x + 16 * g, w + 16 * g, 16, 31);
        amax = fmaxf(amax, fabsf(a[g]));
    }
    memset(blk, 0, 210);
    put_f16(blk + 208, amax / 127.0f);
    float d = fp16_to_f32((uint16_t)(blk[208] | blk[209] << 8));
    int8_t *sc = (int8_t *)(blk + 192);
    int q[QK_K];
    for (int g = 0; g < 16; g++) {
        sc[g] = (int8_t)(d > 0 ? clampi(nearest(a[g] / d), -127, 127) : 0);
        float s = d * (float)sc[g], is = s != 0 ? 1.0f / s : 0;
        for (int l = 0; l < 16; l++) q[16 * g + l] = clampi(nearest(x[16 * g + l] * is), -32, 31) + 32;
    }
    uint8_t *ql = blk, *qh = blk + 128;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int *o = q + 128 * h;
            ql[64 * h + l] = (uint8_t)((o[l] & 15) | (o[l + 64] & 15) << 4);
            ql[64 * h + l + 32] = (uint8_t)((o[l + 32] & 15) | (o[l + 96] & 15) << 4);
            qh[32 * h + l] = (uint8_t)((o[l] >> 4) | (o[l + 32] >> 4) << 2 | (o[l + 64] >> 4) << 4 | (o[l + 96] >> 4) << 6);
        }
}

static const float ones[QK_K] = {
#define O8 1, 1, 1, 1, 1, 1, 1, 1
#define O64 O8, O8, O8, O8, O8, O8, O8, O8
    O64, O64, O64, O64
#undef O64
#undef O8
};

void kq_from_float_q4_k_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    (void)d;
    for (int b = 0; b < n / QK_K; b++)
        quantize_block_k4(x + (size_t)b * QK_K, w ? w + (size_t)b * QK_K : ones, (uint8_t *)q + (size_t)b * 144, 15);
}
void kq_from_float_q5_k_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    (void)d;
    for (int b = 0; b < n / QK_K; b++)
        quantize_block_k4(x + (size_t)b * QK_K, w ? w + (size_t)b * QK_K : ones, (uint8_t *)q + (size_t)b * 176, 31);
}
void kq_from_float_q6_k_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    (void)d;
    for (int b = 0; b < n / QK_K; b++)
        quantize_block_q6_k(x + (size_t)b * QK_K, w ? w + (size_t)b * QK_K : ones, (uint8_t *)q + (size_t)b * 210);
}
void kq_from_float_q4_k(const float *x, void *q, uint16_t *d, int n) { kq_from_float_q4_k_w(x, q, d, n, NULL); }
void kq_from_float_q5_k(const float *x, void *q, uint16_t *d, int n) { kq_from_float_q5_k_w(x, q, d, n, NULL); }
void kq_from_float_q6_k(const float *x, void *q, uint16_t *d, int n) { kq_from_float_q6_k_w(x, q, d, n, NULL); }

void kq_block_scales(uint32_t type, const uint8_t *blk, float *s, float *m) {
    if (type == TENSOR_Q6_K) {
        float d = fp16_to_f32((uint16_t)(blk[208] | blk[209] << 8));
        for (int g = 0; g < 16; g++) s[g] = d * (float)(int8_t)blk[192 + g], m[g] = 32.0f * s[g];
    } else {
        unpack_scales_k4(blk, s, m);
    }
}

/* Q6_KP's panels (words: ql 0-31, qh 32-47, scales 48-51, d 52): sub-block j = 4h + s holds
 * elements 128h + 32s + l; line k (l = 4k ... 4k + 3) is the low (s < 2) or high nibbles of ql
 * word 16h + 8 (s & 1) + k with bits 2s, 2s + 1 of qh word 32 + 8h + k above them; f1, f2 the
 * scales d sc of its two 16s (KMODE_OFF32), as kq_unpack_q6_k computes them. */
static void unpack_q6_kp(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        for (int j = 0; j < 8; j++) {
            int h = j >> 2, s = j & 3;
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *ql = src + (size_t)(16 * h + 8 * (s & 1)) * QR * 4, *qh = src + (size_t)(32 + 8 * h) * QR * 4;
            for (int i = 0; i < QR * QK / 4; i++) {
                uint32_t v, hb;
                memcpy(&v, ql + 4 * i, 4);
                memcpy(&hb, qh + 4 * i, 4);
                v = ((v >> (4 * (s >> 1))) & 0x0f0f0f0fu) | (((hb >> (2 * s)) & 0x03030303u) << 4);
                memcpy(rec + 4 * i, &v, 4);
            }
            float *f1 = (float *)(void *)(rec + QR * QK), *f2 = f1 + QR;
            for (int l = 0; l < QR; l++) {
                float d = fp16_to_f32((uint16_t)(src[(52 * QR + l) * 4] | src[(52 * QR + l) * 4 + 1] << 8));
                const int8_t *sc = (const int8_t *)(src + ((48 + j / 2) * QR + l) * 4); /* scales 4w ... 4w + 3 */
                f1[l] = d * (float)sc[2 * (j & 1)];
                f2[l] = d * (float)sc[2 * (j & 1) + 1];
            }
        }
    }
}

/* Q4_KP and Q5_KP (kernels/blocks.h): panel p's super-blocks [sb0, sb0 + n) into panel records.
 * The stored panel is already a lane per row, 4 bytes at a time: word k of lane l at (k * QR +
 * l) * 4, word 0 d and dmin, words 1-3 the 12 scale bytes, then Q5_KP's 8 words of fifth bits
 * (qh: byte i bit j is element i of sub-block j), then the nibbles; sub-block j's u words are
 * the low (j even) or high (j odd) nibbles of nibble words 8 (j / 2) .. + 7, with Q5_KP's bit j
 * of the matching qh word as bit 4, so the records come from masks and shifts of whole words
 * (scalar under GCC -O2: x86 has SIMD twins), and s, m per lane as kq_unpack_q4_k computes them. */
void kq_unpack_kp(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    int q5 = w->type == TENSOR_Q5_KP;
    if (w->type == TENSOR_Q6_KP) {
        unpack_q6_kp(w, p, sb0, n, out);
        return;
    }
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        float d[QR], dmin[QR];
        int sc[QR][8], mn[QR][8];
        for (int l = 0; l < QR; l++) { /* each lane's scales once, not once per sub-block */
            uint8_t sc12[12];
            for (int k = 0; k < 3; k++) memcpy(sc12 + 4 * k, src + ((1 + k) * QR + l) * 4, 4);
            for (int j = 0; j < 8; j++) get_scale_min(j, sc12, &sc[l][j], &mn[l][j]);
            d[l] = fp16_to_f32((uint16_t)(src[4 * l] | src[4 * l + 1] << 8));
            dmin[l] = fp16_to_f32((uint16_t)(src[4 * l + 2] | src[4 * l + 3] << 8));
        }
        for (int j = 0; j < 8; j++) {
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *nib = src + (size_t)((q5 ? 12 : 4) + 8 * (j / 2)) * QR * 4, *qh = src + 4 * QR * 4;
            int sh = 4 * (j & 1);
            for (int i = 0; i < QR * QK / 4; i++) {
                uint32_t v, h = 0;
                memcpy(&v, nib + 4 * i, 4);
                if (q5) memcpy(&h, qh + 4 * i, 4);
                v = ((v >> sh) & 0x0f0f0f0fu) | (((h >> j) & 0x01010101u) << 4);
                memcpy(rec + 4 * i, &v, 4);
            }
            float *f1 = (float *)(void *)(rec + QR * QK), *f2 = f1 + QR;
            for (int l = 0; l < QR; l++) f1[l] = d[l] * (float)sc[l][j], f2[l] = dmin[l] * (float)mn[l][j];
        }
    }
}

/* Q6_KP's rows in natural order: Q6_K blocks of 210 bytes, each followed by 2 zero bytes (212,
 * a whole number of 4-byte words, as the panel layout needs). */
#define Q6KP_BYTES 212
void kq_to_float_q6_kp(const void *q, const uint16_t *d, float *y, int n) {
    for (int b = 0; b < n / QK_K; b++) kq_to_float_q6_k((const uint8_t *)q + (size_t)b * Q6KP_BYTES, d, y + (size_t)b * QK_K, QK_K);
}
void kq_from_float_q6_kp_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    for (int b = 0; b < n / QK_K; b++) {
        uint8_t *o = (uint8_t *)q + (size_t)b * Q6KP_BYTES;
        kq_from_float_q6_k_w(x + (size_t)b * QK_K, o, d, QK_K, w ? w + (size_t)b * QK_K : NULL);
        o[210] = o[211] = 0;
    }
}
void kq_from_float_q6_kp(const float *x, void *q, uint16_t *d, int n) { kq_from_float_q6_kp_w(x, q, d, n, NULL); }
double kq_dot_ref_q6_kp(const void *q, const float *x, int n) {
    double s = 0;
    for (int b = 0; b < n / QK_K; b++) s += kq_dot_ref_q6_k((const uint8_t *)q + (size_t)b * Q6KP_BYTES, x + (size_t)b * QK_K, QK_K);
    return s;
}
