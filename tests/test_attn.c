/* Attention kernels over KV rows (F16 and F32) for every ISA this CPU runs, against the scalar
 * references, on random rows of awkward lengths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/blocks.h"
#include "kernels/kernels.h"
#include "kernels/ref.h"
#include "tests/harness.h"

int main(void) {
    const char *const *isas = kernels_isa_list();
    static const int lens[] = {1, 7, 16, 17, 32, 80, 96, 100, 128, 255};
    for (int k = 0; isas[k]; k++) {
        if (!kernels_isa_available(isas[k])) {
            t_skip(isas[k], "this CPU does not support it");
            continue;
        }
        if (kernels_init(isas[k]) != 0) {
            t_check(0, isas[k], "available but kernels_init refuses it");
            continue;
        }
        const AttnKernels *a = attn_kernels();
        double worst_dot = 0, worst_axpy = 0;
        int f16_exact = 1;
        t_seed(1234 + k);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            int n = lens[li];
            float q[256], kf[256], y1[256], y2[256], y3[256], y4[256];
            uint16_t kh[256], h1[256], h2[256];
            double mag = 0;
            for (int i = 0; i < n; i++) {
                q[i] = t_randf() * 3;
                kf[i] = t_randf() * 2;
                kh[i] = f32_to_fp16(kf[i]);
                y1[i] = y2[i] = y3[i] = y4[i] = t_randf();
                mag += fabs(q[i] * kf[i]);
            }
            /* dot: tolerance relative to sum |k q| (float accumulation in another order) */
            worst_dot = fmax(worst_dot, fabs(a->dot_f16(kh, q, n) - dot_f16_ref(kh, q, n)) / mag);
            worst_dot = fmax(worst_dot, fabs(a->dot_f32(kf, q, n) - dot_f32_ref(kf, q, n)) / mag);
            a->axpy_f16(y1, 0.37f, kh, n);
            axpy_f16_ref(y2, 0.37f, kh, n);
            a->axpy_f32(y3, -1.3f, kf, n);
            axpy_f32_ref(y4, -1.3f, kf, n);
            for (int i = 0; i < n; i++)
                worst_axpy = fmax(worst_axpy, fmax(fabs(y1[i] - y2[i]), fabs(y3[i] - y4[i])));
            a->to_f16(kf, h1, n);
            to_f16_ref(kf, h2, n);
            f16_exact &= memcmp(h1, h2, (size_t)n * 2) == 0;
        }
        char name[64];
        snprintf(name, sizeof name, "attn_kernels_%s", isas[k]);
        t_check(worst_dot < 1e-6 && worst_axpy < 1e-6 && f16_exact, name,
                "dot max err %.1e of sum|kq| (bound 1e-6), axpy max err %.1e (bound 1e-6, FMA vs "
                "mul+add), f32->f16 %s", worst_dot, worst_axpy, f16_exact ? "bit-identical" : "DIFFERS");
    }
    /* The whole-row forms against per-row references: n keys of hd values back to back. */
    static const int hds[] = {16, 24, 80, 96, 128, 200};
    static const int nks[] = {1, 3, 4, 5, 9, 37};
    for (int k = 0; isas[k]; k++) {
        if (!kernels_isa_available(isas[k]) || kernels_init(isas[k]) != 0) continue;
        const AttnKernels *a = attn_kernels();
        if (!a->scores_f16 || a->scores_f16 == scores_f16_ref) continue; /* none, or the reference itself */
        double worst_s = 0, worst_w = 0;
        t_seed(777 + k);
        for (size_t hi = 0; hi < sizeof hds / sizeof hds[0]; hi++)
            for (size_t ni = 0; ni < sizeof nks / sizeof nks[0]; ni++) {
                int hd = hds[hi], nk = nks[ni];
                uint16_t *kv = malloc(sizeof(uint16_t) * (size_t)hd * nk);
                float q[256], att[64], s1[64], s2[64], y1[256], y2[256];
                double mag = 0;
                for (int i = 0; i < hd * nk; i++) kv[i] = f32_to_fp16(t_randf() * 2);
                for (int i = 0; i < hd; i++) q[i] = t_randf() * 3, y1[i] = y2[i] = t_randf();
                for (int j = 0; j < nk; j++) att[j] = t_randf() * 0.5f + 0.5f;
                for (int i = 0; i < hd * nk; i++) mag = fmax(mag, fabs(fp16_to_f32(kv[i])));
                a->scores_f16(kv, nk, hd, q, 0.25f, s1);
                scores_f16_ref(kv, nk, hd, q, 0.25f, s2);
                for (int j = 0; j < nk; j++) {
                    double m = 0;
                    for (int i = 0; i < hd; i++) m += fabs(fp16_to_f32(kv[(size_t)j * hd + i]) * q[i]) * 0.25;
                    worst_s = fmax(worst_s, fabs(s1[j] - s2[j]) / m);
                }
                a->wsum_f16(y1, att, kv, nk, hd);
                wsum_f16_ref(y2, att, kv, nk, hd);
                for (int i = 0; i < hd; i++) worst_w = fmax(worst_w, fabs(y1[i] - y2[i]) / (mag * nk + 1));
                free(kv);
            }
        char name[64];
        snprintf(name, sizeof name, "attn_rows_%s", isas[k]);
        t_check(worst_s < 1e-6 && worst_w < 1e-6, name,
                "scores max err %.1e of sum|kq|, weighted sum %.1e of scale (bounds 1e-6), head_dim 16..200, 1..37 rows",
                worst_s, worst_w);
    }
    /* Four queries at once (scores4_f16, wsum4_f16) give each query the one-query kernels' bits,
     * for head sizes with and without a partial vector, query and output strides, 4..40 rows. */
    for (int k = 0; isas[k]; k++) {
        if (!kernels_isa_available(isas[k]) || kernels_init(isas[k]) != 0) continue;
        const AttnKernels *a = attn_kernels();
        if (!a->scores4_f16 || !a->wsum4_f16) continue;
        static const int hd4[] = {16, 64, 80, 96, 128, 200};
        long bad = 0, checked = 0;
        t_seed(4242 + k);
        for (size_t hi = 0; hi < sizeof hd4 / sizeof hd4[0]; hi++)
            for (int nk = 4; nk <= 40; nk += 12) {
                int hd = hd4[hi];
                size_t qs = (size_t)hd + 7, os = (size_t)nk + 5, ys = (size_t)hd + 3;
                uint16_t *kv = malloc(sizeof(uint16_t) * (size_t)hd * nk);
                float *q = malloc(sizeof(float) * 4 * qs), *s4 = malloc(sizeof(float) * 4 * os), s1[64];
                float *y4 = malloc(sizeof(float) * 4 * ys), *y1 = malloc(sizeof(float) * hd), *att = malloc(sizeof(float) * 4 * os);
                for (int i = 0; i < hd * nk; i++) kv[i] = f32_to_fp16(t_randf() * 2);
                for (size_t i = 0; i < 4 * qs; i++) q[i] = t_randf() * 3;
                for (size_t i = 0; i < 4 * ys; i++) y4[i] = t_randf();
                for (size_t i = 0; i < 4 * os; i++) att[i] = t_randf() * 0.5f + 0.5f;
                a->scores4_f16(kv, nk, hd, q, qs, 0.3f, s4, os);
                for (int r = 0; r < 4; r++) {
                    a->scores_f16(kv, nk, hd, q + r * qs, 0.3f, s1);
                    bad += memcmp(s1, s4 + r * os, sizeof(float) * nk) != 0, checked++;
                }
                float *y0 = malloc(sizeof(float) * 4 * ys);
                memcpy(y0, y4, sizeof(float) * 4 * ys);
                a->wsum4_f16(y4, ys, att, os, kv, nk, hd);
                for (int r = 0; r < 4; r++) {
                    memcpy(y1, y0 + r * ys, sizeof(float) * hd);
                    a->wsum_f16(y1, att + r * os, kv, nk, hd);
                    bad += memcmp(y1, y4 + r * ys, sizeof(float) * hd) != 0, checked++;
                    bad += memcmp(y0 + r * ys + hd, y4 + r * ys + hd, sizeof(float) * (ys - hd)) != 0; /* untouched */
                }
                free(kv), free(q), free(s4), free(y4), free(y1), free(att), free(y0);
            }
        char name[64];
        snprintf(name, sizeof name, "attn_four_queries_%s", isas[k]);
        t_check(bad == 0, name, "%ld of %ld four-query score rows and weighted sums differ from the one-query kernels' bits",
                bad, checked);
    }
    /* The q8_0 cache: to_q8 against its definition (scale = f16(amax / 127), |x - d q| <= d / 2
     * but for the clamp), and the q8 row kernels of every ISA against the scalar references. */
    {
        const AttnKernels *r = attn_kernels_ref();
        float x[256], back = 0;
        int8_t q8[256];
        uint16_t d8[8];
        int ok = 1;
        t_seed(99);
        for (int i = 0; i < 256; i++) x[i] = t_randf() * (i < 32 ? 1e-3f : i < 64 ? 0 : 5);
        r->to_q8(x, q8, d8, 256);
        for (int b = 0; b < 8; b++) {
            float amax = 0, d = fp16_to_f32(d8[b]);
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b * 32 + i]));
            ok &= d8[b] == f32_to_fp16(amax / 127);
            for (int i = 0; i < 32; i++) {
                float e = fabsf(x[b * 32 + i] - d * q8[b * 32 + i]);
                back = fmaxf(back, d > 0 ? e / d : e);
                ok &= q8[b * 32 + i] >= -127;
            }
        }
        t_check(ok && back <= 0.5f + 1e-3f, "kv_q8_round", "scales f16(amax/127), max error %.4f steps "
                "(bound 0.5: a clamped quant at 127 is off by at most 127 * 2^-11 steps)", back);
    }
    static const int qhds[] = {32, 64, 96, 128, 160, 256};
    for (int k = 0; isas[k]; k++) {
        if (!kernels_isa_available(isas[k]) || kernels_init(isas[k]) != 0) continue;
        const AttnKernels *a = attn_kernels();
        double worst_s = 0, worst_w = 0;
        int exact_round = 1;
        t_seed(555 + k);
        for (size_t hi = 0; hi < sizeof qhds / sizeof qhds[0]; hi++)
            for (size_t ni = 0; ni < sizeof nks / sizeof nks[0]; ni++) {
                int hd = qhds[hi], nk = nks[ni], nb = hd / QK_KV;
                float *kf = malloc(sizeof(float) * (size_t)hd * nk);
                int8_t *kq = malloc((size_t)hd * nk), *kq2 = malloc((size_t)hd * nk);
                uint16_t *kd = malloc(sizeof(uint16_t) * (size_t)nb * nk), *kd2 = malloc(sizeof(uint16_t) * (size_t)nb * nk);
                float q[256], att[64], s1[64], s2[64], y1[256], y2[256];
                for (int i = 0; i < hd * nk; i++) kf[i] = t_randf() * 2;
                for (int j = 0; j < nk; j++) {
                    a->to_q8(kf + (size_t)j * hd, kq + (size_t)j * hd, kd + (size_t)j * nb, hd);
                    to_q8_kv_ref(kf + (size_t)j * hd, kq2 + (size_t)j * hd, kd2 + (size_t)j * nb, hd);
                }
                exact_round &= !memcmp(kq, kq2, (size_t)hd * nk) && !memcmp(kd, kd2, sizeof(uint16_t) * (size_t)nb * nk);
                for (int i = 0; i < hd; i++) q[i] = t_randf() * 3, y1[i] = y2[i] = t_randf();
                for (int j = 0; j < nk; j++) att[j] = t_randf() * 0.5f + 0.5f;
                a->scores_q8(kq, kd, nk, hd, q, 0.25f, s1);
                scores_q8_ref(kq, kd, nk, hd, q, 0.25f, s2);
                double mag = 0;
                for (int j = 0; j < nk; j++) {
                    double m = 0;
                    for (int i = 0; i < hd; i++)
                        m += fabs(fp16_to_f32(kd[(size_t)j * nb + i / QK_KV]) * kq[(size_t)j * hd + i] * q[i]) * 0.25;
                    worst_s = fmax(worst_s, fabs(s1[j] - s2[j]) / m);
                }
                for (int i = 0; i < hd * nk; i++)
                    mag = fmax(mag, fabs(fp16_to_f32(kd[i / QK_KV]) * kq[i]));
                a->wsum_q8(y1, att, kq, kd, nk, hd);
                wsum_q8_ref(y2, att, kq, kd, nk, hd);
                for (int i = 0; i < hd; i++) worst_w = fmax(worst_w, fabs(y1[i] - y2[i]) / (mag * nk + 1));
                free(kf), free(kq), free(kq2), free(kd), free(kd2);
            }
        char name[64];
        snprintf(name, sizeof name, "attn_q8_rows_%s", isas[k]);
        t_check(worst_s < 1e-6 && worst_w < 1e-6 && exact_round, name,
                "q8 scores max err %.1e of sum|kq|, weighted sum %.1e of scale (bounds 1e-6: float sums "
                "in another order), head_dim 32..256, 1..37 rows; rounding %s", worst_s, worst_w,
                exact_round ? "bit-identical" : "DIFFERS");
    }
    kernels_init(NULL);
    return t_done();
}
