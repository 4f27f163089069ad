/* The Phi-3 forward pass, top to bottom: forward() is the recipe of a layer, written once. Two
 * paths run it with different kernels (Path): the reference, one token at a time through the
 * scalar kernels in F32 (the oracle), and the fast path, batches of tokens through the SIMD
 * kernels (matmul reuses each weight block for every token of the batch) and the thread pool.
 * A batch row carries its sequence (Batch: the State whose KV cache, ring and LongRoPE factor set
 * it uses, and its position), so one pass can hold the tokens of several sequences: a decoding
 * step for the server's slots (model_forward_multi) reads every weight once for all of them.
 * Decoding is bound by that read (2.1 GB per step for a q4 Phi-3-mini), so a step of 4 sequences
 * costs little more than a step of one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/fileio.h"
#include "model/model.h"
#include "model/lora.h"
#include "model/schema.h"
#include "base/pool.h"
#include "kernels/ref.h"
#include "kernels/kernels.h"

#ifndef MAX_BATCH
#define MAX_BATCH 64 /* tokens per fast-path forward() call: activations stay in cache */
#endif
#define ATT_ROWS 4 /* rows of a sequence attended together (attend4) */

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

int state_init(State *s, const Model *m, int n_ctx, int n_threads, char *err, size_t errlen) {
    return state_init_ex(s, m, n_ctx, n_threads, 0, err, errlen);
}

static int state_setup(State *s, const Model *m, int n_ctx, int flags, char *err, size_t errlen);

int state_init_ex(State *s, const Model *m, int n_ctx, int n_threads, int flags, char *err,
                  size_t errlen) {
    memset(s, 0, sizeof *s);
    if (n_ctx < 1) {
        snprintf(err, errlen, "context size must be at least 1");
        return -1;
    }
    if (n_threads > 1) {
        s->pool = pool_create(n_threads);
        if (!s->pool) {
            snprintf(err, errlen, "cannot start %d threads", n_threads);
            return -1;
        }
        s->owns_pool = 1;
    }
    s->n_threads = n_threads > 1 ? n_threads : 1;
    return state_setup(s, m, n_ctx, flags, err, errlen);
}

int state_init_pool(State *s, const Model *m, int n_ctx, void *pool, int flags, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (n_ctx < 1) {
        snprintf(err, errlen, "context size must be at least 1");
        return -1;
    }
    s->pool = pool;
    s->n_threads = pool_size(pool);
    return state_setup(s, m, n_ctx, flags, err, errlen);
}

