/* GGUF LoRA adapters (llama.cpp's convert_lora_to_gguf.py output) -> LoraAdapter.
 *
 * Metadata: general.type = "adapter", adapter.type = "lora", general.architecture = "phi3" (when
 * present), adapter.lora.alpha (absent or 0: c = 1, as llama.cpp does; else c = alpha / r).
 * Tensors blk.N.<name>.weight.lora_a (ggml ne [in, r]: rows r of in values, as PEFT's A) and
 * .lora_b (ne [r, out]: out rows of r, as PEFT's B), any GGML type the dequantizers know. Names:
 * attn_qkv, attn_output, ffn_up (Phi-3's fused gate and up rows when B has 2 hidden_dim rows, the
 * up rows when it has hidden_dim), ffn_down, and the unfused attn_q, attn_k, attn_v, ffn_gate. */
#include "convert/lora_load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errmsg.h"
#include "base/fileio.h"
#include "kernels/ggml_types.h"
#include "model/gguf.h"

static const struct {
    const char *name;
    SchemaRole role;
    int block; /* 0 all rows, 1 q, 2 k, 3 v, 4 gate, 5 up (by shape: ffn_up) */
} gnames[] = {
    {"attn_qkv", ROLE_QKV, 0}, {"attn_output", ROLE_O, 0}, {"ffn_up", ROLE_GATE_UP, 5},
    {"ffn_down", ROLE_DOWN, 0}, {"attn_q", ROLE_QKV, 1},   {"attn_k", ROLE_QKV, 2},
    {"attn_v", ROLE_QKV, 3},   {"ffn_gate", ROLE_GATE_UP, 4},
};
#define N_GNAMES ((int)(sizeof gnames / sizeof gnames[0]))

static int str_is(const char *s, uint64_t len, const char *want) {
    return s && len == strlen(want) && !memcmp(s, want, len);
}

/* Rows of a GGUF tensor as F32 ([n_rows][ne[0]]), or NULL with one line. */
static float *gguf_rows(const GgufTensor *t, char *err, size_t errlen) {
    float *x = malloc((size_t)(t->n_elems ? t->n_elems : 1) * sizeof *x);
    if (!x) {
        errorf(err, errlen, "out of memory");
        return NULL;
    }
    char e[200];
    for (uint64_t r = 0; r < t->n_rows; r++)
        if (ggml_dequantize_row(t->type, t->data + r * t->row_bytes, x + r * t->ne[0], (int64_t)t->ne[0], e, sizeof e)) {
            errorf(err, errlen, "tensor %s: %s", t->name, e);
            free(x);
            return NULL;
        }
    for (uint64_t i = 0; i < t->n_elems; i++)
        if (!isfinite(x[i])) {
            errorf(err, errlen, "tensor %s has a non-finite value", t->name);
            free(x);
            return NULL;
        }
    return x;
}

