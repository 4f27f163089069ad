#include "app/run.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/bench.h"
#include "app/chat.h"
#include "base/cpu.h"
#include "base/fileio.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/lora.h"
#include "convert/lora_load.h"
#include "app/perplexity.h"
#include "app/prompt_cache.h"
#include "model/sampler.h"
#include "kernels/kernels.h"

static int say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("phi: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* Copy the weights into huge-page memory (faster generation) unless told otherwise, or unless
 * the model would not fit in available memory with room to spare: then map the file. */
static int load_flags(const RunOptions *o) {
    if (o->no_mmap >= 0) return o->no_mmap ? MODEL_LOAD_COPY : 0;
    struct stat st;
    if (stat(o->model_path, &st)) return 0;
    unsigned long long avail = mem_available_bytes();
    return avail > (unsigned long long)st.st_size + (512ull << 20) ? MODEL_LOAD_COPY : 0;
}

/* The prompt text from -p, -f or standard input (malloc'd), or NULL after an error line. */
static char *prompt_text(const RunOptions *o, size_t *len) {
    char *text;
    if (o->prompt) {
        *len = strlen(o->prompt);
        text = strdup(o->prompt);
    } else if (o->prompt_file) {
        char err[512];
        text = read_file(o->prompt_file, len, err, sizeof err);
        if (!text) say("cannot read %s", err);
        return text;
    } else {
        text = read_stream(stdin, len);
        if (!text) say("cannot read standard input: %s", errno == EFBIG ? "too large (at most 1 GiB or a "
                       "quarter of the available memory)" : strerror(errno));
        return text;
    }
    if (!text) say("out of memory");
    return text;
}

/* "1,2,3" (spaces and a trailing newline allowed) -> ids; -1 on anything else. */
static int parse_ids(const char *s, int **ids, int *n) {
    int cap = 16, k = 0;
    int *v = malloc((size_t)cap * sizeof *v);
    const char *p = s;
    while (v) {
        char *end;
        while (*p == ' ') p++;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT_MAX) break;
        if (k == cap) {
            int *nv = realloc(v, 2 * (size_t)cap * sizeof *v);
            if (!nv) break;
            v = nv;
            cap *= 2;
        }
        v[k++] = (int)x;
        while (*end == ' ' || *end == '\n' || *end == '\r') end++;
        if (*end == 0) {
            *ids = v;
            *n = k;
            return 0;
        }
        if (*end != ',') break;
        p = end + 1;
    }
    free(v);
    return -1;
}

static int *encode(const Tokenizer *t, const char *text, size_t len, int bos, int *n) {
    char err[256];
    int need = tok_encode(t, text, len, bos, NULL, 0, err, sizeof err);
    if (need < 0) {
        say("prompt: %s", err);
        return NULL;
    }
    int *ids = malloc((size_t)(need ? need : 1) * sizeof *ids);
    if (!ids) {
        say("out of memory");
        return NULL;
    }
    *n = tok_encode(t, text, len, bos, ids, need, err, sizeof err);
    return ids;
}

/* What a mode works with; everything in it is released by session_close. */
typedef struct {
    Model m;
    State st;       /* modes that evaluate: session_state */
    Sampler smp;    /* modes that sample: session_sampler */
    char *text;     /* the prompt or input text */
    int *ids, n_ids;
    double load_s;  /* seconds the model took to load */
    LoraAdapter **adapters; /* loaded LoRA adapters (attached to m unless detached) */
    int n_adapters;
} Session;

/* A mode: 0, or 1 after printing its error line. */
typedef int (*Mode)(const RunOptions *o, Session *S);

/* Every mode's standard output is checked at its end: a full disk (> /dev/full), a closed pipe
 * while SIGPIPE is ignored. (With SIGPIPE at its default a closed pipe ends phi at its next write,
 * quietly, as it ends cat or grep; generation flushes every token, so that is at once.) */
static int flush_stdout(void) {
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return 0;
    return say("cannot write the output: %s", strerror(errno ? errno : EIO));
}