static int state_setup(State *s, const Model *m, int n_ctx, int flags, char *err, size_t errlen) {
    const PhiHParams *hp = &m->hp;
    size_t q_dim = (size_t)hp->n_heads * hp->head_dim, kv_dim = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t nb = (size_t)(n_ctx < MAX_BATCH ? n_ctx : MAX_BATCH);
    s->n_ctx = n_ctx;
    s->n_batch = (int)nb;
    s->kv_slots = n_ctx;
    if (!(flags & STATE_FULL_CACHE) && hp->sliding_window && (size_t)hp->sliding_window + nb < (size_t)n_ctx)
        s->kv_slots = (int)(hp->sliding_window + nb);
    /* Sizes in 64 bits first: on a 32-bit build a long context overflows size_t (Phi-3-mini at
     * 128k positions: 12.9 G cache elements). */
    int kt = flags & STATE_KV_F32 ? KV_F32 : (flags >> 4) & 3, vt = flags & STATE_KV_F32 ? KV_F32 : (flags >> 6) & 3;
    if (kt >= KV_TYPE_COUNT || vt >= KV_TYPE_COUNT) {
        snprintf(err, errlen, "unknown KV cache type");
        state_free(s);
        return -1;
    }
    if ((kt == KV_Q8_0 || vt == KV_Q8_0) && hp->head_dim % QK_KV) {
        snprintf(err, errlen, "a q8_0 KV cache needs a head size that is a multiple of %d; this model's is %u "
                 "(use f16)", QK_KV, hp->head_dim);
        state_free(s);
        return -1;
    }
    s->k_type = kt;
    s->v_type = vt;
    s->kv_f32 = kt == KV_F32 && vt == KV_F32;
    /* Sizes in 64 bits first: on a 32-bit build a long context overflows size_t (Phi-3-mini at
     * 128k positions: 12.9 G cache elements). */
    uint64_t cache64 = (uint64_t)hp->n_layers * (uint64_t)s->kv_slots * kv_dim;
    double kvd = kv_type_bytes(kt, (double)cache64) + kv_type_bytes(vt, (double)cache64);
    if (kvd > (double)(SIZE_MAX / 2) || (uint64_t)s->n_threads * (uint64_t)n_ctx > SIZE_MAX / (2 * ATT_ROWS * sizeof(float))) {
        snprintf(err, errlen, "a context of %d tokens needs a %.2f GiB KV cache, more than this %d-bit "
                 "build can address (lower -c)", n_ctx, kvd / (1u << 30), (int)sizeof(void *) * 8);
        state_free(s);
        return -1;
    }
    s->x = calloc(nb * hp->dim, sizeof(float));
    s->xb = calloc(nb * max_sz(q_dim, hp->dim), sizeof(float));
    s->xb2 = calloc(nb * hp->dim, sizeof(float));
    s->qkv = calloc(nb * (q_dim + 2 * kv_dim), sizeof(float));
    s->hb = calloc(nb * 2 * (size_t)hp->hidden_dim, sizeof(float));
    s->hs = calloc(nb * (size_t)hp->hidden_dim, sizeof(float));
    s->att = calloc((size_t)ATT_ROWS * (size_t)s->n_threads * (size_t)n_ctx, sizeof(float)); /* attend4 */
    s->logits = calloc(hp->vocab_size, sizeof(float));
    s->rope_cs = calloc(nb * hp->rope_dims, sizeof(float));
    s->kv_bytes = (size_t)kv_type_bytes(kt, (double)cache64);
    s->kv_bytes_v = (size_t)kv_type_bytes(vt, (double)cache64);
    /* The cache is mapped lazily: refuse now what would be killed for lack of memory later. */
    unsigned long long avail = mem_available_bytes();
    if (avail && (double)s->kv_bytes + (double)s->kv_bytes_v > (double)avail) {
        snprintf(err, errlen, "a context of %d tokens needs a %.2f GiB KV cache but only %.2f GiB of "
                 "memory is available (lower -c, or --cache-type-k/-v q8_0)", n_ctx, kvd / (1u << 30),
                 avail / (double)(1u << 30));
        state_free(s);
        return -1;
    }
    s->key_cache = huge_alloc(s->kv_bytes);
    s->value_cache = huge_alloc(s->kv_bytes_v);
    s->tokens = calloc((size_t)n_ctx, sizeof(int));
    if (!s->tokens || !s->x || !s->xb || !s->xb2 || !s->qkv || !s->att || !s->hb || !s->hs || !s->logits || !s->rope_cs ||
        !s->key_cache || !s->value_cache) {
        state_free(s);
        snprintf(err, errlen, "out of memory for a context of %d tokens (KV cache %.1f MiB)", n_ctx,
                 kvd / (1 << 20));
        return -1;
    }
    return 0;
}

void state_free(State *s) {
    if (s->pool && s->owns_pool) pool_destroy(s->pool);
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->qkv);
    free(s->att);
    free(s->hb);
    free(s->hs);
    free(s->logits);
    free(s->rope_cs);
    huge_free(s->key_cache, s->kv_bytes);
    huge_free(s->value_cache, s->kv_bytes_v);
    free(s->tokens);
    memset(s, 0, sizeof *s);
}

/* cos and sin of every rotated pair at position pos: cs[i] = cos, cs[half + i] = sin, both
 * times the attention factor. Frequencies theta^(-2i/rope_dims), divided by LongRoPE factors. */
static void rope_table(const PhiHParams *hp, const float *factors, int pos, float *cs) {
    int half = (int)hp->rope_dims / 2;
    float attn_factor = hp->rope_scaling == PHI_ROPE_LONGROPE ? hp->rope_attn_factor : 1.0f;
    for (int i = 0; i < half; i++) {
        double inv_freq = 1.0 / pow((double)hp->rope_theta, 2.0 * i / hp->rope_dims);
        if (factors) inv_freq /= factors[i];
        double angle = pos * inv_freq;
        cs[i] = (float)cos(angle) * attn_factor;
        cs[half + i] = (float)sin(angle) * attn_factor;
    }
}

/* Rotate pairs (i, i + rope_dims/2) of one head (NeoX style); dimensions past rope_dims stay. */
static void rope_apply(float *v, const float *cs, int rope_dims) {
    int half = rope_dims / 2;
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half], c = cs[i], sn = cs[half + i];
        v[i] = a * c - b * sn;
        v[i + half] = b * c + a * sn;
    }
}

/* First key position a query at pos may see: all earlier ones, or the last sliding_window. */
static int window_start(const PhiHParams *hp, int pos) {
    int w = (int)hp->sliding_window;
    return w && pos >= w ? pos - w + 1 : 0;
}

/* Element offset of (layer, kv head, slot) in the KV cache. Head-major: one head's keys (and
 * values) for successive positions are contiguous, so attention streams them sequentially. */
