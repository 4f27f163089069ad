/* GGUF (arch phi3) -> phi model image; see gguf_model.h and docs/GGUF.md. */
#include "base/errmsg.h"
#include "model/gguf_model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/pool.h"
#include "kernels/blocks.h"
#include "kernels/ggml_types.h"
#include "kernels/kquant.h"
#include "model/gguf_vocab.h"
#include "model/schema.h"
#include "tokenizer/tokenizer.h"

#define CHUNK_BYTES (16u << 20) /* tensors are converted in chunks of rows of about this size */

int gguf_is_gguf(const void *buf, uint64_t size) { return size >= 4 && memcmp(buf, "GGUF", 4) == 0; }

static void note(const GgufModelOptions *o, int verbose_only, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(const GgufModelOptions *o, int verbose_only, const char *fmt, ...) {
    if (!o || !o->note || (verbose_only && !o->verbose)) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->note(o->note_ctx, line);
}

/* ---- hyperparameters ---- */

/* An integer key in [lo, hi]; dflt when absent (required when dflt < 0, a default noted with
 * --verbose). */
static int key_u32(const Gguf *g, const GgufModelOptions *o, const char *key, long long dflt,
                   uint32_t lo, uint32_t hi, uint32_t *out, char *err, size_t errlen) {
    if (!gguf_find_key(g, key)) {
        if (dflt < 0) return errorf(err, errlen, "GGUF has no '%s'", key);
        note(o, 1, "GGUF has no '%s': using %lld", key, dflt);
        *out = (uint32_t)dflt;
        return 0;
    }
    uint32_t v;
    if (gguf_get_u32(g, key, &v, err, errlen)) return -1;
    if (v < lo || v > hi) return errorf(err, errlen, "GGUF %s = %u is out of range [%u, %u]", key, v, lo, hi);
    *out = v;
    return 0;
}

/* A float key, finite and > 0; dflt when absent (noted with --verbose). present: 1 if it was. */
static int key_f32(const Gguf *g, const GgufModelOptions *o, const char *key, float dflt, float *out,
                   int *present, char *err, size_t errlen) {
    *present = gguf_find_key(g, key) != NULL;
    if (!*present) {
        if (dflt > 0) note(o, 1, "GGUF has no '%s': using %g", key, dflt);
        *out = dflt;
        return 0;
    }
    float v;
    if (gguf_get_f32(g, key, &v, err, errlen)) return -1;
    if (!(v > 0) || !isfinite(v)) return errorf(err, errlen, "GGUF %s = %g must be a finite number > 0", key, v);
    *out = v;
    return 0;
}

int gguf_model_hparams(const Gguf *g, const GgufModelOptions *o, PhiHParams *hp, char *err,
                       size_t errlen) {
    memset(hp, 0, sizeof *hp);
    const char *arch;
    uint64_t alen;
    if (gguf_get_str(g, "general.architecture", &arch, &alen, err, errlen)) return -1;
    if (alen != 4 || memcmp(arch, "phi3", 4) != 0) {
        char pn[80];
        return errorf(err, errlen, "GGUF architecture '%s' is not supported (phi runs 'phi3')",
                      err_printable(arch, (size_t)alen, pn, sizeof pn));
    }
    hp->arch = PHI_ARCH_PHI3;
    if (key_u32(g, o, "phi3.context_length", -1, 1, PHI_MAX_POSITIONS, &hp->max_seq_len, err, errlen) ||
        key_u32(g, o, "phi3.embedding_length", -1, 1, PHI_MAX_DIM, &hp->dim, err, errlen) ||
        key_u32(g, o, "phi3.feed_forward_length", -1, 1, PHI_MAX_HIDDEN, &hp->hidden_dim, err, errlen) ||
        key_u32(g, o, "phi3.block_count", -1, 1, PHI_MAX_LAYERS, &hp->n_layers, err, errlen) ||
        key_u32(g, o, "phi3.attention.head_count", -1, 1, PHI_MAX_HEADS, &hp->n_heads, err, errlen) ||
        key_u32(g, o, "phi3.attention.head_count_kv", hp->n_heads, 1, hp->n_heads, &hp->n_kv_heads, err, errlen))
        return -1;
    if (hp->n_heads % hp->n_kv_heads)
        return errorf(err, errlen, "GGUF head_count_kv %u does not divide head_count %u", hp->n_kv_heads,
                      hp->n_heads);
    if (hp->dim % hp->n_heads)
        return errorf(err, errlen, "GGUF embedding_length %u is not a multiple of head_count %u", hp->dim,
                      hp->n_heads);
    hp->head_dim = hp->dim / hp->n_heads;
    uint32_t key_len;
    if (key_u32(g, NULL, "phi3.attention.key_length", hp->head_dim, 1, PHI_MAX_HEAD_DIM, &key_len, err, errlen))
        return -1;
    if (key_len != hp->head_dim)
        return errorf(err, errlen, "GGUF attention.key_length %u is not embedding_length / head_count = %u",
                      key_len, hp->head_dim);
    if (key_u32(g, o, "phi3.rope.dimension_count", hp->head_dim, 2, hp->head_dim, &hp->rope_dims, err, errlen) ||
        key_u32(g, o, "phi3.rope.scaling.original_context_length", hp->max_seq_len, 1, PHI_MAX_POSITIONS,
                &hp->orig_max_seq_len, err, errlen))
        return -1;
    if (hp->rope_dims % 2) return errorf(err, errlen, "GGUF rope.dimension_count %u must be even", hp->rope_dims);
    hp->partial_rotary_factor = (float)hp->rope_dims / (float)hp->head_dim;
    /* No key: no sliding window, as llama.cpp runs such files (Microsoft's Phi-3-mini-4k GGUF
     * lacks it; its config.json says 2047, which only matters past 2047 positions). */
    if (key_u32(g, o, "phi3.attention.sliding_window", 0, 0, PHI_MAX_WINDOW, &hp->sliding_window, err, errlen))
        return -1;
    int present;
    if (key_f32(g, o, "phi3.rope.freq_base", 10000.0f, &hp->rope_theta, &present, err, errlen) ||
        key_f32(g, o, "phi3.attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps, &present, err, errlen))
        return -1;
    if (!(hp->rms_eps < 1)) return errorf(err, errlen, "GGUF layer_norm_rms_epsilon %g must be < 1", hp->rms_eps);

    /* LongRoPE when the factor tensors are there (llama.cpp writes them for Phi-3 "longrope"). */
    int has_long = gguf_find_tensor(g, "rope_factors_long.weight") != NULL;
    int has_short = gguf_find_tensor(g, "rope_factors_short.weight") != NULL;
    if (has_long != has_short)
        return errorf(err, errlen, "GGUF has rope_factors_%s.weight without rope_factors_%s.weight",
                      has_long ? "long" : "short", has_long ? "short" : "long");
    hp->rope_scaling = has_long ? PHI_ROPE_LONGROPE : PHI_ROPE_NONE;
    float af;
    if (key_f32(g, NULL, "phi3.rope.scaling.attn_factor", 1.0f, &af, &present, err, errlen)) return -1;
    hp->rope_attn_factor = 1.0f;
    if (hp->rope_scaling == PHI_ROPE_LONGROPE) {
        if (present) {
            hp->rope_attn_factor = af;
        } else if (hp->max_seq_len > hp->orig_max_seq_len && hp->orig_max_seq_len > 1) {
            /* Hugging Face Phi-3: sqrt(1 + ln(scale) / ln(original max positions)) */
            double scale = (double)hp->max_seq_len / hp->orig_max_seq_len;
            hp->rope_attn_factor = (float)sqrt(1.0 + log(scale) / log((double)hp->orig_max_seq_len));
            note(o, 1, "GGUF has no 'phi3.rope.scaling.attn_factor': using %g (Hugging Face's formula)",
                 hp->rope_attn_factor);
        }
    }

    /* The vocabulary is the embedding's rows; tied embeddings when there is no output tensor. */
    const GgufTensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return errorf(err, errlen, "GGUF has no tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[0] != hp->dim || emb->ne[1] < 1 || emb->ne[1] > PHI_MAX_VOCAB)
        return errorf(err, errlen, "GGUF tensor 'token_embd.weight' has shape [%llu, %llu], expected [%u, vocab]",
                      (unsigned long long)emb->ne[0], (unsigned long long)emb->ne[1], hp->dim);
    hp->vocab_size = (uint32_t)emb->ne[1];
    hp->tie_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    if (hp->tie_embeddings) note(o, 1, "GGUF has no 'output.weight': the embedding is the LM head (tied)");
    hp->bos_id = hp->vocab_size > 1 ? 1 : 0; /* set from the tokenizer by the caller */
    hp->eos_id = hp->pad_id = 0;
    hp->file_type = TENSOR_F32;
    return phi_hparams_check(hp, err, errlen);
}

/* ---- tensors ---- */

/* Schema name (model/schema.c) -> GGUF name (llama.cpp's phi3 tensor names). */
static const struct { const char *schema, *gguf; } names[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.layers.%u.input_layernorm.weight", "blk.%u.attn_norm.weight"},
    {"model.layers.%u.self_attn.qkv_proj.weight", "blk.%u.attn_qkv.weight"},
    {"model.layers.%u.self_attn.o_proj.weight", "blk.%u.attn_output.weight"},
    {"model.layers.%u.post_attention_layernorm.weight", "blk.%u.ffn_norm.weight"},
    {"model.layers.%u.mlp.gate_up_proj.weight", "blk.%u.ffn_up.weight"},
    {"model.layers.%u.mlp.down_proj.weight", "blk.%u.ffn_down.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
    {"rope.short_factor", "rope_factors_short.weight"},
    {"rope.long_factor", "rope_factors_long.weight"},
};

/* How a GGUF tensor becomes a phi tensor. */
typedef enum {
    HOW_COPY,   /* the same bytes: F32, F16 (and row-by-row K types, for a build without panels) */
    HOW_Q8_0,   /* Q8_0 blocks -> q8 panels (same scale, same int8) */
    HOW_Q4_0,   /* Q4_0 blocks -> q4 panels (same scale, same nibbles) */
    HOW_Q5_0,   /* Q5_0 -> q8 (same scale; q in -16..15) */
    HOW_KPANEL, /* Q4_K, Q5_K, Q6_K, IQ4_XS -> q4_kp, q5_kp, q6_kp, iq4_xs: the same blocks, every byte, in panels */
    HOW_IQ4_NL, /* IQ4_NL -> q8 (same d, q = the int8 level: the same values) */
    HOW_Q3_K,   /* Q3_K -> q6_kp (same d, scales and quants re-coded: the same values) */
    HOW_DEQUANT /* -> f32 through the exact reference dequantizer */
} How;

typedef struct {
    char name[PHI_NAME_MAX];
    uint32_t type, ndim;
    uint64_t rows, cols; /* a vector: rows = length, cols = 1 */
    const GgufTensor *src;
    How how;
    int index;
} Plan;

/* phi's K types (kernels/blocks.h) by the GGML type they store verbatim; -1 when this build
 * has none. Looked up by name so the plan needs no change when a type is added. */
static int native_k_type(uint32_t ggml) {
    const char *name = ggml == GGML_TYPE_Q4_K ? "q4_k" : ggml == GGML_TYPE_Q5_K ? "q5_k"
                     : ggml == GGML_TYPE_Q6_K ? "q6_k" : ggml == GGML_TYPE_Q2_K ? "q2_k"
                     : ggml == GGML_TYPE_Q3_K ? "q3_k" : ggml == GGML_TYPE_IQ4_NL ? "iq4_nl"
                     : ggml == GGML_TYPE_IQ4_XS ? "iq4_xs" : NULL;
    return name ? type_from_name(name) : -1;
}

static int choose(Plan *p, char *err, size_t errlen) {
    const GgufTensor *s = p->src;
    const GgmlTypeInfo *gi = ggml_type_info(s->type);
    if (p->ndim == 1) { /* norms and rope factors: f32 vectors */
        p->type = TENSOR_F32;
        if (s->type == GGML_TYPE_F32) p->how = HOW_COPY;
        else if (s->type == GGML_TYPE_F16 || s->type == GGML_TYPE_BF16) p->how = HOW_DEQUANT;
        else return errorf(err, errlen, "GGUF tensor '%s' is %s; a vector must be F32, F16 or BF16", s->name,
                           ggml_type_name(s->type));
        return 0;
    }
    if (!gi || !gi->dequant)
        return errorf(err, errlen, "GGUF tensor '%s' has type %s, which phi cannot use for a matrix", s->name,
                      ggml_type_name(s->type));
    int k;
    switch (s->type) {
    case GGML_TYPE_F32: p->type = TENSOR_F32, p->how = HOW_COPY; break;
    case GGML_TYPE_F16: p->type = TENSOR_F16, p->how = HOW_COPY; break;
    case GGML_TYPE_Q8_0: p->type = TENSOR_Q8, p->how = HOW_Q8_0; break;
    case GGML_TYPE_Q4_0: p->type = TENSOR_Q4, p->how = HOW_Q4_0; break;
    case GGML_TYPE_Q5_0: p->type = TENSOR_Q8, p->how = HOW_Q5_0; break;
    case GGML_TYPE_IQ4_NL: p->type = TENSOR_Q8, p->how = HOW_IQ4_NL; break;
    case GGML_TYPE_Q3_K: /* whole super-blocks per row (the row size says so) */
        if (p->cols % 256 == 0 && s->row_bytes == p->cols / 256 * 110) {
            p->type = TENSOR_Q6_KP, p->how = HOW_Q3_K;
            break;
        }
        p->type = TENSOR_F32, p->how = HOW_DEQUANT;
        break;
    default:
        k = native_k_type(s->type);
        if (k == TENSOR_IQ4_XS && type_row_bytes((uint32_t)k, p->cols) == s->row_bytes) {
            p->type = TENSOR_IQ4_XS, p->how = HOW_KPANEL; /* stored in panels only */
            break;
        }
        /* the row's super-blocks as ggml stores them, every row of the same size */
        if (k >= 0 && type_traits((uint32_t)k) && !type_traits((uint32_t)k)->has_scales &&
            type_row_bytes((uint32_t)k, p->cols) == s->row_bytes &&
            type_tensor_bytes((uint32_t)k, p->rows, p->cols) == s->n_bytes) {
            p->type = (uint32_t)k, p->how = HOW_COPY;
            /* Q4_K, Q5_K and Q6_K run in their panel forms (kernels/blocks.h), which the kernels
             * stream faster (FORMAT.md says by how much) */
            if (k == TENSOR_Q4_K) p->type = TENSOR_Q4_KP, p->how = HOW_KPANEL;
            if (k == TENSOR_Q5_K) p->type = TENSOR_Q5_KP, p->how = HOW_KPANEL;
            if (k == TENSOR_Q6_K) p->type = TENSOR_Q6_KP, p->how = HOW_KPANEL;
        } else {
            p->type = TENSOR_F32, p->how = HOW_DEQUANT;
        }
    }
    return 0;
}

/* Row r of a Q8_0 / Q4_0 / Q5_0 tensor as phi block quants (natural order) and scales; of a
 * K-quant tensor as its panel type's natural row (Q6_K: each block padded to 212 bytes). */
static void gguf_row_blocks(const Plan *p, uint64_t r, uint8_t *q, uint16_t *d) {
    uint64_t nb = p->cols / QK;
    const uint8_t *b = p->src->data + r * p->src->row_bytes;
    if (p->how == HOW_Q3_K) { /* each super-block re-coded as Q6_K, in Q6_KP's 212-byte unit */
        for (uint64_t k = 0; k < p->cols / 256; k++) {
            kq_q6_k_from_q3_k(b + k * 110, q + k * 212);
            q[k * 212 + 210] = q[k * 212 + 211] = 0;
        }
        return;
    }
    if (p->how == HOW_KPANEL) { /* super-blocks as they are (the panel keeps every byte) */
        if (p->type != TENSOR_Q6_KP) {
            memcpy(q, b, p->src->row_bytes);
            return;
        }
        for (uint64_t k = 0; k < p->cols / 256; k++) { /* Q6_KP: 210 bytes and 2 zero bytes */
            memcpy(q + k * 212, b + k * 210, 210);
            q[k * 212 + 210] = q[k * 212 + 211] = 0;
        }
        return;
    }
    for (uint64_t k = 0; k < nb; k++) {
        switch (p->how) {
        case HOW_Q8_0: /* f16 d, int8 qs[32] */
            d[k] = (uint16_t)(b[0] | b[1] << 8);
            memcpy(q + k * 32, b + 2, 32);
            b += 34;
            break;
        case HOW_IQ4_NL:
            kq_q8_from_iq4_nl(b, (int8_t *)(q + k * 32), &d[k]);
            b += 18;
            break;
        case HOW_Q4_0: /* f16 d, qs[16]: element j low nibble, j + 16 high, each q + 8 (as phi's q4) */
            d[k] = (uint16_t)(b[0] | b[1] << 8);
            memcpy(q + k * 16, b + 2, 16);
            b += 18;
            break;
        default: { /* Q5_0: f16 d, qh (32 high bits, little-endian), qs[16] low nibbles; q - 16 */
            d[k] = (uint16_t)(b[0] | b[1] << 8);
            uint32_t qh = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 24;
            int8_t *o = (int8_t *)(q + k * 32);
            for (int j = 0; j < 16; j++) {
                int lo = (b[6 + j] & 0x0F) | (int)((qh >> j) & 1) << 4;
                int hi = (b[6 + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
                o[j] = (int8_t)(lo - 16);
                o[j + 16] = (int8_t)(hi - 16);
            }
            b += 22;
        }
        }
    }
}

static int write_tensor(PhiWriter *w, const Plan *p, char *err, size_t errlen) {
    const GgufTensor *s = p->src;
    uint64_t rows = p->ndim == 1 ? 1 : p->rows, cols = p->ndim == 1 ? p->rows : p->cols;
    if (p->how == HOW_COPY) /* the tensor's bytes as they are (same size: checked in choose) */
        return phi_writer_write_at(w, p->index, 0, s->data, s->n_bytes, err, errlen);
    if (p->how == HOW_DEQUANT) {
        uint64_t chunk = CHUNK_BYTES / 4 / cols ? CHUNK_BYTES / 4 / cols : 1;
        if (chunk > rows) chunk = rows;
        float *buf = malloc(chunk * cols * sizeof(float));
        if (!buf) return errorf(err, errlen, "out of memory");
        int rc = 0;
        for (uint64_t r0 = 0; r0 < rows && !rc; r0 += chunk) {
            uint64_t n = rows - r0 < chunk ? rows - r0 : chunk;
            for (uint64_t i = 0; i < n && !rc; i++)
                rc = ggml_dequantize_row(s->type, s->data + (r0 + i) * s->row_bytes, buf + i * cols,
                                         (int64_t)cols, err, errlen);
            if (!rc) rc = phi_writer_write_at(w, p->index, r0 * cols * 4, buf, n * cols * 4, err, errlen);
        }
        free(buf);
        return rc;
    }
    /* Q8/Q4/Q4_KP panels, a whole number of panels per chunk (as convert/convert.c writes them). */
    uint64_t row_bytes = type_row_bytes(p->type, cols), nb = cols / QK;
    uint64_t scales_off = type_scales_offset(p->type, rows, cols);
    uint64_t chunk = (CHUNK_BYTES / row_bytes + QR - 1) / QR * QR;
    if (chunk < QR) chunk = QR;
    if (chunk > rows) chunk = (rows + QR - 1) / QR * QR;
    uint8_t *q = malloc(row_bytes), *pan = malloc(type_tensor_bytes(p->type, chunk, cols));
    uint16_t *d = malloc(nb * sizeof *d);
    int rc = 0;
    if (!q || !pan || !d) rc = errorf(err, errlen, "out of memory");
    for (uint64_t r0 = 0; r0 < rows && !rc; r0 += chunk) {
        uint64_t n = rows - r0 < chunk ? rows - r0 : chunk, sr = type_stored_rows(p->type, n);
        MatView pm = matview(p->type, pan, (int)sr, (int)cols);
        memset(pan, 0, type_tensor_bytes(p->type, sr, cols));
        for (uint64_t i = 0; i < n; i++) {
            gguf_row_blocks(p, r0 + i, q, d);
            matview_put_row(&pm, (int)i, q, d);
        }
        rc = phi_writer_write_at(w, p->index, r0 * row_bytes, pm.q, sr * row_bytes, err, errlen);
        if (!rc && type_traits(p->type)->has_scales)
            rc = phi_writer_write_at(w, p->index, scales_off + r0 * nb * 2, pm.d, sr * nb * 2, err, errlen);
    }
    free(q);
    free(pan);
    free(d);
    return rc;
}

/* The plan: every schema tensor from its GGUF tensor, shapes and types checked. */
static int plan_model(const Gguf *g, const PhiHParams *hp, Plan **out, int *n_out, char *err,
                      size_t errlen) {
    int cap = 16 + 8 * (int)hp->n_layers, n = 0;
    Plan *pl = calloc((size_t)cap, sizeof *pl);
    if (!pl) return errorf(err, errlen, "out of memory");
    SchemaIter it = schema_iter(hp);
    while (schema_next(&it)) {
        const SchemaItem *e = &it.item;
        const char *pat = NULL;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(names[i].schema, e->t->name)) pat = names[i].gguf;
        if (!pat || n == cap) {
            free(pl);
            return errorf(err, errlen, "no GGUF name for tensor '%s'", e->name);
        }
        Plan *p = &pl[n++];
        char gname[PHI_NAME_MAX];
        if (e->t->per_layer) snprintf(gname, sizeof gname, pat, (unsigned)e->layer);
        else snprintf(gname, sizeof gname, "%s", pat);
        snprintf(p->name, sizeof p->name, "%s", e->name);
        p->ndim = (uint32_t)e->t->ndim;
        p->rows = e->rows;
        p->cols = p->ndim == 2 ? e->cols : 1;
        p->src = gguf_find_tensor(g, gname);
        if (!p->src) {
            free(pl);
            return errorf(err, errlen, "GGUF has no tensor '%s'", gname);
        }
        const GgufTensor *s = p->src;
        /* ggml's ne[0] is the row length: a [rows][cols] matrix is ne = {cols, rows} */
        int ok = p->ndim == 1 ? s->ne[0] == p->rows && s->n_elems == p->rows
                              : s->ne[0] == p->cols && s->ne[1] == p->rows && s->n_elems == p->rows * p->cols;
        if (!ok) {
            errorf(err, errlen, "GGUF tensor '%s' has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]",
                   gname, (unsigned long long)s->ne[0], (unsigned long long)s->ne[1],
                   (unsigned long long)s->ne[2], (unsigned long long)s->ne[3],
                   (unsigned long long)(p->ndim == 1 ? p->rows : p->cols),
                   (unsigned long long)(p->ndim == 1 ? 1 : p->rows));
            free(pl);
            return -1;
        }
        if (choose(p, err, errlen)) {
            free(pl);
            return -1;
        }
    }
    *out = pl;
    *n_out = n;
    return 0;
}

/* One line per source type that is not stored as it is. */
static void note_types(const GgufModelOptions *o, const Plan *pl, int n) {
    for (uint32_t t = 0; t < GGML_TYPE_COUNT; t++) {
        int count = 0;
        const Plan *first = NULL;
        for (int i = 0; i < n; i++)
            if (pl[i].src->type == t && pl[i].ndim == 2) count += !first ? (first = &pl[i], 1) : 1;
        if (!first) continue;
        const char *dst = type_traits(first->type) ? type_traits(first->type)->name : "?";
        if (first->how == HOW_DEQUANT)
            note(o, 0, "%d %s matri%s converted to f32 (exact; phi has no %s type%s)", count,
                 ggml_type_name(t), count == 1 ? "x" : "ces", ggml_type_name(t),
                 native_k_type(t) >= 0 ? " with this layout" : " in this build");
        else if (first->how == HOW_IQ4_NL || first->how == HOW_Q3_K) /* said always: the memory grows */
            note(o, 0, "%d %s matri%s stored as phi %s (same values, in more bytes: phi has no %s layout)", count,
                 ggml_type_name(t), count == 1 ? "x" : "ces", dst, ggml_type_name(t));
        else
            note(o, 1, "%d %s matri%s stored as phi %s (same values)", count, ggml_type_name(t),
                 count == 1 ? "x" : "ces", dst);
    }
}

/* Stop ids as a Hugging Face Phi-3 folder's generation_config.json lists them: eos (and eot),
 * then <|endoftext|>, <|assistant|> and <|end|> where the vocabulary has them. */
static void stop_ids(const Gguf *g, const Tokenizer *tok, PhiHParams *hp) {
    int ids[8], n = 0;
    ids[n++] = (int)hp->eos_id;
    uint32_t eot;
    char e[8];
    if (gguf_find_key(g, "tokenizer.ggml.eot_token_id") &&
        !gguf_get_u32(g, "tokenizer.ggml.eot_token_id", &eot, e, sizeof e) && eot < hp->vocab_size)
        ids[n++] = (int)eot;
    static const char *const pieces[] = {"<|endoftext|>", "<|assistant|>", "<|end|>"};
    for (int i = 0; i < 3; i++) ids[n++] = tok_piece_id(tok, pieces[i], strlen(pieces[i]));
    hp->n_stop_ids = 0;
    for (int i = 0; i < n; i++) {
        int dup = ids[i] < 0 || (uint32_t)ids[i] >= hp->vocab_size;
        for (uint32_t k = 0; k < hp->n_stop_ids; k++) dup |= hp->stop_ids[k] == (uint32_t)ids[i];
        if (!dup && hp->n_stop_ids < PHI_MAX_STOP_IDS) hp->stop_ids[hp->n_stop_ids++] = (uint32_t)ids[i];
    }
}

/* Everything before the bytes: hyperparameters, tokenizer, plan. */
static int prepare(const Gguf *g, const GgufModelOptions *o, PhiHParams *hp, uint8_t **blob,
                   uint64_t *blob_size, Plan **pl, int *n, char *err, size_t errlen) {
    if (gguf_model_hparams(g, o, hp, err, errlen)) return -1;
    char terr[400];
    Tokenizer *tok = gguf_tokenizer(g, terr, sizeof terr);
    if (!tok) return errorf(err, errlen, "GGUF tokenizer: %s", terr);
    int rc = -1;
    if (tok_vocab_size(tok) > (int)hp->vocab_size) {
        errorf(err, errlen, "GGUF tokenizer has %d pieces but token_embd.weight only %u rows",
               tok_vocab_size(tok), hp->vocab_size);
        goto done;
    }
    int bos = tok_bos_id(tok), eos = tok_eos_id(tok);
    hp->bos_id = bos >= 0 && (uint32_t)bos < hp->vocab_size ? (uint32_t)bos : 0;
    hp->eos_id = eos >= 0 && (uint32_t)eos < hp->vocab_size ? (uint32_t)eos : 0;
    uint32_t pad;
    hp->pad_id = hp->eos_id;
    if (gguf_find_key(g, "tokenizer.ggml.padding_token_id") &&
        !gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &pad, terr, sizeof terr) && pad < hp->vocab_size)
        hp->pad_id = pad;
    stop_ids(g, tok, hp);
    if (plan_model(g, hp, pl, n, err, errlen)) goto done;
    /* informational: the type of the biggest per-layer matrix */
    for (int i = 0; i < *n; i++)
        if ((*pl)[i].src && strstr((*pl)[i].name, "gate_up_proj")) {
            hp->file_type = (*pl)[i].type;
            break;
        }
    if (phi_hparams_check(hp, err, errlen) || tok_serialize(tok, blob, blob_size, err, errlen)) {
        free(*pl);
        *pl = NULL;
        goto done;
    }
    note_types(o, *pl, *n);
    rc = 0;
done:
    tok_free(tok);
    return rc;
}

/* The tensors are written by every CPU at once, each thread claiming the next unwritten one: each
 * has its own region of the image (or file), and the bytes do not depend on who writes them. One
 * thread took 10.9 s to load the Phi-3-mini Q4_0 GGUF on a 2-core Zen 3 (its pages zeroed by the
 * kernel as they were first touched, the panels interleaved row by row). */
typedef struct {
    PhiWriter *w;
    const Plan *pl;
    int n;
    atomic_int next, failed;
    char err[512]; /* the message of the first failure in time */
} FillJob;

static void fill_job(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    FillJob *j = arg;
    char e[512];
    for (;;) {
        if (atomic_load(&j->failed)) return;
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) return;
        e[0] = 0;
        if (write_tensor(j->w, &j->pl[i], e, sizeof e)) {
            if (!atomic_exchange(&j->failed, 1)) snprintf(j->err, sizeof j->err, "%s", e);
            return;
        }
    }
}

static int fill(PhiWriter *w, Plan *pl, int n, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        pl[i].index = phi_writer_add_tensor(w, pl[i].name, pl[i].type, pl[i].ndim, pl[i].rows,
                                            pl[i].cols, err, errlen);
        if (pl[i].index < 0) return -1;
    }
    if (phi_writer_begin_data(w, err, errlen)) return -1;
    FillJob j = {.w = w, .pl = pl, .n = n};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    /* every CPU up to 8 (each holds a chunk buffer of CHUNK_BYTES) for a model of 64 MB or more;
     * small ones (tests, fuzz inputs) on the caller alone, as a failed pool_create leaves it */
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += pl[i].src->n_bytes;
    Pool *pool = bytes >= (64u << 20) ? pool_create_upto(8) : NULL;
    pool_run(pool, fill_job, &j);
    pool_destroy(pool);
    if (atomic_load(&j.failed)) return errorf(err, errlen, "%s", j.err);
    return 0;
}

static int build(const Gguf *g, const char *out_path, const GgufModelOptions *o, uint8_t **image,
                 uint64_t *size, char *err, size_t errlen) {
    PhiHParams hp;
    uint8_t *blob = NULL;
    uint64_t blob_size = 0;
    Plan *pl = NULL;
    int n = 0;
    if (prepare(g, o, &hp, &blob, &blob_size, &pl, &n, err, errlen)) return -1;
    PhiWriter *w = out_path ? phi_writer_open(out_path, &hp, blob, blob_size, err, errlen)
                            : phi_writer_open_mem(&hp, blob, blob_size, err, errlen);
    free(blob);
    int rc = -1;
    if (w) {
        if (fill(w, pl, n, err, errlen)) phi_writer_abort(w);
        else rc = out_path ? phi_writer_finish(w, err, errlen) : phi_writer_finish_mem(w, image, size, err, errlen);
    }
    free(pl);
    return rc;
}

int gguf_model_write(const Gguf *g, const char *out_path, const GgufModelOptions *o, char *err,
                     size_t errlen) {
    return build(g, out_path, o, NULL, NULL, err, errlen);
}

int gguf_model_image(const Gguf *g, const GgufModelOptions *o, uint8_t **image, uint64_t *size,
                     char *err, size_t errlen) {
    return build(g, NULL, o, image, size, err, errlen);
}

int gguf_path_is_gguf(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    struct stat st;
    char magic[4];
    int yes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pread(fd, magic, 4, 0) == 4 &&
              gguf_is_gguf(magic, 4);
    close(fd);
    return yes;
}

int gguf_model_convert(const char *gguf_path, const char *out_path, const GgufModelOptions *o,
                       char *err, size_t errlen) {
    int fd = open(gguf_path, O_RDONLY);
    if (fd < 0) return errorf(err, errlen, "cannot open %s: %s", gguf_path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > (uint64_t)SIZE_MAX / 2) {
        close(fd);
        return errorf(err, errlen, "%s is not a regular file this build can map", gguf_path);
    }
    void *src = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    int map_errno = errno;
    close(fd);
    if (src == MAP_FAILED) return errorf(err, errlen, "cannot mmap %s: %s", gguf_path, strerror(map_errno));
    Gguf g;
    char e[512];
    int rc = gguf_parse(src, (uint64_t)st.st_size, &g, e, sizeof e);
    if (!rc) {
        rc = gguf_model_write(&g, out_path, o, e, sizeof e);
        gguf_free(&g);
    }
    munmap(src, (size_t)st.st_size);
    if (rc) return errorf(err, errlen, "%s: %s", gguf_path, e);
    return 0;
}
