/* Hugging Face folder reader: config.json -> hyperparameters on the data's configs and on
 * hand-written good and bad ones; opening single-file and sharded checkpoints. */
#include "convert/hf.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static char err[1024];

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

/* Base config (the mha shape), one member per entry. */
static const char *base_members[] = {
    "\"architectures\": [\"Phi3ForCausalLM\"]", "\"model_type\": \"phi3\"",
    "\"hidden_size\": 64", "\"num_hidden_layers\": 2", "\"num_attention_heads\": 4",
    "\"num_key_value_heads\": 4", "\"intermediate_size\": 128", "\"vocab_size\": 32064",
    "\"max_position_embeddings\": 4096", "\"original_max_position_embeddings\": 4096",
    "\"rms_norm_eps\": 1e-05", "\"rope_theta\": 10000.0", "\"rope_scaling\": null",
    "\"sliding_window\": 2047", "\"tie_word_embeddings\": false", "\"bos_token_id\": 1",
    "\"eos_token_id\": 32000", "\"pad_token_id\": 32000",
};

/* The base config without the member named drop (may be NULL), with extra members first
 * (the first of duplicate keys wins, so extra overrides the base). */
static char *make_config(const char *drop, const char *extra) {
    static char buf[8192];
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sizeof buf - o, "{%s%s", extra ? extra : "", extra ? "," : "");
    int first = 1;
    for (size_t i = 0; i < sizeof base_members / sizeof base_members[0]; i++) {
        if (drop && strncmp(base_members[i] + 1, drop, strlen(drop)) == 0 &&
            base_members[i][strlen(drop) + 1] == '"')
            continue;
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", first ? "" : ",", base_members[i]);
        first = 0;
    }
    snprintf(buf + o, sizeof buf - o, "}");
    return buf;
}

/* Parses config (and gen config) text; returns hf_parse_config's result, or -2 on a JSON error. */
static int parse_texts(const char *cfg, const char *gen, HfModel *m) {
    Json *c = json_parse(cfg, strlen(cfg), err, sizeof err);
    Json *g = gen ? json_parse(gen, strlen(gen), err, sizeof err) : NULL;
    int rc = -2;
    if (c && (!gen || g)) rc = hf_parse_config(json_root(c), g ? json_root(g) : NULL, m, err, sizeof err);
    json_free(c);
    json_free(g);
    return rc;
}

static void expect_bad(const char *name, const char *cfg, const char *gen, const char *want) {
    HfModel m;
    err[0] = 0;
    int rc = parse_texts(cfg, gen, &m);
    t_check(rc == -1 && one_line(err) && (!want || strstr(err, want)) && m.short_factor == NULL, name, "%s",
            rc == 0 ? "accepted" : err);
    if (rc == 0) hf_close(&m);
}

static int parse_folder_config(const char *folder, HfModel *m) {
    char path[512];
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/%s/config.json", t_data_dir(), folder);
    Json *c = json_parse_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/%s/generation_config.json", t_data_dir(), folder);
    Json *g = json_parse_file(path, err, sizeof err);
    int rc = c && g ? hf_parse_config(json_root(c), json_root(g), m, err, sizeof err) : -2;
    json_free(c);
    json_free(g);
    return rc;
}

static int stops_are(const PhiHParams *hp, int n, const uint32_t *ids) {
    if ((int)hp->n_stop_ids != n) return 0;
    for (int i = 0; i < n; i++)
        if (hp->stop_ids[i] != ids[i]) return 0;
    return 1;
}

