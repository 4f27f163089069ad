/* Prompt-lookup speculative decoding (model/generate.c gen_loop_ex): greedy output equals plain
 * greedy decoding token for token, on the trained tiny model (q4, f32 and the Q4_K_M mix, 1 and
 * 2 threads, on every draft length) with prompts that repeat (drafts accepted) and prompts where nothing
 * matches; on a LongRoPE model whose generation crosses the factor switch and a sliding-window
 * model whose ring wraps; and the state it leaves (KV cache, n_cached, logits) continues exactly
 * as plain decoding's does (rejected drafts rolled back). Also the drafter itself. */
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "convert/convert.h"
#include "kernels/kernels.h"
#include "model/generate.h"
#include "model/lookup.h"
#include "phi.h"
#include "tests/harness.h"

enum { MAXG = 160 };

typedef struct {
    int ids[MAXG], n;
} Collect;

static int collect(void *user, int id, const char *piece, size_t len) {
    (void)piece, (void)len;
    Collect *c = user;
    if (id >= 0 && c->n < MAXG) c->ids[c->n++] = id;
    return 0;
}

static int load_mix(const char *dir, uint32_t type, int mix, const char *name, Model *m) {
    char out[1024], err[1024];
    snprintf(out, sizeof out, "%s/lookup-%s.phi", t_tmp_dir(), name);
    ConvertOptions opt = {.type = (int)type, .mix = mix};
    if (convert_hf(dir, out, &opt, err, sizeof err) || model_load(out, m, err, sizeof err)) {
        t_check(0, name, "%s", err);
        return -1;
    }
    remove(out);
    return 0;
}

static int load(const char *dir, uint32_t type, const char *name, Model *m) { return load_mix(dir, type, CONVERT_MIX_NONE, name, m); }

/* One run: prompt, then n_gen greedy tokens with draft_max drafts (0: plain). Leaves the state
 * for the caller (continued by the rollback check). */
typedef struct {
    State s;
    Collect c;
    GenStats st;
    int pos;
} Run;

static int run(const Model *m, const int *prompt, int n_prompt, int n_gen, int n_ctx, int threads,
               int draft_max, const GenDrafter *dr, Run *r) {
    char err[256];
    memset(r, 0, sizeof *r);
    if (state_init(&r->s, m, n_ctx, threads, err, sizeof err)) return t_check(0, "state_init", "%s", err), -1;
    Sampler smp;
    sampler_init(&smp, (int)m->hp.vocab_size, 0, 0, 1, 1);
    model_forward(m, &r->s, prompt, n_prompt, 0, NULL);
    for (int i = 0; i < n_prompt; i++) sampler_accept(&smp, prompt[i]);
    r->pos = gen_loop_drafts(m, &r->s, &smp, n_prompt, n_gen, 1, draft_max, dr, collect, &r->c, &r->st);
    sampler_free(&smp);
    return 0;
}

/* Plain against lookup: the same ids, the same cache end and logits, and after one more token
 * (the last generated one, as a caller continuing the session feeds it) the same logits bit for
 * bit: the rolled-back cache holds exactly what plain decoding's holds. */
/* The oracle drafter: the plain run's own continuation, every third proposal spoiled at a
 * varying place, so that passes accept all, some or none of their drafts wherever they fall
 * (the LongRoPE switch, the ring's wrap), whatever the model's taste for repeating itself. */
typedef struct {
    const int *truth;
    int n_truth, calls;
} Oracle;

static int oracle_draft(void *ctx, const int *hist, int n, int *out, int max) {
    Oracle *o = ctx;
    (void)hist;
    int k = 0, c = o->calls++;
    for (; k < max && n + k < o->n_truth; k++) out[k] = o->truth[n + k];
    if (k > 0 && c % 3 == 2) out[c % k] = (out[c % k] + 1) % 32000;
    return k;
}

