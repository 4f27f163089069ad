/* The public C API (phi.h) over model/, tokenizer/ and app/chat.c's template renderer. This file
 * sits at the app/ level: it adds no behaviour of its own, only handles, status codes and the
 * thread's error message. Generation is model/generate.c's gen_loop, the CLI's loop. */
#include "phi.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/chat.h"
#include "convert/lora_load.h"
#include "api/phi_internal.h"
#include "base/cpu.h"
#include "kernels/kernels.h"
#include "model/generate.h"
#include "model/lookup.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/sampler.h"

static _Thread_local char last_error[512];

const char *phi_last_error(void) { return last_error; }

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

struct phi_model {
    Model m;
    char desc[128];
};

struct phi_session {
    phi_model *pm;
    State st;
    Sampler smp;
    int has_logits; /* st.logits belongs to position st.n_cached - 1 */
    LoraSet *lora;          /* the adapter set (st.lora), NULL: the base model */
    const phi_lora **la;    /* its adapters and scales, to tell whether a new set differs */
    float *ls;
    int n_lora;
    int draft_max; /* prompt lookup (phi_session_params.draft_max) */
};

int phi_model_open(const char *path, int flags, phi_model **out) {
    if (!out) return fail(PHI_ERR_ARG, "phi_model_open: out is NULL");
    *out = NULL;
    if (!path) return fail(PHI_ERR_ARG, "phi_model_open: path is NULL");
    if (kernels_init(NULL)) return fail(PHI_ERR_ARG, "$PHI_ISA names kernels this CPU lacks");
    phi_model *pm = calloc(1, sizeof *pm);
    if (!pm) return fail(PHI_ERR_NOMEM, "out of memory");
    int load = 0;
    struct stat sb;
    /* Copy into huge-page memory (faster streaming) when the file fits with room to spare. */
    if (!(flags & PHI_OPEN_MMAP) && stat(path, &sb) == 0 &&
        mem_available_bytes() > (unsigned long long)sb.st_size + (512ull << 20))
        load = MODEL_LOAD_COPY;
    if (model_load_ex(path, &pm->m, load, last_error, sizeof last_error)) {
        free(pm);
        return PHI_ERR_MODEL;
    }
    const PhiHParams *hp = &pm->m.hp;
    snprintf(pm->desc, sizeof pm->desc, "phi3: %u layers, dim %u, %u heads (%u kv), vocab %u, %u positions",
             hp->n_layers, hp->dim, hp->n_heads, hp->n_kv_heads, hp->vocab_size, hp->max_seq_len);
    *out = pm;
    return PHI_OK;
}

void phi_model_free(phi_model *pm) {
    if (!pm) return;
    model_free(&pm->m);
    free(pm);
}

/* The ids the tokenizer names, at most the LM head's rows: the one vocabulary rule of --ids and
 * --detokenize (Phi-3's padding rows 32011..32063 are not tokens). */
static int named(const Model *m) {
    int n = tok_vocab_size(m->tok);
    return n < 1 || n > (int)m->hp.vocab_size ? (int)m->hp.vocab_size : n;
}

int phi_model_n_vocab(const phi_model *pm) { return pm ? named(&pm->m) : 0; }
int phi_model_n_ctx_train(const phi_model *pm) { return pm ? (int)pm->m.hp.max_seq_len : 0; }
int phi_model_is_stop(const phi_model *pm, int id) { return pm && is_stop_id(&pm->m.hp, id); }
const char *phi_model_desc(const phi_model *pm) { return pm ? pm->desc : ""; }
const Model *phi_model_get(const phi_model *pm) { return pm ? &pm->m : NULL; }

int phi_tokenize(const phi_model *pm, const char *text, size_t len, int add_bos, int *ids, int cap) {
    if (!pm || (!text && len) || cap < 0 || (cap && !ids)) return fail(PHI_ERR_ARG, "phi_tokenize: bad arguments");
    if (add_bos < 0) add_bos = tok_add_bos(pm->m.tok);
    int n = tok_encode(pm->m.tok, text ? text : "", len, add_bos, ids, cap, last_error, sizeof last_error);
    return n < 0 ? PHI_ERR_TOKEN : n;
}

