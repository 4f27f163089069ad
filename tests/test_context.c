/* The KV cache over long sequences: the sliding-window ring buffer, rewinds, and LongRoPE's
 * switch from short to long factors, each checked against a full evaluation of the sequence. */
#include <math.h>
#include <string.h>

#include "convert/convert.h"
#include "base/json.h"
#include "model/model.h"
#include "tests/harness.h"

static double max_rel(const float *a, const float *b, int n) {
    double md = 0, mr = 0;
    for (int i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mr = fmax(mr, fabs((double)b[i]));
    }
    return md / mr;
}

static int load_variant(const char *data, const char *variant, Model *m) {
    char dir[1024], out[1024], err[1024];
    snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/%s", data, variant);
    snprintf(out, sizeof out, "%s/context-%s.phi", t_tmp_dir(), variant);
    ConvertOptions opt = {.type = TENSOR_F32};
    if (convert_hf(dir, out, &opt, err, sizeof err) || model_load(out, m, err, sizeof err)) {
        t_check(0, variant, "%s", err);
        return -1;
    }
    remove(out);
    return 0;
}

static void random_ids(int *ids, int n, unsigned long long seed) {
    t_seed(seed);
    ids[0] = 1;
    for (int i = 1; i < n; i++) ids[i] = 3 + (int)((t_randf() + 1) * 0.5f * 31000);
}

/* Sliding window 8 over 150 positions: the ring keeps 8 + 64 slots. */
static void test_ring(const char *data) {
    Model m;
    if (load_variant(data, "swa", &m)) return;
    enum { N = 150 };
    int ids[N], vocab = (int)m.hp.vocab_size;
    random_ids(ids, N, 42);
    float *full = malloc((size_t)N * vocab * sizeof(float)), *got = malloc((size_t)N * vocab * sizeof(float));
    char err[256];
    State a, b;
    state_init_ex(&a, &m, N, 2, STATE_FULL_CACHE, err, sizeof err);
    state_init(&b, &m, N, 2, err, sizeof err);
    model_forward(&m, &a, ids, N, 0, full);
    t_check(b.kv_slots == 72 && a.kv_slots == N, "ring_size", "ring %d slots, full cache %d", b.kv_slots,
            a.kv_slots);

    model_forward(&m, &b, ids, N, 0, got);
    double e1 = max_rel(got, full, N * vocab);
    for (int i = 0; i < N; i++) model_forward(&m, &b, ids + i, 1, i, got + (size_t)i * vocab);
    double e2 = max_rel(got, full, N * vocab);
    /* rewind to 20 after 150 positions: the slots of 13..19 were reused long ago */
    model_forward(&m, &b, ids + 20, N - 20, 20, got + (size_t)20 * vocab);
    double e3 = max_rel(got + (size_t)20 * vocab, full + (size_t)20 * vocab, (N - 20) * vocab);
    /* the reference path (F32 cache, no ring) agrees with the fast path's ring with F32 rows */
    State r, f;
    state_init_ex(&r, &m, N, 1, STATE_KV_F32 | STATE_FULL_CACHE, err, sizeof err);
    state_init_ex(&f, &m, N, 2, STATE_KV_F32, err, sizeof err);
    r.use_ref = 1;
    model_forward(&m, &r, ids, N, 0, full);
    for (int i = 0; i < N; i++) model_forward(&m, &f, ids + i, 1, i, got + (size_t)i * vocab);
    double e4 = max_rel(got, full, N * vocab);
    state_free(&f);
    t_check(e1 < 1e-5 && e2 < 1e-5 && e3 < 1e-5 && e4 < 1e-5, "ring_equals_full_cache",
            "max rel (F16 cache): batch %.1e, one by one %.1e, after a rewind %.1e; F32 ring vs the "
            "reference path %.1e", e1, e2,
            e3, e4);
    state_free(&a);
    state_free(&b);
    state_free(&r);
    free(full);
    free(got);
    model_free(&m);
}