static void test_data_configs(void) {
    if (!t_data_dir()) {
        t_skip("hf_data_configs", "no test data folder (PHI_DATA or ../shared/data)");
        return;
    }
    const uint32_t stops[3] = {32000, 32001, 32007};
    HfModel m;
    err[0] = 0;
    int rc = parse_folder_config("mha", &m);
    PhiHParams *hp = &m.hp;
    t_check(rc == 0 && hp->arch == PHI_ARCH_PHI3 && hp->dim == 64 && hp->n_layers == 2 && hp->n_heads == 4 &&
                hp->n_kv_heads == 4 && hp->head_dim == 16 && hp->hidden_dim == 128 && hp->vocab_size == 32064 &&
                hp->max_seq_len == 4096 && hp->orig_max_seq_len == 4096 && hp->rope_dims == 16 &&
                hp->sliding_window == 2047 && hp->rope_scaling == PHI_ROPE_NONE && hp->rope_attn_factor == 1.0f &&
                hp->tie_embeddings == 0 && hp->bos_id == 1 && hp->eos_id == 32000 && hp->pad_id == 32000 &&
                hp->rope_theta == 10000.0f && hp->rms_eps == 1e-5f && hp->partial_rotary_factor == 1.0f &&
                stops_are(hp, 3, stops) && m.n_factor == 0 && m.short_factor == NULL,
            "hf_config_mha", "%s", rc ? err : "all fields");
    hf_close(&m);

    rc = parse_folder_config("gqa-sharded", &m);
    t_check(rc == 0 && hp->dim == 128 && hp->n_layers == 3 && hp->n_heads == 8 && hp->n_kv_heads == 2 &&
                hp->head_dim == 16 && hp->hidden_dim == 256,
            "hf_config_gqa", "%s", rc ? err : "8 heads, 2 kv heads");
    hf_close(&m);

    rc = parse_folder_config("longrope", &m);
    float want_attn = (float)sqrt(1.0 + log(256.0 / 64.0) / log(64.0));
    t_check(rc == 0 && hp->rope_scaling == PHI_ROPE_LONGROPE && m.n_factor == 8 && m.short_factor &&
                m.long_factor && m.short_factor[0] == 1.3062316179275513f &&
                m.short_factor[7] == 1.4343336820602417f && m.long_factor[0] == 7.848013401031494f &&
                m.long_factor[7] == 4.993289470672607f && hp->max_seq_len == 256 && hp->orig_max_seq_len == 64 &&
                hp->rope_attn_factor == want_attn && fabsf(hp->rope_attn_factor - 1.154700538f) < 1e-6f,
            "hf_config_longrope", "%s", rc ? err : "8+8 factors, attention factor 1.1547005");
    hf_close(&m);

    rc = parse_folder_config("phi4ish", &m);
    t_check(rc == 0 && hp->head_dim == 32 && hp->rope_dims == 24 && hp->partial_rotary_factor == 0.75f &&
                hp->tie_embeddings == 1 && hp->n_kv_heads == 2,
            "hf_config_phi4ish", "%s", rc ? err : "24 of 32 dims rotate, tied");
    hf_close(&m);

    rc = parse_folder_config("swa", &m);
    t_check(rc == 0 && hp->sliding_window == 8, "hf_config_swa", "%s", rc ? err : "sliding_window 8");
    hf_close(&m);
}

