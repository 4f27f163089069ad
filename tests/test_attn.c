/* Attention kernels over KV rows (F16 and F32) for every ISA this CPU runs, against the scalar
 * references, on random rows of awkward lengths. */
#include <math.h>
#include <string.h>

#include "kernels/attn.h"
#include "kernels/blocks.h"
#include "kernels/fast.h"
#include "tests/harness.h"

int main(void) {
    const char *const *isas = kernels_isa_list();
    static const int lens[] = {1, 7, 16, 17, 32, 80, 96, 100, 128, 255};
    for (int k = 0; isas[k]; k++) {
        if (!kernels_isa_available(isas[k])) {
            t_skip(isas[k], "this CPU does not support it");
            continue;
        }
        const AttnKernels *a = attn_kernels_for(isas[k]);
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
    return t_done();
}