static void compare_dr(const Model *m, const char *name, const int *prompt, int n_prompt, int n_gen, int n_ctx,
                       int threads, int draft_max, int oracle, long *drafted, long *accepted) {
    Run a, b;
    if (run(m, prompt, n_prompt, n_gen, n_ctx, threads, 0, NULL, &a)) return;
    int truth[MAXG + 512];
    Oracle o = {truth, 0, 0};
    GenDrafter dr = {oracle_draft, &o};
    if (oracle) {
        memcpy(truth, prompt, sizeof(int) * (size_t)n_prompt);
        memcpy(truth + n_prompt, a.c.ids, sizeof(int) * (size_t)a.c.n);
        o.n_truth = n_prompt + a.c.n;
    }
    if (run(m, prompt, n_prompt, n_gen, n_ctx, threads, draft_max, oracle ? &dr : NULL, &b)) {
        state_free(&a.s);
        return;
    }
    size_t vb = m->hp.vocab_size * sizeof(float);
    int same = a.c.n == b.c.n && !memcmp(a.c.ids, b.c.ids, sizeof(int) * (size_t)a.c.n);
    int first = 0;
    while (first < a.c.n && first < b.c.n && a.c.ids[first] == b.c.ids[first]) first++;
    int state_same = a.pos == b.pos && a.s.n_cached == b.s.n_cached && !memcmp(a.s.logits, b.s.logits, vb);
    int cont_same = 0;
    if (same && a.c.n > 0 && a.pos < n_ctx) {
        int last = a.c.ids[a.c.n - 1];
        model_forward(m, &a.s, &last, 1, a.pos, NULL);
        model_forward(m, &b.s, &last, 1, b.pos, NULL);
        cont_same = !memcmp(a.s.logits, b.s.logits, vb);
    } else {
        cont_same = same;
    }
    t_check(same && state_same && cont_same, "lookup_equal",
            "%s, %d threads, draft-max %d: %d/%d tokens (first difference at %d), end state %s, continued %s; "
            "drafted %d, accepted %d", name, threads, draft_max, b.c.n, a.c.n, same ? -1 : first,
            state_same ? "same" : "DIFFERS", cont_same ? "same" : "DIFFERS", b.st.n_drafted, b.st.n_accepted);
    /* A rewind (phi_session_rewind, a chat turn that diverges) to just over one batch before the
     * furthest row drafts wrote: rejected drafts leave rows past n_cached, which in a
     * sliding-window ring overwrote the slots of older positions, so the rewind must evaluate
     * again as plain decoding would. The runs above end with no such rows (their last drafts are
     * cut at n_gen), so both states (the continued token the same in both) get one more token,
     * b with 7 wrong drafts after it, as a rejecting verification pass leaves them; then both
     * rewind. (Checked: with prepare() reading n_cached instead of kv_hi this fails for the
     * sliding-window model; before, two fresh runs per check took 40 % of the program's time and
     * never held such rows.) */
    if (same && a.c.n > 0 && a.s.n_cached == b.s.n_cached) {
        /* at the end, or where 8 rows still fit (a step back within one batch) */
        int p0 = a.s.n_cached + 8 <= n_ctx ? a.s.n_cached : n_ctx - 8, tok[8];
        tok[0] = a.c.ids[0];
        for (int k = 1; k < 8; k++) tok[k] = (tok[0] + 7 * k) % (int)m->hp.vocab_size;
        model_forward(m, &a.s, tok, 1, p0, NULL);
        model_forward(m, &b.s, tok, 8, p0, NULL);
        b.s.n_cached = p0 + 1; /* the first accepted, the others rejected */
        int hi = b.s.kv_hi, back = hi - 66;
        if (back > 0) {
            int t = a.s.tokens[back];
            a.s.n_cached = b.s.n_cached = back;
            model_forward(m, &a.s, &t, 1, back, NULL);
            model_forward(m, &b.s, &t, 1, back, NULL);
            t_check(!memcmp(a.s.logits, b.s.logits, vb), "lookup_rewind_equal",
                    "%s, %d threads, draft-max %d: rewound to %d (rows written up to %d, cached to %d)", name,
                    threads, draft_max, back, hi, p0 + 1);
        }
    }
    *drafted += b.st.n_drafted;
    *accepted += b.st.n_accepted;
    state_free(&a.s);
    state_free(&b.s);
}

static void compare(const Model *m, const char *name, const int *prompt, int n_prompt, int n_gen, int n_ctx,
                    int threads, int draft_max, long *drafted, long *accepted) {
    compare_dr(m, name, prompt, n_prompt, n_gen, n_ctx, threads, draft_max, 0, drafted, accepted);
}

