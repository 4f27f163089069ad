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

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "kernels/ggml_types.h"
#include "kernels/kquant_lanes.h"

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
/* Round half away from zero, inline (lrintf may be a libm call). A sub-block whose largest value
 * is subnormal makes its inverse scale infinite (and 0 x inf NaN): those give INT_MIN, as x86's
 * truncating conversion (and so the SIMD lanes) does, instead of C's undefined conversion, so that
 * every machine quantizes them alike (the clamp then takes the low end). */
static inline int nearest(float v) {
    float r = v + (v >= 0 ? 0.5f : -0.5f);
    return fabsf(r) < 2147483648.0f ? (int)r : INT_MIN;
}
/* fmaxf / fminf where the first argument is never NaN (the same result; a libm call each on
 * baseline x86-64: 4.5 % of quant -q q4_k_m) */
static inline float maxf(float a, float v) { return v > a ? v : a; }
static inline float minf(float a, float v) { return v < a ? v : a; }

/* The searches' candidates run on SIMD lanes (kernels/kquant_lanes.c) up to level simd (0: the
 * scalar reference, one fit per candidate; 1 AVX2; 2 AVX-512), as far as the CPU has them: the
 * same sums, so the same bytes at every level. */
static int lanes(int simd) {
    int l = kq_lanes_level();
    return simd < l ? simd : l;
}

/* The weighted least-squares x ~ a q + b (b <= 0) from the fit's sums; returns its error. */
static float affine_solve(double sw, double sq, double sx, double sqq, double sqx, double sxx, float *a, float *b) {
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
    return affine_solve(sw, sq, sx, sqq, sqx, sxx, a, b);
}

/* The best (a, b) for one sub-block: a >= 0, b <= 0; simd as for lanes() (13 candidates). */
static void search_affine(const float *x, const float *w, int n, int nmax, float *a, float *b, int simd) {
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) lo = minf(lo, x[i]), hi = maxf(hi, x[i]);
    if (hi - lo <= 0) {
        *a = 0, *b = lo;
        return;
    }
    float best = INFINITY, is[16] = {0};
    for (int k = -6; k <= 6; k++) is[k + 6] = ((float)nmax + 0.25f * (float)k) / (hi - lo);
    if ((simd = lanes(simd)) > 0) {
        double sw = 0, sx = 0, sxx = 0, sq[16], sqq[16], sqx[16];
        for (int i = 0; i < n; i++) sw += w[i], sx += (double)w[i] * x[i], sxx += (double)w[i] * x[i] * x[i];
        kq_affine_lanes(simd, x, w, n, nmax, lo, is, sq, sqq, sqx);
        for (int m = 0; m < 13; m++) {
            float ta, tb, e = affine_solve(sw, sq[m], sx, sqq[m], sqx[m], sxx, &ta, &tb);
            if (e < best) best = e, *a = ta, *b = tb;
        }
    } else {
        for (int m = 0; m < 13; m++) {
            float ta, tb, e = fit_affine(x, w, n, nmax, lo, is[m], &ta, &tb);
            if (e < best) best = e, *a = ta, *b = tb;
        }
    }
    for (int it = 0; it < 2 && *a > 0; it++) {
        float ta, tb, e = fit_affine(x, w, n, nmax, *b, 1.0f / *a, &ta, &tb);
        if (e < best) best = e, *a = ta, *b = tb;
    }
}

static float sym_solve(double sqq, double sqx, double sxx, float *a) {
    *a = sqq > 0 ? (float)(sqx / sqq) : 0;
    return (float)(sqq > 0 ? sxx - sqx * sqx / sqq : sxx);
}

/* Weighted error of x ~ s q (q in -nmax-1..nmax) with q = round(x * is), and the refit scale. */
static float fit_sym(const float *x, const float *w, int n, int nmax, float is, float *a) {
    double sqq = 0, sqx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        float q = (float)clampi(nearest(x[i] * is), -nmax - 1, nmax);
        sqq += (double)w[i] * q * q, sqx += (double)w[i] * q * x[i], sxx += (double)w[i] * x[i] * x[i];
    }
    return sym_solve(sqq, sqx, sxx, a);
}