static float *read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    float *v = malloc(n * sizeof(float));
    size_t k = f ? fread(v, sizeof(float), n, f) : 0;
    if (f) fclose(f);
    if (k != n) { free(v); return NULL; }
    return v;
}

/* LongRoPE (original max 64): growing past 64 positions must give what a full evaluation of
 * the longer sequence gives (every position rotated with the long factors). */
static void test_longrope(const char *data) {
    Model m;
    if (load_variant(data, "longrope", &m)) return;
    enum { N = 100 };
    int ids[N], vocab = (int)m.hp.vocab_size;
    random_ids(ids, N, 7);
    float *full = malloc((size_t)N * vocab * sizeof(float)), *got = malloc((size_t)vocab * sizeof(float));
    char err[256];
    for (int ref = 0; ref < 2; ref++) {
        State a, b;
        state_init(&a, &m, N, ref ? 1 : 2, err, sizeof err);
        state_init(&b, &m, N, ref ? 1 : 2, err, sizeof err);
        a.use_ref = b.use_ref = ref;
        model_forward(&m, &a, ids, N, 0, full); /* one call: long factors everywhere */
        model_forward(&m, &b, ids, 50, 0, NULL); /* short factors so far */
        double e_short = 0;
        for (int i = 50; i < N; i++) {
            model_forward(&m, &b, ids + i, 1, i, got);
            if (i == 63) { /* 64 positions: still short; compare with a fresh 64-position run */
                State c;
                float *l64 = malloc((size_t)64 * vocab * sizeof(float));
                state_init(&c, &m, 64, 1, err, sizeof err);
                c.use_ref = ref;
                model_forward(&m, &c, ids, 64, 0, l64);
                e_short = max_rel(got, l64 + (size_t)63 * vocab, vocab);
                state_free(&c);
                free(l64);
            }
        }
        double e_long = max_rel(got, full + (size_t)(N - 1) * vocab, vocab);
        char name[64];
        snprintf(name, sizeof name, "longrope_growth_equals_full_evaluation_%s", ref ? "ref" : "fast");
        t_check(e_short < 1e-5 && e_long < 1e-5 && b.rope_set == 1, name,
                "at 64 positions (short factors) %.1e, at 100 (long, cache re-rotated) %.1e", e_short,
                e_long);
        state_free(&a);
        state_free(&b);
    }

    /* llama.cpp picks the factors from the context size; phi, like Hugging Face, from the
     * sequence length: the 32-id reference (made with n_ctx 64 = short factors) must still match
     * when phi runs it with a context of 256. */
    char path[1024];
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/longrope/reference/ids.json", data);
    Json *j = json_parse_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/longrope/reference/logits.f32", data);
    int n = j ? (int)json_count(json_root(j)) : 0;
    float *ref = n ? read_f32(path, (size_t)n * vocab) : NULL;
    if (ref && n <= N) {
        int rid[N];
        for (int i = 0; i < n; i++) {
            long long v = 0;
            json_int(json_at(json_root(j), (size_t)i), &v);
            rid[i] = (int)v;
        }
        State s;
        state_init_ex(&s, &m, 256, 2, STATE_KV_F32, err, sizeof err); /* as the reference */
        model_forward(&m, &s, rid, n, 0, full);
        double e = max_rel(full, ref, n * vocab);
        t_check(e < 1e-5, "longrope_factors_follow_sequence_length_not_context",
                "32 ids with n_ctx 256 vs the short-factor reference: max rel %.1e", e);
        state_free(&s);
    } else {
        t_check(0, "longrope_factors_follow_sequence_length_not_context", "cannot read %s", path);
    }
    free(ref);
    json_free(j);
    free(full);
    free(got);
    model_free(&m);
}

int main(void) {
    const char *data = t_data_dir();
    if (!data) {
        t_skip("context_tests", "../shared/data is absent");
        return 0;
    }
    test_ring(data);
    test_longrope(data);
    return t_done();
}