static size_t kv_index(const State *s, const PhiHParams *hp, int layer, int kvh, int slot) {
    return (((size_t)layer * hp->n_kv_heads + (size_t)kvh) * s->kv_slots + (size_t)slot) * hp->head_dim;
}

static const char *const kv_names[KV_TYPE_COUNT] = {"f16", "f32", "q8_0"};

int kv_type_parse(const char *name) {
    for (int t = 0; t < KV_TYPE_COUNT; t++)
        if (name && !strcmp(name, kv_names[t])) return t;
    return -1;
}

const char *kv_type_name(int t) { return t >= 0 && t < KV_TYPE_COUNT ? kv_names[t] : "?"; }

double kv_type_bytes(int t, double n) {
    return t == KV_F32 ? 4 * n : t == KV_Q8_0 ? n + 2 * n / QK_KV : 2 * n;
}

/* The f16 scales of a KV_Q8_0 cache: after its quants, one per QK_KV in the quants' order. */
static uint16_t *kv_q8_scales(const State *s, const PhiHParams *hp, const void *cache) {
    size_t elems = (size_t)hp->n_layers * hp->n_kv_heads * (size_t)s->kv_slots * hp->head_dim;
    return (uint16_t *)((int8_t *)(uintptr_t)cache + elems);
}

/* Store the k or v rows of all kv heads of one position into a cache of the given type. */
static void kv_store(const State *s, const PhiHParams *hp, const AttnKernels *ak, void *cache, int type,
                     int layer, int slot, const float *x) {
    int hd = (int)hp->head_dim;
    for (int h = 0; h < (int)hp->n_kv_heads; h++) {
        size_t at = kv_index(s, hp, layer, h, slot);
        if (type == KV_F32) memcpy((float *)cache + at, x + h * hd, (size_t)hd * sizeof(float));
        else if (type == KV_Q8_0) ak->to_q8(x + h * hd, (int8_t *)cache + at, kv_q8_scales(s, hp, cache) + at / QK_KV, hd);
        else ak->to_f16(x + h * hd, (uint16_t *)cache + at, hd);
    }
}

/* One head of causal attention for the query at pos over keys start..pos, which live in ring
 * slots t % kv_slots of layer `layer`, kv head kvh: out = softmax(q.K / sqrt(d)) V. Each cache
 * is read by its type's kernels; a q8_0 value cache needs no flash attention (unlike
 * llama.cpp): the weighted sum dequantizes its rows as it goes. */
static void attend(const State *s, const PhiHParams *hp, const AttnKernels *ak,
                   void (*softmax_fn)(float *, int), int layer, int kvh, const float *q, int start,
                   int pos, float *att, float *out) {
    int hd = (int)hp->head_dim, slots = s->kv_slots;
    float scale = 1.0f / sqrtf((float)hd);
    int n = pos - start + 1, slot0 = start % slots;
    /* The cached rows of [start, pos] are slots slot0.. (wrapping once in a ring): up to two
     * runs of consecutive rows. */
    int run0 = slot0 + n <= slots ? n : slots - slot0;
    size_t at0 = kv_index(s, hp, layer, kvh, slot0), at1 = kv_index(s, hp, layer, kvh, 0);
    const uint16_t *k16 = (const uint16_t *)s->key_cache, *v16 = (const uint16_t *)s->value_cache;
    if (s->k_type == KV_Q8_0) {
        const int8_t *kq = (const int8_t *)s->key_cache;
        const uint16_t *kd = kv_q8_scales(s, hp, s->key_cache);
        ak->scores_q8(kq + at0, kd + at0 / QK_KV, run0, hd, q, scale, att);
        if (run0 < n) ak->scores_q8(kq + at1, kd + at1 / QK_KV, n - run0, hd, q, scale, att + run0);
    } else if (s->k_type == KV_F16 && ak->scores_f16) {
        ak->scores_f16(k16 + at0, run0, hd, q, scale, att);
        if (run0 < n) ak->scores_f16(k16 + at1, n - run0, hd, q, scale, att + run0);
    } else {
        for (int t = 0, slot = slot0; t < n; t++, slot = slot + 1 == slots ? 0 : slot + 1) {
            size_t at = kv_index(s, hp, layer, kvh, slot);
            att[t] = scale * (s->k_type == KV_F32 ? ak->dot_f32((const float *)s->key_cache + at, q, hd)
                                                  : ak->dot_f16(k16 + at, q, hd));
        }
    }
    softmax_fn(att, n);
    memset(out, 0, (size_t)hd * sizeof(float));
    if (s->v_type == KV_Q8_0) {
        const int8_t *vq = (const int8_t *)s->value_cache;
        const uint16_t *vd = kv_q8_scales(s, hp, s->value_cache);
        ak->wsum_q8(out, att, vq + at0, vd + at0 / QK_KV, run0, hd);
        if (run0 < n) ak->wsum_q8(out, att + run0, vq + at1, vd + at1 / QK_KV, n - run0, hd);
        return;
    }
    if (s->v_type == KV_F16 && ak->wsum_f16) {
        ak->wsum_f16(out, att, v16 + at0, run0, hd);
        if (run0 < n) ak->wsum_f16(out, att + run0, v16 + at1, n - run0, hd);
        return;
    }
    for (int t = 0, slot = slot0; t < n; t++, slot = slot + 1 == slots ? 0 : slot + 1) {
        size_t at = kv_index(s, hp, layer, kvh, slot);
        if (s->v_type == KV_F32) ak->axpy_f32(out, att[t], (const float *)s->value_cache + at, hd);
        else ak->axpy_f16(out, att[t], v16 + at, hd);
    }
}

