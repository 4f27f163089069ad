#include "server/sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cpu.h"
#include "base/errmsg.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "model/generate.h"
#include "model/lookup.h"
#include "model/lora.h"
#include "model/sampler.h"

enum { SLOT_IDLE, SLOT_PREFILL, SLOT_DECODE, SLOT_FINISHED };

typedef struct {
    State st;
    Sampler smp;
    GenStream gen;
    Task *task;
    int phase;
    int n_done;    /* prompt tokens in the cache */
    int pending;   /* DECODE: the sampled token to evaluate next */
    int finish;    /* FINISHED: FINISH_* */
    Sb hold;       /* text held back: it may be the start of a stop string */
    Sb out;        /* text ready for the task, handed over under the lock */
    const LoraSet *kv_lora; /* the adapter set its KV cache was computed with (a reference) */
    double last_used;
    /* prompt lookup (--lookup, greedy requests): the last pass evaluated drafts[0 .. n_draft] (the
     * pending token, then its drafts) at positions pos0 ...; lbuf holds their logits */
    LookupCtl ctl;
    int drafts[LOOKUP_DRAFT_MAX + 1], n_draft, pos0;
    float *lbuf;
    int n_drafted, n_accepted; /* of the current task */
} Slot;

struct Sched {
    const Model *m;
    Adapters *ad;
    Pool *pool;
    Slot *slots;
    int n_slots, n_ctx;
    int draft_max; /* --draft-max: 0, or drafts per pass for greedy requests */
    Task **queue;
    int q_cap, q_size, q_head, q_len; /* q_cap waiting at most; the ring holds q_cap + n_slots */
    int quit, rr;
    unsigned steps; /* decode steps so far (whose turn it is to draft first) */
    pthread_mutex_t mu;
    pthread_cond_t work; /* the scheduler waits here for tasks */
    pthread_cond_t idle; /* drain waits here */
    pthread_t thread;
    int started;
};

void task_init(Task *t) {
    memset(t, 0, sizeof *t);
    pthread_cond_init(&t->cv, NULL);
}

void task_destroy(Task *t) {
    pthread_cond_destroy(&t->cv);
    sb_free(&t->text);
}

void sched_lock(Sched *s) { pthread_mutex_lock(&s->mu); }
void sched_unlock(Sched *s) { pthread_mutex_unlock(&s->mu); }
int sched_n_ctx(const Sched *s) { return s->n_ctx; }
int sched_n_slots(const Sched *s) { return s->n_slots; }

static void deadline_in(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    long long ns = ts->tv_nsec + (long long)(seconds * 1e9);
    ts->tv_sec += ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

void sched_wait(Sched *s, Task *t, int ms) {
    struct timespec ts;
    deadline_in(&ts, ms / 1000.0);
    pthread_cond_timedwait(&t->cv, &s->mu, &ts);
}

static int busy(const Sched *s) {
    if (s->q_len) return 1;
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].task) return 1;
    return 0;
}

