/* The Phi-3 forward pass, top to bottom, one token at a time. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "kernels/kernels.h"

int state_init(State *s, const Model *m, int n_ctx, char *err, size_t errlen) {
    const PhiHParams *hp = &m->hp;
    memset(s, 0, sizeof *s);
    if (n_ctx < 1) {
        snprintf(err, errlen, "context size must be at least 1");
        return -1;
    }
    size_t q_dim = (size_t)hp->n_heads * hp->head_dim, kv_dim = (size_t)hp->n_kv_heads * hp->head_dim;
    size_t cache = (size_t)hp->n_layers * (size_t)n_ctx * kv_dim;
    s->n_ctx = n_ctx;
    s->x = calloc(hp->dim, sizeof(float));
    s->xb = calloc(q_dim > hp->dim ? q_dim : hp->dim, sizeof(float));
    s->xb2 = calloc(hp->dim, sizeof(float));
    s->qkv = calloc(q_dim + 2 * kv_dim, sizeof(float));
    s->att = calloc((size_t)n_ctx, sizeof(float));
    s->hb = calloc(2 * (size_t)hp->hidden_dim, sizeof(float));
    s->logits = calloc(hp->vocab_size, sizeof(float));
    s->key_cache = calloc(cache, sizeof(float));
    s->value_cache = calloc(cache, sizeof(float));
    if (!s->x || !s->xb || !s->xb2 || !s->qkv || !s->att || !s->hb || !s->logits || !s->key_cache ||
        !s->value_cache) {
        state_free(s);
        snprintf(err, errlen, "out of memory for a context of %d tokens (KV cache %.1f MiB)", n_ctx,
                 2.0 * cache * sizeof(float) / (1 << 20));
        return -1;
    }
    return 0;
}

void state_free(State *s) {
    free(s->x);
    free(s->xb);
    free(s->xb2);
    free(s->qkv);
    free(s->att);
    free(s->hb);
    free(s->logits);
    free(s->key_cache);
    free(s->value_cache);
    memset(s, 0, sizeof *s);
}

static void matvec_any(const State *s, const MatView *w, const float *x, float *y) {
    matvec_ref(w, x, y);
}

/* Rotate pairs (i, i + rope_dims/2) of one head (NeoX style); dimensions past rope_dims stay. */
static void rope_apply(float *v, int pos, int rope_dims, float theta, const float *factors,
                       float attn_factor) {
    int half = rope_dims / 2;
    for (int i = 0; i < half; i++) {
        double inv_freq = 1.0 / pow((double)theta, 2.0 * i / rope_dims);
        if (factors) inv_freq /= factors[i];
        double angle = pos * inv_freq;
        float c = (float)cos(angle) * attn_factor, sn = (float)sin(angle) * attn_factor;
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * sn;
        v[i + half] = b * c + a * sn;
    }
}

/* One token at position pos; leaves logits in s->logits. */
static void forward_token(const Model *m, State *s, int token, int pos, const float *rope_factors) {
    const PhiHParams *hp = &m->hp;
    int dim = (int)hp->dim, hd = (int)hp->head_dim, n_heads = (int)hp->n_heads;
    int n_kv = (int)hp->n_kv_heads, kv_dim = n_kv * hd, q_dim = n_heads * hd;
    int hidden = (int)hp->hidden_dim, group = n_heads / n_kv;
    float attn_factor = hp->rope_scaling == PHI_ROPE_LONGROPE ? hp->rope_attn_factor : 1.0f;
    float scale = 1.0f / sqrtf((float)hd);
    /* Keys a query may see: all earlier positions, or the last sliding_window of them. */
    int start = hp->sliding_window && pos >= (int)hp->sliding_window ? pos - (int)hp->sliding_window + 1 : 0;

    dequantize_row(m->tok_embd.type, matview_row(&m->tok_embd, token),
                   matview_row_scales(&m->tok_embd, token), s->x, dim);

    for (int l = 0; l < (int)hp->n_layers; l++) {
        const Layer *L = &m->layers[l];
        float *kc = s->key_cache + (size_t)l * s->n_ctx * kv_dim;
        float *vc = s->value_cache + (size_t)l * s->n_ctx * kv_dim;

        /* attention */
        rmsnorm_ref(s->xb, s->x, L->attn_norm, dim, hp->rms_eps);
        matvec_any(s, &L->wqkv, s->xb, s->qkv);
        float *q = s->qkv, *k = s->qkv + q_dim, *v = s->qkv + q_dim + kv_dim;
        for (int h = 0; h < n_heads; h++)
            rope_apply(q + h * hd, pos, (int)hp->rope_dims, hp->rope_theta, rope_factors, attn_factor);
        for (int h = 0; h < n_kv; h++)
            rope_apply(k + h * hd, pos, (int)hp->rope_dims, hp->rope_theta, rope_factors, attn_factor);
        memcpy(kc + (size_t)pos * kv_dim, k, kv_dim * sizeof(float));
        memcpy(vc + (size_t)pos * kv_dim, v, kv_dim * sizeof(float));

        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + h * hd;
            int kvh = h / group;
            float *att = s->att;
            for (int t = start; t <= pos; t++) {
                const float *kt = kc + (size_t)t * kv_dim + kvh * hd;
                float dot = 0;
                for (int i = 0; i < hd; i++) dot += qh[i] * kt[i];
                att[t - start] = dot * scale;
            }
            softmax_ref(att, pos - start + 1);
            float *out = s->xb + h * hd;
            memset(out, 0, hd * sizeof(float));
            for (int t = start; t <= pos; t++) {
                const float *vt = vc + (size_t)t * kv_dim + kvh * hd;
                float a = att[t - start];
                for (int i = 0; i < hd; i++) out[i] += a * vt[i];
            }
        }
        matvec_any(s, &L->wo, s->xb, s->xb2);
        for (int i = 0; i < dim; i++) s->x[i] += s->xb2[i];

        /* MLP: down(silu(gate) * up) */
        rmsnorm_ref(s->xb, s->x, L->ffn_norm, dim, hp->rms_eps);
        matvec_any(s, &L->w_gate_up, s->xb, s->hb);
        silu_mul_ref(s->hb, s->hb + hidden, hidden);
        matvec_any(s, &L->w_down, s->hb, s->xb2);
        for (int i = 0; i < dim; i++) s->x[i] += s->xb2[i];
    }

    rmsnorm_ref(s->xb, s->x, m->output_norm, dim, hp->rms_eps);
    matvec_any(s, &m->output, s->xb, s->logits);
}

int model_forward(const Model *m, State *s, const int *tokens, int n, int pos0, float *logits) {
    const PhiHParams *hp = &m->hp;
    if (n < 1 || pos0 < 0 || pos0 + n > s->n_ctx) return -1;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->vocab_size) return -1;
    const float *factors = NULL;
    if (hp->rope_scaling == PHI_ROPE_LONGROPE)
        factors = (uint32_t)(pos0 + n) > hp->orig_max_seq_len ? m->rope_long : m->rope_short;
    for (int i = 0; i < n; i++) {
        forward_token(m, s, tokens[i], pos0 + i, factors);
        if (logits) memcpy(logits + (size_t)i * hp->vocab_size, s->logits, hp->vocab_size * sizeof(float));
    }
    return 0;
}