/* attend for four rows of one sequence (rows r at q + r qs, outputs at out + r os, positions
 * pos[r]) that share the window start and whose keys do not wrap the ring, over an F16 cache
 * whose kernels take four queries: each cached row is read once for the four. The keys all four
 * see, in groups of four, go through scores4_f16 / wsum4_f16, each query's rest through the
 * one-query kernels; every query gets attend's bits (AttnKernels.scores4_f16 says why).
 * 0: not such rows (the caller runs attend per row). */
static int attend4(const State *s, const PhiHParams *hp, const AttnKernels *ak, void (*softmax_fn)(float *, int),
                   int layer, int kvh, const float *q, size_t qs, const int *pos, int start, float *att,
                   size_t as, float *out, size_t os) {
    int hd = (int)hp->head_dim, slots = s->kv_slots, slot0 = start % slots, m = pos[0] - start + 1;
    if (!ak->scores4_f16 || !ak->wsum4_f16 || !ak->scores_f16 || !ak->wsum_f16 || s->k_type != KV_F16 || s->v_type != KV_F16 ||
        slot0 + (pos[3] - start + 1) > slots)
        return 0;
    for (int r = 1; r < ATT_ROWS; r++) m = pos[r] - start + 1 < m ? pos[r] - start + 1 : m;
    m &= ~3;
    if (m < 4) return 0;
    float scale = 1.0f / sqrtf((float)hd);
    size_t at0 = kv_index(s, hp, layer, kvh, slot0);
    const uint16_t *k16 = (const uint16_t *)s->key_cache + at0, *v16 = (const uint16_t *)s->value_cache + at0;
    ak->scores4_f16(k16, m, hd, q, qs, scale, att, as);
    for (int r = 0; r < ATT_ROWS; r++) {
        int n = pos[r] - start + 1;
        if (n > m) ak->scores_f16(k16 + (size_t)m * hd, n - m, hd, q + r * qs, scale, att + r * as + m);
        softmax_fn(att + r * as, n);
        memset(out + r * os, 0, (size_t)hd * sizeof(float));
    }
    ak->wsum4_f16(out, os, att, as, v16, m, hd);
    for (int r = 0; r < ATT_ROWS; r++) {
        int n = pos[r] - start + 1;
        if (n > m) ak->wsum_f16(out + r * os, att + r * as + m, v16 + (size_t)m * hd, n - m, hd);
    }
    return 1;
}

/* ---- the two paths: the kernels they differ in ---- */

/* The reference path (the oracle: scalar kernels, F32 arithmetic, one token at a time, no
 * threads) and the fast path (SIMD kernels of the selected ISA, batches of up to n_batch tokens,
 * the thread pool) run the same recipe, forward() below; only these differ. */
typedef struct {
    void (*matmul)(const MatView *w, const float *x, int n, float *y, Pool *pool); /* [n] rows */
    void (*rmsnorm)(float *out, const float *x, const float *weight, int n, float eps);
    void (*silu_mul)(float *gate, const float *up, int n);
    void (*softmax)(float *x, int n);
    const AttnKernels *attn;
    Pool *pool; /* NULL: everything on the calling thread */
    int batch;  /* tokens per forward() call */
} Path;

static void matmul_ref(const MatView *w, const float *x, int n, float *y, Pool *pool) {
    (void)pool;
    for (int i = 0; i < n; i++) matvec_ref(w, x + (size_t)i * w->cols, y + (size_t)i * w->rows);
}

static Path path_for(const State *s) {
    if (s->use_ref)
        return (Path){matmul_ref, rmsnorm_ref, silu_mul_ref, softmax_ref,
                      attn_kernels_ref(), NULL, 1};
    return (Path){matmul, rmsnorm, silu_mul, softmax, attn_kernels(), s->pool, s->n_batch};
}