/* Load a LoRA adapter and attach it to the model with user scale s: 0, or 1 after its line. */
static int session_lora(Session *S, const char *path, float s) {
    char err[1024];
    LoraAdapter **a = realloc(S->adapters, (size_t)(S->n_adapters + 1) * sizeof *a);
    if (!a) return say("out of memory");
    S->adapters = a;
    LoraAdapter *ad = lora_load(path, &S->m.hp, err, sizeof err);
    if (!ad) return say("%s", err);
    if (lora_attach(&S->m, ad, s, err, sizeof err)) {
        lora_adapter_free(ad);
        return say("%s", err);
    }
    S->adapters[S->n_adapters++] = ad;
    return 0;
}

/* Detach and free every adapter. */
static void session_lora_off(Session *S) {
    lora_detach_all(&S->m);
    for (int i = 0; i < S->n_adapters; i++) lora_adapter_free(S->adapters[i]);
    free(S->adapters);
    S->adapters = NULL;
    S->n_adapters = 0;
}

/* Load the model, run the mode, release everything: the process exit status. */
static int with_model(const RunOptions *o, Mode mode) {
    if (!o->use_ref && kernels_init(NULL)) return 1; /* $PHI_ISA names kernels the CPU lacks */
    Session S;
    memset(&S, 0, sizeof S);
    char err[1024];
    double t0 = now_seconds();
    if (model_load_ex(o->model_path, &S.m, load_flags(o), err, sizeof err)) return say("%s", err);
    S.load_s = now_seconds() - t0;
    int rc = 0;
    for (int i = 0; i < o->n_lora && !rc; i++) rc = session_lora(&S, o->lora_path[i], o->lora_scale[i]);
    if (!rc) rc = mode(o, &S);
    if (rc == 0) rc = flush_stdout();
    session_lora_off(&S);
    sampler_free(&S.smp);
    state_free(&S.st);
    free(S.ids);
    free(S.text);
    model_free(&S.m);
    return rc;
}

/* -c: the model's maximum, dflt at most, unless given; never above the model's maximum. */
static int context_size(const RunOptions *o, const Model *m, int dflt) {
    long max = m->hp.max_seq_len;
    if (o->n_ctx > max) {
        say("-c %d is more than the model's %ld positions", o->n_ctx, max);
        return -1;
    }
    if (o->n_ctx > 0) return o->n_ctx;
    return max < dflt ? (int)max : dflt;
}

static int session_state(const RunOptions *o, Session *S, int n_ctx) {
    char err[256];
    int flags = STATE_CACHE_K(o->cache_type_k) | STATE_CACHE_V(o->cache_type_v);
    if (state_init_ex(&S->st, &S->m, n_ctx, o->use_ref ? 1 : o->n_threads, flags, err, sizeof err))
        return say("%s", err);
    S->st.use_ref = o->use_ref;
    return 0;
}

/* Whether two paths name the same existing file. */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The one vocabulary rule: the ids 0 .. named_ids() - 1 are the ones the tokenizer names. The
 * rows of the embedding past them (Phi-3's padding rows 32011..32063) are never sampled, and a
 * user's ids (--ids, --detokenize) are refused there by check_ids: a model never saw them. */
static int named_ids(const Model *m) {
    int n = tok_vocab_size(m->tok);
    return n < 1 || n > (int)m->hp.vocab_size ? (int)m->hp.vocab_size : n;
}

static int check_ids(const Model *m, const int *ids, int n) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= named_ids(m))
            return say("token id %d is not in the vocabulary (0..%d)", ids[i], named_ids(m) - 1);
    return 0;
}

static int session_sampler(const RunOptions *o, Session *S) {
    int n_valid = named_ids(&S->m);
    int last_n = o->repeat_last_n < 0 ? S->st.n_ctx : o->repeat_last_n;
    if (sampler_init(&S->smp, n_valid, o->temp, o->top_k, o->top_p, o->seed) ||
        sampler_set_penalties(&S->smp, last_n, o->repeat_penalty, o->frequency_penalty, o->presence_penalty))
        return say("out of memory");
    sampler_set_min_p(&S->smp, o->min_p);
    return 0;
}