int phi_detokenize(const phi_model *pm, const int *ids, int n, char *out, size_t cap) {
    if (!pm || n < 0 || (n && !ids) || (cap && !out)) return fail(PHI_ERR_ARG, "phi_detokenize: bad arguments");
    const Tokenizer *t = pm->m.tok;
    TokDecoder d;
    tok_decoder_init(&d, t);
    char piece[256];
    size_t total = 0, put = 0;
    int full = 0; /* out is full: later pieces are only counted */
    if (cap) out[0] = 0;
    for (int i = 0; i <= n; i++) {
        size_t k;
        if (i < n) {
            if (!tok_piece(t, ids[i])) return fail(PHI_ERR_TOKEN, "token id %d is not in the vocabulary", ids[i]);
            k = tok_decoder_push(&d, ids[i], piece, sizeof piece);
        } else {
            k = tok_decoder_flush(&d, piece, sizeof piece);
        }
        total += k;
        /* pieces are whole characters: copy whole pieces only, so a truncated text stays UTF-8 */
        if (!full && cap && put + k < cap) {
            memcpy(out + put, piece, k);
            put += k;
            out[put] = 0;
        } else {
            full = 1;
        }
    }
    return total > 0x7fffffff ? fail(PHI_ERR_ARG, "text too long") : (int)total;
}

int phi_chat_render(const phi_model *pm, const phi_message *msgs, int n, char **text, int *add_bos) {
    if (!pm || !text || n < 0 || (n && !msgs)) return fail(PHI_ERR_ARG, "phi_chat_render: bad arguments");
    *text = NULL;
    const char *tpl = tok_chat_template(pm->m.tok);
    ChatMessage *cm = malloc((size_t)(n ? n : 1) * sizeof *cm);
    if (!cm) return fail(PHI_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || !msgs[i].content || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))) {
            free(cm);
            return fail(PHI_ERR_ARG, "message %d: the role must be system, user or assistant", i);
        }
        cm[i] = (ChatMessage){r, (char *)msgs[i].content};
    }
    *text = chat_render(chat_kind(tpl), cm, n);
    free(cm);
    if (add_bos) *add_bos = chat_wants_bos(tpl, tok_add_bos(pm->m.tok));
    return PHI_OK;
}

void phi_free(void *p) { free(p); }

phi_session_params phi_session_default_params(void) {
    return (phi_session_params){.n_ctx = 0, .n_threads = 0, .temperature = 0, .top_k = 0, .top_p = 1, .seed = 0};
}

static int valid_sampling(float temp, int top_k, float top_p) {
    return temp >= 0 && temp <= 100 && top_k >= 0 && top_p >= 0 && top_p <= 1;
}

