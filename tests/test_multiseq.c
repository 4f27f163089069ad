/* Several sequences in one forward pass (model_forward_multi, model_forward_spans): the logits
 * of every sequence equal those of the same tokens run through separate model_forward calls on
 * states of their own, bit for bit, on the fast path with 1 and 2 threads and on the reference
 * path; sequences join (their prompt riding in the pass with the others' decode tokens), leave,
 * cross LongRoPE's threshold and wrap a sliding-window ring; errors leave every state as it was.
 *
 * Bit-exactness holds because nothing a row computes depends on the other rows of its pass: each
 * token's activations are quantized alone (kernels/quant_act.c), each (row, token) dot product
 * sums its blocks in the same order whatever the tile, attention and the elementwise steps are
 * per token. The one exception is kernels/tiled.c's split of a long row of blocks into L1-sized
 * chunks in passes of more than 8 rows (several activation tiles); a pass of up to 8 rows keeps
 * one chunk at any width (tests/test_batch_exact.c), so there a token's logits equal its logits
 * alone at Phi-3-mini's widths too. */
#include <math.h>
#include <string.h>

#include "base/pool.h"
#include "convert/convert.h"
#include "model/model.h"
#include "tests/harness.h"

enum { K = 8, STEPS = 24 };

static int vocab_of(const Model *m) { return (int)m->hp.vocab_size; }

static int random_id(const Model *m) {
    int v = vocab_of(m) - 3;
    int r = (int)((t_randf() + 1) * 0.5f * (float)v);
    return 3 + (r < v ? r : v - 1);
}

/* Largest |a - b| and how many of n differ at all (bitwise, as floats). */
typedef struct {
    long diff;
    double max_abs;
} Cmp;

static void cmp_add(Cmp *c, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            c->diff++;
            double d = fabs((double)a[i] - b[i]);
            if (d > c->max_abs || d != d) c->max_abs = d;
        }
}

/* Two sets of K states: A runs every sequence alone (model_forward), B together. */
typedef struct {
    State a[K], b[K];
    Pool *pa, *pb;
    int ok;
} Pair;

static int pair_init(Pair *p, const Model *m, const int *n_ctx, int threads, int ref, int flags) {
    char err[256];
    memset(p, 0, sizeof *p);
    if (!ref && threads > 1) {
        p->pa = pool_create(threads);
        p->pb = pool_create(threads);
    }
    for (int i = 0; i < K; i++) {
        if (state_init_pool(&p->a[i], m, n_ctx[i], p->pa, flags, err, sizeof err) ||
            state_init_pool(&p->b[i], m, n_ctx[i], p->pb, flags, err, sizeof err)) {
            t_check(0, "state_init", "%s", err);
            return -1;
        }
        p->a[i].use_ref = p->b[i].use_ref = ref;
    }
    return 0;
}

static void pair_free(Pair *p) {
    for (int i = 0; i < K; i++) {
        state_free(&p->a[i]);
        state_free(&p->b[i]);
    }
    if (p->pa) pool_destroy(p->pa);
    if (p->pb) pool_destroy(p->pb);
}

/* The schedule: sequence i joins at step join[i] with a prompt of plen[i] tokens (before step 0:
 * a plain model_forward on both sides; later: a span of model_forward_spans beside the decode
 * tokens, first or last), then decodes one token per step except at steps where (t + i) % 5 == 0
 * (it sits out). */
