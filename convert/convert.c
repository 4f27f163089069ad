/* Converter: Hugging Face Phi-3 folder (or random weights) -> phi file, one tensor at a time,
 * a bounded chunk of rows at a time, so memory stays small whatever the model size. */
#include "base/errmsg.h"
#include "convert/convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cpu.h"
#include "model/format.h"
#include "model/schema.h"
#include "base/pool.h"
#include "base/rng.h"
#include "convert/hf.h"
#include "convert/lora_load.h"
#include "kernels/blocks.h"
#include "tokenizer/tokenizer.h"

#define CHUNK_FLOATS (4u << 20) /* rows are converted in chunks of about 16 MiB of float32 */

/* One tensor of the output and where its values come from. */
typedef struct {
    char name[PHI_NAME_MAX];
    uint32_t type, ndim;
    uint64_t rows, cols; /* a 1-D tensor has rows = length, cols = 1 */
    const StTensor *src;
    const StFile *src_file;
    const float *values; /* rope factors */
    int index;           /* in the writer */
    const float *imp;    /* importance of each column for the Q4 scale search, or NULL */
    SchemaRole role;
    int layer;           /* -1 for global tensors */
    const LoraSet *lora; /* adapters to merge into this matrix, or NULL */
} Plan;

typedef struct {
    Plan *p;
    int n, cap;
} PlanList;

static Plan *plan_add(PlanList *l, const char *name, uint32_t type, uint32_t ndim, uint64_t rows,
                      uint64_t cols) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        Plan *p = realloc(l->p, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        l->p = p;
        l->cap = cap;
    }
    Plan *t = &l->p[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = ndim == 1 ? TENSOR_F32 : type;
    /* Quantized types need whole blocks per row: a super-block type falls back to q8 (blocks of
     * 32), other shapes keep F16 precision. */
    if (ndim == 2 && !type_row_bytes(t->type, cols) && type_table[t->type].unpack) t->type = TENSOR_Q8;
    if (ndim == 2 && !type_row_bytes(t->type, cols)) t->type = TENSOR_F16;
    t->ndim = ndim;
    t->rows = rows;
    t->cols = ndim == 1 ? 1 : cols;
    return t;
}

/* llama.cpp's Q4_K_M gives more bits to the first and last eighth of the layers' ffn_down and
 * to every third layer between them (its use_more_bits rule). */
