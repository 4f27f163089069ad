#include "model/generate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/errmsg.h"
#include "kernels/kernels.h"
#include "model/lookup.h"

int is_stop_id(const PhiHParams *hp, int id) {
    for (uint32_t i = 0; i < hp->n_stop_ids; i++)
        if ((int)hp->stop_ids[i] == id) return 1;
    return 0;
}

static int write_logits(const char *path, const float *logits, size_t n, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    /* float32 little-endian: the in-memory layout on the little-endian hosts phi runs on */
    size_t w = fwrite(logits, sizeof(float), n, f);
    if (fclose(f) || w != n) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    return 0;
}

int logits_finite(const float *l, long n) {
    /* x - x is 0 for a finite x and NaN for NaN or an infinity: one sum, no branch per element */
    float acc = 0;
    for (long i = 0; i < n; i++) acc += l[i] - l[i];
    return acc == 0;
}

int gen_stop_error(const GenStats *st, char *err, size_t errlen) {
    if (st->stopped_by == GEN_STOP_WRITE)
        return errorf(err, errlen, "cannot write the output: %s", strerror(st->write_errno));
    if (st->stopped_by == GEN_STOP_NONFINITE)
        return errorf(err, errlen, "the model produced NaN or infinite logits: its weights are corrupt");
    return 0;
}

/* Flush the output; when it failed (a full disk; a closed pipe while SIGPIPE is ignored) record
 * why, so that generation stops at once. */
static int output_failed(FILE *out, GenStats *st) {
    errno = 0;
    if (fflush(out) == 0 && !ferror(out)) return 0;
    st->write_errno = errno ? errno : EIO;
    st->stopped_by = GEN_STOP_WRITE;
    return 1;
}

int check_fits_context(const char *what, int n, int reserve, int n_ctx, char *err, size_t errlen) {
    if ((long long)n + reserve <= n_ctx) return 0;
    return errorf(err, errlen, "%s has %d tokens but the context holds %d (raise -c)", what, n, n_ctx);
}

void gen_stream_init(GenStream *g, const Model *m, Sampler *smp, int n_predict, int ignore_stop) {
    memset(g, 0, sizeof *g);
    g->m = m;
    g->smp = smp;
    g->n_predict = n_predict;
    g->ignore_stop = ignore_stop & 1;
    tok_decoder_init(&g->dec, m->tok);
    g->dec.special = (ignore_stop & GEN_SPECIAL) != 0;
}

int gen_next(GenStream *g, const float *logits, int *id, char *piece, size_t cap, size_t *len) {
    *len = 0;
    piece[0] = 0;
    if (g->n_predict >= 0 && g->n_gen >= g->n_predict) {
        g->stopped_by = GEN_STOP_COUNT;
        return 0;
    }
    if (!logits_finite(logits, g->m->hp.vocab_size)) {
        g->stopped_by = GEN_STOP_NONFINITE;
        return 0;
    }
    int next = sampler_sample(g->smp, logits);
    if (!g->ignore_stop && is_stop_id(&g->m->hp, next)) {
        g->stopped_by = GEN_STOP_ID;
        return 0;
    }
    sampler_accept(g->smp, next); /* the penalties' history */
    g->n_gen++;
    *id = next;
    *len = tok_decoder_push(&g->dec, next, piece, cap);
    return 1;
}

int gen_more(GenStream *g, int pos, int n_ctx) {
    if (g->n_predict >= 0 && g->n_gen >= g->n_predict) {
        g->stopped_by = GEN_STOP_COUNT;
        return 0;
    }
    if (pos >= n_ctx) {
        g->stopped_by = GEN_STOP_CONTEXT;
        return 0;
    }
    return 1;
}

size_t gen_finish(GenStream *g, char *piece, size_t cap) { return tok_decoder_flush(&g->dec, piece, cap); }

/* 1 when a batch of up to LOOKUP_DRAFT_MAX + 1 rows computes for each row the bits one-token
 * decoding computes (so verifying drafts in one pass changes no greedy choice): every matrix of
 * the model has a batch-exact kernel, and no LoRA adapter is applied (lora_apply's update picks
 * threads by batch size, and its SIMD and scalar tails round differently). */
int lookup_exact(const Model *m, const State *s) {
    if (s && s->use_ref) return 1; /* the reference path runs every row alone */
    if ((s && s->lora) || m->lora) return 0;
    int need = LOOKUP_DRAFT_MAX + 1;
    if (matmul_batch_exact(m->output.type) < need) return 0;
    for (uint32_t l = 0; l < m->hp.n_layers; l++) {
        const Layer *L = &m->layers[l];
        if (matmul_batch_exact(L->wqkv.type) < need || matmul_batch_exact(L->wo.type) < need ||
            matmul_batch_exact(L->w_gate_up.type) < need || matmul_batch_exact(L->w_down.type) < need)
            return 0;
    }
    return 1;
}