static const char *kernels_label(const RunOptions *o) {
    return o->use_ref ? "reference" : kernels_isa_name();
}

/* --verbose-prompt, as llama.cpp's: the prompt's token count, then one line per token: the id
 * and its piece as the vocabulary spells it (quoted; control bytes escaped). */
static void verbose_prompt(const Tokenizer *t, const int *ids, int n) {
    fprintf(stderr, "phi: prompt: %d tokens\n", n);
    for (int i = 0; i < n; i++) {
        const char *p = tok_piece(t, ids[i]);
        fprintf(stderr, "%6d -> '", ids[i]);
        for (; p && *p; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch < 0x20 || ch == 0x7f) fprintf(stderr, "\\x%02x", ch);
            else fputc(ch, stderr);
        }
        fputs("'\n", stderr);
    }
}

static int generate_mode(const RunOptions *o, Session *S) {
    const Model *m = &S->m;
    if (o->ids) {
        if (parse_ids(o->ids, &S->ids, &S->n_ids))
            return say("--ids wants comma-separated non-negative integers, got '%s'", o->ids);
    } else {
        size_t len = 0;
        if (!(S->text = prompt_text(o, &len))) return 1;
        if (len == 0) return say("the prompt is empty");
        int bos = o->add_bos >= 0 ? o->add_bos : tok_add_bos(m->tok);
        if (!(S->ids = encode(m->tok, S->text, len, bos, &S->n_ids))) return 1;
    }
    if (check_ids(m, S->ids, S->n_ids)) return 1;
    int n_ctx = context_size(o, m, 4096);
    if (n_ctx < 0) return 1;
    /* The KV cache only needs room for the positions this run can reach (generate() says when
     * the prompt does not fit). */
    long long need = o->n_predict < 0 ? n_ctx : (long long)S->n_ids + o->n_predict; /* 64 bits: -n INT_MAX on 32-bit */
    if (session_state(o, S, need < n_ctx ? (int)need : n_ctx) || session_sampler(o, S)) return 1;
    PromptCacheKey key;
    int reused = 0;
    if (o->prompt_cache) {
        if (same_file(o->prompt_cache, o->model_path)) return say("--prompt-cache %s is the model file", o->prompt_cache);
        if (S->n_adapters) return say("%s", "--prompt-cache and --lora do not go together (the adapters change the keys and values)");
        prompt_cache_key(m, &S->st, n_ctx, &key);
        if (!o->logits_path) reused = prompt_cache_load(o->prompt_cache, &key, &S->st, m, S->ids, S->n_ids);
        fprintf(stderr, "phi: prompt cache: %d of %d prompt tokens reused\n", reused, S->n_ids);
    }
    for (int i = 0; i < S->n_ids; i++) sampler_accept(&S->smp, S->ids[i]); /* as llama.cpp: the prompt counts */
    if (o->verbose_prompt) verbose_prompt(m->tok, S->ids, S->n_ids);
    GenOptions go = {o->n_predict, o->ignore_eos, o->ids != NULL, stdout, o->logits_path, NULL, o->special, o->draft_max};
    GenStats gs;
    char err[1024];
    if (generate_from(m, &S->st, &S->smp, S->ids, S->n_ids, reused, &go, &gs, err, sizeof err)) return say("%s", err);
    /* the prompt's positions are untouched by generation (it writes the ones after) */
    if (o->prompt_cache && !o->prompt_cache_ro && reused < S->n_ids - 1)
        prompt_cache_save(o->prompt_cache, &key, &S->st, m, S->ids, S->n_ids);
    if (o->seed_from_clock) fprintf(stderr, "phi: seed %llu\n", (unsigned long long)o->seed);
    char look[128] = "";
    if (o->draft_max && lookup_exact(m, &S->st))
        snprintf(look, sizeof look, " | lookup: %d drafted, %d accepted (%.0f%%)", gs.n_drafted, gs.n_accepted,
                 gs.n_drafted ? 100.0 * gs.n_accepted / gs.n_drafted : 0.0);
    else if (o->draft_max)
        snprintf(look, sizeof look, " | lookup: off (a LoRA adapter, or K-quant weights these kernels do not batch bit-exactly)");
    if (o->perf >= 0)
        fprintf(stderr, "phi: %s x%d | load %.0f ms | prompt %d tok, %.2f tok/s | gen %d tok, %.2f tok/s%s%s\n",
                kernels_label(o), S->st.n_threads, S->load_s * 1e3, gs.n_prompt,
                gs.prompt_s > 0 ? gs.n_prompt / gs.prompt_s : 0, gs.n_gen,
                gs.gen_s > 0 ? gs.n_gen / gs.gen_s : 0, look,
                gs.stopped_by == GEN_STOP_CONTEXT ? " | stopped: context full" : "");
    return 0;
}