static void run_schedule(const Model *m, const char *name, const int *plen, const int *join,
                         const int *n_ctx, int threads, int ref, int flags) {
    Pair p;
    if (pair_init(&p, m, n_ctx, threads, ref, flags)) return;
    int vocab = vocab_of(m), maxp = 0;
    for (int i = 0; i < K; i++) maxp = plen[i] > maxp ? plen[i] : maxp;
    float *la = malloc((size_t)maxp * vocab * sizeof(float));
    float *lb = malloc((size_t)(maxp + K) * vocab * sizeof(float));
    int *prompt[K];
    Cmp c = {0, 0};
    int rc_bad = 0, passes = 0, crossed = 0, wrapped = 0, rows = 0;
    for (int i = 0; i < K; i++) {
        prompt[i] = malloc((size_t)plen[i] * sizeof(int));
        for (int k = 0; k < plen[i]; k++) prompt[i][k] = random_id(m);
        if (join[i] < 0) {
            rc_bad |= model_forward(m, &p.a[i], prompt[i], plen[i], 0, NULL);
            rc_bad |= model_forward(m, &p.b[i], prompt[i], plen[i], 0, NULL);
        }
    }
    for (int t = 0; t < STEPS; t++) {
        SeqSpan sp[K];
        State *st[K];
        int tok[K], n = 0, joiner = -1, set0[K];
        for (int i = 0; i < K; i++) {
            set0[i] = p.b[i].rope_set;
            if (join[i] == t) joiner = i;
            if (join[i] >= t || (t + i) % 5 == 0 || p.b[i].n_cached >= n_ctx[i]) continue;
            tok[n] = random_id(m);
            st[n] = &p.b[i];
            sp[n] = (SeqSpan){&p.b[i], &tok[n], 1, p.b[i].n_cached, NULL};
            n++;
        }
        /* the reference: each sequence alone */
        int nd = n;
        for (int k = 0; k < nd; k++) {
            int i = (int)(st[k] - p.b);
            rc_bad |= model_forward(m, &p.a[i], &tok[k], 1, p.a[i].n_cached, la);
        }
        if (joiner >= 0) {
            /* the prompt rides in the pass: last at even steps, first at odd ones */
            SeqSpan js = {&p.b[joiner], prompt[joiner], plen[joiner], 0, lb + (size_t)K * vocab};
            if (t % 2 == 0) sp[n] = js;
            else {
                memmove(sp + 1, sp, (size_t)n * sizeof *sp);
                sp[0] = js;
            }
            n++;
            rc_bad |= model_forward_spans(m, sp, n);
            /* the decode tokens' logits, from each state */
            for (int k = 0; k < nd; k++) memcpy(lb + (size_t)k * vocab, st[k]->logits, (size_t)vocab * sizeof(float));
            rc_bad |= model_forward(m, &p.a[joiner], prompt[joiner], plen[joiner], 0, la);
            cmp_add(&c, la, lb + (size_t)K * vocab, plen[joiner] * vocab);
            cmp_add(&c, p.a[joiner].logits, p.b[joiner].logits, vocab);
            rows += plen[joiner];
        } else if (n > 0) {
            rc_bad |= model_forward_multi(m, st, tok, n, lb);
        }
        if (n > 0) passes++;
        rows += nd;
        /* compare the decode tokens' logits: from the buffer and from each state */
        for (int k = 0; k < nd; k++) {
            int i = (int)(st[k] - p.b);
            if (joiner < 0) cmp_add(&c, lb + (size_t)k * vocab, p.a[i].logits, vocab);
            cmp_add(&c, p.b[i].logits, p.a[i].logits, vocab);
        }
        for (int i = 0; i < K; i++) {
            if (p.b[i].rope_set != set0[i]) crossed++;
            if (p.b[i].kv_slots < p.b[i].n_ctx && p.b[i].n_cached > p.b[i].kv_slots) wrapped |= 1 << i;
            if (p.a[i].n_cached != p.b[i].n_cached) rc_bad = 1;
        }
    }
    /* the KV caches hold the same keys and values */
    for (int i = 0; i < K; i++)
        if (memcmp(p.a[i].key_cache, p.b[i].key_cache, p.a[i].kv_bytes) ||
            memcmp(p.a[i].value_cache, p.b[i].value_cache, p.a[i].kv_bytes))
            c.diff++;
    int nw = 0;
    for (int i = 0; i < K; i++) nw += (wrapped >> i) & 1;
    char label[128];
    snprintf(label, sizeof label, "%s_%s", name, ref ? "ref" : threads > 1 ? "fast_2t" : "fast_1t");
    t_check(!rc_bad && c.diff == 0, label,
            "%d passes, %d rows of up to %d sequences: %ld values differ (max |d| %.3g); "
            "%d LongRoPE switches, %d rings wrapped", passes, rows, K, c.diff, c.max_abs, crossed, nw);
    for (int i = 0; i < K; i++) free(prompt[i]);
    free(la);
    free(lb);
    pair_free(&p);
}

/* The schedules of one model on every path. */
/* with_ref: also the reference path (scalar, slow with a 32064-token vocabulary: only where
 * the per-row state matters most, LongRoPE and the ring). */
