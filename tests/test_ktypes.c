/* The K-quant types q4_k, q5_k, q6_k and iq4_xs against llama.cpp's own blocks (../shared/data/phi3-gguf/
 * gguf-types.gguf: blk.3.ffn_down of phi3-trained-tiny, 256 x 768, as llama-quantize wrote it in
 * each type, with the reference dequantization of its first 16 rows and the F16 original):
 *   - llama.cpp's tensor bytes ARE a phi tensor of the type (the storage contract: ggml's blocks
 *     verbatim, rows consecutive; iq4_xs: the same rows re-laid into its panels): sizes agree and
 *     the rows dequantize bit for bit;
 *   - every ISA's matmul on those real weights agrees with matvec_ref;
 *   - phi's quantizer, run on the F16 original, is not worse than llama-quantize's blocks (sum of
 *     squared errors against the original). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ggml_types.h"
#include "kernels/kernels.h"
#include "kernels/kquant.h"
#include "kernels/kquant_lanes.h"
#include "kernels/ref.h"
#include "model/gguf.h"
#include "tests/harness.h"

static const struct {
    const char *gguf, *phi;
    int ggml;
    double bpw;
    int panel; /* stored in 16-row panels only (kernels/blocks.h): the rows are re-laid */
} K[] = {{"Q4_K", "q4_k", GGML_TYPE_Q4_K, 4.5, 0}, {"Q5_K", "q5_k", GGML_TYPE_Q5_K, 5.5, 0},
         {"Q6_K", "q6_k", GGML_TYPE_Q6_K, 6.5625, 0}, {"IQ4_XS", "iq4_xs", GGML_TYPE_IQ4_XS, 4.25, 1}};
#define NK (int)(sizeof K / sizeof K[0])

static void test_type(const Gguf *g, int k, const float *orig, const char *const *isas, int n_isa) {
    int type = type_from_name(K[k].phi);
    const GgufTensor *t = gguf_find_tensor(g, K[k].gguf), *r = NULL;
    char rname[64], name[96];
    snprintf(rname, sizeof rname, "%s.rows0-15", K[k].gguf);
    r = gguf_find_tensor(g, rname);
    if (type < 0 || !t || !r || t->type != (uint32_t)K[k].ggml || r->n_rows != 16) {
        t_check(0, K[k].phi, "type or fixture tensors %s / %s missing", K[k].gguf, rname);
        return;
    }
    int rows = (int)t->n_rows, cols = (int)t->ne[0];
    snprintf(name, sizeof name, "ktype %s layout", K[k].phi);
    int sr = K[k].panel ? 16 : 3; /* stored rows of a 3-row matrix */
    t_check((K[k].panel || type_tensor_bytes((uint32_t)type, (uint64_t)rows, (uint64_t)cols) == t->n_bytes) &&
                type_row_bytes((uint32_t)type, (uint64_t)cols) == t->row_bytes &&
                type_bits_per_weight((uint32_t)type) == K[k].bpw && type_stored_rows((uint32_t)type, 3) == (uint64_t)sr &&
                type_tensor_bytes((uint32_t)type, 2, 300) == 0,
            name, "%d x %d: rows of %llu bytes as in the GGUF, %.4g bits per weight, %s", rows, cols,
            (unsigned long long)t->row_bytes, type_bits_per_weight((uint32_t)type), K[k].panel ? "16-row panels" : "no panels");

    /* bit-exact dequantization through the phi row: on the GGUF's bytes in place, or re-laid into panels */
    uint8_t *laid = NULL;
    if (K[k].panel) {
        laid = calloc(1, type_tensor_bytes((uint32_t)type, (uint64_t)rows, (uint64_t)cols));
        MatView lw = matview((uint32_t)type, laid, rows, cols);
        for (int row = 0; row < rows; row++) matview_put_row(&lw, row, t->data + (size_t)row * t->row_bytes, NULL);
    }
    MatView m = matview((uint32_t)type, laid ? laid : t->data, rows, cols);
    float *y = malloc(sizeof(float) * (size_t)cols);
    uint64_t diff = 0;
    for (int row = 0; row < 16; row++) {
        matview_dequant_row(&m, row, y);
        for (int c = 0; c < cols; c++) diff += memcmp(&y[c], r->data + 4 * ((size_t)row * cols + c), 4) != 0;
    }
    snprintf(name, sizeof name, "ktype %s to_float bit-exact", K[k].phi);
    t_check(diff == 0, name, "rows 0-15 of llama.cpp's %s tensor: %llu of %d floats differ from the reference dequantizer", K[k].gguf,
            (unsigned long long)diff, 16 * cols);

    /* kernels on the real weights */
    int ntok = 5;
    float *x = malloc(sizeof(float) * (size_t)ntok * cols), *yr = malloc(sizeof(float) * (size_t)ntok * rows);
    float *yk = malloc(sizeof(float) * (size_t)ntok * rows), *deq = malloc(sizeof(float) * (size_t)rows * cols);
    for (int i = 0; i < ntok * cols; i++) x[i] = t_randf() * (1 + (i / 32) % 4);
    for (int row = 0; row < rows; row++) matview_dequant_row(&m, row, deq + (size_t)row * cols);
    for (int tk = 0; tk < ntok; tk++) matvec_ref(&m, x + (size_t)tk * cols, yr + (size_t)tk * rows);
    for (int ii = 0; ii < n_isa; ii++) {
        kernels_init(isas[ii]);
        double worst = 0;
        for (int nt = 1; nt <= ntok; nt += ntok - 1) {
            if (nt == 1) matvec(&m, x, yk, NULL);
            else matmul(&m, x, nt, yk, NULL);
            for (int tk = 0; tk < nt; tk++)
                for (int row = 0; row < rows; row++) {
                    double s = 0;
                    for (int c = 0; c < cols; c++) s += fabs((double)deq[(size_t)row * cols + c] * x[(size_t)tk * cols + c]);
                    double e = fabs((double)yk[(size_t)tk * rows + row] - yr[(size_t)tk * rows + row]) / (s + 1e-30);
                    if (!(e <= worst)) worst = e; /* NaN too */
                }
        }
        snprintf(name, sizeof name, "ktype %s matmul %s on llama.cpp's blocks", K[k].phi, isas[ii]);
        t_check(worst < 4e-3, name, "max |y - matvec_ref| = %.3g of sum|w||x| (int8 activations: < 4e-3)", worst);
    }

    /* phi's quantizer against llama-quantize's, both from the F16 original */
    if (orig) {
        uint8_t *q = malloc(type_row_bytes((uint32_t)type, (uint64_t)cols));
        double e_phi = 0, e_ll = 0;
        for (int row = 0; row < rows; row++) {
            const float *o = orig + (size_t)row * cols;
            quantize_row((uint32_t)type, o, q, NULL, cols);
            dequantize_row((uint32_t)type, q, NULL, y, cols);
            for (int c = 0; c < cols; c++) e_phi += ((double)y[c] - o[c]) * ((double)y[c] - o[c]);
            for (int c = 0; c < cols; c++) e_ll += ((double)deq[(size_t)row * cols + c] - o[c]) * ((double)deq[(size_t)row * cols + c] - o[c]);
        }
        snprintf(name, sizeof name, "ktype %s quantizer", K[k].phi);
        t_check(e_phi <= e_ll, name, "squared error vs the F16 original: phi %.4g, llama-quantize %.4g (%.1f %% lower)", e_phi, e_ll,
                100.0 * (1 - e_phi / e_ll));
        free(q);
    }
    free(y);
    free(x);
    free(yr);
    free(yk);
    free(deq);
    free(laid);
}

