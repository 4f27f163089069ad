/* A Phi-3 model and the forward pass. The weights are used in place, never converted: either
 * from a read-only mapping of the phi file (model_load, model_load_ex without flags) or from a
 * copy of the whole file in huge-page-backed memory (MODEL_LOAD_COPY), which is what phi does
 * by default when the file fits in available memory (app/run.c, --mmap / --no-mmap). */
#ifndef PHI_MODEL_H
#define PHI_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model/format.h"
#include "kernels/blocks.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const float *attn_norm, *ffn_norm; /* [dim] */
    MatView wqkv;                      /* [(n_heads + 2 n_kv_heads) head_dim][dim] */
    MatView wo;                        /* [dim][n_heads head_dim] */
    MatView w_gate_up;                 /* [2 hidden_dim][dim]: gate rows, then up rows */
    MatView w_down;                    /* [dim][hidden_dim] */
} Layer;

typedef struct {
    PhiHParams hp;
    PhiFile file;
    Tokenizer *tok;
    MatView tok_embd;          /* [vocab][dim] */
    MatView output;            /* LM head [vocab][dim]; = tok_embd when tied */
    const float *output_norm;  /* [dim] */
    const float *rope_short, *rope_long; /* [rope_dims/2], LongRoPE only */
    Layer *layers;
    void *map;
    size_t map_size;
    struct LoraSet *lora;      /* attached LoRA adapters (model/lora.h), or NULL */
} Model;

/* mmap and validate a phi file completely (header, directory, tensor shapes, tokenizer).
 * 0, or -1 with a one-line message. */
int model_load(const char *path, Model *m, char *err, size_t errlen);
/* MODEL_LOAD_COPY: read the file into huge-page-backed memory instead of mapping it (faster
 * streaming of the weights; the load reads the whole file). */
enum { MODEL_LOAD_COPY = 1 };
int model_load_ex(const char *path, Model *m, int flags, char *err, size_t errlen);
/* The same checks on an image already in memory (the model then points into buf). */
int model_from_buffer(const uint8_t *buf, uint64_t size, Model *m, char *err, size_t errlen);
void model_free(Model *m);
/* A GGUF file (by its magic) is converted to a phi image in memory by model_load_ex
 * (model/gguf_model.h: same values, phi's layout). Its notes (one line each: types converted,
 * with verbose the defaults taken for missing keys, and that quant makes an mmap-ready file) go
 * to fn; none before a call (the default). */
typedef void (*ModelNoteFn)(void *ctx, const char *line);
void model_set_notes(ModelNoteFn fn, void *ctx, int verbose);

/* Inference state: activations and the KV cache for up to n_ctx positions.
 * Two paths share it and one layer recipe (model/forward.c): the scalar reference (use_ref, one
 * token at a time, the oracle) and the fast path (SIMD kernels, batches of up to n_batch tokens,
 * a thread pool). A state is one sequence; model_forward_multi / model_forward_spans run the
 * tokens of several in one pass, each row with its own state's cache, position and factor set,
 * their activations in one of the states (the one with the largest n_batch). */
typedef struct {
    int n_ctx, n_batch;
    int use_ref;   /* 1: scalar reference kernels */
    void *pool;    /* Pool * of the fast path (NULL: caller thread only) */
    int owns_pool; /* 0: borrowed (state_init_pool), not destroyed by state_free */
    int n_threads;
    /* per batch: [n_batch][...] */
    float *x, *xb, *xb2, *qkv, *hb, *hs; /* hs: [n_batch][hidden_dim], silu(gate) * up */
    float *att;    /* [n_threads][4][n_ctx] attention scores (model/forward.c attend4: 4 rows) */
    float *logits; /* [vocab]: the last position's */
    float *rope_cs; /* [n_batch][rope_dims]: cos, then sin, of each pair */
    /* KV cache: [layer][n_kv_heads][kv_slots][head_dim] of k_type (keys) and v_type (values),
     * KV_F16 (default), KV_F32 or KV_Q8_0; position p lives in slot p % kv_slots. A KV_Q8_0 cache
     * holds that array as int8 quants, followed by the f16 scales, one per QK_KV = 32 values in
     * the same order ([layer][n_kv_heads][kv_slots][head_dim / 32]): 34 bytes per 32 values, as
     * llama.cpp's q8_0, with the quants of a row contiguous for the kernels (kernels/kernels.h). With a sliding window W shorter than the context,
     * only W + n_batch slots are kept (a ring: a batch writes its n_batch positions before
     * attending, and each query needs the W before). */
    int kv_slots, kv_f32; /* kv_f32: both caches KV_F32 */
    int k_type, v_type;
    size_t kv_bytes, kv_bytes_v; /* of the key cache and of the value cache */
    void *key_cache, *value_cache;
    int *tokens;   /* [n_ctx]: the token at each position in the cache */
    int n_cached;  /* positions 0..n_cached-1 have been evaluated (the last call's end) */
    int kv_hi;     /* the highest position + 1 written since the cache was last filled from position 0:
                    * rejected lookup drafts and rewinds leave rows past n_cached, which a ring
                    * may have written over older positions (the rewind and prompt-cache checks) */
    int rope_set;  /* LongRoPE factor set the cached keys were rotated with: 0 short, 1 long */
    /* Activation statistics for quant --calib (NULL: off; the caller owns the array). Either
     * path adds the square of every input column of each layer's matrices, layer after layer,
     * in the layout of model/schema.h (schema_act_stride per layer, schema_act_offset per
     * matrix: wqkv, wo, w_gate_up, w_down); act_rows counts the positions added. */
    double *act_sq;
    long act_rows;
    /* LoRA adapters for this sequence instead of the model's (model/lora.h; NULL: m->lora) */
    const struct LoraSet *lora;
} State;

