/* phi.h: the phi library's public C API (link build/libphi.a with -lm -lpthread).
 *
 * A model is opened once and shared (read-only) by any number of sessions; a session is one
 * sequence: its own KV cache, thread pool and sampler settings. One thread at a time per
 * session; different sessions may run on different threads at once.
 *
 *   phi_model *m;  phi_session *s;
 *   if (phi_model_open("model.phi", 0, &m)) { fprintf(stderr, "%s\n", phi_last_error()); ... }
 *   phi_session_params p = phi_session_default_params();
 *   phi_session_new(m, &p, &s);
 *   int ids[512], n = phi_tokenize(m, "Hello", 5, -1, ids, 512);
 *   phi_session_prompt(s, ids, n);
 *   phi_generate(s, 64, on_token, user, NULL);    -- on_token(user, id, text, len) per token
 *   phi_session_free(s);  phi_model_free(m);
 *
 * Errors: every function that can fail returns a phi_status (< 0) and never exits or prints;
 * phi_last_error() is the one-line message of the calling thread's last failure. Names are
 * prefixed phi_ / PHI_; the header needs only <stddef.h> and <stdint.h>. */
#ifndef PHI_PUBLIC_H
#define PHI_PUBLIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PHI_API_VERSION 3 /* 2: LoRA adapters (phi_lora_*, phi_session_set_loras); 3: KV cache types
                           * (phi_session_params.cache_type_k / cache_type_v) and prompt lookup
                           * (phi_session_params.draft_max, phi_gen_result.n_drafted / n_accepted) */

typedef enum {
    PHI_OK = 0,
    PHI_ERR_ARG = -1,     /* an invalid argument (NULL, out of range, unknown chat role) */
    PHI_ERR_NOMEM = -2,   /* out of memory or threads */
    PHI_ERR_MODEL = -3,   /* the model file cannot be read or is not a valid model */
    PHI_ERR_CONTEXT = -4, /* the tokens do not fit in the session's context */
    PHI_ERR_TOKEN = -5,   /* a token id outside the vocabulary, or text that is not UTF-8 */
    PHI_ERR_STATE = -6,   /* a call out of order (phi_generate before any tokens were fed) */
    PHI_ERR_LORA = -7,    /* a LoRA adapter cannot be read or does not fit the model */
} phi_status;

/* The calling thread's last error message ("" if none); valid until its next failing call. */
const char *phi_last_error(void);

/* ---- Models ---- */
typedef struct phi_model phi_model;

enum {
    PHI_OPEN_MMAP = 1, /* map the file instead of copying it into (huge-page) memory: instant
                          start, slower generation. Without it the weights are copied when they
                          fit in available memory, else mapped. */
};
/* Open a phi model file (see docs/FORMAT.md; GGUF once model loading reads it), validating it
 * completely. *out is NULL on failure. */
int phi_model_open(const char *path, int flags, phi_model **out);
void phi_model_free(phi_model *m);
int phi_model_n_vocab(const phi_model *m);     /* ids 0..n-1 are tokens (input and output) */
int phi_model_n_ctx_train(const phi_model *m); /* the model's maximum positions */
int phi_model_is_stop(const phi_model *m, int id); /* one of the model's stop ids */
/* A short description ("phi3 3.8B q4"-like: architecture facts), for model lists. */
const char *phi_model_desc(const phi_model *m);

/* ---- Text ---- */
/* Encode UTF-8 text[0..len). add_bos: 1 / 0, or -1 for the model's default (add_bos_token).
 * Writes at most cap ids; returns the number of ids the text needs (call again with more room
 * when it exceeds cap), or a phi_status < 0 (PHI_ERR_TOKEN: invalid UTF-8). */
int phi_tokenize(const phi_model *m, const char *text, size_t len, int add_bos, int *ids, int cap);
/* Decode ids as Hugging Face's decode (special tokens skipped) into out[cap] (always
 * NUL-terminated when cap > 0, truncated at a character boundary). Returns the byte length of
 * the whole text (excluding the NUL), or a phi_status < 0 (PHI_ERR_TOKEN: an unknown id). */
int phi_detokenize(const phi_model *m, const int *ids, int n, char *out, size_t cap);

/* ---- Chat template ---- */
typedef struct {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8 */
} phi_message;
/* The conversation rendered with the model's chat template (Phi-3, Phi-3-medium: no system role,
 * Phi-4-mini), ending with the assistant's generation prompt: a malloc'd string in *text (free
 * with phi_free). *add_bos (may be NULL) receives whether the rendered text should be tokenized
 * with BOS. */
int phi_chat_render(const phi_model *m, const phi_message *msgs, int n, char **text, int *add_bos);
void phi_free(void *p);

/* ---- Sessions ---- */
typedef struct phi_session phi_session;