static int more_bits_layer(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The type of one matrix under -q TYPE (and the q4_k_m mix). With 4-bit matrices the embedding
 * and the LM head stay at higher precision: q8 for q4, q6_k for q4_k / q5_k / iq4_xs. The LM head's
 * errors go straight into the logits (phi3-trained-tiny: max logit error 2.2 -> 0.6), and the
 * q4 embedding caused 28 % of the q4 file's KL divergence; a token reads only one embedding row,
 * so the larger embedding costs file size, not speed. The q4_k_m mix (llama.cpp's Q4_K_M as it
 * comes out for Phi-3, whose q, k and v are one fused matrix): qkv q5_k (llama.cpp gives the
 * value projection 6 bits; the fused matrix cannot split, so all of it takes the middle step),
 * ffn_down q6_k on the layers of more_bits_layer, the other matrices q4_k. */
static uint32_t plan_type_k(const SchemaItem *e, const PhiHParams *hp, uint32_t type, int mix) {
    int role = e->t->role, outer = role == ROLE_EMBED || role == ROLE_LM_HEAD;
    if (type == TENSOR_Q4) return outer ? TENSOR_Q8 : type;
    if (type != TENSOR_Q4_K && type != TENSOR_Q5_K && type != TENSOR_IQ4_XS) return type;
    if (outer) return TENSOR_Q6_K;
    if (mix == CONVERT_MIX_Q4_K_M && role == ROLE_QKV) return TENSOR_Q5_K;
    if (mix == CONVERT_MIX_Q4_K_M && role == ROLE_DOWN && more_bits_layer(e->layer, (int)hp->n_layers))
        return TENSOR_Q6_K;
    return type;
}

/* The K-quants are written in their panel forms (the same values; kernels/blocks.h), and
 * -q q4_kp / q5_kp / q6_kp mean -q q4_k / q5_k / q6_k. */
static uint32_t stored_form(uint32_t t) {
    static const uint32_t panel_form[TENSOR_TYPE_COUNT] = {[TENSOR_Q4_K] = TENSOR_Q4_KP, [TENSOR_Q5_K] = TENSOR_Q5_KP,
                                                           [TENSOR_Q6_K] = TENSOR_Q6_KP};
    return t < TENSOR_TYPE_COUNT && panel_form[t] ? panel_form[t] : t;
}
static uint32_t plan_type(const SchemaItem *e, const PhiHParams *hp, uint32_t type, int mix) {
    static const uint32_t row_form[TENSOR_TYPE_COUNT] = {[TENSOR_Q4_KP] = TENSOR_Q4_K, [TENSOR_Q5_KP] = TENSOR_Q5_K,
                                                         [TENSOR_Q6_KP] = TENSOR_Q6_K};
    if (type < TENSOR_TYPE_COUNT && row_form[type]) type = row_form[type];
    return stored_form(plan_type_k(e, hp, type, mix));
}

/* The tensors of the model (model/schema.c), in file order. */
static int plan_model(PlanList *l, const PhiHParams *hp, uint32_t type, int mix) {
    SchemaIter it = schema_iter(hp);
    while (schema_next(&it)) {
        const SchemaItem *e = &it.item;
        Plan *t = plan_add(l, e->name, plan_type(e, hp, type, mix), (uint32_t)e->t->ndim, e->rows,
                           e->t->ndim == 2 ? e->cols : 1);
        if (!t) return -1;
        t->role = e->t->role;
        t->layer = e->layer;
    }
    return 0;
}

/* ---- progress ---- */

typedef struct {
    int on;
    uint64_t done, total;
    double t0;
    int last_pct;
} Progress;

static void progress_update(Progress *p, uint64_t add, const char *what) {
    p->done += add;
    if (!p->on || !p->total) return;
    int pct = (int)(100.0 * p->done / p->total);
    if (pct == p->last_pct && p->done < p->total) return;
    p->last_pct = pct;
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "\r[%s] %3d%% %6.1fs %-44.44s", bar, pct, now_seconds() - p->t0, what);
    if (p->done >= p->total) fputc('\n', stderr);
    fflush(stderr);
}

/* ---- random values ---- */

static uint64_t hash_name(const char *s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

static float rand_uniform(uint64_t *st) { return 2.0f * rng_float01(st) - 1.0f; } /* [-1, 1), exact */

/* ---- writing one tensor ---- */

/* Fill buf with rows [r0, r0 + n) of the tensor as float32. */
typedef int (*RowSource)(const Plan *t, uint64_t r0, uint64_t n, float *buf, void *ctx, char *err,
                         size_t errlen);

/* One chunk of rows of a tensor, shared by the threads. Each thread takes whole panels of it
 * (rows in multiples of QR for panel types) and does all the work on them: reads its rows
 * (safetensors: pread, so reads run in parallel too), merges LoRA, checks the values, quantizes,
 * packs its panels and writes them. Rows are independent and each thread's panels are a
 * contiguous range of both areas of the file, so the bytes do not depend on the thread count.
 * A source that cannot be read by parts (random weights: a stream per chunk) is read by the
 * caller before. */
typedef struct {
    const Plan *t;
    PhiWriter *w;
    RowSource src;
    void *ctx;
    int read_here; /* the threads read their rows from src */
    float *x;
    uint8_t *q, *pan;
    uint16_t *d;
    uint64_t r0, n, cols, row_bytes, nblocks, scales_off;
    int panels;
    int rc[CONVERT_MAX_THREADS];
    char err[CONVERT_MAX_THREADS][256];
} ChunkJob;

/* Index of the first Inf or NaN of x[0..n), or n. The all-finite case (every real checkpoint) is
 * one pass of integer ors that the compiler vectorizes: an element is not finite when its
 * exponent bits are all set. */
static uint64_t first_nonfinite(const float *x, uint64_t n) {
    uint64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t u[64], any = 0;
        memcpy(u, x + i, sizeof u);
        for (int k = 0; k < 64; k++) any |= (u[k] & 0x7f800000u) == 0x7f800000u;
        if (any) break;
    }
    while (i < n && isfinite(x[i])) i++;
    return i;
}