/* ---- a batch: its rows and whose they are ---- */

/* The rows of one forward() call. Row i is token tok[i] at position pos[i] of the sequence whose
 * State is seq[i]: that state's KV cache (ring included), its LongRoPE factor set (rope_set) and
 * its attention scratch. The rows' activations live in the scratch state sc (the sequence itself
 * for model_forward; one of them for a multi-sequence step), so the matrix products run once over
 * all rows whoever they belong to. A sequence's rows are consecutive, in position order, and at
 * most its n_batch (a ring holds n_batch positions beyond the window). */
typedef struct {
    State *sc;
    int n;
    const int *tok, *pos;
    State *const *seq;
    /* The LM head: rows out[0..n_out) (ascending; out NULL: rows 0..n_out-1) into
     * logits[n_out][vocab]. */
    int n_out;
    const int *out;
    float *logits;
} Batch;

static const float *rope_factors(const Model *m, const State *s) {
    if (m->hp.rope_scaling != PHI_ROPE_LONGROPE) return NULL;
    return s->rope_set ? m->rope_long : m->rope_short;
}

/* ---- the steps between the matrix products ---- */

typedef struct {
    const Model *m;
    const Batch *B;
    const Path *P;
    int layer;
} AttnJob;

/* Attention for every (row, head) of the batch, split across threads: sc->xb[i] receives the
 * heads of row i, each from its own sequence's cache (and that sequence's per-thread scores). */
static void attn_job(void *arg, int ith, int nth) {
    AttnJob *j = arg;
    const PhiHParams *hp = &j->m->hp;
    const Batch *B = j->B;
    State *sc = B->sc;
    int hd = (int)hp->head_dim, n_heads = (int)hp->n_heads, n_kv = (int)hp->n_kv_heads;
    int kv_dim = n_kv * hd, q_dim = n_heads * hd, qkv_dim = q_dim + 2 * kv_dim;
    int group = n_heads / n_kv, nblk = (B->n + ATT_ROWS - 1) / ATT_ROWS, t0, t1;
    /* tasks: (block of ATT_ROWS rows, head); a prompt's rows of one block share the cache reads */
    pool_split(nblk * n_heads, 1, ith, nth, &t0, &t1);
    for (int task = t0; task < t1; task++) {
        int i0 = task / n_heads * ATT_ROWS, h = task % n_heads, i1 = i0 + ATT_ROWS < B->n ? i0 + ATT_ROWS : B->n;
        const State *s = B->seq[i0];
        float *att = s->att + (size_t)ith * ATT_ROWS * s->n_ctx;
        int start = window_start(hp, B->pos[i0]), same = i1 - i0 == ATT_ROWS;
        for (int i = i0 + 1; i < i1 && same; i++)
            same = B->seq[i] == s && B->pos[i] == B->pos[i - 1] + 1 && window_start(hp, B->pos[i]) == start;
        if (same && attend4(s, hp, j->P->attn, j->P->softmax, j->layer, h / group, sc->qkv + (size_t)i0 * qkv_dim + h * hd,
                            (size_t)qkv_dim, B->pos + i0, start, att, (size_t)s->n_ctx,
                            sc->xb + (size_t)i0 * q_dim + h * hd, (size_t)q_dim))
            continue;
        for (int i = i0; i < i1; i++) {
            int pos = B->pos[i];
            const State *si = B->seq[i];
            attend(si, hp, j->P->attn, j->P->softmax, j->layer, h / group,
                   sc->qkv + (size_t)i * qkv_dim + h * hd, window_start(hp, pos), pos,
                   si->att + (size_t)ith * ATT_ROWS * si->n_ctx, sc->xb + (size_t)i * q_dim + h * hd);
        }
    }
}

static void attention(const Model *m, const Batch *B, const Path *P, int layer) {
    AttnJob j = {m, B, P, layer};
    pool_run(P->pool, attn_job, &j);
}

/* The per-token work between the matrix products, split across the pool by tokens. */
enum {
    ELEM_NORM,       /* xb = norm(x) */
    ELEM_ROPE_KV,    /* rotate q and k in qkv, store k and v in the row's sequence's cache */
    ELEM_RESID_NORM, /* x += xb2, then xb = norm(x) */
    ELEM_SILU,       /* hs = silu(gate) * up, from hb = [gate, up] */
};

typedef struct {
    const Model *m;
    const Batch *B;
    const Path *P;
    int layer, op;
    const float *norm; /* ELEM_NORM, ELEM_RESID_NORM */
} ElemJob;

