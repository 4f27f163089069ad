/* LoRA adapters through the public API (phi.h): phi_lora_load + phi_session_set_loras on
 * phi3-trained-tiny (converted to F32 here) against the float64 merged-model references of
 * ../shared/data/phi3-lora (logits of the last 8 prompt positions, max rel < 1e-3 as
 * tests/test_lora.c asks, and the 16 greedy ids equal); detaching gives the base logits bit for
 * bit; an adapter change empties the KV cache; bad adapters are a status and one line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "convert/convert.h"
#include "kernels/blocks.h"
#include "model/model.h"
#include "phi.h"
#include "tests/harness.h"

#define VOCAB 32064

static int *read_ids(const char *path, int *n) {
    char err[256];
    Json *j = json_parse_file(path, err, sizeof err);
    if (!j) return NULL;
    const JsonValue *a = json_root(j);
    *n = (int)json_count(a);
    int *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int)json_num(json_at(a, i), -1);
    json_free(j);
    return ids;
}

static float *read_f32(const char *path, size_t n) {
    size_t len = 0;
    char err[256];
    char *b = read_file(path, &len, err, sizeof err);
    if (!b || len != n * sizeof(float)) {
        free(b);
        return NULL;
    }
    return (float *)b;
}

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Logits of the last 8 positions of ids (fed one by one after the rest) into out[8][VOCAB] and
 * 16 greedy ids after them; 0, or -1 when a call failed. */
static int run(phi_session *s, const int *ids, int n, float *out, int *greedy) {
    if (phi_session_rewind(s, 0) || phi_session_feed(s, ids, n - 8)) return -1;
    for (int i = n - 8; i < n; i++) {
        if (phi_session_feed(s, ids + i, 1) || !phi_session_logits(s)) return -1;
        memcpy(out + (size_t)(i - (n - 8)) * VOCAB, phi_session_logits(s), VOCAB * sizeof *out);
    }
    for (int i = 0; i < 16; i++) {
        greedy[i] = argmax(phi_session_logits(s), VOCAB);
        if (i < 15 && phi_session_feed(s, &greedy[i], 1)) return -1;
    }
    return 0;
}

/* Every prompt of ref (reference-s1 or -s0.5) with the session's current adapters. */
static void check_reference(const char *name, phi_session *s, const char *ref) {
    double max_abs = 0, max_ref = 0;
    int greedy_ok = 0, prompts = 0;
    float *got = malloc(8 * (size_t)VOCAB * sizeof *got);
    for (int p = 0; p < 3; p++) {
        char path[1024];
        int n = 0, ng = 0, g[16];
        snprintf(path, sizeof path, "%s/p%d/ids.json", ref, p);
        int *ids = read_ids(path, &n);
        snprintf(path, sizeof path, "%s/p%d/greedy.json", ref, p);
        int *want = read_ids(path, &ng);
        snprintf(path, sizeof path, "%s/p%d/logits-last8.f32", ref, p);
        float *wl = read_f32(path, 8 * (size_t)VOCAB);
        if (!ids || !want || !wl || n < 9 || ng != 16 || run(s, ids, n, got, g)) {
            t_check(0, name, "prompt %d: cannot read the reference or run (%s)", p, phi_last_error());
            free(ids), free(want), free(wl), free(got);
            return;
        }
        for (size_t k = 0; k < 8 * (size_t)VOCAB; k++) {
            double d = fabs((double)got[k] - wl[k]);
            if (d > max_abs) max_abs = d;
            if (fabs(wl[k]) > max_ref) max_ref = fabs(wl[k]);
        }
        greedy_ok += !memcmp(g, want, sizeof g);
        prompts++;
        free(ids), free(want), free(wl);
    }
    free(got);
    t_check(max_abs / max_ref < 1e-3 && greedy_ok == prompts, name,
            "max abs %.2e, max rel %.2e (bound 1e-3), greedy 16/16 equal in %d/%d prompts", max_abs,
            max_abs / max_ref, greedy_ok, prompts);
}

/* The logits of every position of ids fed at once, copied. */
static float *logits_of(phi_session *s, const int *ids, int n) {
    if (phi_session_rewind(s, 0)) return NULL;
    float *l = malloc(VOCAB * sizeof *l);
    if (phi_session_feed(s, ids, n) || !phi_session_logits(s)) {
        free(l);
        return NULL;
    }
    memcpy(l, phi_session_logits(s), VOCAB * sizeof *l);
    return l;
}