static void chunk_job(void *arg, int ith, int nth) {
    ChunkJob *j = arg;
    const Plan *t = j->t;
    int a, b;
    pool_split((int)j->n, j->panels ? QR : 1, ith, nth, &a, &b);
    j->rc[ith] = 0;
    if (a >= b) return;
    uint64_t cols = j->cols, n = (uint64_t)(b - a);
    float *x = j->x + (uint64_t)a * cols;
    char *err = j->err[ith];
    size_t errlen = sizeof j->err[ith];
    int rc = 0;
    if (j->read_here) rc = j->src(t, t->ndim == 1 ? 0 : j->r0 + (uint64_t)a, t->ndim == 1 ? cols : n, x, j->ctx, err, errlen);
    if (!rc && t->lora) lora_merge_rows(t->lora, t->layer, t->role, (int)(j->r0 + (uint64_t)a), (int)n, x);
    uint64_t bad = rc ? n * cols : first_nonfinite(x, n * cols);
    if (bad < n * cols)
        rc = errorf(err, errlen, "tensor '%s' has a non-finite value at row %llu", t->name,
                    (unsigned long long)(j->r0 + (uint64_t)a + bad / cols));
    for (uint64_t i = 0; !rc && i < n; i++)
        quantize_row_weighted(t->type, x + i * cols, j->q + ((uint64_t)a + i) * j->row_bytes,
                              j->d + ((uint64_t)a + i) * j->nblocks, (int)cols, t->imp);
    uint64_t off = (j->r0 + (uint64_t)a) * j->row_bytes;
    if (!rc && j->panels) {
        /* the chunk's panels as laid out in the file (one MatView over the whole chunk); this
         * thread's are [a / QR, ceil(b / QR)); padding rows of the last panel are zeros */
        uint64_t sr = type_stored_rows(t->type, j->n), p0 = (uint64_t)a / QR;
        uint64_t np = type_stored_rows(t->type, n) / QR, qbytes = QR * j->row_bytes, sbytes = QR * j->nblocks * 2;
        MatView pm = matview(t->type, j->pan, (int)sr, (int)cols);
        memset((uint8_t *)pm.q + p0 * qbytes, 0, np * qbytes);
        if (pm.d) memset((uint8_t *)pm.d + p0 * sbytes, 0, np * sbytes);
        for (int i = a; i < b; i++)
            matview_put_row(&pm, i, j->q + (uint64_t)i * j->row_bytes, j->d + (uint64_t)i * j->nblocks);
        rc = phi_writer_write_at(j->w, t->index, off, pm.q + p0 * qbytes, np * qbytes, err, errlen);
        if (!rc && pm.d) /* a K panel type has no scales area */
            rc = phi_writer_write_at(j->w, t->index, j->scales_off + (j->r0 + (uint64_t)a) * j->nblocks * 2,
                                     (const uint8_t *)pm.d + p0 * sbytes, np * sbytes, err, errlen);
    } else if (!rc) {
        rc = phi_writer_write_at(j->w, t->index, off, j->q + (uint64_t)a * j->row_bytes, n * j->row_bytes, err, errlen);
    }
    j->rc[ith] = rc;
}

static int write_tensor(PhiWriter *w, const Plan *t, RowSource src, void *ctx, int src_parts,
                        Progress *prog, Pool *pool, char *err, size_t errlen) {
    uint64_t cols = t->ndim == 1 ? t->rows : t->cols, rows = t->ndim == 1 ? 1 : t->rows;
    uint64_t row_bytes = type_row_bytes(t->type, cols), nblocks = cols / QK;
    uint64_t scales_off = type_scales_offset(t->type, rows, cols);
    /* quantized (and K panel types): rows go out in whole panels */
    int panels = type_traits(t->type)->has_scales || type_traits(t->type)->kpanel;
    uint64_t chunk = CHUNK_FLOATS / cols ? CHUNK_FLOATS / cols : 1;
    if (panels) chunk = (chunk + QR - 1) / QR * QR;
    if (chunk > rows) chunk = panels ? (rows + QR - 1) / QR * QR : rows;
    float *buf = malloc(chunk * cols * sizeof(float));
    uint8_t *q = malloc(chunk * row_bytes);
    uint16_t *d = malloc(chunk * nblocks * sizeof(uint16_t) + 2);
    uint8_t *pan = panels ? malloc(type_tensor_bytes(t->type, chunk, cols)) : NULL;
    ChunkJob *job = malloc(sizeof *job);
    int rc = 0;
    if (!buf || !q || !d || (panels && !pan) || !job) rc = errorf(err, errlen, "out of memory");
    for (uint64_t r0 = 0; r0 < rows && !rc; r0 += chunk) {
        uint64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        int whole = !src_parts || t->values || t->ndim == 1; /* read by the caller */
        if (whole && src(t, t->ndim == 1 ? 0 : r0, t->ndim == 1 ? cols : n, buf, ctx, err, errlen)) {
            rc = -1;
            break;
        }
        *job = (ChunkJob){.t = t, .w = w, .src = src, .ctx = ctx, .read_here = !whole, .x = buf, .q = q,
                          .pan = pan, .d = d, .r0 = r0, .n = n, .cols = cols, .row_bytes = row_bytes,
                          .nblocks = nblocks, .scales_off = scales_off, .panels = panels};
        pool_run(n > 1 ? pool : NULL, chunk_job, job);
        for (int i = 0; i < CONVERT_MAX_THREADS && !rc; i++)
            if (job->rc[i]) rc = errorf(err, errlen, "%s", job->err[i]);
        progress_update(prog, n * cols, t->name);
    }
    free(buf);
    free(q);
    free(d);
    free(pan);
    free(job);
    return rc;
}

