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
#include "app/perplexity.h"
#include "model/sampler.h"
#include "kernels/fast.h"

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

static int load(const RunOptions *o, Model *m, double *load_s) {
    char err[1024];
    if (!o->use_ref && kernels_init(NULL)) return -1; /* $PHI_ISA names kernels the CPU lacks */
    double t0 = now_seconds();
    if (model_load_ex(o->model_path, m, load_flags(o), err, sizeof err)) {
        say("%s", err);
        return -1;
    }
    if (load_s) *load_s = now_seconds() - t0;
    return 0;
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
        if (!text) say("cannot read standard input");
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

/* -c: the model's maximum, 4096 at most, unless given; never above the model's maximum. */
static int context_size(const RunOptions *o, const Model *m, int dflt) {
    long max = m->hp.max_seq_len;
    if (o->n_ctx > max) {
        say("-c %d is more than the model's %ld positions", o->n_ctx, max);
        return -1;
    }
    if (o->n_ctx > 0) return o->n_ctx;
    return max < dflt ? (int)max : dflt;
}

static int make_state(const RunOptions *o, const Model *m, int n_ctx, State *s) {
    char err[256];
    int flags = o->use_ref || o->kv_f32 ? STATE_KV_F32 : 0; /* the reference path is F32 throughout */
    if (state_init_ex(s, m, n_ctx, o->use_ref ? 1 : o->n_threads, flags, err, sizeof err)) {
        say("%s", err);
        return -1;
    }
    s->use_ref = o->use_ref;
    return 0;
}

/* Ids the vocabulary does not name (padding rows of the embedding) are never sampled. */
static int make_sampler(const RunOptions *o, const Model *m, Sampler *smp) {
    int n_valid = tok_vocab_size(m->tok);
    if (n_valid < 1 || n_valid > (int)m->hp.vocab_size) n_valid = (int)m->hp.vocab_size;
    if (sampler_init(smp, n_valid, o->temp, o->top_k, o->top_p, o->seed)) {
        say("out of memory");
        return -1;
    }
    return 0;
}

static const char *kernels_label(const RunOptions *o) {
    return o->use_ref ? "reference" : kernels_isa_name();
}

int run_generate(const RunOptions *o) {
    Model m;
    double load_s;
    if (load(o, &m, &load_s)) return 1;
    int *ids = NULL, n_ids = 0, rc = 1;
    char *text = NULL;
    State st = {0};
    Sampler smp = {0};
    if (o->ids) {
        if (parse_ids(o->ids, &ids, &n_ids)) {
            say("--ids wants comma-separated non-negative integers, got '%s'", o->ids);
            goto done;
        }
    } else {
        size_t len = 0;
        if (!(text = prompt_text(o, &len))) goto done;
        if (len == 0) {
            say("the prompt is empty");
            goto done;
        }
        int bos = o->add_bos >= 0 ? o->add_bos : tok_add_bos(m.tok);
        if (!(ids = encode(m.tok, text, len, bos, &n_ids))) goto done;
    }
    for (int i = 0; i < n_ids; i++)
        if (ids[i] >= (int)m.hp.vocab_size) {
            say("token id %d is outside the vocabulary (0..%u)", ids[i], m.hp.vocab_size - 1);
            goto done;
        }
    int n_ctx = context_size(o, &m, 4096);
    if (n_ctx < 0) goto done;
    if (n_ids > n_ctx) {
        say("the prompt has %d tokens but the context holds %d (raise -c)", n_ids, n_ctx);
        goto done;
    }
    /* The KV cache only needs room for the positions this run can reach. */
    long need = o->n_predict < 0 ? n_ctx : (long)n_ids + o->n_predict;
    if (make_state(o, &m, need < n_ctx ? (int)need : n_ctx, &st) || make_sampler(o, &m, &smp))
        goto done;
    GenOptions go = {o->n_predict, o->ignore_eos, o->ids != NULL, stdout, o->logits_path};
    GenStats gs;
    char err[1024];
    if (generate(&m, &st, &smp, ids, n_ids, &go, &gs, err, sizeof err)) {
        say("%s", err);
        goto done;
    }
    fprintf(stderr, "phi: %s x%d | load %.0f ms | prompt %d tok, %.2f tok/s | gen %d tok, %.2f tok/s%s\n",
            kernels_label(o), st.n_threads, load_s * 1e3, gs.n_prompt,
            gs.prompt_s > 0 ? gs.n_prompt / gs.prompt_s : 0, gs.n_gen,
            gs.gen_s > 0 ? gs.n_gen / gs.gen_s : 0, gs.stopped_by == 2 ? " | stopped: context full" : "");
    rc = 0;
done:
    sampler_free(&smp);
    state_free(&st);
    free(ids);
    free(text);
    model_free(&m);
    return rc;
}

int run_chat(const RunOptions *o) {
    Model m;
    if (load(o, &m, NULL)) return 1;
    int rc = 1;
    char *first = NULL;
    State st = {0};
    Sampler smp = {0};
    if (o->prompt || o->prompt_file) {
        size_t len;
        if (!(first = prompt_text(o, &len))) goto done;
    }
    int n_ctx = context_size(o, &m, 4096);
    if (n_ctx < 0 || make_state(o, &m, n_ctx, &st) || make_sampler(o, &m, &smp)) goto done;
    ChatOptions co = {o->system, first, o->interactive, {o->n_predict, 0, 0, stdout, NULL}, NULL};
    char err[1024];
    if (chat_run(&m, &st, &smp, &co, stdin, err, sizeof err)) {
        say("%s", err);
        goto done;
    }
    rc = 0;
done:
    sampler_free(&smp);
    state_free(&st);
    free(first);
    model_free(&m);
    return rc;
}

int run_tokenize(const RunOptions *o) {
    Model m;
    if (load(o, &m, NULL)) return 1;
    size_t len = 0;
    int n = 0, *ids = NULL, rc = 1;
    char *text = prompt_text(o, &len);
    if (text && (ids = encode(m.tok, text, len, o->add_bos > 0, &n))) {
        for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
        printf("\n");
        rc = 0;
    }
    free(ids);
    free(text);
    model_free(&m);
    return rc;
}

int run_detokenize(const RunOptions *o) {
    Model m;
    if (load(o, &m, NULL)) return 1;
    size_t len = 0;
    int n = 0, *ids = NULL, rc = 1;
    char *text = prompt_text(o, &len);
    if (text && parse_ids(text, &ids, &n)) {
        say("--detokenize wants comma-separated token ids");
    } else if (text) {
        int bad = -1;
        for (int i = 0; i < n && bad < 0; i++)
            if (!tok_piece(m.tok, ids[i])) bad = ids[i];
        if (bad >= 0) {
            say("token id %d is not in the vocabulary (0..%d)", bad, tok_vocab_size(m.tok) - 1);
        } else {
            TokDecoder d;
            char piece[256];
            tok_decoder_init(&d, m.tok);
            for (int i = 0; i < n; i++)
                if (tok_decoder_push(&d, ids[i], piece, sizeof piece)) fputs(piece, stdout);
            if (tok_decoder_flush(&d, piece, sizeof piece)) fputs(piece, stdout);
            printf("\n");
            rc = 0;
        }
    }
    free(ids);
    free(text);
    model_free(&m);
    return rc;
}

int run_perplexity(const RunOptions *o) {
    Model m;
    double load_s;
    if (load(o, &m, &load_s)) return 1;
    char err[1024];
    size_t len = 0;
    char *text = read_file(o->ppl_path, &len, err, sizeof err);
    int rc = 1, n = 0, *ids = NULL;
    State st = {0};
    PplOptions po = {o->ppl_all ? PPL_ALL : PPL_LLAMA, 0, o->ppl_chunks, o->save_logits,
                     o->kl_base, isatty(2)};
    if (!text) {
        say("cannot read %s", err);
        goto done;
    }
    if ((po.n_ctx = context_size(o, &m, 512)) < 0) goto done;
    if (len > 0) n = tok_encode(m.tok, text, len, 0, NULL, 0, err, sizeof err);
    if (n < 0) {
        say("%s: %s", o->ppl_path, err);
        goto done;
    }
    if (n == 0) {
        say("%s: the text is empty", o->ppl_path);
        goto done;
    }
    if (!(ids = malloc((size_t)n * sizeof *ids))) {
        say("out of memory");
        goto done;
    }
    tok_encode(m.tok, text, len, 0, ids, n, err, sizeof err);
    if (make_state(o, &m, po.n_ctx, &st)) goto done;
    PplResult r;
    if (perplexity_run(&m, &st, ids, n, &po, &r, err, sizeof err)) {
        say("%s", err);
        goto done;
    }
    uint64_t n_weights = 0;
    for (uint32_t i = 0; i < m.file.n_tensors; i++)
        n_weights += m.file.tensors[i].ne[0] * (m.file.tensors[i].ndim == 2 ? m.file.tensors[i].ne[1] : 1);
    printf("model: %llu weights, %llu bytes, %.3f bits per weight (whole file)\n",
           (unsigned long long)n_weights, (unsigned long long)m.map_size,
           n_weights ? 8.0 * (double)m.map_size / (double)n_weights : 0.0);
    perplexity_print(stdout, &po, &r);
    fprintf(stderr, "phi: %s x%d | load %.0f ms | perplexity %ld tok in %.2f s, %.2f tok/s\n",
            kernels_label(o), st.n_threads, load_s * 1e3, r.n_evaluated, r.seconds,
            r.seconds > 0 ? r.n_evaluated / r.seconds : 0);
    rc = 0;
done:
    state_free(&st);
    free(ids);
    free(text);
    model_free(&m);
    return rc;
}

int run_bench(const RunOptions *o) {
    Model m;
    if (load(o, &m, NULL)) return 1;
    char err[512];
    BenchOptions bo = {o->bench_pp, o->bench_tg, o->bench_depth, o->bench_reps, o->n_threads,
                       o->use_ref};
    int rc = bench_run(&m, &bo, stdout, err, sizeof err);
    model_free(&m);
    return rc ? say("%s", err) : 0;
}