/* How many of want drafts may ride in a pass evaluating a token at pos: room in the context and
 * in the budget (k drafts give at most k + 1 tokens), and no LongRoPE switch inside the pass
 * (one-token decoding rotates the positions before the threshold with the short factors, those
 * after with the long ones; model_forward picks one set per call). */
int gen_draft_room(const Model *m, const State *s, const GenStream *g, int pos, int want) {
    int k = want;
    if (k > s->n_ctx - pos - 1) k = s->n_ctx - pos - 1;
    if (g->n_predict >= 0 && k > g->n_predict - g->n_gen - 1) k = g->n_predict - g->n_gen - 1;
    if (k > s->n_batch - 1) k = s->n_batch - 1;
    uint32_t orig = m->hp.orig_max_seq_len;
    if (m->hp.rope_scaling == PHI_ROPE_LONGROPE && (uint32_t)pos + 1 <= orig && (uint32_t)(pos + k + 1) > orig)
        k = (int)orig - pos - 1;
    return k > 0 ? k : 0;
}

int gen_loop_ex(const Model *m, State *s, Sampler *smp, int pos, int n_predict, int ignore_stop,
                int draft_max, GenTokenFn cb, void *user, GenStats *st) {
    return gen_loop_drafts(m, s, smp, pos, n_predict, ignore_stop, draft_max, NULL, cb, user, st);
}

int gen_loop_drafts(const Model *m, State *s, Sampler *smp, int pos, int n_predict, int ignore_stop,
                    int draft_max, const GenDrafter *dr, GenTokenFn cb, void *user, GenStats *st) {
    GenStream g;
    gen_stream_init(&g, m, smp, n_predict, ignore_stop);
    char text[256];
    size_t len;
    int id;
    double t0 = now_seconds();
    st->n_drafted = st->n_accepted = 0;
    size_t vocab = m->hp.vocab_size;
    LookupCtl ctl;
    /* greedy only: with sampling, the drafts would need the rejection scheme to keep the
     * distribution (callers refuse --lookup with a temperature) */
    lookup_ctl_init(&ctl, smp->temp == 0 && lookup_exact(m, s) ? draft_max : 0);
    float *lbuf = ctl.max ? malloc((LOOKUP_DRAFT_MAX + 1) * vocab * sizeof(float)) : NULL;
    if (!lbuf) ctl.max = 0;
    int batch[LOOKUP_DRAFT_MAX + 1], ahead = 0, next = 0, k = 0; /* drafts batch[next..next+ahead) unchecked */
    const float *lg = s->logits;
    while (gen_next(&g, lg, &id, text, sizeof text, &len)) {
        if (cb && cb(user, id, text, len)) {
            g.stopped_by = GEN_STOP_CALLER;
            break;
        }
        if (!gen_more(&g, pos, s->n_ctx)) break;
        if (ahead > 0 && id == batch[next]) { /* a draft confirmed: its logits are computed */
            lg = lbuf + (size_t)next * vocab;
            st->n_accepted++;
            next++, ahead--, pos++;
            if (ahead == 0) lookup_ctl_update(&ctl, k, k);
            continue;
        }
        if (ahead > 0) { /* the rest of the drafts rejected: forget their positions */
            lookup_ctl_update(&ctl, k, next - 1);
            s->n_cached = pos;
            ahead = 0;
        }
        k = 0;
        int want = lookup_ctl_want(&ctl);
        if (want && (want = gen_draft_room(m, s, &g, pos, want)) > 0) {
            /* the history: the cached positions, then id at pos */
            s->tokens[pos] = id;
            k = dr ? dr->draft(dr->ctx, s->tokens, pos + 1, batch + 1, want)
                   : lookup_draft(s->tokens, pos + 1, batch + 1, want);
            k = k < 0 ? 0 : k > want ? want : k;
            for (int j = 1; j <= k; j++) /* a drafter's id outside the vocabulary ends the draft */
                if (batch[j] < 0 || (size_t)batch[j] >= vocab) k = j - 1;
        }
        batch[0] = id;
        model_forward(m, s, batch, k + 1, pos++, k ? lbuf : NULL);
        lg = k ? lbuf : s->logits;
        ahead = k, next = 1;
        st->n_drafted += k;
    }
    if (ahead > 0) s->n_cached = pos; /* drafts left unchecked at the end */
    if (lg != s->logits) memcpy(s->logits, lg, vocab * sizeof(float)); /* of position pos - 1 */
    free(lbuf);
    if ((len = gen_finish(&g, text, sizeof text)) && cb) cb(user, -1, text, len);
    st->n_gen = g.n_gen;
    st->stopped_by = g.stopped_by;
    st->gen_s = now_seconds() - t0;
    return pos;
}