static int write_all_tensors(const char *out_path, const PhiHParams *hp, const Tokenizer *tok,
                             PlanList *l, RowSource src, void *ctx, int src_parts,
                             const ConvertOptions *opt, char *err, size_t errlen) {
    uint8_t *blob = NULL;
    uint64_t blob_size = 0;
    if (tok_serialize(tok, &blob, &blob_size, err, errlen)) return -1;
    PhiWriter *w = phi_writer_open(out_path, hp, blob, blob_size, err, errlen);
    free(blob);
    if (!w) return -1;
    Progress prog = {opt->progress, 0, 0, now_seconds(), -1};
    Pool *pool = NULL;
    for (int i = 0; i < l->n; i++) {
        Plan *t = &l->p[i];
        t->index = phi_writer_add_tensor(w, t->name, t->type, t->ndim, t->rows, t->cols, err, errlen);
        if (t->index < 0) goto bad;
        prog.total += t->rows * t->cols;
    }
    if (phi_writer_begin_data(w, err, errlen)) goto bad;
    int nth = opt->n_threads > 0 ? opt->n_threads : cpu_physical_cores();
    if (nth > CONVERT_MAX_THREADS) nth = CONVERT_MAX_THREADS;
    if (nth > 1) pool = pool_create(nth); /* NULL (one thread) is fine too */
    for (int i = 0; i < l->n; i++)
        if (write_tensor(w, &l->p[i], src, ctx, src_parts, &prog, pool, err, errlen)) goto bad;
    if (pool) pool_destroy(pool);
    return phi_writer_finish(w, err, errlen);
bad:
    if (pool) pool_destroy(pool);
    phi_writer_abort(w);
    return -1;
}

/* ---- from Hugging Face ---- */

static int hf_rows(const Plan *t, uint64_t r0, uint64_t n, float *buf, void *ctx, char *err,
                   size_t errlen) {
    (void)ctx;
    if (t->values) {
        memcpy(buf, t->values, n * sizeof(float));
        return 0;
    }
    return st_read_f32(t->src_file, t->src, r0 * (t->ndim == 1 ? 1 : t->cols), t->ndim == 1 ? n : n * t->cols,
                       buf, err, errlen);
}

