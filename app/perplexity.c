/* Perplexity over windows of a text, and KL divergence against saved base logits. The methods
 * and the logits file are described in perplexity.h. */
#include "base/errmsg.h"
#include "app/perplexity.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cpu.h"
#include "model/generate.h"

static const char LOGITS_MAGIC[8] = {'P', 'H', 'I', 'L', 'O', 'G', 'I', 'T'};

/* ---- how the token stream is cut ---- */

typedef struct {
    PplMethod method;
    int n_ctx, n_chunks;
    int first, n_score; /* scored positions of a chunk: [first, first + n_score) */
    const int *ids;
    int n_ids, bos;
} Plan;

int perplexity_min_ctx(PplMethod method) { return method == PPL_LLAMA ? 3 : 1; }

static const char *method_name(PplMethod m) { return m == PPL_LLAMA ? "llama.cpp" : "all tokens"; }

static int plan_make(Plan *p, const Model *m, const int *ids, int n_ids, const PplOptions *o,
                     char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    p->method = o->method;
    p->n_ctx = o->n_ctx;
    p->ids = ids;
    p->n_ids = n_ids;
    p->bos = (int)m->hp.bos_id;
    if (o->n_ctx < perplexity_min_ctx(o->method))
        return errorf(err, errlen, "-c %d is too small for perplexity with the %s method (at least %d)",
                    o->n_ctx, method_name(o->method), perplexity_min_ctx(o->method));
    if (o->method == PPL_LLAMA) {
        p->n_chunks = (int)(((long)n_ids + 1) / o->n_ctx); /* the stream is [BOS] + ids */
        p->first = o->n_ctx / 2;
        p->n_score = o->n_ctx - 1 - p->first;
    } else {
        p->n_chunks = n_ids / o->n_ctx;
        p->first = 0;
        p->n_score = o->n_ctx;
    }
    if (p->n_chunks < 1)
        return errorf(err, errlen, "the text has %d tokens, less than one window of -c %d (lower -c)",
                    n_ids + (o->method == PPL_LLAMA), o->n_ctx);
    if (o->max_chunks > 0 && p->n_chunks > o->max_chunks) p->n_chunks = o->max_chunks;
    return 0;
}

/* Chunk c's n_ctx input tokens, and targets[j] = the token position j predicts (scored j only). */
static void chunk_tokens(const Plan *p, int c, int *toks, int *targets) {
    int n = p->n_ctx;
    if (p->method == PPL_LLAMA) {
        /* stream[k] = k ? ids[k - 1] : BOS; the chunk's first token becomes BOS as well */
        long base = (long)c * n;
        for (int j = 0; j < n; j++) toks[j] = base + j == 0 ? p->bos : p->ids[base + j - 1];
        toks[0] = p->bos;
        for (int j = p->first; j < p->first + p->n_score; j++) targets[j] = toks[j + 1];
    } else {
        const int *w = p->ids + (long)c * n;
        toks[0] = p->bos;
        for (int j = 1; j < n; j++) toks[j] = w[j - 1];
        for (int j = 0; j < n; j++) targets[j] = w[j];
    }
}

/* FNV-1a 64 over every chunk's inputs then scored targets, as int32 little-endian. */
static uint64_t plan_hash(const Plan *p, int *toks, int *targets) {
    uint64_t h = 1469598103934665603ull;
    for (int c = 0; c < p->n_chunks; c++) {
        chunk_tokens(p, c, toks, targets);
        for (int k = 0; k < p->n_ctx + p->n_score; k++) {
            uint32_t v = (uint32_t)(k < p->n_ctx ? toks[k] : targets[p->first + k - p->n_ctx]);
            for (int b = 0; b < 4; b++) h = (h ^ ((v >> (8 * b)) & 0xff)) * 1099511628211ull;
        }
    }
    return h;
}

/* ---- the saved logits file ---- */

typedef struct {
    uint32_t vocab, n_ctx, method, n_chunks;
    uint64_t n_scored, token_hash;
} LogitsHeader;

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static void header_encode(const LogitsHeader *h, uint8_t *b) {
    memset(b, 0, PPL_LOGITS_HEADER);
    memcpy(b, LOGITS_MAGIC, 8);
    put_u32(b + 8, 1);
    put_u32(b + 12, PPL_LOGITS_HEADER);
    put_u32(b + 16, h->vocab);
    put_u32(b + 20, h->n_ctx);
    put_u32(b + 24, h->method);
    put_u32(b + 28, h->n_chunks);
    put_u64(b + 32, h->n_scored);
    put_u64(b + 40, h->token_hash);
}