int sched_drain(Sched *s, double seconds) {
    struct timespec ts;
    deadline_in(&ts, seconds);
    pthread_mutex_lock(&s->mu);
    while (busy(s) && pthread_cond_timedwait(&s->idle, &s->mu, &ts) != ETIMEDOUT) {}
    int ok = !busy(s);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

int sched_submit(Sched *s, Task *t) {
    pthread_mutex_lock(&s->mu);
    /* queued tasks that free slots will take at the next step are not waiting */
    int free_slots = 0;
    for (int i = 0; i < s->n_slots; i++) free_slots += !s->slots[i].task;
    int ok = !s->quit && s->q_len < s->q_cap + free_slots;
    if (ok) {
        t->queued = 1;
        t->released = 0;
        s->queue[(s->q_head + s->q_len++) % s->q_size] = t;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

/* With the lock held. */
static void release(Sched *s, Task *t) {
    t->released = 1;
    pthread_cond_broadcast(&t->cv);
    if (!busy(s)) pthread_cond_broadcast(&s->idle);
}

void sched_cancel(Sched *s, Task *t) {
    pthread_mutex_lock(&s->mu);
    if (t->queued) {
        for (int i = 0; i < s->q_len; i++) {
            int k = (s->q_head + i) % s->q_size;
            if (s->queue[k] != t) continue;
            for (int j = i; j < s->q_len - 1; j++)
                s->queue[(s->q_head + j) % s->q_size] = s->queue[(s->q_head + j + 1) % s->q_size];
            s->q_len--;
            break;
        }
        t->queued = 0;
        release(s, t);
    }
    if (!t->released) {
        t->cancelled = 1;
        pthread_cond_signal(&s->work);
        while (!t->released) pthread_cond_wait(&t->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the slot's side (scheduler thread only, no lock) ---- */

/* Append generated text; returns 1 when a stop string ends the text. Text that could be the start
 * of a stop string is held back until it is decided. */
static int put_text(Slot *sl, const char *s, size_t n) {
    const Task *t = sl->task;
    sb_put(&sl->hold, s, n);
    if (!sl->hold.n) return 0;
    size_t best = (size_t)-1;
    for (int i = 0; i < t->n_stop; i++) {
        const char *hit = memmem(sl->hold.p, sl->hold.n, t->stop[i], strlen(t->stop[i]));
        if (hit && (size_t)(hit - sl->hold.p) < best) best = (size_t)(hit - sl->hold.p);
    }
    if (best != (size_t)-1) {
        sb_put(&sl->out, sl->hold.p, best);
        sl->hold.n = 0;
        return 1;
    }
    size_t keep = 0;
    for (int i = 0; i < t->n_stop; i++) {
        size_t len = strlen(t->stop[i]);
        for (size_t k = len - 1 < sl->hold.n ? len - 1 : sl->hold.n; k > keep; k--)
            if (!memcmp(sl->hold.p + sl->hold.n - k, t->stop[i], k)) {
                keep = k;
                break;
            }
    }
    sb_put(&sl->out, sl->hold.p, sl->hold.n - keep);
    sb_consume(&sl->hold, sl->hold.n - keep);
    return 0;
}

static void finish(Slot *sl, int why) {
    char tail[16];
    size_t n = gen_finish(&sl->gen, tail, sizeof tail);
    if (put_text(sl, tail, n)) why = FINISH_STOP;
    else sb_put(&sl->out, sl->hold.p, sl->hold.n); /* the held-back text is final now */
    sl->hold.n = 0;
    sl->finish = why;
    sl->phase = SLOT_FINISHED;
}

/* Sample from logits (those of position pos - 1) and decide what comes next: 1 when the slot
 * goes on with the token in pending (to be evaluated at pos), 0 when it has finished. */
static int step_sample(Slot *sl, const float *logits, int pos) {
    char piece[256];
    size_t len;
    int id;
    if (!gen_next(&sl->gen, logits, &id, piece, sizeof piece, &len)) {
        finish(sl, sl->gen.stopped_by == GEN_STOP_ID          ? FINISH_STOP
                   : sl->gen.stopped_by == GEN_STOP_NONFINITE ? FINISH_ERROR
                                                              : FINISH_LENGTH);
        return 0;
    }
    if (put_text(sl, piece, len)) {
        sl->hold.n = 0;
        sl->finish = FINISH_STOP;
        sl->phase = SLOT_FINISHED;
        gen_finish(&sl->gen, piece, sizeof piece);
        return 0;
    }
    if (!gen_more(&sl->gen, pos, sl->st.n_ctx)) {
        finish(sl, FINISH_LENGTH);
        return 0;
    }
    sl->pending = id;
    sl->phase = SLOT_DECODE;
    return 1;
}

/* After a decode pass. With drafts: while the sampled token is the next draft, that draft's
 * logits are computed already and the next token comes from them; the positions after the last
 * confirmed draft are forgotten (model/generate.c gen_loop_drafts does the same for one
 * sequence). */
static void after_pass(Slot *sl, size_t vocab) {
    int k = sl->n_draft, next = 1;
    const float *lg = k ? sl->lbuf : sl->st.logits;
    while (step_sample(sl, lg, sl->pos0 + next) && next <= k && sl->pending == sl->drafts[next])
        lg = sl->lbuf + (size_t)next++ * vocab;
    if (k) {
        lookup_ctl_update(&sl->ctl, k, next - 1);
        sl->n_drafted += k;
        sl->n_accepted += next - 1;
        sl->st.n_cached = sl->pos0 + next;
        sl->n_draft = 0;
    }
}

/* The drafts of a decoding slot for this step, at most spare (rows of the pass left): the tokens
 * that followed an earlier occurrence of its last n-gram (model/lookup.h). */
static int draft(const Model *m, Slot *d, int spare) {
    int pos = d->st.n_cached, k = 0;
    d->drafts[0] = d->pending;
    d->pos0 = pos;
    d->n_draft = 0;
    if (!d->ctl.max || spare <= 0) return 0;
    int want = lookup_ctl_want(&d->ctl);
    if (want > spare) want = spare;
    if (want && (want = gen_draft_room(m, &d->st, &d->gen, pos, want)) > 0) {
        d->st.tokens[pos] = d->pending; /* the history: the cached positions, then the pending token */
        k = lookup_draft(d->st.tokens, pos + 1, d->drafts + 1, want);
        k = k < 0 ? 0 : k > want ? want : k;
    }
    return d->n_draft = k;
}

static void slot_start(Sched *s, Slot *sl, Task *t) {
    int keep = 0;
    if (sl->kv_lora != t->lora) { /* the cache was computed under other adapters: none of it fits */
        sl->st.n_cached = 0;
        adapters_ref(s->ad, t->lora);
        adapters_release(s->ad, sl->kv_lora);
        sl->kv_lora = t->lora;
        sl->st.lora = t->lora;
    }
    while (keep < sl->st.n_cached && keep < t->n_ids - 1 && sl->st.tokens[keep] == t->ids[keep]) keep++;
    sl->task = t;
    sl->n_done = keep;
    sl->phase = SLOT_PREFILL;
    sl->hold.n = sl->out.n = 0;
    t->n_reused = keep;
    t->slot = (int)(sl - s->slots);
    sl->smp.temp = t->temperature;
    sl->smp.top_k = t->top_k;
    sl->smp.top_p = t->top_p;
    sl->smp.rng = t->seed ? t->seed : 0x853c49e6748fea9bull; /* sampler_init's default */
    /* min_p and the penalties: the last 64 tokens (llama-server's repeat_last_n), prompt included
     * as llama.cpp counts it; out of memory for the history leaves the penalties off. */
    sampler_set_min_p(&sl->smp, t->min_p);
    int pen = t->repeat_penalty != 1 || t->presence_penalty != 0 || t->frequency_penalty != 0;
    if (sampler_set_penalties(&sl->smp, pen ? 64 : 0, t->repeat_penalty, t->frequency_penalty, t->presence_penalty))
        sampler_set_penalties(&sl->smp, 0, 1, 0, 0);
    for (int i = 0; i < t->n_ids; i++) sampler_accept(&sl->smp, t->ids[i]);
    gen_stream_init(&sl->gen, s->m, &sl->smp, t->n_predict, t->ignore_eos);
    /* prompt lookup for greedy requests when the pass is exact for them (not under an adapter) */
    int lk = s->draft_max && t->temperature == 0 && lookup_exact(s->m, &sl->st);
    if (lk && !sl->lbuf) sl->lbuf = malloc((size_t)(LOOKUP_DRAFT_MAX + 1) * s->m->hp.vocab_size * sizeof(float));
    lookup_ctl_init(&sl->ctl, lk && sl->lbuf ? s->draft_max : 0);
    sl->n_draft = sl->n_drafted = sl->n_accepted = 0;
}

/* The free slot with the longest common prefix (ties: the least recently used). */
static Slot *pick_slot(Sched *s, const Task *t) {
    Slot *best = NULL;
    int best_lcp = -1;
    for (int i = 0; i < s->n_slots; i++) {
        Slot *sl = &s->slots[i];
        if (sl->task) continue;
        int k = 0;
        while (k < sl->st.n_cached && sl->kv_lora == t->lora && k < t->n_ids && sl->st.tokens[k] == t->ids[k]) k++;
        if (k > best_lcp || (k == best_lcp && sl->last_used < best->last_used)) best = sl, best_lcp = k;
    }
    return best;
}

static void *sched_main(void *arg) {
    Sched *s = arg;
    const Model *m = s->m;
    SeqSpan *spans = malloc((size_t)s->n_slots * sizeof *spans);
    size_t vocab = m->hp.vocab_size;
    Slot **dec = malloc((size_t)s->n_slots * sizeof *dec);
    pthread_mutex_lock(&s->mu);
    while (!s->quit) {
        /* hand over results, drop cancelled tasks, start queued ones */
        for (int i = 0; i < s->n_slots; i++) {
            Slot *sl = &s->slots[i];
            Task *t = sl->task;
            if (!t) continue;
            if (t->cancelled) {
                sl->task = NULL;
                sl->phase = SLOT_IDLE;
                sl->last_used = now_seconds();
                release(s, t);
                continue;
            }
            if (sl->out.n) {
                sb_put(&t->text, sl->out.p, sl->out.n);
                sl->out.n = 0;
                pthread_cond_broadcast(&t->cv);
            }
            if (sl->phase == SLOT_FINISHED) {
                t->n_gen = sl->gen.n_gen;
                t->n_drafted = sl->n_drafted;
                t->n_accepted = sl->n_accepted;
                t->finish = sl->finish;
                t->done = 1;
                sl->task = NULL;
                sl->phase = SLOT_IDLE;
                sl->last_used = now_seconds();
                release(s, t);
            }
        }
        while (s->q_len) {
            Slot *sl = pick_slot(s, s->queue[s->q_head]);
            if (!sl) break;
            Task *t = s->queue[s->q_head];
            s->q_head = (s->q_head + 1) % s->q_size;
            s->q_len--;
            t->queued = 0;
            slot_start(s, sl, t);
        }
        int active = 0;
        for (int i = 0; i < s->n_slots; i++) active += s->slots[i].task != NULL;
        if (!active) {
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);

        /* one prompt chunk for one prefilling slot (round robin); it runs as a pass of its own:
         * once model_forward_spans (the batched multi-sequence pass) is on main, the chunk can
         * ride in the decode step's pass and share its read of the weights */
        for (int k = 0; k < s->n_slots; k++) {
            Slot *sl = &s->slots[(s->rr + k) % s->n_slots];
            if (!sl->task || sl->phase != SLOT_PREFILL) continue;
            s->rr = (int)(sl - s->slots) + 1;
            Task *t = sl->task;
            int c = t->n_ids - sl->n_done < SCHED_CHUNK ? t->n_ids - sl->n_done : SCHED_CHUNK;
            if (model_forward(m, &sl->st, t->ids + sl->n_done, c, sl->n_done, NULL)) {
                finish(sl, FINISH_ABORT); /* ids were checked before: not expected */
                break;
            }
            sl->n_done += c;
            if (sl->n_done == t->n_ids) {
                t->t_first = now_seconds();
                step_sample(sl, sl->st.logits, sl->st.n_cached); /* its first decode joins the step below */
            }
            break;
        }
        /* one decode step for every decoding slot */
        int n = 0;
        for (int i = 0; i < s->n_slots; i++) {
            Slot *sl = &s->slots[i];
            if (sl->task && sl->phase == SLOT_DECODE) dec[n++] = sl;
        }
        /* one pass per adapter set (a pass applies one set: model/forward.c): the slots of each
         * set are moved together, then each group is decoded, so every slot advances every step */
        for (int g = 0; g < n;) {
            int e = g + 1;
            for (int i = g + 1; i < n; i++) {
                if (dec[i]->st.lora != dec[g]->st.lora) continue;
                Slot *d = dec[i];
                for (int j = i; j > e; j--) dec[j] = dec[j - 1];
                dec[e++] = d;
            }
            /* Greedy slots fill the rows of the pass that one activation tile leaves (8) with
             * their drafts, taking turns at the first pick: a pass of at most 8 rows gives every
             * row the bits it gets alone (kernels/kernels.h matmul_batch_exact), so drafts change
             * no output, and the weights read for the step serve the drafts too. */
            int spare = LOOKUP_DRAFT_MAX + 1 - (e - g), first = s->steps++ % (e - g);
            for (int i = 0; i < e - g; i++) spare -= draft(m, dec[g + (first + i) % (e - g)], spare);
            for (int i = g; i < e; i++) {
                Slot *d = dec[i];
                spans[i] = (SeqSpan){&d->st, d->drafts, d->n_draft + 1, d->pos0, d->n_draft ? d->lbuf : NULL};
            }
            if (model_forward_spans(m, spans + g, e - g))
                for (int i = g; i < e; i++) {
                    dec[i]->n_draft = 0;
                    finish(dec[i], FINISH_ABORT);
                }
            else
                for (int i = g; i < e; i++) after_pass(dec[i], vocab);
            g = e;
        }
        pthread_mutex_lock(&s->mu);
    }
    /* stopping: every task still here ends (aborted) */
    for (int i = 0; i < s->n_slots; i++) {
        Slot *sl = &s->slots[i];
        Task *t = sl->task;
        if (!t) continue;
        if (sl->out.n) sb_put(&t->text, sl->out.p, sl->out.n);
        t->n_gen = sl->gen.n_gen;
        t->n_drafted = sl->n_drafted;
        t->n_accepted = sl->n_accepted;
        t->finish = sl->phase == SLOT_FINISHED ? sl->finish : FINISH_ABORT;
        t->done = 1;
        sl->task = NULL;
        release(s, t);
    }
    while (s->q_len) {
        Task *t = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->q_size;
        s->q_len--;
        t->queued = 0;
        t->finish = FINISH_ABORT;
        t->done = 1;
        release(s, t);
    }
    pthread_mutex_unlock(&s->mu);
    free(spans);
    free(dec);
    kernels_free_scratch(); /* this thread's activation scratch (kernels/dispatch.c) */
    lora_free_scratch();    /* and its LoRA scratch (model/lora.c) */
    return NULL;
}

Sched *sched_create(const Model *m, Adapters *ad, int n_slots, int n_ctx, int n_threads, int queue_cap, int state_flags,
                    int draft_max, char *err, size_t errlen) {
    Sched *s = calloc(1, sizeof *s);
    if (!s) return errorf(err, errlen, "out of memory"), NULL;
    s->m = m;
    s->ad = ad;
    s->n_slots = n_slots;
    s->n_ctx = n_ctx;
    s->draft_max = draft_max;
    s->q_cap = queue_cap > 0 ? queue_cap : 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->slots = calloc((size_t)n_slots, sizeof *s->slots);
    s->q_size = s->q_cap + n_slots;
    s->queue = calloc((size_t)s->q_size, sizeof *s->queue);
    if (!s->slots || !s->queue) {
        errorf(err, errlen, "out of memory");
        goto fail;
    }
    if (n_threads != 1 && !(s->pool = pool_create(n_threads))) {
        errorf(err, errlen, "cannot start %d threads", n_threads);
        goto fail;
    }
    int n_valid = tok_vocab_size(m->tok);
    if (n_valid < 1 || n_valid > (int)m->hp.vocab_size) n_valid = (int)m->hp.vocab_size;
    for (int i = 0; i < n_slots; i++) {
        Slot *sl = &s->slots[i];
        if (state_init_pool(&sl->st, m, n_ctx, s->pool, state_flags, err, errlen)) goto fail;
        if (sampler_init(&sl->smp, n_valid, 0, 0, 1, 0)) {
            errorf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (pthread_create(&s->thread, NULL, sched_main, s)) {
        errorf(err, errlen, "cannot start the scheduler thread");
        goto fail;
    }
    s->started = 1;
    return s;
fail:
    sched_free(s);
    return NULL;
}

void sched_stop(Sched *s) {
    if (!s || !s->started) return;
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = 0;
}

void sched_free(Sched *s) {
    if (!s) return;
    sched_stop(s);
    for (int i = 0; s->slots && i < s->n_slots; i++) {
        adapters_release(s->ad, s->slots[i].kv_lora);
        state_free(&s->slots[i].st);
        sampler_free(&s->slots[i].smp);
        sb_free(&s->slots[i].hold);
        sb_free(&s->slots[i].out);
        free(s->slots[i].lbuf);
    }
    if (s->pool) pool_destroy(s->pool);
    free(s->slots);
    free(s->queue);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    free(s);
}
