/* The Phi-3 tensor table (see schema.h). */
#include "model/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define GLOBAL(field) 0, offsetof(Model, field)
#define LAYER(field) 1, offsetof(Layer, field)
#define MAT(rows, cols) 2, rows, cols
#define VEC(n) 1, n, DIM_NONE

/* File order. Matrices: [rows][cols], rows = output features, cols = input features. */
const SchemaTensor schema_tensors[] = {
    {"model.embed_tokens.weight", GLOBAL(tok_embd), ROLE_EMBED, MAT(DIM_VOCAB, DIM_MODEL), WHEN_ALWAYS, NULL},
    {"model.layers.%u.input_layernorm.weight", LAYER(attn_norm), ROLE_NORM, VEC(DIM_MODEL), WHEN_ALWAYS, NULL},
    {"model.layers.%u.self_attn.qkv_proj.weight", LAYER(wqkv), ROLE_QKV, MAT(DIM_QKV, DIM_MODEL), WHEN_ALWAYS, NULL},
    {"model.layers.%u.self_attn.o_proj.weight", LAYER(wo), ROLE_O, MAT(DIM_MODEL, DIM_Q), WHEN_ALWAYS, NULL},
    {"model.layers.%u.post_attention_layernorm.weight", LAYER(ffn_norm), ROLE_NORM, VEC(DIM_MODEL), WHEN_ALWAYS,
     NULL},
    {"model.layers.%u.mlp.gate_up_proj.weight", LAYER(w_gate_up), ROLE_GATE_UP, MAT(DIM_GATE_UP, DIM_MODEL),
     WHEN_ALWAYS, NULL},
    {"model.layers.%u.mlp.down_proj.weight", LAYER(w_down), ROLE_DOWN, MAT(DIM_MODEL, DIM_HIDDEN), WHEN_ALWAYS,
     NULL},
    {"model.norm.weight", GLOBAL(output_norm), ROLE_NORM, VEC(DIM_MODEL), WHEN_ALWAYS, NULL},
    /* tied embeddings: no LM head in the file, the embedding serves */
    {"lm_head.weight", GLOBAL(output), ROLE_LM_HEAD, MAT(DIM_VOCAB, DIM_MODEL), WHEN_UNTIED,
     "model.embed_tokens.weight"},
    {"rope.short_factor", GLOBAL(rope_short), ROLE_ROPE_SHORT, VEC(DIM_ROPE_HALF), WHEN_LONGROPE, NULL},
    {"rope.long_factor", GLOBAL(rope_long), ROLE_ROPE_LONG, VEC(DIM_ROPE_HALF), WHEN_LONGROPE, NULL},
};
const int schema_n_tensors = (int)(sizeof schema_tensors / sizeof schema_tensors[0]);

uint64_t schema_dim(const PhiHParams *hp, SchemaDim d) {
    switch (d) {
    case DIM_NONE: return 0;
    case DIM_VOCAB: return hp->vocab_size;
    case DIM_MODEL: return hp->dim;
    case DIM_QKV: return (uint64_t)hp->head_dim * (hp->n_heads + 2ull * hp->n_kv_heads);
    case DIM_Q: return (uint64_t)hp->head_dim * hp->n_heads;
    case DIM_GATE_UP: return 2ull * hp->hidden_dim;
    case DIM_HIDDEN: return hp->hidden_dim;
    case DIM_ROPE_HALF: return hp->rope_dims / 2;
    }
    return 0;
}

int schema_present(const PhiHParams *hp, const SchemaTensor *t) {
    switch (t->when) {
    case WHEN_ALWAYS: return 1;
    case WHEN_UNTIED: return !hp->tie_embeddings;
    case WHEN_LONGROPE: return hp->rope_scaling == PHI_ROPE_LONGROPE;
    }
    return 0;
}

static void make_item(const PhiHParams *hp, const SchemaTensor *t, int layer, SchemaItem *it) {
    it->t = t;
    it->layer = t->per_layer ? layer : -1;
    if (t->per_layer) snprintf(it->name, sizeof it->name, t->name, (unsigned)layer);
    else snprintf(it->name, sizeof it->name, "%s", t->name);
    it->rows = schema_dim(hp, t->rows);
    it->cols = t->ndim == 2 ? schema_dim(hp, t->cols) : 0;
}

SchemaIter schema_iter(const PhiHParams *hp) { return (SchemaIter){.hp = hp}; }

int schema_next(SchemaIter *it) {
    const SchemaTensor *tab = schema_tensors;
    while (it->row < schema_n_tensors) {
        const SchemaTensor *t = &tab[it->row];
        int layer = it->layer;
        if (!t->per_layer) {
            it->row++;
        } else if (layer >= (int)it->hp->n_layers) { /* after the last layer: leave the block */
            while (it->row < schema_n_tensors && tab[it->row].per_layer) it->row++;
            continue;
        } else if (it->row + 1 < schema_n_tensors && tab[it->row + 1].per_layer) {
            it->row++;
        } else { /* the block's last row: the next layer starts at its first row */
            while (it->row > 0 && tab[it->row - 1].per_layer) it->row--;
            it->layer++;
        }
        if (!it->with_absent && !schema_present(it->hp, t)) continue;
        make_item(it->hp, t, layer, &it->item);
        return 1;
    }
    return 0;
}

const SchemaTensor *schema_lookup(const PhiHParams *hp, const char *name, int *layer) {
    *layer = -1;
    for (int i = 0; i < schema_n_tensors; i++) {
        const SchemaTensor *t = &schema_tensors[i];
        if (!t->per_layer) {
            if (!strcmp(name, t->name)) return t;
            continue;
        }
        /* the digits where the pattern has %u, then the whole name must print back the same */
        const char *at = strstr(t->name, "%u");
        size_t pre = (size_t)(at - t->name);
        if (strncmp(name, t->name, pre) || name[pre] < '0' || name[pre] > '9') continue;
        unsigned long l = strtoul(name + pre, NULL, 10);
        if (l >= hp->n_layers) continue;
        char buf[PHI_NAME_MAX];
        snprintf(buf, sizeof buf, t->name, (unsigned)l);
        if (!strcmp(buf, name)) {
            *layer = (int)l;
            return t;
        }
    }
    return NULL;
}

size_t schema_act_stride(const PhiHParams *hp) {
    size_t n = 0;
    for (int i = 0; i < schema_n_tensors; i++)
        if (schema_tensors[i].per_layer && schema_tensors[i].ndim == 2)
            n += schema_dim(hp, schema_tensors[i].cols);
    return n;
}

long schema_act_offset(const PhiHParams *hp, SchemaRole role) {
    long off = 0;
    for (int i = 0; i < schema_n_tensors; i++) {
        const SchemaTensor *t = &schema_tensors[i];
        if (!t->per_layer || t->ndim != 2) continue;
        if (t->role == role) return off;
        off += (long)schema_dim(hp, t->cols);
    }
    return -1;
}