/* simd as for lanes() (18 candidates). */
static float search_sym(const float *x, const float *w, int n, int nmax, int simd) {
    float amax = 0;
    for (int i = 0; i < n; i++) amax = maxf(amax, fabsf(x[i]));
    if (amax == 0) return 0;
    float best = INFINITY, a = 0, is[32] = {0};
    for (int sign = -1, m = 0; sign <= 1; sign += 2)
        for (int k = 0; k <= 8; k++) is[m++] = (float)sign * (28.0f + (float)k) / amax;
    if ((simd = lanes(simd)) > 0) {
        double sxx = 0, sqq[24], sqx[24];
        for (int i = 0; i < n; i++) sxx += (double)w[i] * x[i] * x[i];
        kq_sym_lanes(simd, x, w, n, nmax, is, sqq, sqx);
        for (int m = 0; m < 18; m++) {
            float ta, e = sym_solve(sqq[m], sqx[m], sxx, &ta);
            if (e < best) best = e, a = ta;
        }
    } else {
        for (int m = 0; m < 18; m++) {
            float ta, e = fit_sym(x, w, n, nmax, is[m], &ta);
            if (e < best) best = e, a = ta;
        }
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
static void quantize_block_k4(const float *x, const float *w, uint8_t *blk, int nmax, int simd) {
    float a[8], b[8], amax = 0, bmax = 0;
    for (int j = 0; j < 8; j++) {
        search_affine(x + 32 * j, w + 32 * j, 32, nmax, &a[j], &b[j], simd);
        amax = maxf(amax, a[j]), bmax = maxf(bmax, -b[j]);
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
static void quantize_block_q6_k(const float *x, const float *w, uint8_t *blk, int simd) {
    float a[16], amax = 0;
    for (int g = 0; g < 16; g++) {
        a[g] = search_sym(x + 16 * g, w + 16 * g, 16, 31, simd);
        amax = maxf(amax, fabsf(a[g]));
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
        quantize_block_k4(x + (size_t)b * QK_K, w ? w + (size_t)b * QK_K : ones, (uint8_t *)q + (size_t)b * 144, 15, 2);
}
void kq_from_float_q5_k_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    (void)d;
    for (int b = 0; b < n / QK_K; b++)
        quantize_block_k4(x + (size_t)b * QK_K, w ? w + (size_t)b * QK_K : ones, (uint8_t *)q + (size_t)b * 176, 31, 2);
}
void kq_from_float_q6_k_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    (void)d;
    for (int b = 0; b < n / QK_K; b++)
        quantize_block_q6_k(x + (size_t)b * QK_K, w ? w + (size_t)b * QK_K : ones, (uint8_t *)q + (size_t)b * 210, 2);
}
void kq_from_float_q4_k(const float *x, void *q, uint16_t *d, int n) { kq_from_float_q4_k_w(x, q, d, n, NULL); }
void kq_from_float_q5_k(const float *x, void *q, uint16_t *d, int n) { kq_from_float_q5_k_w(x, q, d, n, NULL); }
void kq_from_float_q6_k(const float *x, void *q, uint16_t *d, int n) { kq_from_float_q6_k_w(x, q, d, n, NULL); }

void kq_block_scales(uint32_t type, const uint8_t *blk, float *s, float *m) {
    if (type == TENSOR_IQ4_XS) {
        uint8_t u[QK_K];
        kq_unpack_iq4_xs(blk, u, s, m);
    } else if (type == TENSOR_Q6_K || type == TENSOR_Q6_KP) {
        float d = fp16_to_f32((uint16_t)(blk[208] | blk[209] << 8));
        for (int g = 0; g < 16; g++) s[g] = d * (float)(int8_t)blk[192 + g], m[g] = 32.0f * s[g];
    } else {
        unpack_scales_k4(blk, s, m);
    }
}

/* Q6_KP's panels (words: ql 0-31, qh 32-47, scales 48-51, d 52): sub-block j = 4h + s holds
 * elements 128h + 32s + l; line k (l = 4k ... 4k + 3) is the low (s < 2) or high nibbles of ql
 * word 16h + 8 (s & 1) + k with bits 2s, 2s + 1 of qh word 32 + 8h + k above them; f1, f2 the
 * scales d sc of its two 16s (KMODE_OFF32), as kq_unpack_q6_k computes them.
 * Q4_KP and Q5_KP (kernels/blocks.h): the stored panel is already a lane per row, 4 bytes at a
 * time: word k of lane l at (k * QR + l) * 4, word 0 d and dmin, words 1-3 the 12 scale bytes,
 * then Q5_KP's 8 words of fifth bits (qh: byte i bit j is element i of sub-block j), then the
 * nibbles; sub-block j's u words are the low (j even) or high (j odd) nibbles of nibble words
 * 8 (j / 2) .. + 7, with Q5_KP's bit j of the matching qh word as bit 4, so the records come from
 * masks and shifts of whole words (scalar under GCC -O2: x86 and NEON have SIMD twins), and
 * f1 = s, f2 = m per lane as kq_unpack_q4_k computes them. */
void kq_kp_record_scales(uint32_t type, const uint8_t *src, float f[8][2][QR]) {
    if (type == TENSOR_Q6_KP) {
        for (int l = 0; l < QR; l++) {
            float d = fp16_to_f32((uint16_t)(src[(52 * QR + l) * 4] | src[(52 * QR + l) * 4 + 1] << 8));
            for (int j = 0; j < 8; j++) {
                const int8_t *sc = (const int8_t *)(src + ((48 + j / 2) * QR + l) * 4); /* scales 4w ... 4w + 3 */
                f[j][0][l] = d * (float)sc[2 * (j & 1)];
                f[j][1][l] = d * (float)sc[2 * (j & 1) + 1];
            }
        }
        return;
    }
    for (int l = 0; l < QR; l++) { /* each lane's scales once, not once per sub-block */
        uint8_t sc12[12];
        for (int k = 0; k < 3; k++) memcpy(sc12 + 4 * k, src + ((1 + k) * QR + l) * 4, 4);
        float d = fp16_to_f32((uint16_t)(src[4 * l] | src[4 * l + 1] << 8));
        float dmin = fp16_to_f32((uint16_t)(src[4 * l + 2] | src[4 * l + 3] << 8));
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            get_scale_min(j, sc12, &sc, &mn);
            f[j][0][l] = d * (float)sc, f[j][1][l] = dmin * (float)mn;
        }
    }
}

static void unpack_q6_kp(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        float f[8][2][QR];
        kq_kp_record_scales(TENSOR_Q6_KP, src, f);
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
            memcpy(rec + QR * QK, f[j], sizeof f[j]);
        }
    }
}