/* Interactive chat's /lora DIR [S] (attach another adapter, scale S, default 1) and /lora off
 * (detach them all): 1 when the line was one of them (a failure prints its line and the chat goes
 * on), 0 otherwise. */
static int chat_command(void *ctx, const char *line) {
    Session *S = ctx;
    if (strncmp(line, "/lora", 5) || (line[5] && line[5] != ' ')) return 0;
    const char *p = line + 5;
    while (*p == ' ') p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\r')) n--;
    if (n == 0) {
        say("/lora DIR [SCALE] attaches an adapter, /lora off detaches all (%d attached)", lora_set_count(S->m.lora));
        return 1;
    }
    if (n == 3 && !strncmp(p, "off", 3)) {
        session_lora_off(S);
        fprintf(stderr, "phi: LoRA adapters detached\n");
        return 1;
    }
    char *dir = strndup(p, n), *sp, *end;
    if (!dir) return say("out of memory"), 1;
    sp = strrchr(dir, ' ');
    float s = 1.0f;
    if (sp) {
        s = strtof(sp + 1, &end);
        if (end == sp + 1 || *end || !(s > -1e6f && s < 1e6f)) s = 1.0f; /* part of the folder name */
        else *sp = 0;
    }
    if (session_lora(S, dir, s) == 0)
        fprintf(stderr, "phi: attached LoRA adapter %s with scale %g (%d attached)\n", dir, (double)s,
                lora_set_count(S->m.lora));
    free(dir);
    return 1;
}

static int chat_mode(const RunOptions *o, Session *S) {
    size_t len;
    if ((o->prompt || o->prompt_file) && !(S->text = prompt_text(o, &len))) return 1;
    int n_ctx = context_size(o, &S->m, 4096);
    if (n_ctx < 0 || session_state(o, S, n_ctx) || session_sampler(o, S)) return 1;
    PromptCacheKey key;
    if (o->prompt_cache) {
        if (same_file(o->prompt_cache, o->model_path)) return say("--prompt-cache %s is the model file", o->prompt_cache);
        if (S->n_adapters) return say("%s", "--prompt-cache and --lora do not go together (the adapters change the keys and values)");
        prompt_cache_key(&S->m, &S->st, n_ctx, &key);
    }
    ChatOptions co = {o->system, S->text, o->interactive, {o->n_predict, o->ignore_eos, 0, stdout, NULL, NULL, o->special, o->draft_max}, NULL,
                      chat_command, S, o->perf > 0, o->prompt_cache, o->prompt_cache_ro, &key};
    char err[1024];
    if (chat_run(&S->m, &S->st, &S->smp, &co, stdin, err, sizeof err)) return say("%s", err);
    if (o->seed_from_clock) fprintf(stderr, "phi: seed %llu\n", (unsigned long long)o->seed);
    return 0;
}

static int tokenize_mode(const RunOptions *o, Session *S) {
    size_t len = 0;
    if (!(S->text = prompt_text(o, &len)) ||
        !(S->ids = encode(S->m.tok, S->text, len, o->add_bos > 0, &S->n_ids)))
        return 1;
    for (int i = 0; i < S->n_ids; i++) printf(i ? ",%d" : "%d", S->ids[i]);
    printf("\n");
    return 0;
}