static int one_line(const char *msg) { return msg && *msg && !strchr(msg, '\n'); }

int main(void) {
    const char *data = t_data_dir();
    char base[512], ad_dir[600], ref1[700], ref05[700], path[800], err[1024];
    struct stat st;
    if (!data) {
        t_skip("api_lora", "no ../shared/data");
        return 0;
    }
    snprintf(base, sizeof base, "%s/phi3-trained-tiny", data);
    snprintf(ad_dir, sizeof ad_dir, "%s/phi3-lora/adapter-r8", data);
    snprintf(ref1, sizeof ref1, "%s/reference-s1", ad_dir);
    snprintf(ref05, sizeof ref05, "%s/reference-s0.5", ad_dir);
    if (stat(base, &st) || stat(ad_dir, &st)) {
        t_skip("api_lora", "%s or %s not present", base, ad_dir);
        return 0;
    }
    snprintf(path, sizeof path, "%s/api_lora_base_f32.phi", t_tmp_dir());
    ConvertOptions co = {.type = TENSOR_F32};
    if (convert_hf(base, path, &co, err, sizeof err)) {
        t_check(0, "api_lora_convert", "%s", err);
        return 1;
    }
    phi_model *m = NULL;
    phi_session *s = NULL;
    phi_lora *a = NULL, *bad = NULL;
    phi_session_params sp = phi_session_default_params();
    sp.n_ctx = 512;
    sp.n_threads = 2;
    if (!t_check(phi_model_open(path, 0, &m) == PHI_OK && phi_session_new(m, &sp, &s) == PHI_OK, "api_lora_open", "%s",
                 phi_last_error()))
        return 1;
    int rc = phi_lora_load(m, ad_dir, &a);
    if (!t_check(rc == PHI_OK && a && !strcmp(phi_lora_path(a), ad_dir), "api_lora_load", "%d: %s", rc, phi_last_error()))
        return 1;

    int n0 = 0;
    snprintf(path, sizeof path, "%s/p0/ids.json", ref1);
    int *ids0 = read_ids(path, &n0);
    float *l_base = ids0 ? logits_of(s, ids0, n0) : NULL;
    t_check(l_base != NULL, "api_lora_base_logits", "%s", phi_last_error());

    const phi_lora *one[1] = {a}, *two[2] = {a, a};
    float s1 = 1, s05 = 0.5f, halves[2] = {0.5f, 0.5f}, zero = 0, nan_ = NAN;
    rc = phi_session_set_loras(s, one, &s1, 1);
    t_check(rc == PHI_OK && phi_session_n_loras(s) == 1 && phi_session_n_past(s) == 0 && !phi_session_logits(s),
            "api_lora_set_empties_cache", "rc %d, %d adapters, n_past %d", rc, phi_session_n_loras(s),
            phi_session_n_past(s));
    check_reference("api_lora_s1", s, ref1);
    /* the same set again keeps the cache */
    int past = phi_session_n_past(s);
    t_check(phi_session_set_loras(s, one, &s1, 1) == PHI_OK && phi_session_n_past(s) == past && past > 0,
            "api_lora_same_set_keeps_cache", "n_past %d -> %d", past, phi_session_n_past(s));
    phi_session_set_loras(s, one, &s05, 1);
    t_check(phi_session_n_past(s) == 0, "api_lora_new_scale_empties_cache", "n_past %d", phi_session_n_past(s));
    check_reference("api_lora_s0.5", s, ref05);
    phi_session_set_loras(s, two, halves, 2);
    check_reference("api_lora_two_halves_is_s1", s, ref1);

    phi_session_set_loras(s, NULL, NULL, 0);
    float *l = l_base ? logits_of(s, ids0, n0) : NULL;
    t_check(l && phi_session_n_loras(s) == 0 && !memcmp(l, l_base, VOCAB * sizeof *l), "api_lora_detach_is_base",
            "logits of prompt 0 bit for bit");
    free(l);
    phi_session_set_loras(s, one, &zero, 1);
    l = l_base ? logits_of(s, ids0, n0) : NULL;
    t_check(l && !memcmp(l, l_base, VOCAB * sizeof *l), "api_lora_scale0_is_base", "bit for bit");
    free(l);
    phi_session_set_loras(s, one, &s1, 1);
    l = l_base ? logits_of(s, ids0, n0) : NULL;
    t_check(l && memcmp(l, l_base, VOCAB * sizeof *l), "api_lora_changes_logits", NULL);
    free(l);

    /* errors: a status, one line, nothing changed */
    rc = phi_session_set_loras(s, one, &nan_, 1);
    t_check(rc == PHI_ERR_ARG && one_line(phi_last_error()) && phi_session_n_loras(s) == 1, "api_lora_nan_scale",
            "%d: %s", rc, phi_last_error());
    const phi_lora *none[1] = {NULL};
    rc = phi_session_set_loras(s, none, &s1, 1);
    t_check(rc == PHI_ERR_ARG && one_line(phi_last_error()), "api_lora_null_adapter", "%d: %s", rc, phi_last_error());
    t_check(phi_session_set_loras(s, NULL, &s1, 1) == PHI_ERR_ARG && phi_session_set_loras(s, one, &s1, -1) == PHI_ERR_ARG,
            "api_lora_bad_arguments", "%s", phi_last_error());
    rc = phi_lora_load(m, "/nonexistent/adapter", &bad);
    t_check(rc == PHI_ERR_LORA && !bad && one_line(phi_last_error()), "api_lora_missing", "%d: %s", rc,
            phi_last_error());
    t_check(phi_lora_load(NULL, ad_dir, &bad) == PHI_ERR_ARG && phi_lora_load(m, ad_dir, NULL) == PHI_ERR_ARG,
            "api_lora_load_null", "%s", phi_last_error());
    /* a folder with a broken config */
    char dir[700], f[800];
    snprintf(dir, sizeof dir, "%s/api_lora_bad", t_tmp_dir());
    mkdir(dir, 0755);
    snprintf(f, sizeof f, "%s/adapter_config.json", dir);
    FILE *fp = fopen(f, "wb");
    if (fp) fputs("{\"peft_type\": \"LORA\", \"r\": 8, \"use_dora\": true}", fp), fclose(fp);
    char st_src[800];
    snprintf(st_src, sizeof st_src, "%s/adapter_model.safetensors", ad_dir);
    snprintf(f, sizeof f, "%s/adapter_model.safetensors", dir);
    char *abs = realpath(st_src, NULL); /* the real tensors: the config is what is refused */
    unlink(f);
    if (!abs || symlink(abs, f)) t_check(0, "api_lora_bad_folder_setup", "%s", f);
    free(abs);
    rc = phi_lora_load(m, dir, &bad);
    t_check(rc == PHI_ERR_LORA && !bad && one_line(phi_last_error()), "api_lora_bad_folder", "%d: %s", rc,
            phi_last_error());
    /* an adapter for another model shape: the random tiny model (2 layers of 64) */
    phi_model *tiny = NULL;
    snprintf(path, sizeof path, "%s/api_lora_tiny.phi", t_tmp_dir());
    ConvertOptions ct = {.type = TENSOR_F32, .seed = 3};
    if (!convert_random("tiny", path, &ct, err, sizeof err) && phi_model_open(path, 0, &tiny) == PHI_OK) {
        rc = phi_lora_load(tiny, ad_dir, &bad);
        t_check(rc == PHI_ERR_LORA && !bad && one_line(phi_last_error()), "api_lora_other_shape", "%d: %s", rc,
                phi_last_error());
        /* and an adapter of one model is refused by another model's session */
        phi_session *ts = NULL;
        if (phi_session_new(tiny, NULL, &ts) == PHI_OK) {
            rc = phi_session_set_loras(ts, one, &s1, 1);
            t_check(rc == PHI_ERR_ARG && one_line(phi_last_error()), "api_lora_other_model", "%d: %s", rc,
                    phi_last_error());
            phi_session_free(ts);
        }
        phi_model_free(tiny);
    } else {
        t_check(0, "api_lora_other_shape", "cannot make the tiny model: %s", err);
    }

    free(ids0);
    free(l_base);
    phi_session_free(s);
    phi_lora_free(a);
    phi_model_free(m);
    return t_failed_count ? 1 : 0;
}