static void unpack_iq4_xs_panel(const MatView *w, int p, int sb0, int n, uint8_t *out);

/* Panel p's super-blocks [sb0, sb0 + n) of a K panel type into panel records. */
void kq_unpack_kp(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    int q5 = w->type == TENSOR_Q5_KP;
    if (w->type == TENSOR_Q6_KP) {
        unpack_q6_kp(w, p, sb0, n, out);
        return;
    }
    if (w->type == TENSOR_IQ4_XS) {
        unpack_iq4_xs_panel(w, p, sb0, n, out);
        return;
    }
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        float f[8][2][QR];
        kq_kp_record_scales(w->type, src, f);
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
            memcpy(rec + QR * QK, f[j], sizeof f[j]);
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

/* ---- IQ4_XS (llama.cpp's 4.25-bit non-uniform type), stored in panels ----
 * A block of 256: f16 d, 16-bit scales_h, 4 bytes scales_l, 128 nibble bytes (136 bytes, 34
 * words). Sub-block j (32 weights) has the 6-bit scale ls_j = (nibble j of scales_l) | (bits 2j,
 * 2j + 1 of scales_h) << 4 and weight 32j + k the level kvalue[nibble] of qs[16j + k] (low nibble
 * k < 16, high nibble k - 16): x = d (ls_j - 32) kvalue. The 16 levels (-127 .. 113) are the
 * format's (ggml's kvalues_iq4nl). Unpacked (kernels/kquant.h, KMODE_OFF128): u = kvalue + 128
 * (1 .. 241), s = d (ls - 32) on both 16s, m = 128 s. */
static const int8_t iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

void kq_to_float_iq4_xs(const void *q, const uint16_t *d, float *y, int n) {
    (void)d;
    ggml_dequantize_row(GGML_TYPE_IQ4_XS, q, y, n, NULL, 0);
}
double kq_dot_ref_iq4_xs(const void *q, const float *x, int n) { return dot_ref(GGML_TYPE_IQ4_XS, 136, q, x, n); }

static inline float iq4_scale(const uint8_t *blk, int j, float d) {
    int sh = blk[2] | blk[3] << 8;
    int ls = ((blk[4 + j / 2] >> (4 * (j & 1))) & 15) | ((sh >> (2 * j)) & 3) << 4;
    return d * (float)(ls - 32);
}

void kq_unpack_iq4_xs(const uint8_t *blk, uint8_t *u, float *s, float *m) {
    float d = fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
    for (int j = 0; j < 8; j++) {
        s[2 * j] = s[2 * j + 1] = iq4_scale(blk, j, d);
        m[2 * j] = m[2 * j + 1] = 128.0f * s[2 * j];
        const uint8_t *qs = blk + 8 + 16 * j;
        for (int k = 0; k < 16; k++) {
            u[32 * j + k] = (uint8_t)(iq4_levels[qs[k] & 15] + 128);
            u[32 * j + 16 + k] = (uint8_t)(iq4_levels[qs[k] >> 4] + 128);
        }
    }
}

void kq_iq4_xs_scales(const uint8_t *src, float sc[QR][8]) {
    for (int l = 0; l < QR; l++) {
        uint8_t blk[8]; /* the lane's first two words, as kq_unpack_iq4_xs reads them */
        memcpy(blk, src + 4 * l, 4);
        memcpy(blk + 4, src + (QR + l) * 4, 4);
        float d = fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
        for (int j = 0; j < 8; j++) sc[l][j] = iq4_scale(blk, j, d);
    }
}

/* IQ4_XS panels (words: d and scales_h 0, scales_l 1, nibbles 2-33): sub-block j's record words
 * 0-3 are the levels of the low nibbles of words 2 + 4j .. 5 + 4j, words 4-7 of their high
 * nibbles. */
static void unpack_iq4_xs_panel(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        float sc[QR][8];
        kq_iq4_xs_scales(src, sc);
        for (int j = 0; j < 8; j++) {
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *nib = src + (size_t)(2 + 4 * j) * QR * 4;
            for (int i = 0; i < 4 * QR * 4; i++) {
                rec[i] = (uint8_t)(iq4_levels[nib[i] & 15] + 128);
                rec[4 * QR * 4 + i] = (uint8_t)(iq4_levels[nib[i] >> 4] + 128);
            }
            float *f1 = (float *)(void *)(rec + QR * QK), *f2 = f1 + QR;
            for (int l = 0; l < QR; l++) f1[l] = f2[l] = sc[l][j];
        }
    }
}