static void check_model(const Model *m, const char *name, int base_len, int flags, int with_ref) {
    int plen[K], join[K], n_ctx[K];
    int cap = (int)m->hp.max_seq_len;
    for (int i = 0; i < K; i++) {
        plen[i] = base_len + 7 * i;
        join[i] = i % 3 == 2 ? 3 + 2 * i : -1; /* sequences 2 and 5 join at steps 7 and 13 */
        /* odd sequences get a tight context (a smaller n_batch: the pass is packed by the
         * largest), even ones a roomy one */
        n_ctx[i] = i % 2 ? plen[i] + STEPS + 1 : plen[i] + STEPS + 64;
        if (n_ctx[i] > cap) n_ctx[i] = cap;
    }
    run_schedule(m, name, plen, join, n_ctx, 1, 0, flags);
    run_schedule(m, name, plen, join, n_ctx, 2, 0, flags);
    if (with_ref) run_schedule(m, name, plen, join, n_ctx, 1, 1, flags | STATE_KV_F32);
}

/* Errors: every state keeps its cache, position, factor set and logits. */
static void check_errors(const Model *m) {
    enum { N = 4 };
    State s[N], *st[N];
    char err[256];
    int ctx[N] = {8, 8, 8, 3}, ids[N], bad = 0;
    for (int i = 0; i < N; i++) {
        state_init_pool(&s[i], m, ctx[i], NULL, 0, err, sizeof err);
        st[i] = &s[i];
        for (int k = 0; k < 3; k++) ids[k] = random_id(m);
        model_forward(m, &s[i], ids, 3, 0, NULL); /* s[3] is full */
    }
    size_t kvb = s[0].kv_bytes, lb = (size_t)vocab_of(m) * sizeof(float);
    uint8_t *snap = malloc(N * (2 * kvb + lb));
    for (int i = 0; i < N; i++) {
        memcpy(snap + i * (2 * kvb + lb), s[i].key_cache, s[i].kv_bytes);
        memcpy(snap + i * (2 * kvb + lb) + kvb, s[i].value_cache, s[i].kv_bytes);
        memcpy(snap + i * (2 * kvb + lb) + 2 * kvb, s[i].logits, lb);
    }
    for (int i = 0; i < N; i++) ids[i] = random_id(m);
    int full = model_forward_multi(m, st, ids, N, NULL);
    ids[3] = 5;
    ids[1] = vocab_of(m);
    int badid = model_forward_multi(m, st, ids, 3, NULL);
    ids[1] = -1;
    int negid = model_forward_multi(m, st, ids, 3, NULL);
    ids[1] = 7;
    State *dup[3] = {&s[0], &s[1], &s[0]}, *nul[2] = {&s[0], NULL};
    int rdup = model_forward_multi(m, dup, ids, 3, NULL);
    int rnul = model_forward_multi(m, nul, ids, 2, NULL);
    int rzero = model_forward_multi(m, st, ids, 0, NULL);
    SeqSpan ahead = {&s[0], ids, 1, 4, NULL}; /* pos0 past n_cached */
    SeqSpan over = {&s[1], ids, 6, 3, NULL};  /* 3 + 6 > n_ctx 8 */
    int rahead = model_forward_spans(m, &ahead, 1), rover = model_forward_spans(m, &over, 1);
    for (int i = 0; i < N; i++) {
        bad |= s[i].n_cached != 3 || s[i].rope_set != 0;
        bad |= memcmp(snap + i * (2 * kvb + lb), s[i].key_cache, s[i].kv_bytes) != 0;
        bad |= memcmp(snap + i * (2 * kvb + lb) + kvb, s[i].value_cache, s[i].kv_bytes) != 0;
        bad |= memcmp(snap + i * (2 * kvb + lb) + 2 * kvb, s[i].logits, lb) != 0;
    }
    t_check(full == -1 && badid == -1 && negid == -1 && rdup == -1 && rnul == -1 && rzero == -1 &&
                rahead == -1 && rover == -1 && !bad,
            "errors_leave_states_unchanged",
            "full context %d, id = vocab %d, id -1 %d, repeated state %d, NULL state %d, n 0 %d, "
            "span past n_cached %d, span past n_ctx %d; states %s",
            full, badid, negid, rdup, rnul, rzero, rahead, rover, bad ? "CHANGED" : "unchanged");
    /* the three that fit still step together afterwards */
    int ok = model_forward_multi(m, st, ids, 3, NULL) == 0 && s[0].n_cached == 4 && s[2].n_cached == 4;
    t_check(ok, "step_after_errors", "n_cached %d %d %d", s[0].n_cached, s[1].n_cached, s[2].n_cached);
    for (int i = 0; i < N; i++) state_free(&s[i]);
    free(snap);
}

