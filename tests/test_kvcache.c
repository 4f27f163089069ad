/* The KV cache types (-ctk/-ctv, model/model.h KV_*): the logits of the trained tiny model with a
 * q8_0 key and/or value cache against the same run with the default F16 cache, beside the F32
 * cache's difference (this model's floor: F16 rounding alone costs a KL of about 4e-5), over
 * held-out text; thread counts and batching give the same q8_0 result; a
 * q8_0 cache is refused for a head size that is not a multiple of 32; the sizes are 34 bytes per
 * 32 values.
 *
 * The tolerance: a q8_0 value is off by at most half a step, amax / 254 of its block of 32 (to_q8
 * rounds with the stored f16 scale), so a row's error vector has a norm of at most
 * sqrt(32) / 254 = 2.2 % of the block's norm, and about 0.5 % for the rounding error's RMS
 * (uniform over a step, step / sqrt(12), with amax near 2.3 standard deviations of a block). F16's
 * rounding is 2^-12 = 0.024 % RMS, about 20 times less. To first order the logits move linearly
 * with these perturbations and the KL divergence quadratically: q4 weights (about 4 % RMS error on
 * every weight of every matrix) cost this model a KL of 2.2e-3 against f32, so a 0.5 % error on
 * the cached keys and values alone should cost well under 1e-4; the checks allow 5e-4 mean KL and
 * 97 % top-1 agreement over 2 windows of 256 positions (1 under an emulator), and a largest logit error of 0.5 (this
 * small model amplifies any perturbation: F32 against F16 differs by up to 0.13 already). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "model/model.h"
#include "tests/harness.h"

#define MODEL_PATH "models/phi3-trained-tiny-q4.phi"
#define WIN 256

typedef struct {
    double kl, maxd;
    long top1, n;
} Diff;

static void softmax_d(const float *x, int n, double *p) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < n; i++) s += p[i] = exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) p[i] /= s;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void diff_add(Diff *d, const float *base, const float *got, int rows, int vocab) {
    double *p = malloc(sizeof(double) * (size_t)vocab), *q = malloc(sizeof(double) * (size_t)vocab);
    for (int r = 0; r < rows; r++) {
        const float *a = base + (size_t)r * vocab, *b = got + (size_t)r * vocab;
        softmax_d(a, vocab, p);
        softmax_d(b, vocab, q);
        double kl = 0;
        for (int i = 0; i < vocab; i++) {
            if (p[i] > 0) kl += p[i] * log(p[i] / fmax(q[i], 1e-300));
            d->maxd = fmax(d->maxd, fabs((double)a[i] - b[i]));
        }
        d->kl += kl;
        d->top1 += argmax(a, vocab) == argmax(b, vocab);
        d->n++;
    }
    free(p);
    free(q);
}

/* Logits [n][vocab] of ids with the given cache types and threads: the prompt in one call (batched)
 * or token by token (decoding). */
static int logits_of(const Model *m, const int *ids, int n, int flags, int threads, int one_by_one, float *out) {
    State s;
    char err[256];
    if (state_init_ex(&s, m, n, threads, flags, err, sizeof err)) {
        t_check(0, "kv_state", "%s", err);
        return -1;
    }
    int rc = 0;
    if (!one_by_one) rc = model_forward(m, &s, ids, n, 0, out);
    else
        for (int i = 0; i < n && !rc; i++) rc = model_forward(m, &s, ids + i, 1, i, out + (size_t)i * m->hp.vocab_size);
    state_free(&s);
    return rc;
}