/* The index of the level nearest v. The midpoints between neighbouring levels are multiples of
 * 0.5, so the nearest level is constant on each half-unit [k / 2, (k + 1) / 2): a table of the 512
 * half-units over [-128, 128) (v beyond: the end levels), built once; a midpoint itself goes up
 * (to within the rounding of 2 v + 256). Against a binary search over the levels: quant --random
 * phi3-mini --layers 2 -q iq4_xs 90.5 -> 32.7 s (with the 42 candidates of then; now 22 + 5). */
static uint8_t iq4_cell[512];
static float iq4_cell_level[512]; /* iq4_levels[iq4_cell[c]] as floats (the SIMD search gathers them) */
static pthread_once_t iq4_cell_once = PTHREAD_ONCE_INIT;
static void iq4_cell_init(void) {
    for (int c = 0; c < 512; c++) {
        float v = (float)(c - 256) * 0.5f; /* the cell's lowest value */
        int best = 0;
        for (int i = 1; i < 16; i++)
            if (fabsf(v - (float)iq4_levels[i]) <= fabsf(v - (float)iq4_levels[best])) best = i;
        iq4_cell[c] = (uint8_t)best;
        iq4_cell_level[c] = (float)iq4_levels[best];
    }
}
static inline int iq4_nearest(float v) {
    /* c >= 0: truncation is the floor (floorf is a libm call on baseline x86-64: the same run
     * 22.8 -> 19.7 s without it); NaN (0 times an infinite inverse scale) takes the cell of 0 */
    float c = 2.0f * v + 256.0f;
    return iq4_cell[c >= 0 ? (c < 511 ? (int)c : 511) : c < 0 ? 0 : 256];
}

/* Weighted error of x ~ a level(q) with q = nearest(x * is), and the refit a.
 * Returned less the sum of w x^2, which is the same for every candidate of a sub-block; in
 * float (32 terms): 1.2x faster than in double (perf of quant --random), the same choices to
 * within rounding. */