static void test_good_configs(void) {
    HfModel m;
    const PhiHParams *hp = &m.hp;
    err[0] = 0;
    int rc = parse_texts(make_config(NULL, NULL), NULL, &m);
    t_check(rc == 0 && hp->n_stop_ids == 1 && hp->stop_ids[0] == 32000, "hf_no_generation_config",
            "%s", rc ? err : "stop ids from config.json");
    hf_close(&m);

    rc = parse_texts(make_config("architectures", NULL), NULL, &m);
    t_check(rc == 0 && hp->arch == PHI_ARCH_PHI3, "hf_model_type_only", "%s", rc ? err : "");
    hf_close(&m);

    /* defaults for optional keys */
    const char *minimal = "{\"architectures\":[\"Phi3ForCausalLM\"],\"hidden_size\":96,\"num_hidden_layers\":1,"
                          "\"num_attention_heads\":6,\"intermediate_size\":50,\"vocab_size\":32064,"
                          "\"max_position_embeddings\":128}";
    rc = parse_texts(minimal, NULL, &m);
    t_check(rc == 0 && hp->n_kv_heads == 6 && hp->head_dim == 16 && hp->orig_max_seq_len == 128 &&
                hp->rope_theta == 10000.0f && hp->rms_eps == 1e-5f && hp->rope_dims == 16 &&
                hp->sliding_window == 0 && hp->tie_embeddings == 0 && hp->bos_id == 1 && hp->eos_id == 32000 &&
                hp->pad_id == 32000 && hp->rope_attn_factor == 1.0f && hp->n_stop_ids == 1,
            "hf_defaults", "%s", rc ? err : "");
    hf_close(&m);

    rc = parse_texts(make_config(NULL, "\"sliding_window\":null,\"pad_token_id\":null,\"num_key_value_heads\":null,"
                                       "\"eos_token_id\":[7,8,7],\"head_dim\":16"),
                     NULL, &m);
    const uint32_t s78[2] = {7, 8};
    t_check(rc == 0 && hp->sliding_window == 0 && hp->pad_id == 7 && hp->eos_id == 7 && hp->n_kv_heads == 4 &&
                stops_are(hp, 2, s78),
            "hf_nulls_and_eos_list", "%s", rc ? err : "null -> default, eos list deduplicated");
    hf_close(&m);

    rc = parse_texts(make_config(NULL, NULL), "{\"eos_token_id\": 32007}", &m);
    t_check(rc == 0 && hp->n_stop_ids == 1 && hp->stop_ids[0] == 32007 && hp->eos_id == 32000,
            "hf_gen_config_int_eos", "%s", rc ? err : "");
    hf_close(&m);
    rc = parse_texts(make_config(NULL, NULL), "{\"bos_token_id\": 1}", &m);
    t_check(rc == 0 && hp->n_stop_ids == 1 && hp->stop_ids[0] == 32000, "hf_gen_config_without_eos", "%s",
            rc ? err : "falls back to config.json");
    hf_close(&m);

    char factors[512];
    snprintf(factors, sizeof factors,
             "\"max_position_embeddings\":131072,\"rope_scaling\":{\"type\":\"su\",\"short_factor\":[1,1,1,1,1,1,1,1],"
             "\"long_factor\":[2,2,2,2,2,2,2,2.5],\"attention_factor\":1.25}");
    rc = parse_texts(make_config(NULL, factors), NULL, &m);
    t_check(rc == 0 && hp->rope_scaling == PHI_ROPE_LONGROPE && hp->rope_attn_factor == 1.25f &&
                m.long_factor[7] == 2.5f,
            "hf_longrope_su_attention_factor", "%s", rc ? err : "");
    hf_close(&m);
    rc = parse_texts(make_config(NULL, "\"rope_scaling\":{\"rope_type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1,1],"
                                       "\"long_factor\":[2,2,2,2,2,2,2,2]}"),
                     NULL, &m);
    t_check(rc == 0 && hp->rope_scaling == PHI_ROPE_LONGROPE && hp->rope_attn_factor == 1.0f, "hf_longrope_no_scale",
            "%s", rc ? err : "max == original max: attention factor 1");
    hf_close(&m);
}