/* More sequences than a pass holds: 8 states of 5 positions (n_batch 5) step in passes of 5
 * rows, until every context is full. */
static void check_small_batches(const Model *m) {
    enum { N = 8, C = 5 };
    State a[N], b[N], *st[N];
    char err[256];
    for (int i = 0; i < N; i++) {
        state_init_pool(&a[i], m, C, NULL, 0, err, sizeof err);
        state_init_pool(&b[i], m, C, NULL, 0, err, sizeof err);
        st[i] = &b[i];
    }
    Cmp c = {0, 0};
    int rc = 0, vocab = vocab_of(m);
    float *lb = malloc((size_t)N * vocab * sizeof(float));
    for (int t = 0; t < C; t++) {
        int ids[N];
        for (int i = 0; i < N; i++) ids[i] = random_id(m);
        rc |= model_forward_multi(m, st, ids, N, lb);
        for (int i = 0; i < N; i++) {
            rc |= model_forward(m, &a[i], &ids[i], 1, t, NULL);
            cmp_add(&c, lb + (size_t)i * vocab, a[i].logits, vocab);
        }
    }
    int ids[N] = {0};
    int full = model_forward_multi(m, st, ids, N, NULL);
    t_check(!rc && c.diff == 0 && full == -1, "passes_smaller_than_the_step",
            "%d steps of %d sequences in passes of %d rows: %ld values differ; a full context: %d",
            C, N, b[0].n_batch, c.diff, full);
    for (int i = 0; i < N; i++) {
        state_free(&a[i]);
        state_free(&b[i]);
    }
    free(lb);
}

static int load_ref(const char *data, const char *variant, int type, Model *m) {
    char dir[1024], out[1024], err[1024];
    snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/%s", data, variant);
    snprintf(out, sizeof out, "%s/multiseq-%s.phi", t_tmp_dir(), variant);
    ConvertOptions opt = {.type = type};
    if (convert_hf(dir, out, &opt, err, sizeof err) || model_load(out, m, err, sizeof err)) {
        t_check(0, variant, "%s", err);
        return -1;
    }
    remove(out);
    return 0;
}

int main(void) {
    static const struct {
        const char *name;
        int type;
    } types[] = {{"q4", TENSOR_Q4}, {"q8", TENSOR_Q8}, {"f16", TENSOR_F16}, {"f32", TENSOR_F32}};
    char err[1024], path[1024];
    t_seed(2026);
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        Model m;
        ConvertOptions opt = {.type = types[k].type, .seed = 11};
        snprintf(path, sizeof path, "%s/multiseq-tiny-%s.phi", t_tmp_dir(), types[k].name);
        if (convert_random("tiny", path, &opt, err, sizeof err) || model_load(path, &m, err, sizeof err)) {
            t_check(0, "random_tiny", "%s", err);
            continue;
        }
        remove(path);
        char name[64];
        snprintf(name, sizeof name, "random_tiny_%s", types[k].name);
        check_model(&m, name, 20, 0, 1);
        if (k == 0) {
            check_errors(&m);
            check_small_batches(&m);
        }
        model_free(&m);
    }
    const char *data = t_data_dir();
    if (!data) {
        t_skip("multiseq_tiny_ref", "../shared/data is absent");
        return t_done();
    }
    /* base prompt lengths: longrope's threshold is 64 (sequences cross it while stepping and
     * while joining), swa's window 8 makes rings of 8 + n_batch slots that wrap */
    static const struct {
        const char *variant;
        int base, type, ref;
    } refs[] = {{"mha", 10, TENSOR_F32, 0}, {"gqa-sharded", 12, TENSOR_Q8, 0}, {"longrope", 40, TENSOR_F32, 1},
                {"phi4ish", 9, TENSOR_Q4, 0}, {"swa", 50, TENSOR_F16, 1}};
    for (size_t k = 0; k < sizeof refs / sizeof *refs; k++) {
        Model m;
        if (load_ref(data, refs[k].variant, refs[k].type, &m)) continue;
        check_model(&m, refs[k].variant, refs[k].base, 0, refs[k].ref);
        model_free(&m);
    }
    return t_done();
}