static void elem_job(void *arg, int ith, int nth) {
    ElemJob *j = arg;
    const PhiHParams *hp = &j->m->hp;
    const Path *P = j->P;
    const Batch *B = j->B;
    State *s = B->sc;
    int dim = (int)hp->dim, hd = (int)hp->head_dim, n_heads = (int)hp->n_heads;
    int n_kv = (int)hp->n_kv_heads, kv_dim = n_kv * hd, q_dim = n_heads * hd;
    int qkv_dim = q_dim + 2 * kv_dim, hidden = (int)hp->hidden_dim, rd = (int)hp->rope_dims, i0, i1;
    pool_split(B->n, 1, ith, nth, &i0, &i1);
    for (int i = i0; i < i1; i++) {
        float *x = s->x + (size_t)i * dim, *xb = s->xb + (size_t)i * dim;
        switch (j->op) {
        case ELEM_RESID_NORM: {
            const float *d = s->xb2 + (size_t)i * dim;
            for (int c = 0; c < dim; c++) x[c] += d[c];
        } /* fall through */
        case ELEM_NORM: P->rmsnorm(xb, x, j->norm, dim, hp->rms_eps); break;
        case ELEM_ROPE_KV: {
            float *q = s->qkv + (size_t)i * qkv_dim, *k = q + q_dim, *v = k + kv_dim;
            const float *cs = s->rope_cs + (size_t)i * rd;
            const State *seq = B->seq[i];
            int slot = B->pos[i] % seq->kv_slots;
            for (int h = 0; h < n_heads; h++) rope_apply(q + h * hd, cs, rd);
            for (int h = 0; h < n_kv; h++) rope_apply(k + h * hd, cs, rd);
            kv_store(seq, hp, P->attn, seq->key_cache, seq->k_type, j->layer, slot, k);
            kv_store(seq, hp, P->attn, seq->value_cache, seq->v_type, j->layer, slot, v);
            break;
        }
        case ELEM_SILU: {
            float *g = s->hb + (size_t)i * 2 * hidden, *o = s->hs + (size_t)i * hidden;
            memcpy(o, g, (size_t)hidden * sizeof(float));
            P->silu_mul(o, g + hidden, hidden);
            break;
        }
        }
    }
}

static void elem(const Model *m, const Batch *B, const Path *P, int op, int layer, const float *norm) {
    ElemJob j = {m, B, P, layer, op, norm};
    pool_run(B->n > 1 ? P->pool : NULL, elem_job, &j); /* one token: not worth a dispatch */
}

/* quant --calib: add the square of each column of x[n][cols] to acc[cols]. */
static void act_add(double *acc, const float *x, int n, int cols) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cols; j++) acc[j] += (double)x[(size_t)i * cols + j] * x[(size_t)i * cols + j];
}

/* y[n][rows] = x[n][cols] W^T for the layer's matrix of the given role, and its input
 * statistics when quant --calib collects them (State.act_sq, layout in model/schema.h). */
static void layer_matmul(const Model *m, State *s, const Path *P, int layer, SchemaRole role,
                         const MatView *w, const float *x, int n, float *y) {
    if (s->act_sq)
        act_add(s->act_sq + (size_t)layer * schema_act_stride(&m->hp) + schema_act_offset(&m->hp, role),
                x, n, w->cols);
    P->matmul(w, x, n, y, P->pool);
    const LoraSet *lora = s->lora ? s->lora : m->lora; /* LoRA: y += S c B (A x) */
    if (lora) lora_apply(lora, layer, role, x, n, y, P->matmul, P->pool);
}

/* ---- the recipe ---- */