static void test_drafter(void) {
    int out[8];
    int h1[] = {5, 6, 7, 8, 9, 5, 6, 7};
    int n = lookup_draft(h1, 8, out, 4); /* suffix 5 6 7 at 0: 8 9 5 6 follow */
    t_check(n == 4 && out[0] == 8 && out[1] == 9 && out[2] == 5 && out[3] == 6, "lookup_draft_longest", "%d", n);
    int h2[] = {1, 2, 3, 1, 9, 3, 1, 4, 2, 3};
    n = lookup_draft(h2, 10, out, 3); /* 2 3 occurs at 1 -> 1 9 3 */
    t_check(n == 3 && out[0] == 1 && out[1] == 9 && out[2] == 3, "lookup_draft_ngram2", "%d", n);
    int h3[] = {4, 3, 1, 4, 2, 3, 1};
    n = lookup_draft(h3, 7, out, 5); /* "3 1" latest earlier at 1: 4 2 3 1 follow, only 4 exist */
    t_check(n == 4 && out[0] == 4 && out[3] == 1, "lookup_draft_latest", "%d", n);
    int h4[] = {1, 2, 3, 4};
    t_check(lookup_draft(h4, 4, out, 5) == 0 && lookup_draft(h4, 1, out, 5) == 0, "lookup_draft_none", "");
    LookupCtl c;
    lookup_ctl_init(&c, 5);
    int w = lookup_ctl_want(&c); /* 1 first */
    lookup_ctl_update(&c, 1, 1);
    int w4 = lookup_ctl_want(&c); /* 2 after a full accept */
    lookup_ctl_update(&c, 2, 2);
    int w5 = lookup_ctl_want(&c); /* 4 */
    lookup_ctl_update(&c, 4, 4);
    int w6 = lookup_ctl_want(&c); /* 5 = max */
    lookup_ctl_update(&c, 5, 2);
    int w7 = lookup_ctl_want(&c); /* 3 after 2 of 5 */
    lookup_ctl_update(&c, w7, 0); /* a miss: pause 1, then one draft */
    int w1 = lookup_ctl_want(&c), w2 = lookup_ctl_want(&c);
    lookup_ctl_update(&c, w2, 0); /* second miss: pause 3 */
    int paused = !lookup_ctl_want(&c) && !lookup_ctl_want(&c) && !lookup_ctl_want(&c) && lookup_ctl_want(&c) == 1;
    lookup_ctl_update(&c, 1, 1);
    int grow = lookup_ctl_want(&c) == 2;
    t_check(w == 1 && w4 == 2 && w5 == 4 && w6 == 5 && w7 == 3 && w1 == 0 && w2 == 1 && paused && grow, "lookup_ctl",
            "want %d %d %d %d %d, after a miss %d, %d", w, w4, w5, w6, w7, w1, w2);
}

static int tokenize(const Model *m, const char *text, int *ids, int cap) {
    char err[256];
    int n = tok_encode(m->tok, text, strlen(text), 1, ids, cap, err, sizeof err);
    return n > cap ? cap : n;
}

static int api_collect(void *user, int id, const char *text, size_t len) {
    return collect(user, id, text, len);
}

/* The library: phi_session_params.draft_max gives phi_generate's plain tokens, and says what it
 * drafted; a temperature with it is refused. */