int phi_session_new(phi_model *pm, const phi_session_params *p, phi_session **out) {
    if (!out) return fail(PHI_ERR_ARG, "phi_session_new: out is NULL");
    *out = NULL;
    phi_session_params d = phi_session_default_params();
    if (!p) p = &d;
    if (!pm || p->n_ctx < 0 || !valid_sampling(p->temperature, p->top_k, p->top_p))
        return fail(PHI_ERR_ARG, "phi_session_new: bad parameters");
    if (p->draft_max < 0 || p->draft_max > LOOKUP_DRAFT_MAX || (p->draft_max && p->temperature != 0))
        return fail(PHI_ERR_ARG, "phi_session_new: draft_max must be 0..%d, and 0 unless temperature is 0", LOOKUP_DRAFT_MAX);
    int max = (int)pm->m.hp.max_seq_len, n_ctx = p->n_ctx ? p->n_ctx : (max < 4096 ? max : 4096);
    if (n_ctx > max) return fail(PHI_ERR_ARG, "n_ctx %d is more than the model's %d positions", n_ctx, max);
    phi_session *s = calloc(1, sizeof *s);
    if (!s) return fail(PHI_ERR_NOMEM, "out of memory");
    s->pm = pm;
    int kt = p->cache_type_k ? kv_type_parse(p->cache_type_k) : KV_F16;
    int vt = p->cache_type_v ? kv_type_parse(p->cache_type_v) : KV_F16;
    if (kt < 0 || vt < 0) {
        free(s);
        return fail(PHI_ERR_ARG, "unknown KV cache type '%s' (f32, f16 or q8_0)",
                    kt < 0 ? p->cache_type_k : p->cache_type_v);
    }
    if ((kt == KV_Q8_0 || vt == KV_Q8_0) && pm->m.hp.head_dim % 32) {
        free(s);
        return fail(PHI_ERR_ARG, "a q8_0 KV cache needs a head size that is a multiple of 32; this model's is %u",
                    pm->m.hp.head_dim);
    }
    s->draft_max = p->draft_max;
    if (state_init_ex(&s->st, &pm->m, n_ctx, p->n_threads, STATE_CACHE_K(kt) | STATE_CACHE_V(vt), last_error,
                      sizeof last_error)) {
        free(s);
        return PHI_ERR_NOMEM;
    }
    /* ids the vocabulary does not name (padding rows) are never sampled */
    int n_valid = named(&pm->m);
    if (sampler_init(&s->smp, n_valid, p->temperature, p->top_k, p->top_p, p->seed)) {
        state_free(&s->st);
        free(s);
        return fail(PHI_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return PHI_OK;
}

void phi_session_free(phi_session *s) {
    if (!s) return;
    lora_set_free(s->lora);
    free(s->la);
    free(s->ls);
    sampler_free(&s->smp);
    state_free(&s->st);
    free(s);
}

int phi_session_set_sampling(phi_session *s, float temperature, int top_k, float top_p, uint64_t seed) {
    if (!s || !valid_sampling(temperature, top_k, top_p)) return fail(PHI_ERR_ARG, "bad sampling settings");
    s->smp.temp = temperature;
    s->smp.top_k = top_k;
    s->smp.top_p = top_p;
    s->smp.rng = seed ? seed : 0x853c49e6748fea9bull; /* sampler_init's default */
    return PHI_OK;
}

int phi_session_n_ctx(const phi_session *s) { return s ? s->st.n_ctx : 0; }
int phi_session_n_past(const phi_session *s) { return s ? s->st.n_cached : 0; }

static int eval(phi_session *s, const int *ids, int n, int pos0) {
    const Model *m = &s->pm->m;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= named(m))
            return fail(PHI_ERR_TOKEN, "token id %d is outside the vocabulary (0..%d)", ids[i], named(m) - 1);
    if ((long)pos0 + n > s->st.n_ctx)
        return fail(PHI_ERR_CONTEXT, "%d tokens after %d positions do not fit in the context of %d", n, pos0, s->st.n_ctx);
    if (model_forward(m, &s->st, ids, n, pos0, NULL)) return fail(PHI_ERR_TOKEN, "evaluation refused the tokens");
    s->has_logits = 1;
    return PHI_OK;
}

int phi_session_prompt(phi_session *s, const int *ids, int n) {
    if (!s || n < 1 || !ids) return fail(PHI_ERR_ARG, "phi_session_prompt: no tokens");
    int keep = 0;
    while (keep < s->st.n_cached && keep < n - 1 && s->st.tokens[keep] == ids[keep]) keep++;
    return eval(s, ids + keep, n - keep, keep);
}

int phi_session_feed(phi_session *s, const int *ids, int n) {
    if (!s || n < 1 || !ids) return fail(PHI_ERR_ARG, "phi_session_feed: no tokens");
    return eval(s, ids, n, s->st.n_cached);
}

int phi_session_rewind(phi_session *s, int n_past) {
    if (!s || n_past < 0 || n_past > s->st.n_cached) return fail(PHI_ERR_ARG, "phi_session_rewind: bad position");
    s->st.n_cached = n_past;
    s->has_logits = 0;
    return PHI_OK;
}

int phi_generate(phi_session *s, int max_tokens, phi_token_fn fn, void *user, phi_gen_result *res) {
    if (res) memset(res, 0, sizeof *res);
    if (!s) return fail(PHI_ERR_ARG, "phi_generate: session is NULL");
    if (!s->has_logits || s->st.n_cached < 1)
        return fail(PHI_ERR_STATE, "phi_generate: feed tokens first");
    GenStats st = {0};
    gen_loop_ex(&s->pm->m, &s->st, &s->smp, s->st.n_cached, max_tokens, 0, s->draft_max, (GenTokenFn)fn, user, &st);
    /* the last generated token is not in the cache: the logits are those of the last fed or
     * evaluated position, which a new phi_generate would sample from again */
    s->has_logits = st.n_gen == 0 || st.stopped_by == GEN_STOP_ID ? s->has_logits : 0;
    if (res) {
        res->n_tokens = st.n_gen;
        res->finish = st.stopped_by == GEN_STOP_ID ? PHI_FINISH_STOP
                      : st.stopped_by == GEN_STOP_CALLER ? PHI_FINISH_CALLBACK : PHI_FINISH_LENGTH;
        res->seconds = st.gen_s;
        res->n_drafted = st.n_drafted;
        res->n_accepted = st.n_accepted;
    }
    if (st.stopped_by == GEN_STOP_NONFINITE)
        return fail(PHI_ERR_MODEL, "the model produced non-finite logits (a corrupt weight?)");
    return PHI_OK;
}

/* ---- LoRA adapters ---- */

struct phi_lora {
    const phi_model *pm;
    LoraAdapter *ad;
    char path[1024];
};

int phi_lora_load(const phi_model *pm, const char *path, phi_lora **out) {
    if (!out) return fail(PHI_ERR_ARG, "phi_lora_load: out is NULL");
    *out = NULL;
    if (!pm || !path) return fail(PHI_ERR_ARG, "phi_lora_load: model or path is NULL");
    phi_lora *a = calloc(1, sizeof *a);
    if (!a) return fail(PHI_ERR_NOMEM, "out of memory");
    /* lora_load checks every piece against the model's shape (lora_adapter_check) */
    if (!(a->ad = lora_load(path, &pm->m.hp, last_error, sizeof last_error))) {
        free(a);
        return PHI_ERR_LORA;
    }
    a->pm = pm;
    snprintf(a->path, sizeof a->path, "%s", path);
    *out = a;
    return PHI_OK;
}

void phi_lora_free(phi_lora *a) {
    if (!a) return;
    lora_adapter_free(a->ad);
    free(a);
}

const char *phi_lora_path(const phi_lora *a) { return a ? a->path : ""; }
const LoraAdapter *phi_lora_adapter(const phi_lora *a) { return a ? a->ad : NULL; }

int phi_session_n_loras(const phi_session *s) { return s ? s->n_lora : 0; }

int phi_session_set_loras(phi_session *s, const phi_lora *const *a, const float *scales, int n) {
    if (!s || n < 0 || (n && (!a || !scales))) return fail(PHI_ERR_ARG, "phi_session_set_loras: bad arguments");
    for (int i = 0; i < n; i++) {
        if (!a[i]) return fail(PHI_ERR_ARG, "phi_session_set_loras: adapter %d is NULL", i);
        if (a[i]->pm != s->pm) return fail(PHI_ERR_ARG, "%s was loaded for another model", a[i]->path);
        if (!(scales[i] - scales[i] == 0)) return fail(PHI_ERR_ARG, "%s: the scale is not a finite number", a[i]->path);
    }
    int same = n == s->n_lora;
    for (int i = 0; same && i < n; i++) same = a[i] == s->la[i] && scales[i] == s->ls[i];
    if (same) return PHI_OK; /* the cache was computed with this very set: keep it */
    LoraSet *set = n ? lora_set_new(&s->pm->m.hp) : NULL;
    const phi_lora **la = n ? malloc((size_t)n * sizeof *la) : NULL;
    float *ls = n ? malloc((size_t)n * sizeof *ls) : NULL;
    if (n && (!set || !la || !ls)) {
        lora_set_free(set), free(la), free(ls);
        return fail(PHI_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (lora_set_add(set, a[i]->ad, scales[i], last_error, sizeof last_error)) {
            lora_set_free(set), free(la), free(ls);
            return PHI_ERR_LORA;
        }
        la[i] = a[i];
        ls[i] = scales[i];
    }
    lora_set_free(s->lora);
    free(s->la);
    free(s->ls);
    s->lora = set;
    s->la = la;
    s->ls = ls;
    s->n_lora = n;
    s->st.lora = set; /* NULL: the model's set, which a phi_model never has: the base */
    /* the cached positions were computed with the old set: start over (phi.h) */
    s->st.n_cached = 0;
    s->has_logits = 0;
    return PHI_OK;
}

const float *phi_session_logits(const phi_session *s) { return s && s->has_logits ? s->st.logits : NULL; }
