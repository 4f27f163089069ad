/* Tensor types: float16 conversion, quantize/dequantize error bounds, reference matvec. */
#include <math.h>
#include <string.h>

#include "kernels/blocks.h"
#include "kernels/ref.h"
#include "tests/harness.h"

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t hw_f32_to_fp16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_fp16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
#endif

static void test_fp16(void) {
    /* Every half converts to float and back to itself (NaNs stay NaN). */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_f32((uint16_t)h);
        uint16_t back = f32_to_fp16(f);
        if (isnan(f) ? !((back & 0x7c00) == 0x7c00 && (back & 0x3ff)) : back != h) bad++;
    }
    t_check(bad == 0, "fp16_roundtrip_all_65536", "%d mismatches", bad);
#if defined(__x86_64__)
    if (__builtin_cpu_supports("f16c")) {
        /* Independent reference: the CPU's F16C conversion, on all halves and random floats
         * across the whole range (incl. subnormal results, overflow and rounding ties). */
        int bad_to = 0, bad_from = 0;
        for (uint32_t h = 0; h < 65536; h++) {
            float a = fp16_to_f32((uint16_t)h), b = hw_fp16_to_f32((uint16_t)h);
            if (memcmp(&a, &b, 4) && !(isnan(a) && isnan(b))) bad_from++;
        }
        t_seed(7);
        for (int i = 0; i < 2000000; i++) {
            union { uint32_t u; float f; } v;
            v.u = (uint32_t)(t_randf() * 2147483647.0f) * 2u + (i & 1);
            if (i % 4 == 0) v.u = 0x33000000u + (uint32_t)i * 3u % 0x0b000000u; /* tiny values */
            if (isnan(v.f)) continue;
            if (f32_to_fp16(v.f) != hw_f32_to_fp16(v.f)) bad_to++;
        }
        t_check(bad_from == 0 && bad_to == 0, "fp16_matches_f16c", "from %d, to %d mismatches of 2M",
                bad_from, bad_to);
    } else {
        t_skip("fp16_matches_f16c", "CPU has no F16C");
    }
#else
    t_skip("fp16_matches_f16c", "not an x86-64 build");
#endif
}

/* Quantize random rows of awkward lengths, dequantize, and bound the error per element:
 * Q8: |x - y| <= d/2 with d = max|x|/127. Q4: the scale d is searched (blocks.c), then every
 * element is rounded to the nearest step, so |x - y| <= |d|/2 for every element that x/d does
 * not put outside -8.5 .. 7.5 (those are clamped to -8 or 7; the block bound in test_q4_search
 * covers them). */
static void test_quant_bounds(uint32_t type) {
    const char *name = type_traits(type)->name;
    double worst_ratio = 0, sq_err = 0, sq_val = 0;
    int fail_count = 0, n_clamped = 0;
    t_seed(100 + type);
    for (int trial = 0; trial < 200; trial++) {
        int n = QK * (1 + trial % 13);
        float x[QK * 13], y[QK * 13];
        uint8_t q[QK * 13 * 4];
        uint16_t d[13];
        float scale = powf(10.0f, (float)(trial % 7) - 3); /* 1e-3 .. 1e3 */
        for (int i = 0; i < n; i++) x[i] = t_randf() * scale * (i % 5 == 0 ? 3.0f : 1.0f);
        quantize_row(type, x, q, d, n);
        dequantize_row(type, q, d, y, n);
        for (int b = 0; b < n / QK; b++) {
            float amax = 0;
            for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(x[b * QK + i]));
            float ds = fp16_to_f32(d[b]);
            float step = type == TENSOR_Q8 ? amax / 127 : fabsf(ds);
            for (int i = 0; i < QK; i++) {
                double e = fabs((double)x[b * QK + i] - y[b * QK + i]);
                double ratio = e / step, v = x[b * QK + i] / ds;
                int clamped = type == TENSOR_Q4 && (v > 7.5 || v < -8.5);
                n_clamped += clamped;
                if (!clamped && ratio > worst_ratio) worst_ratio = ratio;
                if (!clamped && ratio > (type == TENSOR_Q8 ? 0.51 : 0.501)) fail_count++;
                sq_err += e * e;
                sq_val += (double)x[b * QK + i] * x[b * QK + i];
            }
        }
    }
    char tname[64];
    snprintf(tname, sizeof tname, "quant_error_bound_%s", name);
    t_check(fail_count == 0, tname, "max error %.4f steps (bound %s; %d clamped elements excluded), rms rel error %.2e",
            worst_ratio, type == TENSOR_Q8 ? "0.51" : "0.501", n_clamped, sqrt(sq_err / sq_val));
}