static void test_api(void) {
    phi_model *pm;
    if (phi_model_open("models/phi3-trained-tiny-q4.phi", 0, &pm)) {
        t_skip("lookup_api", "%s", phi_last_error());
        return;
    }
    const char *text = "And God said, Let there be light: and there was light. And God saw the light, that it "
                       "was good. And God said, Let there be light: and there was";
    int ids[256], n = phi_tokenize(pm, text, strlen(text), -1, ids, 256);
    Collect c[2];
    phi_gen_result r[2];
    for (int k = 0; k < 2; k++) {
        phi_session_params p = phi_session_default_params();
        p.n_threads = 1;
        p.draft_max = k ? LOOKUP_DRAFT_DEFAULT : 0;
        phi_session *s = NULL;
        memset(&c[k], 0, sizeof c[k]);
        if (phi_session_new(pm, &p, &s) || phi_session_prompt(s, ids, n) ||
            phi_generate(s, 60, api_collect, &c[k], &r[k])) {
            t_check(0, "lookup_api", "%s", phi_last_error());
            phi_session_free(s);
            phi_model_free(pm);
            return;
        }
        phi_session_free(s);
    }
    t_check(c[0].n == c[1].n && !memcmp(c[0].ids, c[1].ids, sizeof(int) * (size_t)c[0].n) && r[0].n_drafted == 0 &&
            r[1].n_accepted > 0, "lookup_api", "%d tokens each; drafted %d, accepted %d", c[1].n, r[1].n_drafted,
            r[1].n_accepted);
    phi_session_params p = phi_session_default_params();
    p.draft_max = 3;
    p.temperature = 0.7f;
    phi_session *s = NULL;
    int rc = phi_session_new(pm, &p, &s);
    t_check(rc == PHI_ERR_ARG && !s, "lookup_api_sampling_refused", "%s", phi_last_error());
    p.temperature = 0, p.draft_max = 8;
    rc = phi_session_new(pm, &p, &s);
    t_check(rc == PHI_ERR_ARG && !s, "lookup_api_range", "%s", phi_last_error());
    phi_model_free(pm);
}