/* The rows of B through every layer and the LM head, on either path. */
static void forward(const Model *m, const Path *P, const Batch *B) {
    const PhiHParams *hp = &m->hp;
    State *s = B->sc;
    int dim = (int)hp->dim, rd = (int)hp->rope_dims, n_layers = (int)hp->n_layers, n = B->n;

    for (int i = 0; i < n; i++) {
        matview_dequant_row(&m->tok_embd, B->tok[i], s->x + (size_t)i * dim);
        rope_table(hp, rope_factors(m, B->seq[i]), B->pos[i], s->rope_cs + (size_t)i * rd);
    }
    elem(m, B, P, ELEM_NORM, 0, m->layers[0].attn_norm);

    for (int l = 0; l < n_layers; l++) {
        const Layer *L = &m->layers[l];

        /* attention (s->xb holds the normed input): qkv, RoPE and the cache writes, every
         * (token, head), the output projection, the residual and the MLP's norm */
        layer_matmul(m, s, P, l, ROLE_QKV, &L->wqkv, s->xb, n, s->qkv);
        elem(m, B, P, ELEM_ROPE_KV, l, NULL);
        attention(m, B, P, l);
        layer_matmul(m, s, P, l, ROLE_O, &L->wo, s->xb, n, s->xb2);
        elem(m, B, P, ELEM_RESID_NORM, l, L->ffn_norm);

        /* MLP: down(silu(gate) * up), the residual, and the next layer's attention norm (the
         * output norm after the last layer) */
        layer_matmul(m, s, P, l, ROLE_GATE_UP, &L->w_gate_up, s->xb, n, s->hb);
        elem(m, B, P, ELEM_SILU, l, NULL);
        layer_matmul(m, s, P, l, ROLE_DOWN, &L->w_down, s->hs, n, s->xb2);
        elem(m, B, P, ELEM_RESID_NORM, l, l + 1 < n_layers ? m->layers[l + 1].attn_norm : m->output_norm);
    }
    if (s->act_sq) s->act_rows += n;

    /* LM head: the rows asked for, gathered into xb2 unless they are consecutive already. */
    if (B->n_out > 0) {
        const float *src = s->xb + (size_t)(B->out ? B->out[0] : 0) * dim;
        int gather = 0;
        for (int k = 1; B->out && k < B->n_out; k++) gather |= B->out[k] != B->out[0] + k;
        if (gather) {
            for (int k = 0; k < B->n_out; k++)
                memcpy(s->xb2 + (size_t)k * dim, s->xb + (size_t)B->out[k] * dim, (size_t)dim * sizeof(float));
            src = s->xb2;
        }
        P->matmul(&m->output, src, B->n_out, B->logits, P->pool);
    }
}

/* Evaluate tokens at pos0.. of one sequence with its factor set (s->rope_set), on its path. */
static void run(const Model *m, State *s, const int *tokens, int n, int pos0, float *logits) {
    Path P = path_for(s);
    State *seq[MAX_BATCH];
    int pos[MAX_BATCH];
    for (int i = 0; i < P.batch; i++) seq[i] = s;
    for (int i = 0; i < n; i += P.batch) {
        int nb = n - i < P.batch ? n - i : P.batch, last = nb - 1;
        for (int k = 0; k < nb; k++) pos[k] = pos0 + i + k;
        /* the logits of every position when asked for, else only the very last one's */
        Batch B = {s, nb, tokens + i, pos, seq, 0, NULL, NULL};
        if (logits) B.n_out = nb, B.logits = logits + (size_t)i * m->hp.vocab_size;
        else if (i + nb == n) B.n_out = 1, B.out = &last, B.logits = s->logits;
        forward(m, &P, &B);
    }
    if (logits)
        memcpy(s->logits, logits + (size_t)(n - 1) * m->hp.vocab_size, m->hp.vocab_size * sizeof(float));
}

/* Before evaluating n tokens at pos0 (validated): choose the sequence's LongRoPE factor set and,
 * when its cached positions were rotated with the other set or a ring no longer holds what a
 * rewind to pos0 needs, evaluate positions 0..pos0-1 again, this sequence alone; then record
 * the tokens. */
static void prepare(const Model *m, State *s, const int *tokens, int n, int pos0) {
    const PhiHParams *hp = &m->hp;
    int again = 0;
    if (hp->rope_scaling == PHI_ROPE_LONGROPE) {
        /* Hugging Face picks the factor set from the sequence length. A sequence that grows past
         * original_max_position_embeddings switches to the long set for every position, so the
         * cached keys are rotated again (by evaluating those positions again) to stay equal to
         * a full evaluation; the same when a shorter sequence replaces a long one. */
        int set = (uint32_t)(pos0 + n) > hp->orig_max_seq_len;
        again = set != s->rope_set;
        s->rope_set = set;
    }
    /* A rewind further back than one batch finds ring slots already reused. */
    int hi = s->kv_hi > s->n_cached ? s->kv_hi : s->n_cached;
    if (s->kv_slots < s->n_ctx && hi - pos0 > s->n_batch) again = 1;
    if (pos0 > 0 && again) run(m, s, s->tokens, pos0, 0, NULL);
    if (pos0 == 0 || again) s->kv_hi = pos0; /* positions before pos0 are all valid again */
    memcpy(s->tokens + pos0, tokens, (size_t)n * sizeof *tokens);
}

static int tokens_ok(const Model *m, const int *tokens, int n) {
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= m->hp.vocab_size) return 0;
    return 1;
}

int model_forward(const Model *m, State *s, const int *tokens, int n, int pos0, float *logits) {
    if (n < 1 || pos0 < 0 || pos0 + n > s->n_ctx || !tokens_ok(m, tokens, n)) return -1;
    prepare(m, s, tokens, n, pos0);
    run(m, s, tokens, n, pos0, logits);
    s->n_cached = pos0 + n;
    if (s->n_cached > s->kv_hi) s->kv_hi = s->n_cached;
    return 0;
}