typedef struct {
    int n_ctx;         /* positions of the KV cache; 0: the model's maximum, at most 4096 */
    int n_threads;     /* 0: one per CPU */
    float temperature; /* 0: greedy */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
    uint64_t seed;     /* 0: a fixed default */
    /* KV cache types, llama.cpp's names (-ctk/-ctv): "f16" (NULL: the default), "f32" or "q8_0"
     * (32 int8 and an f16 scale per 32 values: about half of f16's memory; needs a head size
     * that is a multiple of 32). Read by phi_session_new only. */
    const char *cache_type_k, *cache_type_v;
    /* API 3: prompt-lookup speculative decoding in phi_generate (the CLI's --lookup): up to
     * draft_max (1..7) tokens that followed an earlier occurrence of the last 1-4 tokens are checked
     * in one pass with the next one. The tokens are those of plain greedy decoding, bit for bit;
     * faster when the reply repeats its input. 0: off (the default). Greedy only: refused with a
     * temperature here; a later phi_session_set_sampling with a temperature turns it off. Off, too,
     * for sessions with LoRA adapters and for K-quant models on AVX-512 kernels (their batches
     * are not bit-exact; on AVX2, NEON and the scalar kernels K-quant models take it). */
    int draft_max;
} phi_session_params;

phi_session_params phi_session_default_params(void); /* greedy, n_ctx 0, all CPUs */
int phi_session_new(phi_model *m, const phi_session_params *p, phi_session **out);
void phi_session_free(phi_session *s);
/* New sampling settings (also restarts the random sequence from seed). */
int phi_session_set_sampling(phi_session *s, float temperature, int top_k, float top_p, uint64_t seed);
int phi_session_n_ctx(const phi_session *s);
int phi_session_n_past(const phi_session *s); /* positions in the KV cache */

/* Make ids[0..n) the session's whole sequence, evaluating only the tokens after the longest
 * prefix already in the KV cache (the last token is always evaluated, for its logits): a chat
 * that re-renders the whole conversation each turn costs only the new tokens. */
int phi_session_prompt(phi_session *s, const int *ids, int n);
/* Append ids[0..n) after the positions already in the cache and evaluate them. */
int phi_session_feed(phi_session *s, const int *ids, int n);
/* Forget every position from n_past on (0: an empty cache). */
int phi_session_rewind(phi_session *s, int n_past);
/* The logits (phi_model_n_vocab floats) of the last position evaluated by phi_session_prompt or
 * phi_session_feed, valid until the session's next call; NULL when there are none (nothing fed
 * since a rewind or an adapter change, or phi_generate has moved past them). */
const float *phi_session_logits(const phi_session *s);

/* Called for every generated token: its id and text (complete UTF-8 characters; may be empty,
 * e.g. for special tokens). id -1 carries the trailing bytes of an incomplete character at the
 * end. Return 0 to continue, non-zero to stop after this token. */
typedef int (*phi_token_fn)(void *user, int id, const char *text, size_t len);

typedef enum {
    PHI_FINISH_STOP = 1,     /* the model's stop token (not passed to the callback) */
    PHI_FINISH_LENGTH = 2,   /* max_tokens reached or the context is full */
    PHI_FINISH_CALLBACK = 3, /* the callback asked to stop */
} phi_finish;

typedef struct {
    int n_tokens;  /* tokens generated (passed to the callback) */
    int finish;    /* phi_finish */
    double seconds;
    int n_drafted, n_accepted; /* API 3: prompt-lookup draft tokens checked, and those kept */
} phi_gen_result;

/* Generate up to max_tokens (< 0: until a stop token or a full context) after the tokens fed so
 * far. Each generated token but the last is appended to the cache; feed the last one yourself (or
 * re-prompt the whole conversation) to continue. res may be NULL. Returns PHI_OK, or
 * PHI_ERR_MODEL when the model produced NaN or infinite logits (res still says what was made). */
int phi_generate(phi_session *s, int max_tokens, phi_token_fn fn, void *user, phi_gen_result *res);

/* ---- LoRA adapters ----
 * An adapter is loaded once against a model (without touching or reloading its weights) and
 * may be applied by any number of that model's sessions, each with its own scales: the session
 * computes y = W x + sum_i scale_i * c_i * B_i (A_i x) (c = alpha / r, alpha / sqrt(r) with
 * rsLoRA), unmerged. The formats read are docs/FORMAT.md's "LoRA adapters": a PEFT folder
 * (adapter_config.json + adapter_model.safetensors) or a GGUF adapter file as llama.cpp's
 * convert_lora_to_gguf.py writes it. */
typedef struct phi_lora phi_lora;

/* Load and validate the adapter at path (a PEFT folder or a GGUF adapter file) for model m.
 * An adapter for another model shape (layers, matrix sizes), a DoRA or otherwise unsupported
 * adapter, or an unreadable path is refused with PHI_ERR_LORA and one line in phi_last_error();
 * *out is NULL on failure. The adapter must outlive every session that applies it. */
int phi_lora_load(const phi_model *m, const char *path, phi_lora **out);
void phi_lora_free(phi_lora *a);
const char *phi_lora_path(const phi_lora *a); /* the path it was loaded from */

/* Make a[0..n) with user scales scales[0..n) (llama.cpp's --lora-scaled; 1: as trained, 0: no
 * effect) the session's adapter set, replacing the previous set; n = 0 detaches every adapter,
 * giving back the base model's logits bit for bit. The adapters must have been loaded for this
 * session's model and scales must be finite. The same adapter may appear twice (scales add).
 * The KV cache: positions already cached were computed with the previous set, so a set that
 * differs (other adapters, order or scales) empties the cache (n_past becomes 0: feed or prompt
 * again); setting the set already in place keeps it. */
int phi_session_set_loras(phi_session *s, const phi_lora *const *a, const float *scales, int n);
/* Adapters in the session's current set (0: the base model). */
int phi_session_n_loras(const phi_session *s);

#ifdef __cplusplus
}
#endif
#endif