int convert_hf(const char *dir, const char *out_path, const ConvertOptions *opt, char *err,
               size_t errlen) {
    HfModel hf;
    PlanList l = {0};
    Tokenizer *tok = NULL;
    int rc = -1;
    if (hf_open(dir, &hf, err, errlen)) return -1;
    LoraAdapter *ads[CONVERT_MAX_LORA] = {0};
    LoraSet *lora = NULL;
    int n_ads = 0;
    if (opt->n_lora > 0) { /* read and check the adapters before writing anything */
        if (!(lora = lora_set_new(&hf.hp))) {
            errorf(err, errlen, "out of memory");
            goto done;
        }
        for (; n_ads < opt->n_lora && n_ads < CONVERT_MAX_LORA; n_ads++)
            if (!(ads[n_ads] = lora_load(opt->lora_path[n_ads], &hf.hp, err, errlen)) ||
                lora_set_add(lora, ads[n_ads], opt->lora_scale[n_ads], err, errlen))
                goto done;
    }
    hf.hp.file_type = stored_form((uint32_t)opt->type); /* q4_k: the q4_kp its matrices are */
    if (plan_model(&l, &hf.hp, (uint32_t)opt->type, opt->mix)) {
        errorf(err, errlen, "out of memory");
        goto done;
    }
    /* Check every source tensor before writing anything. */
    for (int i = 0; i < l.n; i++) {
        Plan *t = &l.p[i];
        if (t->role == ROLE_ROPE_SHORT) { t->values = hf.short_factor; continue; }
        if (t->role == ROLE_ROPE_LONG) { t->values = hf.long_factor; continue; }
        if (t->ndim == 2) t->lora = lora;
        if (opt->importance && t->ndim == 2) t->imp = opt->importance(opt->importance_ctx, t->name, t->cols);
        t->src = hf_find(&hf, t->name, &t->src_file);
        if (!t->src) {
            errorf(err, errlen, "%s: missing tensor '%s'", dir, t->name);
            goto done;
        }
        int ok = t->ndim == 1 ? t->src->ndim == 1 && t->src->shape[0] == t->rows
                              : t->src->ndim == 2 && t->src->shape[0] == t->rows &&
                                    t->src->shape[1] == t->cols;
        if (!ok) {
            errorf(err, errlen, "%s: tensor '%s' has shape [%llu%s%llu], expected [%llu, %llu] from config.json",
                 dir, t->name, (unsigned long long)t->src->shape[0], t->src->ndim > 1 ? ", " : "",
                 t->src->ndim > 1 ? (unsigned long long)t->src->shape[1] : 0ull,
                 (unsigned long long)t->rows, (unsigned long long)(t->ndim == 1 ? 1 : t->cols));
            goto done;
        }
        if (t->src->dtype == ST_OTHER) {
            errorf(err, errlen, "%s: tensor '%s' has dtype %s (supported: BF16, F16, F32)", dir,
                 t->name, t->src->dtype_name);
            goto done;
        }
    }
    char terr[512];
    tok = tok_from_hf_dir(dir, terr, sizeof terr);
    if (!tok) {
        errorf(err, errlen, "%s", terr);
        goto done;
    }
    if (tok_vocab_size(tok) > (int)hf.hp.vocab_size) {
        errorf(err, errlen, "%s: tokenizer has %d pieces but vocab_size is %u", dir,
             tok_vocab_size(tok), hf.hp.vocab_size);
        goto done;
    }
    rc = write_all_tensors(out_path, &hf.hp, tok, &l, hf_rows, NULL, 1, opt, err, errlen);
done:
    lora_set_free(lora);
    for (int i = 0; i < CONVERT_MAX_LORA; i++) lora_adapter_free(ads[i]);
    free(l.p);
    if (tok) tok_free(tok);
    hf_close(&hf);
    return rc;
}

/* ---- random weights ---- */

typedef struct {
    const char *name;
    PhiHParams hp;
} Shape;

static const Shape shapes[] = {
    {"phi3-mini", {.vocab_size = 32064, .dim = 3072, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32,
                   .head_dim = 96, .hidden_dim = 8192, .max_seq_len = 4096, .orig_max_seq_len = 4096,
                   .rope_dims = 96, .sliding_window = 2047}},
    {"phi3.5-mini", {.vocab_size = 32064, .dim = 3072, .n_layers = 32, .n_heads = 32, .n_kv_heads = 32,
                     .head_dim = 96, .hidden_dim = 8192, .max_seq_len = 131072,
                     .orig_max_seq_len = 4096, .rope_dims = 96, .sliding_window = 262144,
                     .rope_scaling = PHI_ROPE_LONGROPE}},
    {"phi3-medium", {.vocab_size = 32064, .dim = 5120, .n_layers = 40, .n_heads = 40, .n_kv_heads = 10,
                     .head_dim = 128, .hidden_dim = 17920, .max_seq_len = 4096,
                     .orig_max_seq_len = 4096, .rope_dims = 128, .sliding_window = 2047}},
    {"phi4-mini", {.vocab_size = 200064, .dim = 3072, .n_layers = 32, .n_heads = 24, .n_kv_heads = 8,
                   .head_dim = 128, .hidden_dim = 8192, .max_seq_len = 131072,
                   .orig_max_seq_len = 4096, .rope_dims = 96, .sliding_window = 262144,
                   .rope_scaling = PHI_ROPE_LONGROPE, .tie_embeddings = 1}},
    /* hidden_dim 132: the gate/up matrix (264 rows) ends in a partial 16-row panel, and the
     * down projection (132 columns, not whole blocks) stays f16, so tests on this shape cover
     * both. */
    {"tiny", {.vocab_size = 512, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
              .head_dim = 16, .hidden_dim = 132, .max_seq_len = 256, .orig_max_seq_len = 256,
              .rope_dims = 16}},
};