/* Q4's scale search, per block of 32 with importance w (all 1, or random in [0, 1]):
 *  - its weighted squared error sum w (x - y)^2 is never above that of the plain rule
 *    d = v / -8 (v the value of largest magnitude; the rule of llama.cpp's Q4_0), and
 *  - summed over all blocks it is within 1 % of the optimum over every real scale, found here by
 *    an exhaustive sweep of the scales at which some element changes its rounded value.
 * Blocks: Gaussian-like values, some with an outlier, as trained weights look. */
static double block_sse(const float *x, const float *w, float d) {
    double e = 0;
    for (int i = 0; i < QK; i++) {
        float v = d != 0 ? roundf(x[i] / d) : 0;
        v = v < -8 ? -8 : v > 7 ? 7 : v;
        e += w[i] * ((double)x[i] - d * v) * ((double)x[i] - d * v);
    }
    return e;
}

/* Minimum over all real d of the weighted error: between two consecutive breakpoints (scales
 * where some x / d crosses a half-integer) the q are fixed and the best d is a least-squares fit.
 * Candidate inverse scales: just above every breakpoint, on both signs. */
static double block_sse_optimal(const float *x, const float *w) {
    double best = INFINITY;
    for (int sgn = -1; sgn <= 1; sgn += 2)
        for (int j = 0; j < QK; j++) {
            if (x[j] == 0) continue;
            for (int k = 0; k < 9; k++) {
                double s = sgn * (k + 0.5) / fabs(x[j]) * (1 + 1e-7); /* inverse scale */
                double sxq = 0, sqq = 0, sxx = 0;
                for (int i = 0; i < QK; i++) {
                    double v = round(x[i] * s);
                    v = v < -8 ? -8 : v > 7 ? 7 : v;
                    sxq += w[i] * x[i] * v, sqq += w[i] * v * v, sxx += w[i] * (double)x[i] * x[i];
                }
                if (sqq > 0) best = fmin(best, sxx - sxq * sxq / sqq);
            }
        }
    return best;
}

static void test_q4_search(void) {
    for (int weighted = 0; weighted < 2; weighted++) {
        double sum_new = 0, sum_old = 0, sum_opt = 0;
        int worse = 0;
        t_seed(77 + weighted);
        for (int trial = 0; trial < 2000; trial++) {
            float x[QK], w[QK], y[QK];
            uint8_t q[QK / 2];
            uint16_t d;
            for (int i = 0; i < QK; i++) {
                x[i] = (t_randf() + t_randf() + t_randf()) * 0.02f;
                w[i] = weighted ? (t_randf() + 1) * 0.5f : 1.0f;
            }
            if (trial % 4 == 0) x[trial % QK] *= 4; /* an outlier */
            quantize_row_weighted(TENSOR_Q4, x, q, &d, QK, weighted ? w : NULL);
            dequantize_row(TENSOR_Q4, q, &d, y, QK);
            double e_new = 0;
            for (int i = 0; i < QK; i++) e_new += w[i] * ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            float amax = 0, vmax = 0;
            for (int i = 0; i < QK; i++)
                if (fabsf(x[i]) > amax) amax = fabsf(x[i]), vmax = x[i];
            double e_old = block_sse(x, w, fp16_to_f32(f32_to_fp16(vmax / -8.0f)));
            worse += e_new > e_old * (1 + 1e-5);
            sum_new += e_new, sum_old += e_old, sum_opt += block_sse_optimal(x, w);
        }
        char name[64];
        snprintf(name, sizeof name, "q4_scale_search_%s", weighted ? "weighted" : "uniform");
        t_check(worse == 0 && sum_new <= 1.01 * sum_opt, name,
                "%d of 2000 blocks worse than d = max/-8; squared error %.4f x the optimum, %.4f x max/-8's",
                worse, sum_new / sum_opt, sum_new / sum_old);
    }
}


