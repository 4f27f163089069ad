/* LoRA adapters at run time: y = W x + sum over attached adapters of S c B (A x), unmerged, so
 * the base model stays mapped and unmodified and each adapter costs only its own memory.
 *
 * An adapter (LoraAdapter) is a list of pieces: a low-rank update of a row block of one layer
 * matrix (A [rank][cols], B [rows][rank], F32) and its scale c (alpha / rank, or alpha /
 * sqrt(rank) with rsLoRA). A fused Phi-3 name (qkv_proj, gate_up_proj) is one piece over all the
 * rows; an unfused Llama-style name (q_proj, k_proj, v_proj, gate_proj, up_proj) is a piece over
 * its row block. Readers of adapter files (PEFT folders, GGUF adapters: convert/lora_load.h)
 * build adapters; this file applies them.
 *
 * A LoraSet is what the forward pass reads: adapters with user scales S (llama.cpp's
 * --lora-scaled), indexed by (layer, matrix). A Model carries one (Model.lora, lora_attach /
 * lora_detach_all); a State may name another (State.lora, overriding the model's for that
 * sequence: the server's per-request choice). Attaching and detaching never touches the base
 * weights: detaching gives back the base model's logits bit for bit. Sets must not change while
 * a forward pass that reads them runs. */
#ifndef PHI_LORA_H
#define PHI_LORA_H

#include <stddef.h>

#include "base/pool.h"
#include "kernels/blocks.h"
#include "model/format.h"
#include "model/model.h"
#include "model/schema.h"

typedef struct {
    int layer;
    SchemaRole role;   /* ROLE_QKV, ROLE_O, ROLE_GATE_UP or ROLE_DOWN */
    int row0, rows;    /* the row block of the matrix it updates */
    int cols, rank;
    float *a;          /* [rank][cols] */
    float *b;          /* [rows][rank] as given to lora_adapter_add, which stores it as bt */
    float scale;       /* c: alpha / rank (alpha / sqrt(rank) with rsLoRA) */
    float *bt;         /* B transposed, [rank][rows]: the update of a token is rank axpys over
                        * contiguous rows (no horizontal sums), so it runs at memory speed */
} LoraPiece;

typedef struct {
    char name[256];    /* where it came from, for messages */
    int n, cap;
    LoraPiece *p;      /* owns a and bt */
} LoraAdapter;

/* A new empty adapter (NULL: out of memory). */
LoraAdapter *lora_adapter_new(const char *name);
/* Adds a piece taking ownership of a and b (b is replaced by its transpose bt; all freed by
 * lora_adapter_free, also on failure). */
int lora_adapter_add(LoraAdapter *ad, const LoraPiece *piece, char *err, size_t errlen);
void lora_adapter_free(LoraAdapter *ad);
/* Rows of the matrix with this role (0: not a layer matrix) and its columns. */
int lora_role_rows(const PhiHParams *hp, SchemaRole role);
int lora_role_cols(const PhiHParams *hp, SchemaRole role);
/* Every piece fits a model with these hyperparameters (layer, role, row block, columns) and
 * no two pieces update the same rows of the same matrix. 0, or -1 with one line. */
int lora_adapter_check(const LoraAdapter *ad, const PhiHParams *hp, char *err, size_t errlen);
/* Bytes of A and B. */
size_t lora_adapter_bytes(const LoraAdapter *ad);

typedef struct LoraSet LoraSet;

/* An empty set for models with these hyperparameters (NULL: out of memory). */
LoraSet *lora_set_new(const PhiHParams *hp);
/* Adds an adapter (not copied: it must outlive the set) with user scale s; adapters add up.
 * A scale of 0 adds nothing. 0, or -1 with one line (the adapter does not fit the model). */
int lora_set_add(LoraSet *set, const LoraAdapter *ad, float s, char *err, size_t errlen);
int lora_set_count(const LoraSet *set); /* adapters added */
void lora_set_free(LoraSet *set);

/* The matrix product of a path (model/forward.c): y[n][w->rows] = x[n][w->cols] W^T. */
typedef void (*LoraMatmulFn)(const MatView *w, const float *x, int n, float *y, Pool *pool);

/* Adds the set's updates of (layer, role) to y[n][rows] for inputs x[n][cols]: per piece
 * t = S c A x for the n tokens at once through mm (the path's matmul: the scalar reference or
 * the SIMD kernels on the pool), then y[row block] += B t as rank axpys per token over B's
 * transposed rows, in F32, on the pool by rows. Scratch is per calling thread (grown to the largest call; lora_free_scratch releases the calling thread's). */
void lora_apply(const LoraSet *set, int layer, SchemaRole role, const float *x, int n, float *y,
                LoraMatmulFn mm, Pool *pool);

/* Merging (quant --lora): adds the set's S c B A to rows [r0, r0 + n) of the (layer, role)
 * matrix held as F32 rows in w[n][cols]; the products are summed in double. */
void lora_merge_rows(const LoraSet *set, int layer, SchemaRole role, int r0, int n, float *w);

/* The model-level swap (no reload of the base): attach adds an adapter with user scale s to
 * m->lora (created on first use), detach_all removes every attached adapter (the adapters
 * themselves stay the caller's). 0, or -1 with one line. */
int lora_attach(Model *m, const LoraAdapter *ad, float s, char *err, size_t errlen);
void lora_detach_all(Model *m);
void lora_free_scratch(void);

#endif