int main(void) {
    Model m;
    char err[512];
    if (model_load(MODEL_PATH, &m, err, sizeof err)) {
        t_skip("kv_cache_types", "%s", err);
        return t_done();
    }
    /* sizes: 34 bytes per 32 values */
    {
        State s;
        int ok = !state_init_ex(&s, &m, 64, 1, STATE_CACHE_K(KV_Q8_0) | STATE_CACHE_V(KV_F32), err, sizeof err);
        size_t vals = (size_t)m.hp.n_layers * m.hp.n_kv_heads * 64 * m.hp.head_dim;
        t_check(ok && s.kv_bytes == vals / 32 * 34 && s.kv_bytes_v == vals * 4 && s.k_type == KV_Q8_0 &&
                    s.v_type == KV_F32 && !s.kv_f32,
                "kv_q8_0_size", "keys %zu bytes for %zu values (34 per 32), values %zu (4 each)", ok ? s.kv_bytes : 0,
                vals, ok ? s.kv_bytes_v : 0);
        if (ok) state_free(&s);
    }
    t_check(kv_type_parse("q8_0") == KV_Q8_0 && kv_type_parse("f16") == KV_F16 && kv_type_parse("f32") == KV_F32 &&
                kv_type_parse("q8") < 0 && kv_type_parse("Q8_0") < 0 && kv_type_parse(NULL) < 0 &&
                !strcmp(kv_type_name(KV_Q8_0), "q8_0"),
            "kv_type_names", "f16, f32, q8_0 (llama.cpp's spelling); others refused");

    /* the text: held-out windows where the shared data is present, else a fixed pseudo-text */
    int vocab = (int)m.hp.vocab_size, n_ids = 0, *ids = NULL;
    const char *data = t_data_dir();
    if (data) {
        char path[1024];
        snprintf(path, sizeof path, "%s/phi3-trained-tiny/heldout.txt", data);
        FILE *f = fopen(path, "rb");
        static char text[1 << 16];
        size_t len = f ? fread(text, 1, sizeof text, f) : 0;
        if (f) fclose(f);
        n_ids = len ? tok_encode(m.tok, text, len, 0, NULL, 0, err, sizeof err) : 0;
        if (n_ids > 0 && (ids = malloc(sizeof(int) * (size_t)n_ids))) tok_encode(m.tok, text, len, 0, ids, n_ids, err, sizeof err);
    }
    if (!ids || n_ids < 2 * WIN + 2000) {
        free(ids);
        n_ids = 4 * WIN;
        ids = malloc(sizeof(int) * (size_t)n_ids);
        t_seed(7);
        for (int i = 0; i < n_ids; i++) ids[i] = 3 + (int)((t_randf() + 1) * 0.5f * 3000);
    }
    float *base = malloc(sizeof(float) * WIN * (size_t)vocab), *got = malloc(sizeof(float) * WIN * (size_t)vocab),
          *got2 = malloc(sizeof(float) * WIN * (size_t)vocab);
    static const struct { const char *name; int flags; } cfg[] = {
        {"f32", STATE_KV_F32},
        {"ctk_q8_0", STATE_CACHE_K(KV_Q8_0)},
        {"ctv_q8_0", STATE_CACHE_V(KV_Q8_0)},
        {"ctk_ctv_q8_0", STATE_CACHE_K(KV_Q8_0) | STATE_CACHE_V(KV_Q8_0)},
    };
    Diff d[4];
    memset(d, 0, sizeof d);
    double thread_diff = 0;
    const int n_win = t_emulated() ? 1 : 2; /* one window under an emulator (178 s under qemu-arm) */
    if (n_win < 2) t_skip("kv_q8_window2", "under an emulator: the second window (offset 2000) runs natively (make test, make asan)");
    for (int w = 0; w < n_win; w++) {
        int win[WIN];
        win[0] = 1; /* BOS, then the text at offsets 0 and 2000 */
        memcpy(win + 1, ids + w * 2000, sizeof(int) * (WIN - 1));
        if (logits_of(&m, win, WIN, 0, 2, 0, base)) break;
        for (int c = 0; c < 4; c++) {
            if (logits_of(&m, win, WIN, cfg[c].flags, 2, 0, got)) break;
            diff_add(&d[c], base, got, WIN, vocab);
        }
        /* q8_0 on one thread, decoding token by token: the same values as the batched 2-thread run
         * (a row's quants depend on that row only; the kernels' sums do not depend on the split) */
        if (w) continue;
        logits_of(&m, win, WIN, cfg[3].flags, 1, 1, got2);
        for (size_t i = 0; i < (size_t)WIN * vocab; i++) thread_diff = fmax(thread_diff, fabs((double)got[i] - got2[i]));
    }
    for (int c = 0; c < 4; c++) {
        char name[64];
        snprintf(name, sizeof name, "kv_logits_%s_vs_f16", cfg[c].name);
        double kl = d[c].n ? d[c].kl / d[c].n : 1, top1 = d[c].n ? (double)d[c].top1 / d[c].n : 0;
        t_check(d[c].n == n_win * WIN && kl < 5e-4 && top1 >= 0.97 && d[c].maxd < 0.5, name,
                "%ld positions: mean KL %.2e (bound 5e-4), top-1 agreement %.2f%% (bound 97%%), max |logit "
                "error| %.4f (bound 0.5)", d[c].n, kl, 100 * top1, d[c].maxd);
    }
    t_check(thread_diff < 1e-3, "kv_q8_0_threads_and_batching", "1 thread token by token vs 2 threads batched: max "
            "logit difference %.2e (bound 1e-3: float sums of the matrix products in another order)", thread_diff);

    /* model_forward_multi over states of different cache types sharing one pool (a server's slots):
     * each row reads its own state's cache, so the logits equal separate model_forward calls bit
     * for bit (test_multiseq.c says why rows do not interact) */
    {
        Pool *pool = pool_create(2);
        static const int fl[3] = {STATE_CACHE_K(KV_Q8_0) | STATE_CACHE_V(KV_Q8_0), 0, STATE_CACHE_K(KV_Q8_0)};
        State a[3], b[3];
        State *ap[3] = {&a[0], &a[1], &a[2]};
        int ok = 1, steps = 6;
        double md = 0;
        float *la = malloc(sizeof(float) * 3 * (size_t)vocab);
        for (int i = 0; i < 3; i++) {
            ok &= !state_init_pool(&a[i], &m, 64, pool, fl[i], err, sizeof err);
            ok &= !state_init_pool(&b[i], &m, 64, pool, fl[i], err, sizeof err);
            if (ok) {
                ok &= !model_forward(&m, &a[i], ids + 100 * i, 20 + i, 0, NULL);
                ok &= !model_forward(&m, &b[i], ids + 100 * i, 20 + i, 0, NULL);
            }
        }
        for (int t = 0; ok && t < steps; t++) {
            int tk[3] = {ids[500 + t], ids[600 + t], ids[700 + t]};
            ok &= !model_forward_multi(&m, ap, tk, 3, la);
            for (int i = 0; ok && i < 3; i++) {
                ok &= !model_forward(&m, &b[i], &tk[i], 1, b[i].n_cached, NULL);
                for (int v = 0; v < vocab; v++) md = fmax(md, fabs((double)la[(size_t)i * vocab + v] - b[i].logits[v]));
            }
        }
        t_check(ok && md == 0, "kv_multi_sequence_mixed_types", "3 sequences (q8_0/q8_0, f16/f16, q8_0/f16), %d "
                "batched steps: max logit difference %.2e from separate calls (want 0)", steps, md);
        for (int i = 0; i < 3; i++) state_free(&a[i]), state_free(&b[i]);
        free(la);
        pool_destroy(pool);
    }

    /* head size 16 (the random tiny shape's kind): q8_0 refused in one line, f16 fine */
    {
        Model m2 = m;
        PhiHParams hp = m.hp;
        hp.head_dim = 16;
        m2.hp = hp;
        State s;
        int rc = state_init_ex(&s, &m2, 32, 1, STATE_CACHE_V(KV_Q8_0), err, sizeof err);
        t_check(rc == -1 && strstr(err, "multiple of 32") && !strchr(err, '\n'), "kv_q8_0_head_size_refused", "%s",
                rc ? err : "accepted");
        if (!rc) state_free(&s);
    }
    free(base);
    free(got);
    free(got2);
    free(ids);
    model_free(&m);
    return t_done();
}