/* The scale searches on AVX-512 lanes give the reference's bytes: random blocks of several
 * magnitudes, with and without importances, some with zeros, one value huge or tiny. */
static void test_search_lanes(uint32_t type, const char *name) {
    float x[256], w[256];
    uint8_t a[210], b[210];
    int same[2] = {0, 0}, n = 0;
    for (int it = 0; it < 400; it++) {
        /* 1e-39: subnormal, whose inverse scales are infinite (nearest gives INT_MIN, as the lanes) */
        float mag = it % 4 == 0 ? 1e-3f : it % 4 == 1 ? 1.0f : it % 4 == 2 ? 300.0f : it % 8 == 3 ? 1e-30f : 1e-39f;
        for (int i = 0; i < 256; i++) {
            x[i] = t_randf() * mag;
            w[i] = 0.01f + t_randf() * t_randf();
            if (it % 7 == 3 && i % 5 == 0) x[i] = 0;
        }
        if (it % 11 == 5) x[it % 256] = mag * 1e6f;
        int bytes = kq_quantize_block(type, x, it % 2 ? w : NULL, 0, a);
        for (int l = 1; l <= 2; l++) {
            kq_quantize_block(type, x, it % 2 ? w : NULL, l, b);
            same[l - 1] += bytes > 0 && !memcmp(a, b, (size_t)bytes);
        }
        n++;
    }
    /* level 1: AVX2 lanes, 2: AVX-512 (each where the CPU has it; else the next level down) */
    static const char *const lv[3] = {"none: both the scalar search", "AVX2", "AVX-512"};
    int top = kq_lanes_level();
    t_check(same[0] == n && same[1] == n, "search lanes",
            "%s: %d (level 1: %s) and %d (level 2: %s) of %d blocks identical to the reference search's", name,
            same[0], lv[top < 1 ? top : 1], same[1], lv[top], n);
}

int main(void) {
    test_search_lanes(TENSOR_Q4_K, "q4_k");
    test_search_lanes(TENSOR_Q5_K, "q5_k");
    test_search_lanes(TENSOR_Q6_K, "q6_k");
    test_search_lanes(TENSOR_IQ4_XS, "iq4_xs");
    const char *dir = t_data_dir();
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/phi3-gguf/gguf-types.gguf", dir);
    uint64_t size;
    uint8_t *buf = t_read_all(path, &size);
    if (!buf) {
        t_skip("ktypes", "no %s", path);
        return t_done();
    }
    Gguf g;
    if (gguf_parse(buf, size, &g, err, sizeof err)) {
        t_check(0, "ktypes gguf", "%s", err);
        free(buf);
        return t_done();
    }
    t_seed(7);
    const char *const *all = kernels_isa_list();
    const char *isas[8];
    int n_isa = 0;
    for (int i = 0; all[i] && n_isa < 8; i++)
        if (kernels_isa_available(all[i])) isas[n_isa++] = all[i];
    const GgufTensor *f = gguf_find_tensor(&g, "F16");
    float *orig = NULL;
    if (f && f->type == GGML_TYPE_F16) {
        orig = malloc(sizeof(float) * f->n_elems);
        if (ggml_dequantize_row(GGML_TYPE_F16, f->data, orig, (int64_t)f->n_elems, err, sizeof err)) free(orig), orig = NULL;
    }
    for (int k = 0; k < NK; k++) test_type(&g, k, orig, isas, n_isa);
    free(orig);
    gguf_free(&g);
    free(buf);
    kernels_free_scratch();
    return t_done();
}