static float fit_iq4(const float *x, const float *w, int n, float is, float *a) {
    float sqq = 0, sqx = 0;
    for (int i = 0; i < n; i++) {
        float q = (float)iq4_levels[iq4_nearest(x[i] * is)], wq = w[i] * q;
        sqq += wq * q, sqx += wq * x[i];
    }
    *a = sqq > 0 ? sqx / sqq : 0;
    return sqq > 0 ? -sqx * sqx / sqq : 0;
}

/* A sub-block's scale: the largest magnitude placed at 11 points, 2 apart, around either end level
 * (-127 or 113, so either sign of scale), each fit refitted, the best refined twice. (21 points,
 * 1 apart, gave the same error on blk.3.ffn_down of phi3-trained-tiny to 4 digits: tests/test_ktypes.c;
 * 3 apart 0.9 % more.) */
#define IQ4_NC 22 /* candidates: 11 around each end level */

/* simd as for lanes() (22 candidates). */
static float search_iq4(const float *x, const float *w, int n, int simd) {
    float amax = 0;
    for (int i = 0; i < n; i++) amax = maxf(amax, fabsf(x[i]));
    if (amax == 0) return 0;
    float best = INFINITY, a = 0, is[32] = {0};
    for (int e = 0, m = 0; e < 2; e++)
        for (int k = -10; k <= 10; k += 2) {
            float end = e ? 113.0f : -127.0f;
            is[m++] = (end + (float)k * (e ? 1.0f : -1.0f)) / amax;
        }
    if ((simd = lanes(simd)) > 0) {
        float sqq[32], sqx[32];
        kq_iq4_lanes(simd, x, w, n, is, iq4_cell_level, sqq, sqx);
        for (int m = 0; m < IQ4_NC; m++) {
            float ta = sqq[m] > 0 ? sqx[m] / sqq[m] : 0, ee = sqq[m] > 0 ? -sqx[m] * sqx[m] / sqq[m] : 0;
            if (ee < best) best = ee, a = ta;
        }
    } else {
        for (int m = 0; m < IQ4_NC; m++) {
            float ta, ee = fit_iq4(x, w, n, is[m], &ta);
            if (ee < best) best = ee, a = ta;
        }
    }
    for (int it = 0; it < 2 && a != 0; it++) {
        float ta, ee = fit_iq4(x, w, n, 1.0f / a, &ta);
        if (ee < best) best = ee, a = ta;
    }
    return a;
}

/* Block: the 8 sub-block scales a_j to ls_j - 32 in -32 .. 31 against d = -(the a of largest
 * magnitude) / 32 (that one lands on -32 exactly, the end with room), each ls then chosen among
 * its rounding and the neighbours by the sub-block's weighted error with the stored scale, and
 * the weights requantized to the nearest level of the stored scale. */
static void quantize_block_iq4_xs(const float *x, const float *w, uint8_t *blk, int simd) {
    pthread_once(&iq4_cell_once, iq4_cell_init);
    float a[8], amax = 0, abig = 0;
    for (int j = 0; j < 8; j++) {
        a[j] = search_iq4(x + 32 * j, w + 32 * j, 32, simd);
        if (fabsf(a[j]) > amax) amax = fabsf(a[j]), abig = a[j];
    }
    memset(blk, 0, 136);
    put_f16(blk, -abig / 32.0f);
    float d = fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
    int sh = 0;
    for (int j = 0; j < 8; j++) {
        int l0 = d != 0 ? clampi(nearest(a[j] / d), -32, 31) : 0, ls = l0;
        float best = INFINITY;
        for (int c = l0 - 1; c <= l0 + 1 && d != 0; c++) {
            if (c < -32 || c > 31) continue;
            float s = d * (float)c, is = s != 0 ? 1.0f / s : 0, e = 0;
            for (int k = 0; k < 32; k++) {
                float r = x[32 * j + k] - s * (float)iq4_levels[iq4_nearest(x[32 * j + k] * is)];
                e += w[32 * j + k] * r * r;
            }
            if (e < best) best = e, ls = c;
        }
        ls += 32;
        blk[4 + j / 2] |= (uint8_t)((ls & 15) << (4 * (j & 1)));
        sh |= (ls >> 4) << (2 * j);
        float s = d * (float)(ls - 32), is = s != 0 ? 1.0f / s : 0;
        uint8_t *qs = blk + 8 + 16 * j;
        for (int k = 0; k < 16; k++)
            qs[k] = (uint8_t)(iq4_nearest(x[32 * j + k] * is) | iq4_nearest(x[32 * j + 16 + k] * is) << 4);
    }
    blk[2] = (uint8_t)sh, blk[3] = (uint8_t)(sh >> 8);
}