static void test_bad_configs(void) {
    static const struct { const char *name, *drop, *extra, *want; } bad[] = {
        {"wrong_arch", NULL, "\"architectures\":[\"LlamaForCausalLM\"]",
         "unsupported architecture 'LlamaForCausalLM' (phi runs Phi3ForCausalLM)"},
        {"arch_not_list", NULL, "\"architectures\":\"Phi3ForCausalLM\"", "architectures"},
        {"arch_empty", NULL, "\"architectures\":[]", "architectures"},
        {"wrong_model_type", "architectures", "\"model_type\":\"llama\"", "unsupported architecture 'llama'"},
        {"missing_hidden_size", "hidden_size", NULL, "config.json: missing 'hidden_size'"},
        {"missing_layers", "num_hidden_layers", NULL, "missing 'num_hidden_layers'"},
        {"missing_heads", "num_attention_heads", NULL, "missing 'num_attention_heads'"},
        {"missing_intermediate", "intermediate_size", NULL, "missing 'intermediate_size'"},
        {"missing_vocab", "vocab_size", NULL, "missing 'vocab_size'"},
        {"missing_max_pos", "max_position_embeddings", NULL, "missing 'max_position_embeddings'"},
        {"kv_not_dividing", NULL, "\"num_attention_heads\":8,\"num_key_value_heads\":3,\"hidden_size\":128",
         "config.json: num_key_value_heads 3 does not divide num_attention_heads 8"},
        {"kv_more_than_heads", NULL, "\"num_key_value_heads\":8", "num_key_value_heads"},
        {"hidden_not_multiple", NULL, "\"hidden_size\":66", "not a multiple"},
        {"head_dim_inconsistent", NULL, "\"head_dim\":32", "head_dim"},
        {"negative_hidden", NULL, "\"hidden_size\":-64", "hidden_size -64 out of range"},
        {"zero_layers", NULL, "\"num_hidden_layers\":0", "num_hidden_layers"},
        {"huge_layers", NULL, "\"num_hidden_layers\":1025", "num_hidden_layers"},
        {"huge_hidden", NULL, "\"hidden_size\":2097152", "hidden_size"},
        {"huge_vocab", NULL, "\"vocab_size\":8388608", "vocab_size"},
        {"huge_max_pos", NULL, "\"max_position_embeddings\":33554432", "max_position_embeddings"},
        {"int_overflow", NULL, "\"intermediate_size\":18446744073709551616", "intermediate_size"},
        {"fraction_hidden", NULL, "\"hidden_size\":64.5", "'hidden_size' must be an integer"},
        {"string_hidden", NULL, "\"hidden_size\":\"64\"", "'hidden_size' must be an integer"},
        {"eps_zero", NULL, "\"rms_norm_eps\":0", "rms_norm_eps"},
        {"eps_one", NULL, "\"rms_norm_eps\":1", "rms_norm_eps"},
        {"eps_string", NULL, "\"rms_norm_eps\":\"1e-5\"", "rms_norm_eps"},
        {"theta_zero", NULL, "\"rope_theta\":0", "rope_theta"},
        {"theta_negative", NULL, "\"rope_theta\":-10000", "rope_theta"},
        {"theta_too_big_for_float", NULL, "\"rope_theta\":1e300", "rope_theta"},
        {"partial_zero", NULL, "\"partial_rotary_factor\":0", "partial_rotary_factor"},
        {"partial_above_one", NULL, "\"partial_rotary_factor\":1.5", "partial_rotary_factor"},
        {"partial_odd_dims", NULL, "\"partial_rotary_factor\":0.1875", "must be even"},
        {"partial_zero_dims", NULL, "\"partial_rotary_factor\":0.01", "must be even and > 0"},
        {"rope_linear", NULL, "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}", "unsupported rope_scaling type 'linear'"},
        {"rope_dynamic", NULL, "\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":2.0}", "unsupported rope_scaling type 'dynamic'"},
        {"rope_yarn", NULL, "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2.0}", "unsupported rope_scaling type 'yarn'"},
        {"rope_not_object", NULL, "\"rope_scaling\":\"longrope\"", "rope_scaling"},
        {"rope_no_type", NULL, "\"rope_scaling\":{\"factor\":2.0}", "type"},
        {"factors_short_list", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1],"
                                     "\"long_factor\":[1,1,1,1,1,1,1,1]}", "short_factor has 7 entries, expected 8"},
        {"factors_long_list", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1,1],"
                                    "\"long_factor\":[1,1,1,1,1,1,1,1,1]}", "long_factor has 9 entries"},
        {"factors_missing_long", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1,1]}",
         "long_factor"},
        {"factor_zero", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,1,0,1,1,1,1],"
                              "\"long_factor\":[1,1,1,1,1,1,1,1]}", "short_factor[3]"},
        {"factor_negative", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1,1],"
                                  "\"long_factor\":[1,1,1,1,1,1,1,-2]}", "long_factor[7]"},
        {"factor_string", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,\"1\",1,1,1,1,1],"
                                "\"long_factor\":[1,1,1,1,1,1,1,1]}", "short_factor[2]"},
        {"factor_not_list", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":1,"
                                  "\"long_factor\":[1,1,1,1,1,1,1,1]}", "short_factor"},
        {"attention_factor_negative", NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1,1],"
                                            "\"long_factor\":[1,1,1,1,1,1,1,1],\"attention_factor\":-1}", "attention_factor"},
        {"longrope_orig_one", NULL, "\"original_max_position_embeddings\":1,\"rope_scaling\":{\"type\":\"longrope\","
                                    "\"short_factor\":[1,1,1,1,1,1,1,1],\"long_factor\":[1,1,1,1,1,1,1,1]}", "original_max"},
        {"tie_string", NULL, "\"tie_word_embeddings\":\"yes\"", "tie_word_embeddings"},
        {"eos_beyond_vocab", NULL, "\"eos_token_id\":40000", "eos_token_id"},
        {"eos_list_bad", NULL, "\"eos_token_id\":[\"x\"]", "eos_token_id"},
        {"bos_negative", NULL, "\"bos_token_id\":-1", "bos_token_id"},
        {"pad_beyond_vocab", NULL, "\"pad_token_id\":32064", "pad_token_id"},
        {"sliding_negative", NULL, "\"sliding_window\":-1", "sliding_window"},
        {"default_eos_beyond_small_vocab", "eos_token_id", "\"vocab_size\":100", "eos_token_id 32000"},
    };
    char name[80];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(name, sizeof name, "hf_bad_%s", bad[i].name);
        expect_bad(name, make_config(bad[i].drop, bad[i].extra), NULL, bad[i].want);
    }
    expect_bad("hf_bad_not_object", "[1, 2]", NULL, "not a JSON object");
    expect_bad("hf_bad_arch_newline", make_config(NULL, "\"architectures\":[\"A\\nB\"]"), NULL, "'A?B'");
    expect_bad("hf_bad_gen_too_many_stops", make_config(NULL, NULL), "{\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}",
               "generation_config.json: more than 8");
    expect_bad("hf_bad_gen_eos_string", make_config(NULL, NULL), "{\"eos_token_id\":\"2\"}", "generation_config.json");
    expect_bad("hf_bad_gen_not_object", make_config(NULL, NULL), "[]", "generation_config.json");

    /* 1e999 cannot reach hf: the JSON reader refuses numbers beyond the double range */
    HfModel m;
    err[0] = 0;
    int rc = parse_texts(make_config(NULL, "\"rope_theta\":1e999"), NULL, &m);
    t_check(rc == -2 && strstr(err, "number out of range"), "hf_bad_infinite_number", "%s", err);

    /* random edits of a valid config: either accepted or a clean one-line error */
    const char *base = make_config(NULL, "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1,1,1,1,1,1,1],"
                                         "\"long_factor\":[2,2,2,2,2,2,2,2]},\"partial_rotary_factor\":1.0");
    size_t len = strlen(base);
    char *buf = malloc(len + 1);
    static const char digits[] = "0123456789-.e\"[]{},: n";
    t_seed(99);
    int ok = 1, accepted = 0;
    for (int iter = 0; iter < 5000; iter++) {
        memcpy(buf, base, len + 1);
        for (int e = 0; e < 3; e++) {
            size_t at = (size_t)((t_randf() + 1) * 0.5f * (float)len) % len;
            buf[at] = digits[(size_t)((t_randf() + 1) * 0.5f * (float)(sizeof digits - 1)) % (sizeof digits - 1)];
        }
        err[0] = 0;
        rc = parse_texts(buf, NULL, &m);
        if (rc == 0) {
            accepted++;
            ok &= m.hp.dim == m.hp.n_heads * m.hp.head_dim && m.hp.n_heads % m.hp.n_kv_heads == 0 &&
                  m.hp.rope_dims % 2 == 0 && m.hp.rope_dims > 0 && m.hp.rope_dims <= m.hp.head_dim;
            hf_close(&m);
        } else {
            ok &= one_line(err);
        }
    }
    free(buf);
    t_check(ok, "hf_random_edits", "5000 mutated configs, %d accepted and consistent", accepted);
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static void test_open(void) {
    HfModel m;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/hf-no-such-dir", t_tmp_dir());
    err[0] = 0;
    snprintf(path, sizeof path, "%s/config.json: No such file or directory", dir);
    t_check(hf_open(dir, &m, err, sizeof err) == -1 && strcmp(err, path) == 0, "hf_open_missing_dir", "%s", err);

    /* a folder of our own: config but no weights, then an index with bad entries */
    snprintf(dir, sizeof dir, "%s/hf-folder", t_tmp_dir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, make_config(NULL, NULL));
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    err[0] = 0;
    t_check(hf_open(dir, &m, err, sizeof err) == -1 && strstr(err, "no model.safetensors"), "hf_open_no_weights",
            "%s", err);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, make_config(NULL, "\"num_key_value_heads\":3"));
    err[0] = 0;
    t_check(hf_open(dir, &m, err, sizeof err) == -1 && strstr(err, "hf-folder/config.json: num_key_value_heads 3") &&
                one_line(err),
            "hf_open_bad_config", "%s", err);
    write_text(path, make_config(NULL, NULL));

    /* one tiny shard holding "a" */
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    snprintf(path, sizeof path, "%s/shard1.safetensors", dir);
    FILE *f = fopen(path, "wb");
    unsigned char len8[8] = {(unsigned char)strlen(hdr)};
    fwrite(len8, 1, 8, f);
    fputs(hdr, f);
    fwrite("\0\0\x80\x3f", 1, 4, f);
    fclose(f);
    static const struct { const char *name, *index, *want; } bad[] = {
        {"hf_open_index_dotdot", "{\"weight_map\":{\"a\":\"../shard1.safetensors\"}}", "invalid shard file name"},
        {"hf_open_index_slash", "{\"weight_map\":{\"a\":\"sub/shard1.safetensors\"}}", "invalid shard file name"},
        {"hf_open_index_not_string", "{\"weight_map\":{\"a\":1}}", "invalid shard file name"},
        {"hf_open_index_empty", "{\"weight_map\":{}}", "weight_map"},
        {"hf_open_index_missing_shard", "{\"weight_map\":{\"a\":\"nope.safetensors\"}}", "nope.safetensors"},
        {"hf_open_index_tensor_not_in_shard", "{\"weight_map\":{\"a\":\"shard1.safetensors\",\"b\":\"shard1.safetensors\"}}",
         "tensor 'b' is not in shard1.safetensors"},
        {"hf_open_index_bad_json", "{\"weight_map\":", "model.safetensors.index.json: json:"},
    };
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i].index);
        err[0] = 0;
        t_check(hf_open(dir, &m, err, sizeof err) == -1 && strstr(err, bad[i].want) && one_line(err) && m.n_files == 0,
                bad[i].name, "%s", err);
    }
    write_text(path, "{\"metadata\":{},\"weight_map\":{\"a\":\"shard1.safetensors\"}}");
    err[0] = 0;
    const StFile *sf = NULL;
    int rc = hf_open(dir, &m, err, sizeof err);
    float one = 0;
    const StTensor *t = rc ? NULL : hf_find(&m, "a", &sf);
    t_check(t && sf && st_read_f32(sf, t, 0, 1, &one, err, sizeof err) == 0 && one == 1.0f, "hf_open_own_index",
            "%s", rc ? err : "");
    if (!rc) hf_close(&m);

    if (!t_data_dir()) {
        t_skip("hf_open_data", "no test data folder (PHI_DATA or ../shared/data)");
        return;
    }
    snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/gqa-sharded", t_data_dir());
    err[0] = 0;
    rc = hf_open(dir, &m, err, sizeof err);
    const StFile *f1 = NULL, *f2 = NULL;
    const StTensor *emb = rc ? NULL : hf_find(&m, "model.embed_tokens.weight", &f1);
    const StTensor *head = rc ? NULL : hf_find(&m, "lm_head.weight", &f2);
    t_check(rc == 0 && m.n_files == 2 && emb && head && f1 && f2 && f1 != f2 &&
                strstr(f1->path, "model-00001-of-00002") && strstr(f2->path, "model-00002-of-00002") &&
                emb->shape[0] == 32064 && emb->shape[1] == 128 && m.hp.n_kv_heads == 2 && m.hp.n_stop_ids == 3,
            "hf_open_sharded", "%s", rc ? err : "tensors found in both shards");
    int all = 1;
    for (int l = 0; l < 3; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        all &= rc == 0 && hf_find(&m, name, NULL) != NULL;
    }
    t_check(all && (rc || hf_find(&m, "model.layers.3.mlp.down_proj.weight", &f1) == NULL) && (rc || f1 == NULL),
            "hf_find_all_layers", "present ones found, absent one NULL");
    if (!rc) hf_close(&m);

    snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/longrope", t_data_dir());
    err[0] = 0;
    rc = hf_open(dir, &m, err, sizeof err);
    t_check(rc == 0 && m.n_files == 1 && m.n_factor == 8 &&
                hf_find(&m, "model.layers.0.self_attn.qkv_proj.weight", NULL) != NULL,
            "hf_open_single_file", "%s", rc ? err : "longrope (model.safetensors through a link)");
    if (!rc) hf_close(&m);
}

int main(void) {
    test_data_configs();
    test_good_configs();
    test_bad_configs();
    test_open();
    return t_done();
}