/* Open a --kl-base file and check it was made by a run identical to this one but for the model. */
static FILE *base_open(const char *path, const LogitsHeader *want, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errorf(err, errlen, "--kl-base %s: %s", path, strerror(errno));
        return NULL;
    }
    uint8_t b[PPL_LOGITS_HEADER];
    struct stat st;
    const char *why = NULL;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) why = "not a regular file";
    else if (fread(b, 1, sizeof b, f) != sizeof b || memcmp(b, LOGITS_MAGIC, 8))
        why = "not a logits file written by phi --save-logits";
    else if (get_u32(b + 8) != 1 || get_u32(b + 12) != PPL_LOGITS_HEADER)
        why = "unknown logits file version (this phi reads version 1)";
    if (why) {
        errorf(err, errlen, "--kl-base %s: %s", path, why);
        fclose(f);
        return NULL;
    }
    LogitsHeader h = {get_u32(b + 16), get_u32(b + 20), get_u32(b + 24), get_u32(b + 28),
                      get_u64(b + 32), get_u64(b + 40)};
    uint64_t size = PPL_LOGITS_HEADER + h.n_scored * h.vocab * 4ull;
    if (h.vocab != want->vocab)
        errorf(err, errlen, "--kl-base %s: saved from a model with %u vocabulary rows, this one has %u",
             path, h.vocab, want->vocab);
    else if (h.method != want->method || h.n_ctx != want->n_ctx || h.n_chunks != want->n_chunks)
        errorf(err, errlen, "--kl-base %s: saved by a %s run with -c %u over %u chunks; this run is %s, -c %u, %u chunks",
             path, h.method == PPL_LLAMA ? "llama.cpp-method" : h.method == PPL_ALL ? "--ppl-all" : "unknown-method",
             h.n_ctx, h.n_chunks, want->method == PPL_LLAMA ? "llama.cpp-method" : "--ppl-all",
             want->n_ctx, want->n_chunks);
    else if (h.token_hash != want->token_hash || h.n_scored != want->n_scored)
        errorf(err, errlen, "--kl-base %s: its tokens differ from this run's (another text or tokenizer)", path);
    else if ((uint64_t)st.st_size != size)
        errorf(err, errlen, "--kl-base %s: %s: %llu bytes, expected %llu", path,
             (uint64_t)st.st_size < size ? "truncated" : "trailing bytes",
             (unsigned long long)st.st_size, (unsigned long long)size);
    else
        return f;
    fclose(f);
    return NULL;
}

/* ---- scoring ---- */

/* log(sum(exp(l))) in double, and the argmax (lowest id on ties). */
static double log_sum_exp(const float *l, int n, int *argmax) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    double mx = l[best], sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - mx);
    *argmax = best;
    return mx + log(sum);
}

typedef struct {
    double nll, nll2;
    long n;
    double *kl; /* per scored position, with a base */
    double kl_sum, kl2, dsum, dmax;
    long agree;
} Acc;