/* The SIMD scale search (AVX2, AVX-512F) gives the reference's bits (scale and nibbles) on
 * blocks of every kind: bell-shaped with outliers, weighted (with zero weights), constant, a
 * single value, ties of largest magnitude on both signs, and magnitudes from fp16-subnormal
 * scales up to past fp16's range. */
static void test_q4_simd_same(void) {
    int top = q4_search_simd_level(), bad[3] = {0, 0, 0}, n = 0;
    t_seed(4242);
    for (int trial = 0; trial < 30000; trial++, n++) {
        float x[QK], w[QK];
        int kind = trial % 10;
        static const float mags[] = {1e-9f, 3e-7f, 1e-4f, 0.02f, 1.0f, 300.0f, 1e5f, 3e7f};
        float mag = mags[(trial / 10) % 8];
        for (int i = 0; i < QK; i++) {
            x[i] = (t_randf() + t_randf() + t_randf()) * mag;
            w[i] = kind >= 5 ? (t_randf() + 1) * 0.5f : 1.0f;
        }
        if (kind % 5 == 1) x[trial % QK] *= 6;            /* an outlier */
        if (kind % 5 == 2) for (int i = 0; i < QK; i++) x[i] = mag;   /* constant */
        if (kind % 5 == 3) { memset(x, 0, sizeof x); x[trial % QK] = -mag; } /* one value */
        if (kind % 5 == 4) { x[3] = mag * 4; x[20] = -mag * 4; }      /* tie of largest magnitude */
        if (kind == 9) w[trial % QK] = 0, w[(trial + 7) % QK] = 0;
        uint8_t q0[QK / 2], q[QK / 2];
        uint16_t d0 = q4_quantize_block_level(x, w, 0, q0);
        for (int lv = 1; lv <= 2; lv++) {
            uint16_t d = q4_quantize_block_level(x, w, lv, q);
            bad[lv] += d != d0 || memcmp(q, q0, sizeof q) != 0;
        }
    }
    if (top == 0) {
        t_skip("q4_simd_search_same_bits", "no AVX2 on this CPU: the reference is the only search");
        return;
    }
    t_check(bad[1] == 0 && bad[2] == 0, "q4_simd_search_same_bits",
            "%d blocks: AVX2 %d, AVX-512F %d differ from the reference (levels above %d fall back)",
            n, bad[1], bad[2], top);
}

/* Whole rows take the search in groups of blocks (kernels/blocks.c q4_blocks_simd): every
 * block of a row of 21 (two groups and a tail) gets the reference's bits, without importances,
 * with importances, and with importances that are all 1 in some blocks (those take the
 * candidates of unit weights, as the reference decides block by block). */
static void test_q4_row_same(void) {
    enum { NB = 21 };
    int bad = 0, n = 0;
    t_seed(4343);
    for (int trial = 0; trial < 300; trial++) {
        float x[NB * QK], w[NB * QK];
        uint8_t q[NB * QK / 2], q0[QK / 2];
        uint16_t d[NB];
        int mode = trial % 3;
        for (int i = 0; i < NB * QK; i++) {
            x[i] = (t_randf() + t_randf() + t_randf()) * 0.02f;
            w[i] = mode == 0 || (mode == 2 && (i / QK) % 3 == 0) ? 1.0f : (t_randf() + 1) * 0.5f;
        }
        x[trial % (NB * QK)] *= 5;
        quantize_row_weighted(TENSOR_Q4, x, q, d, NB * QK, mode ? w : NULL);
        for (int b = 0; b < NB; b++, n++) {
            uint16_t d0 = q4_quantize_block_level(x + b * QK, w + b * QK, 0, q0);
            bad += d0 != d[b] || memcmp(q0, q + b * QK / 2, QK / 2) != 0;
        }
    }
    t_check(bad == 0, "q4_row_search_same_bits", "%d of %d blocks of 21-block rows differ from the reference search (%s)",
            bad, n, q4_search_simd_level() ? "SIMD groups" : "the reference itself");
}