/* ---- several sequences in one pass ---- */

int model_forward_spans(const Model *m, const SeqSpan *sp, int n_spans) {
    const PhiHParams *hp = &m->hp;
    size_t vocab = hp->vocab_size;
    if (n_spans < 1) return -1;
    for (int i = 0; i < n_spans; i++) {
        const State *s = sp[i].s;
        if (!s || !sp[i].tokens || sp[i].n < 1 || sp[i].pos0 < 0 || sp[i].pos0 > s->n_cached ||
            sp[i].pos0 + sp[i].n > s->n_ctx || !tokens_ok(m, sp[i].tokens, sp[i].n))
            return -1;
        for (int k = 0; k < i; k++)
            if (sp[k].s == s) return -1;
    }
    /* One pass needs one path and one pool (its thread count sizes every state's attention
     * scratch); otherwise the spans run one after another. The scratch is the state with the
     * most batch rows. */
    State *sc = sp[0].s;
    int together = 1;
    for (int i = 1; i < n_spans; i++) {
        const State *s = sp[i].s;
        together &= s->use_ref == sc->use_ref && s->pool == sc->pool && s->n_threads == sc->n_threads &&
                    s->lora == sc->lora; /* one adapter set per pass (layer_matmul applies the scratch state's) */
        if (s->n_batch > sc->n_batch) sc = sp[i].s;
    }
    if (!together) {
        for (int i = 0; i < n_spans; i++)
            model_forward(m, sp[i].s, sp[i].tokens, sp[i].n, sp[i].pos0, sp[i].logits);
        return 0;
    }
    Path P = path_for(sc);
    int g = P.batch; /* rows per pass */
    float *lbuf = malloc((size_t)g * vocab * sizeof(float));
    int *done = calloc((size_t)n_spans, sizeof(int));
    if (!lbuf || !done) {
        free(lbuf);
        free(done);
        return -1;
    }
    for (int i = 0; i < n_spans; i++) prepare(m, sp[i].s, sp[i].tokens, sp[i].n, sp[i].pos0);

    State *seq[MAX_BATCH];
    int tok[MAX_BATCH], pos[MAX_BATCH], out[MAX_BATCH], span_of[MAX_BATCH];
    for (int left = 1; left;) {
        /* One pass: the next piece of every unfinished span, in the order given, up to g rows;
         * a piece is at most its state's n_batch. */
        int n = 0, n_out = 0;
        left = 0;
        for (int i = 0; i < n_spans; i++) {
            State *s = sp[i].s;
            int rem = sp[i].n - done[i], take = rem < g - n ? rem : g - n;
            if (take > s->n_batch) take = s->n_batch;
            for (int k = 0; k < take; k++, n++) {
                int t = done[i] + k;
                seq[n] = s;
                tok[n] = sp[i].tokens[t];
                pos[n] = sp[i].pos0 + t;
                span_of[n] = i;
                if (sp[i].logits || t == sp[i].n - 1) out[n_out++] = n;
            }
            done[i] += take;
            left |= done[i] < sp[i].n;
        }
        Batch B = {sc, n, tok, pos, seq, n_out, out, lbuf};
        forward(m, &P, &B);
        for (int k = 0; k < n_out; k++) {
            int r = out[k], i = span_of[r], t = pos[r] - sp[i].pos0;
            const float *l = lbuf + (size_t)k * vocab;
            if (sp[i].logits) memcpy(sp[i].logits + (size_t)t * vocab, l, vocab * sizeof(float));
            if (t == sp[i].n - 1) memcpy(sp[i].s->logits, l, vocab * sizeof(float));
        }
    }
    for (int i = 0; i < n_spans; i++) {
        State *si = sp[i].s;
        si->n_cached = sp[i].pos0 + sp[i].n;
        if (si->n_cached > si->kv_hi) si->kv_hi = si->n_cached;
    }
    free(lbuf);
    free(done);
    return 0;
}

int model_forward_multi(const Model *m, State *const *states, const int *tokens, int n, float *logits) {
    if (n < 1) return -1;
    SeqSpan one[16], *sp = n <= 16 ? one : malloc((size_t)n * sizeof *sp);
    if (!sp) return -1;
    for (int i = 0; i < n; i++) {
        State *s = states[i];
        sp[i] = (SeqSpan){s, tokens + i, 1, s ? s->n_cached : 0,
                          logits ? logits + (size_t)i * m->hp.vocab_size : NULL};
    }
    int rc = model_forward_spans(m, sp, n);
    if (sp != one) free(sp);
    return rc;
}