/* n_threads <= 0: one per CPU. */
int state_init(State *s, const Model *m, int n_ctx, int n_threads, char *err, size_t errlen);
/* Flags: STATE_FULL_CACHE keeps one KV slot per position even with a sliding window (tests
 * compare the ring with it); STATE_KV_F32 stores keys and values as F32 instead of F16 (twice
 * the memory; what the exactness references were computed with). */
enum { STATE_FULL_CACHE = 1, STATE_KV_F32 = 2 };
/* KV cache element types; a state's flags choose them with STATE_CACHE_K(t) | STATE_CACHE_V(t)
 * (STATE_KV_F32 overrides both). KV_Q8_0 needs a head_dim that is a multiple of 32. */
enum { KV_F16 = 0, KV_F32 = 1, KV_Q8_0 = 2, KV_TYPE_COUNT };
#define STATE_CACHE_K(t) ((t) << 4)
#define STATE_CACHE_V(t) ((t) << 6)
/* llama.cpp's names (--cache-type-k/-v): "f16", "f32", "q8_0"; -1 for another name. */
int kv_type_parse(const char *name);
const char *kv_type_name(int t);
/* Bytes of n values of type t (n a multiple of 32 for KV_Q8_0). */
double kv_type_bytes(int t, double n);
int state_init_ex(State *s, const Model *m, int n_ctx, int n_threads, int flags, char *err,
                  size_t errlen);
/* A state that runs on a pool the caller owns and shares (several sequences, one set of threads;
 * never two calls at once on states sharing a pool). pool may be NULL (the calling thread). */
int state_init_pool(State *s, const Model *m, int n_ctx, void *pool, int flags, char *err, size_t errlen);
void state_free(State *s);

/* Run tokens[0..n) at positions pos0.. and fill the KV cache (positions >= pos0 + n that were
 * cached before are forgotten). LongRoPE's factor set is chosen from the sequence length
 * pos0 + n (long factors past original_max_position_embeddings), as Hugging Face does for a
 * forward call; when that differs from the set the cached positions 0..pos0-1 were rotated
 * with, those positions are evaluated again first, so the result always equals a full
 * evaluation of the sequence. The same happens when a ring cache (sliding window) no longer holds
 * the keys a rewind to pos0 needs. If logits is non-NULL it receives [n][vocab]; the last position's
 * logits are always left in s->logits. Returns 0, or -1 if pos0 + n > n_ctx or an id is
 * outside the vocabulary. */
int model_forward(const Model *m, State *s, const int *tokens, int n, int pos0, float *logits);


/* One decoding step for several sequences at once (the server's slots): tokens[i] is evaluated
 * at position states[i]->n_cached of states[i] (its own KV cache, sampler-independent), and
 * states[i]->logits receives its logits (also logits[i][vocab] when logits is non-NULL). The
 * result equals n separate model_forward calls, but the matrix products (every weight matrix and
 * the LM head) run once over all n tokens: decoding reads the weights from memory once per step
 * instead of once per sequence. States must be distinct and made for the same model; they are
 * batched when they share one pool (state_init_pool) and path (use_ref), in groups of the largest
 * n_batch among them, else evaluated one after another. Returns 0, or -1 (n < 1, a full context,
 * an id outside the vocabulary, a NULL or repeated state, out of memory; nothing is evaluated and
 * no state changes then). */
int model_forward_multi(const Model *m, State *const *states, const int *tokens, int n, float *logits);

/* The general step: per sequence a span of tokens, e.g. one sequence's next prompt chunk beside
 * the others' decode tokens, so prefill shares the weight reads of the decode step. Span i runs
 * tokens[0..n) at positions pos0.. of s (pos0 <= s->n_cached; what was cached from pos0 on is
 * forgotten), with model_forward's semantics (LongRoPE factor choice and re-evaluation, done for
 * that sequence alone before the shared pass). s->logits receives the span's last position's
 * logits, and logits (if non-NULL) [n][vocab] all of them. Spans are packed into passes of up to
 * the largest n_batch rows in the order given (put decode tokens first so they ride in the
 * first pass). Returns 0, or -1 with no state changed (the errors of model_forward_multi, or a
 * span with n < 1 or pos0 out of range). */
typedef struct {
    State *s;
    const int *tokens;
    int n, pos0;
    float *logits;
} SeqSpan;
int model_forward_spans(const Model *m, const SeqSpan *spans, int n_spans);

#endif