const char *convert_shape_names(void) { return "phi3-mini, phi3.5-mini, phi3-medium, phi4-mini, tiny"; }

typedef struct {
    uint64_t seed;
    float *factors[2];
} RandomCtx;

static int random_rows(const Plan *t, uint64_t r0, uint64_t n, float *buf, void *vctx, char *err,
                       size_t errlen) {
    RandomCtx *ctx = vctx;
    (void)err, (void)errlen;
    if (t->values) {
        memcpy(buf, t->values, n * sizeof(float));
        return 0;
    }
    /* Each chunk of rows has its own stream, seeded from the seed, the name and the first row. */
    uint64_t st = hash_name(t->name, ctx->seed) ^ (r0 * 0x9E3779B97F4A7C15ull);
    if (!st) st = 1;
    if (t->ndim == 1) { /* norm weights: uniform in [0.8, 1.2] */
        for (uint64_t i = 0; i < n; i++) buf[i] = 1.0f + 0.2f * rand_uniform(&st);
        return 0;
    }
    float a = sqrtf(3.0f / (float)t->cols); /* std 1/sqrt(fan_in) */
    for (uint64_t i = 0; i < n * t->cols; i++) buf[i] = a * rand_uniform(&st);
    return 0;
}

int convert_random(const char *shape, const char *out_path, const ConvertOptions *opt, char *err,
                   size_t errlen) {
    const Shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].name, shape) == 0) s = &shapes[i];
    if (!s) return errorf(err, errlen, "unknown shape '%s' (known: %s)", shape, convert_shape_names());
    PhiHParams hp = s->hp;
    hp.arch = PHI_ARCH_PHI3;
    hp.rope_theta = 10000.0f;
    hp.rms_eps = 1e-5f;
    hp.partial_rotary_factor = (float)hp.rope_dims / (float)hp.head_dim;
    hp.rope_attn_factor = 1.0f;
    if (hp.rope_scaling == PHI_ROPE_LONGROPE)
        hp.rope_attn_factor = sqrtf(1.0f + logf((float)hp.max_seq_len / hp.orig_max_seq_len) /
                                               logf((float)hp.orig_max_seq_len));
    hp.bos_id = 1;
    hp.eos_id = 2;
    hp.pad_id = 2;
    hp.n_stop_ids = 1;
    hp.stop_ids[0] = 2;
    hp.file_type = stored_form((uint32_t)opt->type);
    if (opt->n_layers > 0) hp.n_layers = (uint32_t)opt->n_layers;

    RandomCtx ctx = {opt->seed, {NULL, NULL}};
    PlanList l = {0};
    int rc = -1;
    Tokenizer *tok = tok_synthetic(hp.vocab_size < 32000 ? (int)hp.vocab_size : 32000, err, errlen);
    if (!tok) return -1;
    if (plan_model(&l, &hp, (uint32_t)opt->type, opt->mix)) {
        errorf(err, errlen, "out of memory");
        goto done;
    }
    if (hp.rope_scaling == PHI_ROPE_LONGROPE) {
        int nf = (int)hp.rope_dims / 2;
        for (int k = 0; k < 2; k++) {
            ctx.factors[k] = malloc((size_t)nf * sizeof(float));
            if (!ctx.factors[k]) goto done;
            /* short: close to 1; long: growing from 1 to ~40 over the dimensions, like Phi-3.5 */
            for (int i = 0; i < nf; i++)
                ctx.factors[k][i] = k == 0 ? 1.0f + 0.05f * i / nf : 1.0f + 39.0f * powf((float)i / nf, 2);
        }
        for (int i = 0; i < l.n; i++) {
            if (l.p[i].role == ROLE_ROPE_SHORT) l.p[i].values = ctx.factors[0];
            if (l.p[i].role == ROLE_ROPE_LONG) l.p[i].values = ctx.factors[1];
        }
    }
    rc = write_all_tensors(out_path, &hp, tok, &l, random_rows, &ctx, 0, opt, err, errlen);
done:
    free(ctx.factors[0]);
    free(ctx.factors[1]);
    free(l.p);
    tok_free(tok);
    return rc;
}
