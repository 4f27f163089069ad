/* The Phi-3 tensor schema: every tensor of a phi file, once. The converter writes the tensors in
 * this order (convert/convert.c), the loader binds them (model/model.c), quant --calib maps
 * activation statistics onto the matrices (convert/calib.c, model/forward.c) and the benchmark
 * counts the bytes a token reads (app/bench.c), all by walking this table (model/schema.c).
 * A new tensor or model variant is one row there (and the field it binds to in model.h). */
#ifndef PHI_SCHEMA_H
#define PHI_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "model/format.h"

typedef enum {
    ROLE_EMBED,      /* token embedding [vocab][dim] */
    ROLE_LM_HEAD,    /* output projection [vocab][dim] */
    ROLE_NORM,       /* RMSNorm weight vector [dim] */
    ROLE_QKV,        /* fused q, k, v projection */
    ROLE_O,          /* attention output projection */
    ROLE_GATE_UP,    /* fused gate and up projections */
    ROLE_DOWN,       /* MLP down projection */
    ROLE_ROPE_SHORT, /* LongRoPE factors, short set [rope_dims/2] */
    ROLE_ROPE_LONG,  /* LongRoPE factors, long set */
} SchemaRole;

/* A length, as a function of the hyperparameters. */
typedef enum {
    DIM_NONE,      /* 0 (the columns of a vector) */
    DIM_VOCAB,     /* vocab_size */
    DIM_MODEL,     /* dim */
    DIM_QKV,       /* (n_heads + 2 n_kv_heads) head_dim */
    DIM_Q,         /* n_heads head_dim */
    DIM_GATE_UP,   /* 2 hidden_dim */
    DIM_HIDDEN,    /* hidden_dim */
    DIM_ROPE_HALF, /* rope_dims / 2 */
} SchemaDim;

/* When a tensor is in the file. */
typedef enum {
    WHEN_ALWAYS,
    WHEN_UNTIED,   /* not tie_embeddings */
    WHEN_LONGROPE, /* rope_scaling == PHI_ROPE_LONGROPE */
} SchemaWhen;

typedef struct {
    const char *name;  /* the name, or with per_layer a pattern with one %u (the layer) */
    int per_layer;     /* one per layer (the per-layer rows of the table are contiguous) */
    size_t bind;       /* offsetof the field it binds to, in Model, or in Layer when per_layer */
    SchemaRole role;
    int ndim;          /* 2: a matrix (any TensorType) bound to a MatView; 1: an F32 vector
                        * bound to a const float * */
    SchemaDim rows, cols; /* cols only for matrices */
    SchemaWhen when;
    const char *absent_alias; /* when absent: bind this (global) tensor instead, or NULL */
} SchemaTensor;

extern const SchemaTensor schema_tensors[];
extern const int schema_n_tensors;

uint64_t schema_dim(const PhiHParams *hp, SchemaDim d);
int schema_present(const PhiHParams *hp, const SchemaTensor *t);

/* One tensor of a model: a table row made concrete for given hyperparameters. */
typedef struct {
    const SchemaTensor *t;
    int layer;                 /* -1 for global tensors */
    char name[PHI_NAME_MAX];
    uint64_t rows, cols;       /* cols = 0 for vectors */
} SchemaItem;

/* Walks a model's tensors in file order: the global rows before the per-layer block, every
 * layer's rows, then the global rows after it. Rows absent for these hyperparameters are skipped
 * unless it->with_absent is set.
 *   SchemaIter it = schema_iter(hp); while (schema_next(&it)) use(&it.item); */
typedef struct {
    const PhiHParams *hp;
    int with_absent;
    int row, layer; /* position of the next row */
    SchemaItem item;
} SchemaIter;
SchemaIter schema_iter(const PhiHParams *hp);
int schema_next(SchemaIter *it);

/* The row and layer a tensor name belongs to, or NULL. */
const SchemaTensor *schema_lookup(const PhiHParams *hp, const char *name, int *layer);

/* Activation statistics of quant --calib (State.act_sq): per layer, the square sums of the input
 * columns of each per-layer matrix, the matrices in table order. Floats per layer, and where the
 * slice of the matrix with the given role starts (-1: no such matrix). */
size_t schema_act_stride(const PhiHParams *hp);
long schema_act_offset(const PhiHParams *hp, SchemaRole role);

#endif