int main(void) {
    const char *data = t_data_dir();
    test_drafter();
    test_api();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/phi3-trained-tiny", data);
    char *held = NULL;
    {
        char path[1100];
        snprintf(path, sizeof path, "%s/heldout.txt", dir);
        FILE *f = fopen(path, "rb");
        if (f) {
            held = calloc(1, 1601);
            size_t got = fread(held, 1, 1600, f);
            held[got] = 0;
            fclose(f);
            for (char *p = held + (got > 900 ? 900 : got); *p; p++)
                if (*p == ' ') { *p = 0; break; } /* about 900 bytes, whole words */
        }
    }
    if (!held) {
        t_skip("lookup_trained", "no %s/heldout.txt", dir);
    } else {
        static char text[4096];
        int ids[1024];
        /* the passage, an instruction, and its start: the model goes on copying it */
        snprintf(text, sizeof text, "%s\n\nRepeat the passage above:\n%.60s", held, held);
        /* q4, f32, and llama.cpp's Q4_K_M mix (q4_k, q5_k, q6_k: the K panel kernels, where the
         * ISA claims their batches exact, kernels/isa.h k_exact) */
        static const uint32_t types[] = {TENSOR_Q4, TENSOR_F32, TENSOR_Q4_K};
        static const char *const tname[] = {"q4", "f32", "q4_k_m"};
        /* under an emulator q4 only, and the passage on one thread with the default draft length
         * (the f32 and K passes and the sweeps are the same C as natively: 715 of the armv7 leg's
         * 1859 s; test_batch_exact checks the K kernels' batches there) */
        const int quick = t_emulated();
        if (quick) t_skip("lookup_trained", "under an emulator: the f32 and q4_k_m passes and the draft-length sweep run natively (make test, make asan)");
        for (int ti = 0; ti < (quick ? 1 : 3); ti++) {
            if (ti == 2 && matmul_batch_exact(TENSOR_Q4_KP) <= LOOKUP_DRAFT_MAX) {
                t_skip("lookup_trained", "q4_k_m: this ISA's K panel kernels are not batch-exact (lookup stays off)");
                continue;
            }
            Model m;
            if (load_mix(dir, types[ti], ti == 2 ? CONVERT_MIX_Q4_K_M : CONVERT_MIX_NONE, tname[ti], &m)) continue;
            if (ti == 2) t_check(lookup_exact(&m, NULL), "lookup_exact_kquant", "q4_k_m: every matrix batch-exact");
            long drafted = 0, accepted = 0;
            char name[64];
            int n = tokenize(&m, text, ids, 1024);
            snprintf(name, sizeof name, "trained-tiny %s, passage", tname[ti]);
            /* f32 (4x the bytes): one thread count and draft length */
            for (int th = 1; th <= (ti == 1 || quick ? 1 : 2); th++) compare(&m, name, ids, n, 120, 512, th, LOOKUP_DRAFT_DEFAULT, &drafted, &accepted);
            for (int d = 1; d <= LOOKUP_DRAFT_MAX && !ti && !quick; d += 3) compare(&m, name, ids, n, 64, 512, 1, d, &drafted, &accepted);
            /* a context that ends inside a verification: drafts cut at the end */
            compare(&m, "trained-tiny, context ends", ids, n, -1, n + 37, 1, LOOKUP_DRAFT_MAX, &drafted, &accepted);
            /* prose without repeats: few or no matches */
            n = tokenize(&m, "Blessed are they that mourn: for they shall be comforted.", ids, 1024);
            snprintf(name, sizeof name, "trained-tiny %s, fresh prose", tname[ti]);
            compare(&m, name, ids, n, 80, 512, 2, LOOKUP_DRAFT_DEFAULT, &drafted, &accepted);
            /* random ids: nothing in the prompt repeats */
            t_seed(11);
            ids[0] = 1;
            for (int i = 1; i < 40; i++) ids[i] = 3 + (int)((t_randf() + 1) * 0.5f * 31000);
            compare(&m, "trained-tiny, random ids", ids, 40, 48, 512, 1, LOOKUP_DRAFT_DEFAULT, &drafted, &accepted);
            t_check(accepted > 50 && accepted < drafted, "lookup_exercised",
                    "%s: %ld drafts, %ld accepted (both acceptance and rollback happened)", tname[ti],
                    drafted, accepted);
            model_free(&m);
        }
        free(held);
    }

    /* LongRoPE (original 64 positions): generation from 40 to 120 crosses the switch to the long
     * factors with drafts pending; a repeating prompt keeps drafts coming. */
    snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/longrope", data);
    Model m;
    int rep[48];
    t_seed(5);
    rep[0] = 1;
    for (int i = 1; i < 48; i++) rep[i] = i < 13 ? 3 + (int)((t_randf() + 1) * 0.5f * 31000) : rep[1 + (i - 1) % 12];
    const int kstep = t_emulated() ? LOOKUP_DRAFT_MAX : 1; /* one draft length under an emulator */
    if (kstep > 1) t_skip("lookup_draft_lengths", "under an emulator: LongRoPE k = 5, oracle and sliding-window k = 7 only (the sweeps run natively)");
    if (load(dir, TENSOR_F32, "longrope", &m) == 0) {
        long d = 0, a = 0;
        for (int k = kstep > 1 ? LOOKUP_DRAFT_DEFAULT : 1; k <= LOOKUP_DRAFT_MAX; k += 2 * kstep)
            for (int th = 1; th <= 2; th++) compare(&m, "longrope", rep, 40, 80, 256, th, k, &d, &a);
        long od = 0, oa = 0;
        for (int k = kstep > 1 ? LOOKUP_DRAFT_MAX : 2; k <= LOOKUP_DRAFT_MAX; k += 5 * kstep)
            for (int th = 1; th <= 2; th++) compare_dr(&m, "longrope, oracle drafts", rep, 40, 80, 256, th, k, 1, &od, &oa);
        t_check(oa > 100 && oa < od, "lookup_longrope_drafted", "lookup: %ld drafts, %ld accepted; oracle: %ld, %ld",
                d, a, od, oa);
        model_free(&m);
    }
    /* Sliding window 8 (a ring of 8 + 64 slots): 150 positions wrap it twice. */
    snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/swa", data);
    if (load(dir, TENSOR_Q8, "swa", &m) == 0) {
        long d = 0, a = 0;
        for (int k = kstep > 1 ? LOOKUP_DRAFT_MAX : 2; k <= LOOKUP_DRAFT_MAX; k += 5 * kstep)
            for (int th = 1; th <= 2; th++) compare(&m, "swa q8", rep, 48, 100, 150, th, k, &d, &a);
        long od = 0, oa = 0;
        for (int k = kstep > 1 ? LOOKUP_DRAFT_MAX : 2; k <= LOOKUP_DRAFT_MAX; k += 5 * kstep)
            for (int th = 1; th <= 2; th++) compare_dr(&m, "swa q8, oracle drafts", rep, 48, 100, 150, th, k, 1, &od, &oa);
        t_check(oa > 100 && oa < od, "lookup_swa_drafted", "lookup: %ld drafts, %ld accepted; oracle: %ld, %ld",
                d, a, od, oa);
        model_free(&m);
    }
    return 0;
}
