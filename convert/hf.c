/* Hugging Face Phi-3 folder reader: config.json -> PhiHParams (+ LongRoPE factors), and the
 * safetensors file(s) holding the weights. */
#include "base/errmsg.h"
#include "convert/hf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A key's value, with JSON null treated as absent. */
static const JsonValue *get(const JsonValue *obj, const char *key) {
    const JsonValue *v = json_get(obj, key);
    return json_type(v) == JSON_NULL ? NULL : v;
}

typedef struct {
    const char *file; /* for messages */
    char *err;
    size_t errlen;
} Ctx;

/* Integer key in [lo, hi]: dflt when absent (required when dflt < 0). */
static int get_int(const Ctx *c, const JsonValue *obj, const char *key, long long dflt,
                   long long lo, long long hi, uint32_t *out) {
    const JsonValue *v = get(obj, key);
    long long x;
    if (!v) {
        if (dflt < 0) {
            errorf(c->err, c->errlen, "%s: missing '%s'", c->file, key);
            return -1;
        }
        x = dflt;
    } else if (json_int(v, &x)) {
        errorf(c->err, c->errlen, "%s: '%s' must be an integer", c->file, key);
        return -1;
    }
    if (x < lo || x > hi) {
        errorf(c->err, c->errlen, "%s: %s %lld out of range [%lld, %lld]", c->file, key, x, lo, hi);
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

/* Number key: dflt when absent; must be finite. */
static int get_num(const Ctx *c, const JsonValue *obj, const char *key, double dflt, double *out) {
    const JsonValue *v = get(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (json_type(v) != JSON_NUMBER || !isfinite(json_num(v, 0))) {
        errorf(c->err, c->errlen, "%s: '%s' must be a finite number", c->file, key);
        return -1;
    }
    *out = json_num(v, 0);
    return 0;
}

static int check_arch(const Ctx *c, const JsonValue *cfg) {
    const JsonValue *archs = get(cfg, "architectures");
    const char *name;
    size_t len;
    if (archs) {
        if (json_type(archs) != JSON_ARRAY || json_count(archs) == 0 ||
            !(name = json_str(json_at(archs, 0), &len))) {
            errorf(c->err, c->errlen, "%s: 'architectures' must be a non-empty list of strings", c->file);
            return -1;
        }
        if (len == 15 && memcmp(name, "Phi3ForCausalLM", 15) == 0) return 0;
    } else {
        name = json_str(get(cfg, "model_type"), &len);
        if (!name) {
            errorf(c->err, c->errlen, "%s: missing 'architectures'", c->file);
            return -1;
        }
        if (len == 4 && memcmp(name, "phi3", 4) == 0) return 0;
    }
    char pn[80];
    errorf(c->err, c->errlen, "%s: unsupported architecture '%s' (phi runs Phi3ForCausalLM)", c->file,
            err_printable(name, len, pn, sizeof pn));
    return -1;
}

/* One LongRoPE factor list: exactly n finite positive numbers. */
static float *read_factors(const Ctx *c, const JsonValue *rs, const char *key, size_t n) {
    const JsonValue *a = get(rs, key);
    if (!a) {
        errorf(c->err, c->errlen, "%s: missing 'rope_scaling.%s'", c->file, key);
        return NULL;
    }
    if (json_type(a) != JSON_ARRAY) {
        errorf(c->err, c->errlen, "%s: rope_scaling.%s must be a list of %zu numbers", c->file, key, n);
        return NULL;
    }
    if (json_count(a) != n) {
        errorf(c->err, c->errlen, "%s: rope_scaling.%s has %zu entries, expected %zu (rope_dims/2)",
                c->file, key, json_count(a), n);
        return NULL;
    }
    float *f = malloc(n * sizeof *f);
    if (!f) {
        errorf(c->err, c->errlen, "%s: out of memory", c->file);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const JsonValue *v = json_at(a, i);
        double x = json_num(v, NAN);
        if (!(x > 0) || !isfinite(x) || x > 3.4e38) {
            errorf(c->err, c->errlen, "%s: rope_scaling.%s[%zu] must be a finite number > 0", c->file,
                    key, i);
            free(f);
            return NULL;
        }
        f[i] = (float)x;
    }
    return f;
}

static int parse_rope_scaling(const Ctx *c, const JsonValue *cfg, HfModel *m) {
    PhiHParams *hp = &m->hp;
    hp->rope_scaling = PHI_ROPE_NONE;
    hp->rope_attn_factor = 1.0f;
    const JsonValue *rs = get(cfg, "rope_scaling");
    if (!rs) return 0;
    if (json_type(rs) != JSON_OBJECT) {
        errorf(c->err, c->errlen, "%s: 'rope_scaling' must be an object or null", c->file);
        return -1;
    }
    size_t len;
    const char *type = json_str(get(rs, "type"), &len);
    if (!type) type = json_str(get(rs, "rope_type"), &len);
    if (!type) {
        errorf(c->err, c->errlen, "%s: rope_scaling has no 'type'", c->file);
        return -1;
    }
    if (len == 7 && memcmp(type, "default", 7) == 0) return 0;
    if (!((len == 8 && memcmp(type, "longrope", 8) == 0) || (len == 2 && memcmp(type, "su", 2) == 0))) {
        char pn[80];
        errorf(c->err, c->errlen, "%s: unsupported rope_scaling type '%s'", c->file,
                err_printable(type, len, pn, sizeof pn));
        return -1;
    }
    size_t n = hp->rope_dims / 2;
    if (!(m->short_factor = read_factors(c, rs, "short_factor", n))) return -1;
    if (!(m->long_factor = read_factors(c, rs, "long_factor", n))) return -1;
    m->n_factor = (int)n;
    hp->rope_scaling = PHI_ROPE_LONGROPE;

    const JsonValue *af = get(rs, "attention_factor");
    if (af) {
        double x = json_num(af, NAN);
        if (!(x > 0) || !isfinite(x) || x > 1e6) {
            errorf(c->err, c->errlen, "%s: rope_scaling.attention_factor must be a finite number > 0",
                    c->file);
            return -1;
        }
        hp->rope_attn_factor = (float)x;
    } else if (hp->max_seq_len > hp->orig_max_seq_len) {
        /* Hugging Face Phi-3: sqrt(1 + ln(scale) / ln(original max positions)) */
        if (hp->orig_max_seq_len < 2) {
            errorf(c->err, c->errlen, "%s: original_max_position_embeddings must be > 1 with longrope",
                    c->file);
            return -1;
        }
        double scale = (double)hp->max_seq_len / hp->orig_max_seq_len;
        hp->rope_attn_factor = (float)sqrt(1.0 + log(scale) / log((double)hp->orig_max_seq_len));
    }
    return 0;
}

/* Adds eos_token_id (an integer or a list) of obj to the stop ids. 1 if the key was present. */
static int add_stop_ids(const Ctx *c, const JsonValue *obj, PhiHParams *hp) {
    const JsonValue *e = get(obj, "eos_token_id");
    if (!e) return 0;
    size_t n = json_type(e) == JSON_ARRAY ? json_count(e) : 1;
    for (size_t i = 0; i < n; i++) {
        const JsonValue *v = json_type(e) == JSON_ARRAY ? json_at(e, i) : e;
        long long id;
        if (json_int(v, &id) || id < 0 || id >= (long long)hp->vocab_size) {
            errorf(c->err, c->errlen, "%s: eos_token_id must be ids in [0, vocab_size %u)", c->file,
                    hp->vocab_size);
            return -1;
        }
        int dup = 0;
        for (uint32_t k = 0; k < hp->n_stop_ids; k++) dup |= hp->stop_ids[k] == (uint32_t)id;
        if (dup) continue;
        if (hp->n_stop_ids == PHI_MAX_STOP_IDS) {
            errorf(c->err, c->errlen, "%s: more than %d distinct eos_token_id values", c->file,
                    PHI_MAX_STOP_IDS);
            return -1;
        }
        hp->stop_ids[hp->n_stop_ids++] = (uint32_t)id;
    }
    return 1;
}

static int parse_config(const Ctx *c, const JsonValue *cfg, const JsonValue *gen, HfModel *m) {
    PhiHParams *hp = &m->hp;
    if (json_type(cfg) != JSON_OBJECT) {
        errorf(c->err, c->errlen, "%s: not a JSON object", c->file);
        return -1;
    }
    if (check_arch(c, cfg)) return -1;
    hp->arch = PHI_ARCH_PHI3;
    const long long DIM_MAX = 1 << 20;
    if (get_int(c, cfg, "hidden_size", -1, 1, DIM_MAX, &hp->dim) ||
        get_int(c, cfg, "num_hidden_layers", -1, 1, 1024, &hp->n_layers) ||
        get_int(c, cfg, "num_attention_heads", -1, 1, DIM_MAX, &hp->n_heads) ||
        get_int(c, cfg, "num_key_value_heads", hp->n_heads, 1, DIM_MAX, &hp->n_kv_heads) ||
        get_int(c, cfg, "intermediate_size", -1, 1, DIM_MAX, &hp->hidden_dim) ||
        get_int(c, cfg, "vocab_size", -1, 1, 1 << 22, &hp->vocab_size) ||
        get_int(c, cfg, "max_position_embeddings", -1, 1, 1 << 24, &hp->max_seq_len) ||
        get_int(c, cfg, "original_max_position_embeddings", hp->max_seq_len, 1, 1 << 24,
                &hp->orig_max_seq_len) ||
        get_int(c, cfg, "sliding_window", 0, 0, 1 << 30, &hp->sliding_window))
        return -1;
    if (hp->n_heads % hp->n_kv_heads) {
        errorf(c->err, c->errlen, "%s: num_key_value_heads %u does not divide num_attention_heads %u",
                c->file, hp->n_kv_heads, hp->n_heads);
        return -1;
    }
    if (get(cfg, "head_dim")) {
        if (get_int(c, cfg, "head_dim", -1, 1, DIM_MAX, &hp->head_dim)) return -1;
        if ((uint64_t)hp->head_dim * hp->n_heads != hp->dim) {
            errorf(c->err, c->errlen, "%s: head_dim %u times num_attention_heads %u is not hidden_size %u",
                    c->file, hp->head_dim, hp->n_heads, hp->dim);
            return -1;
        }
    } else {
        if (hp->dim % hp->n_heads) {
            errorf(c->err, c->errlen, "%s: hidden_size %u is not a multiple of num_attention_heads %u",
                    c->file, hp->dim, hp->n_heads);
            return -1;
        }
        hp->head_dim = hp->dim / hp->n_heads;
    }

    double theta, eps, prf;
    if (get_num(c, cfg, "rope_theta", 10000.0, &theta) ||
        get_num(c, cfg, "rms_norm_eps", 1e-5, &eps) ||
        get_num(c, cfg, "partial_rotary_factor", 1.0, &prf))
        return -1;
    if (!(theta > 0) || theta > 3.4e38) {
        errorf(c->err, c->errlen, "%s: rope_theta %g must be > 0 and fit a float", c->file, theta);
        return -1;
    }
    if (!(eps > 0 && eps < 1)) {
        errorf(c->err, c->errlen, "%s: rms_norm_eps %g must be in (0, 1)", c->file, eps);
        return -1;
    }
    if (!(prf > 0 && prf <= 1)) {
        errorf(c->err, c->errlen, "%s: partial_rotary_factor %g must be in (0, 1]", c->file, prf);
        return -1;
    }
    hp->rope_theta = (float)theta;
    hp->rms_eps = (float)eps;
    hp->partial_rotary_factor = (float)prf;
    int rope_dims = (int)(hp->head_dim * prf);
    if (rope_dims <= 0 || rope_dims % 2) {
        errorf(c->err, c->errlen, "%s: rotary dimensions %d (head_dim %u x partial_rotary_factor %g) must be even and > 0",
                c->file, rope_dims, hp->head_dim, prf);
        return -1;
    }
    hp->rope_dims = (uint32_t)rope_dims;

    const JsonValue *tie = get(cfg, "tie_word_embeddings");
    if (tie && json_type(tie) != JSON_BOOL) {
        errorf(c->err, c->errlen, "%s: 'tie_word_embeddings' must be true or false", c->file);
        return -1;
    }
    hp->tie_embeddings = (uint32_t)json_bool(tie, 0);

    long long vmax = (long long)hp->vocab_size - 1;
    if (get_int(c, cfg, "bos_token_id", 1, 0, vmax, &hp->bos_id)) return -1;
    const JsonValue *eos = get(cfg, "eos_token_id");
    if (json_type(eos) == JSON_ARRAY) {
        /* some configs list several; the first is the eos id */
        long long id;
        if (json_int(json_at(eos, 0), &id) || id < 0 || id > vmax) {
            errorf(c->err, c->errlen, "%s: eos_token_id must be ids in [0, vocab_size %u)", c->file,
                    hp->vocab_size);
            return -1;
        }
        hp->eos_id = (uint32_t)id;
    } else if (get_int(c, cfg, "eos_token_id", 32000, 0, vmax, &hp->eos_id)) {
        return -1;
    }
    if (get_int(c, cfg, "pad_token_id", hp->eos_id, 0, vmax, &hp->pad_id)) return -1;

    if (parse_rope_scaling(c, cfg, m)) return -1;

    int got = 0;
    if (gen) {
        Ctx g = {"generation_config.json", c->err, c->errlen};
        if (json_type(gen) != JSON_OBJECT) {
            errorf(c->err, c->errlen, "%s: not a JSON object", g.file);
            return -1;
        }
        if ((got = add_stop_ids(&g, gen, hp)) < 0) return -1;
    }
    if (!got && add_stop_ids(c, cfg, hp) < 0) return -1;
    if (hp->n_stop_ids == 0) hp->stop_ids[hp->n_stop_ids++] = hp->eos_id;
    return 0;
}

/* Starts from a zeroed *m (nothing in it is freed); on failure *m is left zeroed. */
int hf_parse_config(const JsonValue *config, const JsonValue *gen_config, HfModel *m,
                    char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    Ctx c = {"config.json", err, errlen};
    if (parse_config(&c, config, gen_config, m)) {
        free(m->short_factor);
        free(m->long_factor);
        memset(m, 0, sizeof *m);
        return -1;
    }
    return 0;
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Opens one more safetensors file into m->files. */
static int add_file(HfModel *m, const char *dir, const char *name, char *err, size_t errlen) {
    char *path = join(dir, name);
    StFile *files = realloc(m->files, (size_t)(m->n_files + 1) * sizeof *files);
    if (!path || !files) {
        free(path);
        if (files) m->files = files;
        errorf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    m->files = files;
    int rc = st_open(path, &files[m->n_files], err, errlen);
    free(path);
    if (rc) return -1;
    m->n_files++;
    return 0;
}

static int valid_shard_name(const char *s, size_t n) {
    return n > 0 && !memchr(s, '\0', n) && !memchr(s, '/', n) && !memchr(s, '\\', n) &&
           !strstr(s, "..");
}

/* Opens every distinct shard named in the index's weight_map and checks each mapped tensor
 * is in its shard. */
static int open_index(HfModel *m, const char *dir, const char *index_path, char *err, size_t errlen) {
    char msg[300];
    Json *doc = json_parse_file(index_path, msg, sizeof msg);
    if (!doc) {
        errorf(err, errlen, "%s", msg);
        return -1;
    }
    const JsonValue *wm = json_get(json_root(doc), "weight_map");
    size_t n = json_count(wm);
    int rc = -1;
    if (json_type(wm) != JSON_OBJECT || n == 0) {
        errorf(err, errlen, "%s: missing or empty 'weight_map'", index_path);
        goto done;
    }
    /* shard names in order of first use; m->files[k] is the k-th distinct one */
    const char **names = calloc(n, sizeof *names);
    int n_names = 0;
    if (!names) {
        errorf(err, errlen, "%s: out of memory", index_path);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = json_str(json_value_at(wm, i), &len);
        char pn[80];
        if (!s || !valid_shard_name(s, len)) {
            size_t kl;
            const char *k = json_key_at(wm, i, &kl);
            errorf(err, errlen, "%s: invalid shard file name for tensor '%s'", index_path,
                    err_printable(k, kl, pn, sizeof pn));
            free(names);
            goto done;
        }
        int k = 0;
        while (k < n_names && strcmp(names[k], s) != 0) k++;
        if (k == n_names) {
            names[n_names++] = s;
            if (add_file(m, dir, s, err, errlen)) {
                free(names);
                goto done;
            }
        }
        size_t kl;
        const char *key = json_key_at(wm, i, &kl);
        if (!st_find(&m->files[k], key)) {
            errorf(err, errlen, "%s: tensor '%s' is not in %s", index_path,
                    err_printable(key, kl, pn, sizeof pn), s);
            free(names);
            goto done;
        }
    }
    free(names);
    rc = 0;
done:
    json_free(doc);
    return rc;
}

/* A tensor stored in two files would make hf_find ambiguous. */
static int check_unique_tensors(const HfModel *m, char *err, size_t errlen) {
    for (int a = 0; a < m->n_files; a++)
        for (int i = 0; i < m->files[a].n; i++)
            for (int b = a + 1; b < m->n_files; b++) {
                const char *name = m->files[a].tensors[i].name;
                if (st_find(&m->files[b], name)) {
                    char pn[96];
                    errorf(err, errlen, "tensor '%s' is in both %s and %s",
                            err_printable(name, strlen(name), pn, sizeof pn), m->files[a].path,
                            m->files[b].path);
                    return -1;
                }
            }
    return 0;
}

int hf_open(const char *dir, HfModel *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char msg[400];
    Json *cfg = NULL, *gen = NULL;
    char *cfg_path = join(dir, "config.json"), *gen_path = join(dir, "generation_config.json");
    char *index_path = join(dir, "model.safetensors.index.json");
    int rc = -1;
    if (!cfg_path || !gen_path || !index_path) {
        errorf(err, errlen, "%s: out of memory", dir);
        goto done;
    }
    if (!(cfg = json_parse_file(cfg_path, err, errlen))) goto done;
    if (file_exists(gen_path) && !(gen = json_parse_file(gen_path, err, errlen))) goto done;
    if (hf_parse_config(json_root(cfg), gen ? json_root(gen) : NULL, m, msg, sizeof msg)) {
        errorf(err, errlen, "%s/%s", dir, msg); /* messages start with the file name */
        goto done;
    }
    if (file_exists(index_path)) {
        if (open_index(m, dir, index_path, err, errlen)) goto done;
    } else {
        char *single = join(dir, "model.safetensors");
        int have = single && file_exists(single);
        free(single);
        if (!have) {
            errorf(err, errlen, "%s: no model.safetensors or model.safetensors.index.json", dir);
            goto done;
        }
        if (add_file(m, dir, "model.safetensors", err, errlen)) goto done;
    }
    if (check_unique_tensors(m, err, errlen)) goto done;
    rc = 0;
done:
    if (rc) hf_close(m);
    json_free(cfg);
    json_free(gen);
    free(cfg_path);
    free(gen_path);
    free(index_path);
    return rc;
}

void hf_close(HfModel *m) {
    if (!m) return;
    for (int i = 0; i < m->n_files; i++) st_close(&m->files[i]);
    free(m->files);
    free(m->short_factor);
    free(m->long_factor);
    memset(m, 0, sizeof *m);
}

const StTensor *hf_find(const HfModel *m, const char *name, const StFile **file) {
    for (int i = 0; i < m->n_files; i++) {
        const StTensor *t = st_find(&m->files[i], name);
        if (t) {
            if (file) *file = &m->files[i];
            return t;
        }
    }
    if (file) *file = NULL;
    return NULL;
}