LoraAdapter *lora_from_gguf(const char *name, const uint8_t *buf, uint64_t size, const PhiHParams *hp,
                            char *err, size_t errlen) {
    Gguf g;
    char e[400];
    if (gguf_parse(buf, size, &g, e, sizeof e)) {
        errorf(err, errlen, "%s: %s", name, e);
        return NULL;
    }
    LoraAdapter *ad = NULL;
    const GgufKV *kv;
    const char *s;
    uint64_t len;
    int nl = (int)hp->n_layers;
    const GgufTensor **found = calloc((size_t)(nl ? nl : 1) * N_GNAMES * 2, sizeof *found);
    if (!found) {
        errorf(err, errlen, "out of memory");
        goto fail;
    }
    if (gguf_get_str(&g, "general.type", &s, &len, e, sizeof e) || !str_is(s, len, "adapter")) {
        errorf(err, errlen, "%s: not a GGUF adapter (general.type is not \"adapter\")", name);
        goto fail;
    }
    if ((kv = gguf_find_key(&g, "adapter.type")) &&
        (gguf_get_str(&g, "adapter.type", &s, &len, e, sizeof e) || !str_is(s, len, "lora"))) {
        errorf(err, errlen, "%s: adapter.type is not \"lora\" (only LoRA adapters are supported)", name);
        goto fail;
    }
    if ((kv = gguf_find_key(&g, "general.architecture")) &&
        (gguf_get_str(&g, "general.architecture", &s, &len, e, sizeof e) || !str_is(s, len, "phi3"))) {
        char b[64];
        errorf(err, errlen, "%s: an adapter for architecture %s, not phi3", name,
               s ? err_printable(s, len, b, sizeof b) : "?");
        goto fail;
    }
    float alpha = 0;
    if (gguf_find_key(&g, "adapter.lora.alpha") && gguf_get_f32(&g, "adapter.lora.alpha", &alpha, e, sizeof e)) {
        errorf(err, errlen, "%s: %s", name, e);
        goto fail;
    }
    if (!isfinite(alpha)) {
        errorf(err, errlen, "%s: adapter.lora.alpha is not finite", name);
        goto fail;
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GgufTensor *t = &g.tensors[i];
        char shown[96];
        err_printable(t->name, strlen(t->name), shown, sizeof shown);
        int layer = -1, consumed = 0, half;
        char mod[64];
        size_t n = strlen(t->name);
        if (n > 7 && !strcmp(t->name + n - 7, ".lora_a")) half = 0;
        else if (n > 7 && !strcmp(t->name + n - 7, ".lora_b")) half = 1;
        else {
            errorf(err, errlen, "%s: tensor %s is not a .lora_a / .lora_b weight", name, shown);
            goto fail;
        }
        if (sscanf(t->name, "blk.%d.%63[a-z_].weight.lora_%*c%n", &layer, mod, &consumed) != 2 || (size_t)consumed != n) {
            errorf(err, errlen, "%s: tensor %s: expected blk.N.<name>.weight.lora_a/b", name, shown);
            goto fail;
        }
        int m = -1;
        for (int k = 0; k < N_GNAMES; k++)
            if (!strcmp(mod, gnames[k].name)) m = k;
        if (m < 0) {
            errorf(err, errlen, "%s: tensor %s: unknown module (attn_qkv, attn_output, ffn_up, ffn_down, attn_q/k/v, ffn_gate)",
                   name, shown);
            goto fail;
        }
        if (layer < 0 || layer >= nl) {
            errorf(err, errlen, "%s: tensor %s: layer %d, but the model has %d layers", name, shown, layer, nl);
            goto fail;
        }
        if (t->n_dims != 2) {
            errorf(err, errlen, "%s: tensor %s is not a matrix", name, shown);
            goto fail;
        }
        if (found[((size_t)layer * N_GNAMES + m) * 2 + half]) {
            errorf(err, errlen, "%s: tensor %s appears twice", name, shown);
            goto fail;
        }
        found[((size_t)layer * N_GNAMES + m) * 2 + half] = t;
    }
    if (!(ad = lora_adapter_new(name))) {
        errorf(err, errlen, "out of memory");
        goto fail;
    }
    int q = (int)(hp->n_heads * hp->head_dim), kvd = (int)(hp->n_kv_heads * hp->head_dim), h = (int)hp->hidden_dim;
    for (int l = 0; l < nl; l++)
        for (int m = 0; m < N_GNAMES; m++) {
            const GgufTensor *ta = found[((size_t)l * N_GNAMES + m) * 2], *tb = found[((size_t)l * N_GNAMES + m) * 2 + 1];
            if (!ta && !tb) continue;
            if (!ta || !tb) {
                errorf(err, errlen, "%s: blk.%d.%s has lora_%s but no lora_%s", name, l, gnames[m].name, ta ? "a" : "b",
                       ta ? "b" : "a");
                goto fail;
            }
            SchemaRole role = gnames[m].role;
            int cols = lora_role_cols(hp, role), row0 = 0, rows = lora_role_rows(hp, role);
            switch (gnames[m].block) {
            case 1: rows = q; break;
            case 2: row0 = q, rows = kvd; break;
            case 3: row0 = q + kvd, rows = kvd; break;
            case 4: rows = h; break;
            case 5: if (tb->ne[1] == (uint64_t)h) row0 = h, rows = h; break; /* the up half only */
            }
            if (ta->ne[0] != (uint64_t)cols || tb->ne[1] != (uint64_t)rows || ta->ne[1] != tb->ne[0] || ta->ne[1] < 1 ||
                ta->ne[1] > 65536) {
                errorf(err, errlen, "%s: blk.%d.%s: lora_a is ne [%llu, %llu], lora_b [%llu, %llu]; the model needs [%d, r] and [r, %d]",
                       name, l, gnames[m].name, (unsigned long long)ta->ne[0], (unsigned long long)ta->ne[1],
                       (unsigned long long)tb->ne[0], (unsigned long long)tb->ne[1], cols, rows);
                goto fail;
            }
            int r = (int)ta->ne[1];
            LoraPiece p = {l, role, row0, rows, cols, r, NULL, NULL, alpha != 0 ? alpha / (float)r : 1.0f, NULL};
            if (!(p.a = gguf_rows(ta, e, sizeof e)) || !(p.b = gguf_rows(tb, e, sizeof e))) {
                free(p.a);
                errorf(err, errlen, "%s: %s", name, e);
                goto fail;
            }
            if (lora_adapter_add(ad, &p, err, errlen)) goto fail;
        }
    if (ad->n == 0) {
        errorf(err, errlen, "%s: the adapter has no LoRA tensors", name);
        goto fail;
    }
    if (lora_adapter_check(ad, hp, err, errlen)) goto fail;
    goto done;
fail:
    lora_adapter_free(ad);
    ad = NULL;
done:
    free(found);
    gguf_free(&g);
    return ad;
}

LoraAdapter *lora_load_gguf(const char *path, const PhiHParams *hp, char *err, size_t errlen) {
    size_t len;
    char e[512];
    char *buf = read_file(path, &len, e, sizeof e);
    if (!buf) {
        errorf(err, errlen, "LoRA adapter: %s", e);
        return NULL;
    }
    LoraAdapter *ad = lora_from_gguf(path, (const uint8_t *)buf, len, hp, err, errlen);
    free(buf);
    return ad;
}