/* Q8 rounds as roundf (half away from zero) and clamps to +-127, checked against libm's roundf
 * on random blocks and on blocks of exact halves of the scale. */
static void test_q8_rounding(void) {
    int bad = 0;
    t_seed(808);
    for (int trial = 0; trial < 4000; trial++) {
        float x[QK];
        int8_t q[QK];
        uint16_t d;
        for (int i = 0; i < QK; i++) x[i] = t_randf() * (trial % 2 ? 3.0f : 1e-3f);
        if (trial % 4 >= 2) { /* halves: x = (k + 1/2) s with s the stored scale of max 127 s */
            float s = 0.0078125f;
            x[0] = 127 * s;
            for (int i = 1; i < QK; i++) x[i] = ((float)((int)(t_randf() * 120)) + (i % 2 ? 0.5f : -0.5f)) * s;
        }
        quantize_row(TENSOR_Q8, x, q, &d, QK);
        float ds = fp16_to_f32(d), id = ds > 0 ? 1.0f / ds : 0.0f;
        for (int i = 0; i < QK; i++) {
            float v = roundf(x[i] * id);
            bad += q[i] != (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
    }
    t_check(bad == 0, "q8_rounds_as_roundf", "%d of %d values differ from roundf's", bad, 4000 * QK);
}
static void test_float_types(void) {
    float x[96], y[96];
    uint16_t h[96];
    t_seed(5);
    for (int i = 0; i < 96; i++) x[i] = t_randf() * 100;
    quantize_row(TENSOR_F32, x, y, NULL, 96);
    t_check(memcmp(x, y, sizeof x) == 0, "quant_f32_exact", "");
    quantize_row(TENSOR_F16, x, h, NULL, 96);
    dequantize_row(TENSOR_F16, h, NULL, y, 96);
    double worst = 0;
    for (int i = 0; i < 96; i++) { /* (an if, not fmax: gcc 12's aarch64 vectorizer crashes on it) */
        double rel = fabs(x[i] - y[i]) / fabs(x[i]);
        if (rel > worst) worst = rel;
    }
    t_check(worst <= 1.0 / 2048, "quant_f16_rel_error", "max rel %.2e (bound 4.9e-4)", worst);
}

/* matvec_ref equals a double dot product of the dequantized rows. */
static void test_matvec_ref(uint32_t type) {
    int rows = 37, cols = 256; /* whole blocks of every type (the K-quants' are 256 wide) */
    uint64_t bytes = type_tensor_bytes(type, (uint64_t)rows, (uint64_t)cols);
    uint8_t *w = calloc(1, bytes);
    float *src = malloc(sizeof(float) * rows * cols), x[256], y[37], row[256];
    t_seed(11 + type);
    for (int i = 0; i < rows * cols; i++) src[i] = t_randf();
    for (int i = 0; i < cols; i++) x[i] = t_randf();
    MatView m = matview(type, w, rows, cols);
    uint8_t q[256 * 4];
    uint16_t d[256 / QK];
    for (int r = 0; r < rows; r++) {
        quantize_row(type, src + r * cols, q, d, cols);
        matview_put_row(&m, r, q, d);
    }
    matvec_ref(&m, x, y);
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        matview_dequant_row(&m, r, row);
        double s = 0;
        for (int i = 0; i < cols; i++) s += (double)row[i] * x[i];
        worst = fmax(worst, fabs(s - y[r]));
    }
    char tname[64];
    snprintf(tname, sizeof tname, "matvec_ref_%s", type_traits(type)->name);
    t_check(worst < 1e-5, tname, "max |diff| vs dequantized double dot %.2e", worst);
    free(w);
    free(src);
}

static void test_sizes(void) {
    /* Quantized rows are stored in panels of 16: 3 rows take 16. */
    int ok = type_tensor_bytes(TENSOR_Q4, 3, 64) == 16 * 2 * 16 + 16 * 2 * 2 &&
             type_tensor_bytes(TENSOR_Q8, 2, 32) == 16 * 32 + 16 * 2 &&
             type_tensor_bytes(TENSOR_Q4, 32, 64) == 32 * 32 + 32 * 2 * 2 &&
             type_tensor_bytes(TENSOR_Q8, 17, 96) == 32 * 96 + 32 * 3 * 2 &&
             type_stored_rows(TENSOR_F16, 3) == 3 && type_stored_rows(TENSOR_Q8, 17) == 32 &&
             type_tensor_bytes(TENSOR_F16, 3, 5) == 30 && type_tensor_bytes(TENSOR_Q4, 3, 48) == 0 &&
             type_tensor_bytes(TENSOR_F32, 1ull << 40, 8) == 0 && type_bits_per_weight(TENSOR_Q4) == 4.5 &&
             type_bits_per_weight(TENSOR_Q8) == 8.5;
    t_check(ok, "type_sizes", "q4 3x64 = %llu bytes, q4 4.5 bpw, q8 8.5 bpw, bad shapes rejected",
            (unsigned long long)type_tensor_bytes(TENSOR_Q4, 3, 64));
}

/* The panel layout, byte by byte as docs/FORMAT.md states it: row r = 16p + l, block b, bytes
 * [4k, 4k + 4) at quants offset (p * nb + b) * 16 * bb + (k * 16 + l) * 4; scale at index
 * (p * nb + b) * 16 + l of the area at align64(quants). */
static void test_panel_layout(uint32_t type) {
    int rows = 21, cols = 96, nb = cols / QK, bb = type == TENSOR_Q4 ? 16 : 32;
    uint64_t bytes = type_tensor_bytes(type, (uint64_t)rows, (uint64_t)cols);
    uint8_t *w = malloc(bytes), q[96];
    uint16_t d[3];
    memset(w, 0xab, bytes); /* put_row must leave the padding rows' bytes alone */
    MatView m = matview(type, w, rows, cols);
    int ok = (const uint8_t *)m.d - w == 32 * nb * bb;
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < nb * bb; i++) q[i] = (uint8_t)(r * 7 + i * 13 + 1);
        for (int b = 0; b < nb; b++) d[b] = (uint16_t)(1000 + r * 10 + b);
        matview_put_row(&m, r, q, d);
    }
    for (int r = 0; r < rows; r++) {
        int p = r / 16, l = r % 16;
        for (int b = 0; b < nb; b++) {
            for (int k = 0; k < bb / 4; k++)
                for (int j = 0; j < 4; j++)
                    ok &= w[(size_t)(p * nb + b) * 16 * bb + (size_t)(k * 16 + l) * 4 + j] ==
                          (uint8_t)(r * 7 + (b * bb + 4 * k + j) * 13 + 1);
            ok &= m.d[(p * nb + b) * 16 + l] == 1000 + r * 10 + b;
        }
        uint8_t back[96];
        uint16_t db[3];
        matview_get_row(&m, r, back, db);
        for (int i = 0; i < nb * bb; i++) ok &= back[i] == (uint8_t)(r * 7 + i * 13 + 1);
    }
    for (int b = 0; b < nb; b++)
        for (int l = rows % 16; l < 16; l++) {
            ok &= m.d[(1 * nb + b) * 16 + l] == 0xabab;
            for (int k = 0; k < bb / 4; k++)
                for (int j = 0; j < 4; j++) ok &= w[(size_t)(1 * nb + b) * 16 * bb + (size_t)(k * 16 + l) * 4 + j] == 0xab;
        }
    char tname[64];
    snprintf(tname, sizeof tname, "panel_layout_%s", type_traits(type)->name);
    t_check(ok, tname, "%d x %d: every byte and scale where FORMAT.md puts it, padding rows untouched, get_row inverts put_row", rows, cols);
    free(w);
}