int gen_loop(const Model *m, State *s, Sampler *smp, int pos, int n_predict, int ignore_stop,
             GenTokenFn cb, void *user, GenStats *st) {
    return gen_loop_ex(m, s, smp, pos, n_predict, ignore_stop, 0, cb, user, st);
}

/* What the CLI's loop does with each token: print its text (or its id) and keep the ids. */
typedef struct {
    const GenOptions *opt;
    int *ids, cap, n;
    GenStats wst; /* a failed write: stopped_by GEN_STOP_WRITE and its errno */
    int dropped;  /* the token sampled after a stop request: neither printed nor counted */
} PrintSink;

static int print_token(void *user, int id, const char *piece, size_t len) {
    PrintSink *p = user;
    /* A Ctrl-C lands almost always during the forward pass; the token sampled from that pass is
     * not shown (nor are bytes the decoder still holds), so nothing appears after the request. */
    if (p->dropped || (p->opt->stop && *p->opt->stop)) {
        p->dropped |= id >= 0;
        return 1;
    }
    if (id >= 0) {
        if (p->ids && p->n < p->cap) p->ids[p->n] = id;
        p->n++;
    }
    if (p->opt->print_ids) {
        if (id >= 0) fprintf(p->opt->out, p->n > 1 ? ",%d" : "%d", id);
    } else {
        fwrite(piece, 1, len, p->opt->out);
    }
    return output_failed(p->opt->out, &p->wst); /* stop at the first failed write */
}

int generate_tokens(const Model *m, State *s, Sampler *smp, int pos, const GenOptions *opt,
                    GenStats *st, int *ids, int cap) {
    if (opt->stop && *opt->stop) { /* Ctrl-C while the prompt was evaluated: no reply */
        memset(st, 0, sizeof *st);
        st->stopped_by = GEN_STOP_CALLER;
        return pos;
    }
    PrintSink sink = {opt, ids, cap, 0, {0}, 0};
    int r = gen_loop_ex(m, s, smp, pos, opt->n_predict, opt->ignore_stop | (opt->special ? GEN_SPECIAL : 0),
                        opt->draft_max, print_token, &sink, st);
    if (sink.dropped) st->n_gen--; /* sampled after the stop request, never shown */
    if (sink.wst.stopped_by != GEN_STOP_WRITE) output_failed(opt->out, &sink.wst);
    if (sink.wst.stopped_by == GEN_STOP_WRITE) {
        st->stopped_by = GEN_STOP_WRITE;
        st->write_errno = sink.wst.write_errno;
    }
    return r;
}

int generate(const Model *m, State *s, Sampler *smp, const int *prompt, int n_prompt,
             const GenOptions *opt, GenStats *st, char *err, size_t errlen) {
    return generate_from(m, s, smp, prompt, n_prompt, 0, opt, st, err, errlen);
}

int generate_from(const Model *m, State *s, Sampler *smp, const int *prompt, int n_prompt, int n_cached,
                  const GenOptions *opt, GenStats *st, char *err, size_t errlen) {
    const PhiHParams *hp = &m->hp;
    memset(st, 0, sizeof *st);
    if (n_prompt < 1) {
        snprintf(err, errlen, "the prompt is empty");
        return -1;
    }
    if (check_fits_context("the prompt", n_prompt, 0, s->n_ctx, err, errlen)) return -1;
    if (n_cached < 0 || n_cached >= n_prompt || (n_cached && opt->logits_path)) n_cached = 0;
    float *all = NULL;
    if (opt->logits_path) {
        all = malloc((size_t)n_prompt * hp->vocab_size * sizeof(float));
        if (!all) {
            snprintf(err, errlen, "out of memory for %d x %u logits", n_prompt, hp->vocab_size);
            return -1;
        }
    }
    double t0 = now_seconds();
    if (model_forward(m, s, prompt + n_cached, n_prompt - n_cached, n_cached, all)) {
        free(all);
        snprintf(err, errlen, "a prompt token is outside the vocabulary (0..%u)", hp->vocab_size - 1);
        return -1;
    }
    st->n_prompt = n_prompt - n_cached; /* the positions evaluated */
    st->prompt_s = now_seconds() - t0;
    if (all) {
        int rc = write_logits(opt->logits_path, all, (size_t)n_prompt * hp->vocab_size, err, errlen);
        free(all);
        if (rc) return -1;
    }
    generate_tokens(m, s, smp, n_prompt, opt, st, NULL, 0);
    if (st->stopped_by < GEN_STOP_WRITE) {
        fputc('\n', opt->out);
        output_failed(opt->out, st);
    }
    return gen_stop_error(st, err, errlen);
}