static int detokenize_mode(const RunOptions *o, Session *S) {
    size_t len = 0;
    const Tokenizer *tok = S->m.tok;
    if (!(S->text = prompt_text(o, &len))) return 1;
    if (parse_ids(S->text, &S->ids, &S->n_ids)) return say("--detokenize wants comma-separated token ids");
    if (check_ids(&S->m, S->ids, S->n_ids)) return 1;
    TokDecoder d;
    char piece[256];
    tok_decoder_init(&d, tok);
    d.special = o->special;
    for (int i = 0; i < S->n_ids; i++)
        if (tok_decoder_push(&d, S->ids[i], piece, sizeof piece)) fputs(piece, stdout);
    if (tok_decoder_flush(&d, piece, sizeof piece)) fputs(piece, stdout);
    printf("\n");
    return 0;
}

static int perplexity_mode(const RunOptions *o, Session *S) {
    const Model *m = &S->m;
    char err[1024];
    size_t len = 0;
    int n = 0;
    PplOptions po = {o->ppl_all ? PPL_ALL : PPL_LLAMA, 0, o->ppl_chunks, o->save_logits,
                     o->kl_base, isatty(2)};
    if (!(S->text = read_file(o->ppl_path, &len, err, sizeof err))) return say("cannot read %s", err);
    if ((po.n_ctx = context_size(o, m, 512)) < 0) return 1;
    if (len > 0) n = tok_encode(m->tok, S->text, len, 0, NULL, 0, err, sizeof err);
    if (n < 0) return say("%s: %s", o->ppl_path, err);
    if (n == 0) return say("%s: the text is empty", o->ppl_path);
    if (!(S->ids = malloc((size_t)n * sizeof *S->ids))) return say("out of memory");
    tok_encode(m->tok, S->text, len, 0, S->ids, n, err, sizeof err);
    if (session_state(o, S, po.n_ctx)) return 1;
    PplResult r;
    if (perplexity_run(m, &S->st, S->ids, n, &po, &r, err, sizeof err)) return say("%s", err);
    uint64_t n_weights = 0;
    for (uint32_t i = 0; i < m->file.n_tensors; i++)
        n_weights += m->file.tensors[i].ne[0] * (m->file.tensors[i].ndim == 2 ? m->file.tensors[i].ne[1] : 1);
    printf("model: %llu weights, %llu bytes, %.3f bits per weight (whole file)\n",
           (unsigned long long)n_weights, (unsigned long long)m->map_size,
           n_weights ? 8.0 * (double)m->map_size / (double)n_weights : 0.0);
    perplexity_print(stdout, &po, &r);
    if (flush_stdout()) return 1;
    fprintf(stderr, "phi: %s x%d | load %.0f ms | perplexity %ld tok in %.2f s, %.2f tok/s\n",
            kernels_label(o), S->st.n_threads, S->load_s * 1e3, r.n_evaluated, r.seconds,
            r.seconds > 0 ? r.n_evaluated / r.seconds : 0);
    return 0;
}

static int bench_mode(const RunOptions *o, Session *S) {
    char err[512];
    BenchOptions bo = {o->bench_pp, o->bench_tg, o->bench_depth, o->bench_reps, o->n_threads,
                       o->use_ref, o->bench_n_np, {0},
                       STATE_CACHE_K(o->cache_type_k) | STATE_CACHE_V(o->cache_type_v)};
    for (int k = 0; k < o->bench_n_np && k < BENCH_MAX_NP; k++) bo.np[k] = o->bench_np[k];
    return bench_run(&S->m, &bo, stdout, err, sizeof err) ? say("%s", err) : 0;
}

int run_generate(const RunOptions *o) { return with_model(o, generate_mode); }
int run_chat(const RunOptions *o) { return with_model(o, chat_mode); }
int run_tokenize(const RunOptions *o) { return with_model(o, tokenize_mode); }
int run_detokenize(const RunOptions *o) { return with_model(o, detokenize_mode); }
int run_perplexity(const RunOptions *o) { return with_model(o, perplexity_mode); }
int run_bench(const RunOptions *o) { return with_model(o, bench_mode); }