/* Score one position: NLL of the target, and when base is given, KL(base || this) etc. */
static void score_position(Acc *a, const float *l, const float *base, int vocab, int target) {
    int top;
    double lse = log_sum_exp(l, vocab, &top);
    double nll = lse - l[target];
    a->nll += nll;
    a->nll2 += nll * nll;
    if (base) {
        int btop;
        double blse = log_sum_exp(base, vocab, &btop), kl = 0, dsum = 0, dmax = 0;
        for (int i = 0; i < vocab; i++) {
            double lpb = base[i] - blse, lp = l[i] - lse, d = fabs((double)l[i] - base[i]);
            kl += exp(lpb) * (lpb - lp);
            dsum += d;
            if (d > dmax) dmax = d;
        }
        if (kl < 0) kl = 0; /* rounding when the distributions are equal */
        a->kl[a->n] = kl;
        a->kl_sum += kl;
        a->kl2 += kl * kl;
        a->dsum += dsum;
        if (dmax > a->dmax) a->dmax = dmax;
        a->agree += top == btop;
    }
    a->n++;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The q-quantile of sorted v[0..n), linearly interpolated between order statistics. */
static double quantile(const double *v, long n, double q) {
    double pos = q * (double)(n - 1);
    long i = (long)pos;
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

/* mean and standard error of the mean from a sum and a sum of squares (as llama.cpp does) */
static void mean_stderr(double sum, double sum2, long n, double *mean, double *se) {
    *mean = sum / (double)n;
    double var = sum2 / (double)n - *mean * *mean;
    *se = n > 1 && var > 0 ? sqrt(var / (double)(n - 1)) : 0;
}

static void progress_draw(const Plan *p, int c, const Acc *a, double t0) {
    double el = now_seconds() - t0, mean = a->nll / (double)(a->n ? a->n : 1);
    double eta = c ? el / c * (p->n_chunks - c) : 0;
    fprintf(stderr, "\rperplexity: chunk %d/%d, %.1f s (%.0f s left), ppl so far %.4f   ", c,
            p->n_chunks, el, eta, exp(mean));
    if (c == p->n_chunks) fputc('\n', stderr);
    fflush(stderr);
}

int perplexity_run(const Model *m, State *s, const int *ids, int n_ids, const PplOptions *o,
                   PplResult *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    Plan p;
    if (plan_make(&p, m, ids, n_ids, o, err, errlen)) return -1;
    if (p.n_ctx > s->n_ctx)
        return errorf(err, errlen, "-c %d is more than the state's %d positions", p.n_ctx, s->n_ctx);
    const PhiHParams *hp = &m->hp;
    int vocab = (int)hp->vocab_size;
    /* LongRoPE picks its factor set from the length of a forward call: a window longer than the
     * original context must run as one call, as it would in one pass. Otherwise the unscored
     * prefix runs without logits and the rest in pieces of n_batch positions. */
    int single = hp->rope_scaling == PHI_ROPE_LONGROPE && (uint32_t)p.n_ctx > hp->orig_max_seq_len;
    int run_end = p.first + p.n_score, piece = single ? p.n_ctx : s->n_batch;
    long n_total = (long)p.n_chunks * p.n_score;
    int *toks = malloc((size_t)p.n_ctx * sizeof *toks), *targets = malloc((size_t)p.n_ctx * sizeof *targets);
    float *logits = malloc((size_t)piece * vocab * sizeof(float));
    float *base = o->kl_base ? malloc((size_t)vocab * sizeof(float)) : NULL;
    Acc a = {0};
    if (o->kl_base) a.kl = malloc((size_t)n_total * sizeof(double));
    FILE *fb = NULL, *fs = NULL;
    int rc = -1;
    int created = 0;
    if (!toks || !targets || !logits || (o->kl_base && (!base || !a.kl))) {
        errorf(err, errlen, "out of memory for %d x %d logits", piece, vocab);
        goto done;
    }
    LogitsHeader h = {(uint32_t)vocab, (uint32_t)p.n_ctx, (uint32_t)p.method, (uint32_t)p.n_chunks,
                      (uint64_t)n_total, plan_hash(&p, toks, targets)};
    if (o->kl_base && !(fb = base_open(o->kl_base, &h, err, errlen))) goto done;
    if (o->save_logits) {
        uint8_t hb[PPL_LOGITS_HEADER];
        header_encode(&h, hb);
        fs = fopen(o->save_logits, "wb");
        if (!fs) {
            errorf(err, errlen, "cannot create %s: %s", o->save_logits, strerror(errno));
            goto done;
        }
        struct stat st;
        created = fstat(fileno(fs), &st) == 0 && S_ISREG(st.st_mode); /* never remove a device */
        if (fwrite(hb, 1, sizeof hb, fs) != sizeof hb) goto write_error;
    }

    double t0 = now_seconds();
    if (o->progress) progress_draw(&p, 0, &a, t0);
    for (int c = 0; c < p.n_chunks; c++) {
        chunk_tokens(&p, c, toks, targets);
        int j0 = 0, end = single ? p.n_ctx : run_end;
        if (!single && p.first > 0) {
            model_forward(m, s, toks, p.first, 0, NULL);
            j0 = p.first;
            r->n_evaluated += p.first;
        }
        for (; j0 < end; j0 += piece) {
            int n = end - j0 < piece ? end - j0 : piece;
            if (model_forward(m, s, toks + j0, n, j0, logits)) {
                errorf(err, errlen, "a token of the text is outside the vocabulary (0..%d)", vocab - 1);
                goto done;
            }
            r->n_evaluated += n;
            for (int i = 0; i < n; i++) {
                int j = j0 + i;
                if (j < p.first || j >= run_end) continue;
                const float *l = logits + (size_t)i * vocab;
                if (!logits_finite(l, vocab)) { /* a NaN would print as a perplexity of vocab */
                    errorf(err, errlen, "the model produced NaN or infinite logits: its weights are corrupt");
                    goto done;
                }
                if (fs && fwrite(l, sizeof(float), (size_t)vocab, fs) != (size_t)vocab) goto write_error;
                if (fb && fread(base, sizeof(float), (size_t)vocab, fb) != (size_t)vocab) {
                    errorf(err, errlen, "--kl-base %s: read error", o->kl_base);
                    goto done;
                }
                if (fb && !logits_finite(base, vocab)) {
                    errorf(err, errlen, "--kl-base %s holds NaN or infinite logits", o->kl_base);
                    goto done;
                }
                score_position(&a, l, fb ? base : NULL, vocab, targets[j]);
            }
        }
        if (o->progress) progress_draw(&p, c + 1, &a, t0);
    }
    r->seconds = now_seconds() - t0;
    if (fs) {
        int bad = fclose(fs);
        fs = NULL;
        if (bad) goto write_error;
    }

    r->n_chunks = p.n_chunks;
    r->n_scored = a.n;
    mean_stderr(a.nll, a.nll2, a.n, &r->mean_nll, &r->nll_stderr);
    r->ppl = exp(r->mean_nll);
    r->ppl_stderr = r->ppl * r->nll_stderr; /* delta method, as llama.cpp reports it */
    if (fb) {
        r->has_kl = 1;
        mean_stderr(a.kl_sum, a.kl2, a.n, &r->kl_mean, &r->kl_stderr);
        qsort(a.kl, (size_t)a.n, sizeof(double), cmp_double);
        r->kl_median = quantile(a.kl, a.n, 0.5);
        r->kl_p99 = quantile(a.kl, a.n, 0.99);
        r->kl_max = a.kl[a.n - 1];
        r->top1 = (double)a.agree / (double)a.n;
        r->dlogit_mean = a.dsum / ((double)a.n * vocab);
        r->dlogit_max = a.dmax;
    }
    rc = 0;
    goto done;
write_error:
    errorf(err, errlen, "cannot write %s: %s", o->save_logits, strerror(errno));
done:
    if (fs) fclose(fs);
    if (rc && created) remove(o->save_logits); /* no partial file is left behind */
    if (fb) fclose(fb);
    free(toks);
    free(targets);
    free(logits);
    free(base);
    free(a.kl);
    return rc;
}

void perplexity_print(FILE *f, const PplOptions *o, const PplResult *r) {
    if (o->method == PPL_LLAMA)
        fprintf(f, "method: llama.cpp, %d chunks of %d tokens ([BOS] first), positions %d..%d scored\n",
                r->n_chunks, o->n_ctx, o->n_ctx / 2, o->n_ctx - 2);
    else
        fprintf(f, "method: all tokens, %d windows of [BOS] + %d tokens, every token scored\n",
                r->n_chunks, o->n_ctx);
    fprintf(f, "scored: %ld tokens\n", r->n_scored);
    fprintf(f, "perplexity: %.4f +/- %.4f\n", r->ppl, r->ppl_stderr);
    fprintf(f, "mean NLL: %.6f +/- %.6f\n", r->mean_nll, r->nll_stderr);
    if (r->has_kl) {
        fprintf(f, "KL divergence: mean %.5g +/- %.2g, median %.5g, p99 %.5g, max %.5g\n",
                r->kl_mean, r->kl_stderr, r->kl_median, r->kl_p99, r->kl_max);
        fprintf(f, "top-1 agreement: %.4f\n", r->top1);
        fprintf(f, "logit |diff|: mean %.5f, max %.5f\n", r->dlogit_mean, r->dlogit_max);
    }
}