/* The K panel layout (kernels/blocks.h, docs/FORMAT.md): row r = 16p + l, super-block b,
 * bytes [4k, 4k + 4) of its bb at (p * nb + b) * 16 * bb + (k * 16 + l) * 4, no scales area;
 * padding rows untouched by put_row; get_row and kblock give the natural bytes back. */
static void test_kpanel_layout(uint32_t type, int bb) {
    int rows = 21, cols = 512, nb = cols / 256;
    uint64_t bytes = type_tensor_bytes(type, (uint64_t)rows, (uint64_t)cols);
    uint8_t *w = malloc(bytes), q[2 * 212], back[2 * 212], tmp[BLOCK_BYTES_MAX];
    memset(w, 0xab, bytes);
    MatView m = matview(type, w, rows, cols);
    int ok = bytes == 32ull * nb * bb && m.d == NULL && type_stored_rows(type, 21) == 32 &&
             type_bits_per_weight(type) == bb * 8.0 / 256;
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < nb * bb; i++) q[i] = (uint8_t)(r * 7 + i * 13 + 1);
        matview_put_row(&m, r, q, NULL);
    }
    for (int r = 0; r < rows; r++) {
        int p = r / 16, l = r % 16;
        for (int b = 0; b < nb; b++) {
            for (int k = 0; k < bb / 4; k++)
                for (int j = 0; j < 4; j++)
                    ok &= w[(size_t)(p * nb + b) * 16 * bb + (size_t)(k * 16 + l) * 4 + j] ==
                          (uint8_t)(r * 7 + (b * bb + 4 * k + j) * 13 + 1);
            const uint8_t *kb = matview_kblock(&m, r, b, tmp);
            for (int i = 0; i < bb; i++) ok &= kb[i] == (uint8_t)(r * 7 + (b * bb + i) * 13 + 1);
        }
        matview_get_row(&m, r, back, NULL);
        for (int i = 0; i < nb * bb; i++) ok &= back[i] == (uint8_t)(r * 7 + i * 13 + 1);
    }
    for (int b = 0; b < nb; b++)
        for (int l = rows % 16; l < 16; l++)
            for (int k = 0; k < bb / 4; k++)
                for (int j = 0; j < 4; j++) ok &= w[(size_t)(1 * nb + b) * 16 * bb + (size_t)(k * 16 + l) * 4 + j] == 0xab;
    char tname[64];
    snprintf(tname, sizeof tname, "panel_layout_%s", type_traits(type)->name);
    t_check(ok, tname, "%d x %d: every byte where FORMAT.md puts it, no scales area, padding rows untouched, get_row and kblock invert put_row", rows, cols);
    free(w);
}

int main(void) {
    test_fp16();
    test_panel_layout(TENSOR_Q8);
    test_panel_layout(TENSOR_Q4);
    test_kpanel_layout(TENSOR_Q4_KP, 144);
    test_kpanel_layout(TENSOR_Q5_KP, 176);
    test_kpanel_layout(TENSOR_Q6_KP, 212);
    test_kpanel_layout(TENSOR_IQ4_XS, 136);
    test_float_types();
    test_quant_bounds(TENSOR_Q8);
    test_quant_bounds(TENSOR_Q4);
    test_q4_search();
    test_q4_simd_same();
    test_q4_row_same();
    test_q8_rounding();
    for (uint32_t t = 0; t < TENSOR_TYPE_COUNT; t++) test_matvec_ref(t);
    test_sizes();
    return t_done();
}