void kq_from_float_iq4_xs_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    (void)d;
    for (int b = 0; b < n / QK_K; b++)
        quantize_block_iq4_xs(x + (size_t)b * QK_K, w ? w + (size_t)b * QK_K : ones, (uint8_t *)q + (size_t)b * 136, 2);
}
void kq_from_float_iq4_xs(const float *x, void *q, uint16_t *d, int n) { kq_from_float_iq4_xs_w(x, q, d, n, NULL); }
int kq_quantize_block(uint32_t type, const float *x, const float *w, int simd, uint8_t *blk) {
    w = w ? w : ones;
    switch (type) {
    case TENSOR_Q4_K: quantize_block_k4(x, w, blk, 15, simd); return 144;
    case TENSOR_Q5_K: quantize_block_k4(x, w, blk, 31, simd); return 176;
    case TENSOR_Q6_K: quantize_block_q6_k(x, w, blk, simd); return 210;
    case TENSOR_IQ4_XS: quantize_block_iq4_xs(x, w, blk, simd); return 136;
    default: return 0;
    }
}

/* ---- GGUF types phi has no layout for, re-coded losslessly into one it has ---- */

/* IQ4_NL (f16 d, 16 bytes of nibbles: element j low nibble of byte j, j + 16 high) is d x level,
 * and the levels are int8: a q8 block with the same d and q = the level is the same values
 * (ggml's d * level, q8's q * d: one float product either way). 8.5 bits instead of 4.5, exact. */
void kq_q8_from_iq4_nl(const uint8_t *blk, int8_t *q, uint16_t *d) {
    *d = (uint16_t)(blk[0] | blk[1] << 8);
    for (int j = 0; j < 16; j++) q[j] = iq4_levels[blk[2 + j] & 15], q[j + 16] = iq4_levels[blk[2 + j] >> 4];
}

/* Q3_K (hmask[32], qs[64], scales[12], f16 d) is (d sc_g) v with sc_g = the 6-bit scale - 32 per
 * 16 and v = the 2 low bits - (4 when the hmask bit is clear) in -4..3; Q6_K is (d sc_g) q with
 * an int8 sc_g per 16 and q = the 6-bit value - 32: the same d, sc_g and q = v give the same
 * products (ggml's dequantizers compute d * sc first in both). 6.56 bits instead of 3.44, exact. */
void kq_q6_k_from_q3_k(const uint8_t *q3, uint8_t *q6) {
    const uint8_t *hm = q3, *qs = q3 + 32, *sc = q3 + 96;
    int v[QK_K];
    for (int e = 0; e < QK_K; e++) { /* element e: half e / 128, shift 2 ((e / 32) % 4), byte e % 32 */
        int h = e / 128, s = (e / 32) % 4, k = e % 32;
        v[e] = ((qs[32 * h + k] >> (2 * s)) & 3) - ((hm[k] >> (4 * h + s)) & 1 ? 0 : 4);
    }
    memset(q6, 0, 210);
    for (int g = 0; g < 16; g++) {
        int lo = g < 8 ? (sc[g] & 15) : (sc[g - 8] >> 4), hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
        q6[192 + g] = (uint8_t)(int8_t)((lo | hi << 4) - 32);
    }
    q6[208] = q3[108], q6[209] = q3[109];
    for (int h = 0; h < 2; h++) /* the Q6_K layout as quantize_block_q6_k writes it */
        for (int l = 0; l < 32; l++) {
            const int *o = v + 128 * h;
            int a = o[l] + 32, b = o[l + 32] + 32, c = o[l + 64] + 32, dd = o[l + 96] + 32;
            q6[64 * h + l] = (uint8_t)((a & 15) | (c & 15) << 4);
            q6[64 * h + l + 32] = (uint8_t)((b & 15) | (dd & 15) << 4);
            q6[128 + 32 * h + l] = (uint8_t)((a >> 4) | (b >> 4) << 2 | (c >> 4) << 4 | (dd >> 4) << 6);
        }
}
