/* The kernels the model calls: matrices, elementwise operations and attention, with runtime ISA
 * dispatch. (Their scalar oracles are in kernels/ref.h; the per-ISA tables in kernels/isa.h.)
 *
 * One binary holds every variant for its architecture (x86-64: scalar, avx2, avxvnni,
 * avx512vnni; aarch64: scalar, neon, dotprod); kernels_init picks one. Every function here
 * initializes lazily (as kernels_init(NULL)) when it has not been called.
 *
 * Quantized weights (Q8, Q4) are multiplied with activations quantized on the fly to int8 with
 * one f32 scale per 32 (quantize_act_q8), using integer dot products; float weights (F16, F32)
 * use float FMA. Results therefore differ from the *_ref oracles of kernels/ref.h by the activation
 * quantization error (at most half a step, amax/254, per element of x). */
#ifndef PHI_KERNELS_H
#define PHI_KERNELS_H

#include <stdint.h>

#include "base/pool.h"
#include "kernels/blocks.h"

/* Selects the kernels: isa is one of kernels_isa_list() (below); NULL (or "") takes $PHI_ISA
 * when set, else the best the CPU supports. Returns 0 on success,
 * -1 (with a message on stderr, the selection unchanged) for an unknown name or one this CPU or
 * build cannot run. Not thread-safe: call before kernels run on other threads. */
int kernels_init(const char *isa);
/* Name of the selected ISA. */
const char *kernels_isa_name(void);
/* 1 if this build and CPU can run the named ISA, else 0. */
int kernels_isa_available(const char *isa);
/* The ISA names of this build's architecture (its tables' names), NULL-terminated, worst to
 * best. */
const char *const *kernels_isa_list(void);

/* y[rows] = W x (generation). x has w->cols floats. The pool may be NULL (caller only). */
void matvec(const MatView *w, const float *x, float *y, Pool *pool);
/* y[t][r] = sum_c W[r][c] x[t][c] for t < n_tok (prompt processing): x is [n_tok][cols] and y
 * is [n_tok][rows], both contiguous. */
void matmul(const MatView *w, const float *x, int n_tok, float *y, Pool *pool);
/* The largest n_tok for which matmul gives every token of the batch exactly the bits matvec gives it
 * alone (bit-identical decoding when a batch verifies draft tokens): ACT_TT (8) for the types whose
 * kernels sum a token's blocks in one chain whatever the batch (Q8, Q4, F16, F32, BF16 ...: every
 * ISA, since kernels/tiled.c keeps a single activation tile in one block chunk); for the K panel
 * types (Q4_KP, Q5_KP, Q6_KP, IQ4_XS: what GGUF K-quants load as) what the ISA claims (isa.h
 * k_exact: ACT_TT on every ISA: scalar, NEON / dotprod, and AVX2 / AVX-VNNI and AVX-512, whose
 * panel decoders take up to 8 tokens); 1 for the K row types (Q4_K, Q5_K, Q6_K). */
int matmul_batch_exact(uint32_t type);

/* Values per scale of the q8_0 KV cache (llama.cpp's q8_0 block: 32 int8 + one f16 scale). */
#define QK_KV 32

/* Attention over the KV cache: dot products of a query with cached key rows and weighted sums
 * of value rows, for F16 and F32 rows. Part of each ISA's kernel table (kernels/isa.h). */
typedef struct {
    float (*dot_f16)(const uint16_t *k, const float *q, int n);   /* sum k[i] q[i] */
    void (*axpy_f16)(float *y, float a, const uint16_t *v, int n); /* y += a v */
    float (*dot_f32)(const float *k, const float *q, int n);
    void (*axpy_f32)(float *y, float a, const float *v, int n);
    void (*to_f16)(const float *x, uint16_t *y, int n); /* round to nearest even */
    /* Whole-row forms over n F16 rows of hd values stored back to back (NULL: the caller loops
     * over dot_f16 / axpy_f16): out[j] = scale * (row j . q); y[0..hd) += sum_j a[j] row j. */
    void (*scores_f16)(const uint16_t *k, int n, int hd, const float *q, float scale, float *out);
    void (*wsum_f16)(float *y, const float *a, const uint16_t *v, int n, int hd);
    /* The q8_0 cache (model/model.h KV_Q8_0): a row of hd values (hd a multiple of QK_KV) is hd
     * int8 quants q and hd / QK_KV f16 scales d, value i = d[i / QK_KV] q[i]; n rows lie back to
     * back (quants at k, scales at kd). Never NULL (the scalar ones fill in). to_q8 rounds a row
     * (scale amax / 127 rounded to f16, quants round-half-even with that scale). */
    void (*to_q8)(const float *x, int8_t *q, uint16_t *d, int n);
    void (*scores_q8)(const int8_t *k, const uint16_t *kd, int n, int hd, const float *q, float scale,
                      float *out);
    void (*wsum_q8)(float *y, const float *a, const int8_t *v, const uint16_t *vd, int n, int hd);
    /* Four queries at once over the same F16 rows (NULL: four scores_f16 / wsum_f16 calls), with
     * each query's bits those of the one-query forms (a prompt's rows then read each cached row
     * once for four; n a multiple of 4 for scores4_f16): query r at q + r qs, its scores at
     * out + r os; wsum4_f16 adds to y + r ys with weights a + r as. */
    void (*scores4_f16)(const uint16_t *k, int n, int hd, const float *q, size_t qs, float scale, float *out,
                        size_t os);
    void (*wsum4_f16)(float *y, size_t ys, const float *a, size_t as, const uint16_t *v, int n, int hd);
} AttnKernels;

/* The attention kernels of the selected ISA, and the scalar ones (the reference forward pass;
 * the *_ref functions of kernels/ref.h). */
const AttnKernels *attn_kernels(void);
const AttnKernels *attn_kernels_ref(void);

/* matvec/matmul keep their quantized activations in a per-calling-thread scratch buffer that
 * grows to the largest call; this frees the calling thread's buffer (optional, e.g. at exit). */
void kernels_free_scratch(void);

/* out = x / rms(x) * weight (out may alias x). */
void rmsnorm(float *out, const float *x, const float *weight, int n, float eps);
/* In place, numerically stable. */
void softmax(float *x, int n);
/* gate[i] = silu(gate[i]) * up[i] */
void silu_mul(float *gate, const float *up, int n);

/* Activation quantizer: per block of 32 (n a multiple of 32), d[b] = amax / 127 and
 * q[i] = round-half-even(x[i] * (127 / amax)), so |x - d q| <= d / 2; an all-zero block gets
 * d = 0, q = 0. The fast version (selected ISA) and the scalar reference agree bit for bit
 * (for finite x; non-finite activations give unspecified quants). */
void quantize_act_q8(const float *x, int8_t *q, float *d, int n);

#endif
