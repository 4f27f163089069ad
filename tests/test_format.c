/* phi file format: writer/reader round trip, and corrupt, truncated and hand-crafted files. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/format.h"
#include "kernels/blocks.h"
#include "tests/harness.h"

static PhiHParams small_hparams(void) {
    PhiHParams hp = {0};
    hp.arch = PHI_ARCH_PHI3;
    hp.vocab_size = 100;
    hp.dim = 64;
    hp.n_layers = 1;
    hp.n_heads = 4;
    hp.n_kv_heads = 2;
    hp.head_dim = 16;
    hp.hidden_dim = 96;
    hp.max_seq_len = 128;
    hp.orig_max_seq_len = 128;
    hp.rope_dims = 16;
    hp.rope_theta = 10000;
    hp.rms_eps = 1e-5f;
    hp.rope_attn_factor = 1;
    hp.partial_rotary_factor = 1;
    hp.bos_id = 1;
    hp.eos_id = 2;
    hp.n_stop_ids = 2;
    hp.stop_ids[0] = 2;
    hp.stop_ids[1] = 7;
    return hp;
}

static int parses(const uint8_t *b, uint64_t n, char *err, size_t errlen) {
    PhiFile f;
    int rc = phi_file_parse(b, n, &f, err, errlen);
    if (rc == 0) phi_file_free(&f);
    return rc == 0;
}

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Files named PATH.tmp.* (the writer's temporaries) in PATH's folder. */
static int temporaries_of(const char *path) {
    char dir[512], prefix[512];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    snprintf(prefix, sizeof prefix, "%s.tmp.", slash ? slash + 1 : path);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

/* A test name made of the stringized macro arguments: [A-Za-z0-9_] only. */
static const char *tname(const char *s) {
    static char b[128];
    size_t n = 0;
    for (; *s && n + 1 < sizeof b; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) b[n++] = *s;
        else if (n && b[n - 1] != '_') b[n++] = '_';
    while (n && b[n - 1] == '_') n--;
    b[n] = 0;
    return b;
}

/* Every hyperparameter outside its range (docs/FORMAT.md) is refused with one line naming it;
 * the values at the ends of the ranges are accepted. */
static void test_hparams_ranges(void) {
    char err[512];
    const PhiHParams base = small_hparams();
    t_check(phi_hparams_check(&base, err, sizeof err) == 0, "hparams_small_ok", "%s", err);
    union { uint32_t u; float f; } nan = {0x7fc00000u}, inf = {0x7f800000u};
#define BAD(field, value, want)                                                                    \
    do {                                                                                           \
        PhiHParams h = base;                                                                       \
        h.field = value;                                                                           \
        err[0] = 0;                                                                                \
        int rc = phi_hparams_check(&h, err, sizeof err);                                          \
        t_check(rc == -1 && one_line(err) && strstr(err, want), tname("hparams_bad_" #field "_" #value), \
                "%s", rc ? err : "accepted");                                                      \
    } while (0)
#define GOOD(field, value)                                                                         \
    do {                                                                                           \
        PhiHParams h = base;                                                                       \
        h.field = value;                                                                           \
        int rc = phi_hparams_check(&h, err, sizeof err);                                          \
        t_check(rc == 0, tname("hparams_ok_" #field "_" #value), "%s", rc ? err : "");             \
    } while (0)
    BAD(arch, 2, "architecture");
    BAD(vocab_size, 0, "vocab_size");
    BAD(vocab_size, PHI_MAX_VOCAB + 1, "vocab_size");
    BAD(dim, 0, "dim");
    BAD(dim, PHI_MAX_DIM + 1, "dim");
    BAD(n_layers, 0, "n_layers");
    BAD(n_layers, 1025, "n_layers");
    BAD(n_heads, 4097, "n_heads");
    BAD(n_kv_heads, 0, "n_kv_heads");
    BAD(n_kv_heads, 3, "divide");
    BAD(n_kv_heads, 8, "n_kv_heads"); /* more kv heads than heads */
    BAD(head_dim, 0, "head_dim");
    BAD(head_dim, 17, "even");
    BAD(head_dim, 14, "rope_dims"); /* below rope_dims 16 */
    BAD(head_dim, 4098, "head_dim");
    BAD(hidden_dim, 0, "hidden_dim");
    BAD(hidden_dim, PHI_MAX_HIDDEN + 1, "hidden_dim");
    BAD(max_seq_len, 0, "max_seq_len");
    BAD(max_seq_len, PHI_MAX_POSITIONS + 1, "max_seq_len");
    BAD(orig_max_seq_len, 0, "orig_max_seq_len");
    BAD(orig_max_seq_len, PHI_MAX_POSITIONS + 1, "orig_max_seq_len");
    BAD(rope_dims, 0, "rope_dims");
    BAD(rope_dims, 15, "even");
    BAD(rope_dims, 18, "rope_dims");
    BAD(sliding_window, 0x80000000u, "sliding_window");
    BAD(sliding_window, 0x800001FFu, "sliding_window");
    BAD(sliding_window, 0xFFFFFFFFu, "sliding_window");
    BAD(sliding_window, PHI_MAX_WINDOW + 1, "sliding_window");
    BAD(rope_scaling, 2, "rope_scaling");
    BAD(tie_embeddings, 2, "tie_embeddings");
    BAD(bos_id, 100, "bos_id");
    BAD(eos_id, 100, "eos_id");
    BAD(pad_id, 100, "pad_id");
    BAD(pad_id, 0xFFFFFFFFu, "pad_id");
    BAD(n_stop_ids, 9, "n_stop_ids");
    BAD(stop_ids[1], 100, "stop id");
    BAD(file_type, TENSOR_TYPE_COUNT, "file_type");
    BAD(rope_theta, 0, "rope_theta");
    BAD(rope_theta, -1, "rope_theta");
    BAD(rope_theta, 0.5f, "rope_theta");
    BAD(rope_theta, 1e13f, "rope_theta");
    BAD(rope_theta, nan.f, "rope_theta");
    BAD(rope_theta, inf.f, "rope_theta");
    BAD(rms_eps, 0, "rms_eps");
    BAD(rms_eps, 0.5f, "rms_eps");
    BAD(rms_eps, nan.f, "rms_eps");
    BAD(rope_attn_factor, 0, "rope_attn_factor");
    BAD(rope_attn_factor, -1, "rope_attn_factor");
    BAD(rope_attn_factor, 101, "rope_attn_factor");
    BAD(rope_attn_factor, inf.f, "rope_attn_factor");
    BAD(partial_rotary_factor, 0, "partial_rotary_factor");
    BAD(partial_rotary_factor, 1.5f, "partial_rotary_factor");
    BAD(partial_rotary_factor, nan.f, "partial_rotary_factor");
    GOOD(vocab_size, PHI_MAX_VOCAB);
    GOOD(n_layers, 1024);
    GOOD(max_seq_len, PHI_MAX_POSITIONS);
    GOOD(sliding_window, 0);
    GOOD(sliding_window, 127);
    GOOD(sliding_window, 262144); /* Phi-3.5 and Phi-4-mini configs: beyond the context */
    GOOD(sliding_window, PHI_MAX_WINDOW);
    GOOD(n_stop_ids, 0);
    GOOD(stop_ids[7], 0xFFFFFFFFu); /* beyond n_stop_ids: ignored */
    GOOD(pad_id, 99);
    GOOD(rope_theta, 1);
    GOOD(rope_theta, 1e12f);
    GOOD(rms_eps, 1e-12f);
    GOOD(rms_eps, 0.1f);
    GOOD(rope_attn_factor, 100);
    GOOD(partial_rotary_factor, 0.25f);
    GOOD(file_type, TENSOR_TYPE_COUNT - 1);
#undef BAD
#undef GOOD
    PhiHParams h = base;
    h.n_heads = 2048, h.n_kv_heads = 2, h.head_dim = 64; /* 2^17: the largest q width */
    t_check(phi_hparams_check(&h, err, sizeof err) == 0, "hparams_ok_q_width_2^17", "%s", err);
    h.head_dim = 66;
    t_check(phi_hparams_check(&h, err, sizeof err) == -1 && strstr(err, "n_heads x head_dim"),
            "hparams_bad_q_width_over_2^17", "%s", err);
}

int main(void) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/format_test.phi", t_tmp_dir());
    remove(path); /* left by an earlier run: writer_uses_tmp_until_finish checks it is absent */
    test_hparams_ranges();
    PhiHParams hp = small_hparams();
    const char tok[] = "opaque tokenizer bytes";
    float vec[64], mat[3 * 64];
    t_seed(3);
    for (int i = 0; i < 64; i++) vec[i] = t_randf();
    for (int i = 0; i < 3 * 64; i++) mat[i] = t_randf();

    /* write: a vector and a matrix of each type */
    PhiWriter *w = phi_writer_open(path, &hp, tok, sizeof tok, err, sizeof err);
    int idx[5], ok = w != NULL;
    if (ok) {
        idx[0] = phi_writer_add_tensor(w, "vec", TENSOR_F32, 1, 64, 1, err, sizeof err);
        for (int t = 0; t < 4; t++) {
            char name[16];
            snprintf(name, sizeof name, "mat_%d", t);
            idx[1 + t] = phi_writer_add_tensor(w, name, (uint32_t)t, 2, 3, 64, err, sizeof err);
        }
        ok = phi_writer_begin_data(w, err, sizeof err) == 0 &&
             phi_writer_write_at(w, idx[0], 0, vec, sizeof vec, err, sizeof err) == 0;
        struct stat st;
        t_check(stat(path, &st) != 0 && temporaries_of(path) == 1, "writer_uses_tmp_until_finish", "");
        for (int t = 0; t < 4 && ok; t++) {
            uint64_t bytes = type_tensor_bytes((uint32_t)t, 3, 64);
            uint8_t *buf = calloc(1, bytes), q[256];
            uint16_t d[2];
            MatView pm = matview((uint32_t)t, buf, 3, 64);
            for (int r = 0; r < 3; r++) {
                quantize_row((uint32_t)t, mat + r * 64, q, d, 64);
                matview_put_row(&pm, r, q, d);
            }
            ok = buf && phi_writer_write_at(w, idx[1 + t], 0, buf, bytes, err, sizeof err) == 0;
            free(buf);
        }
        t_check(phi_writer_write_at(w, idx[0], 200, vec, 100, err, sizeof err) != 0,
                "writer_rejects_write_past_tensor", "%s", err);
        ok = ok && phi_writer_finish(w, err, sizeof err) == 0;
    }
    t_check(ok, "writer_writes_file", "%s", ok ? "" : err);

    uint64_t n = 0;
    uint8_t *b = t_read_all(path, &n);
    PhiFile f;
    int rc = b ? phi_file_parse(b, n, &f, err, sizeof err) : -1;
    if (t_check(rc == 0, "reader_parses_written_file", "%s", rc ? err : "")) {
        int good = f.n_tensors == 5 && memcmp(&f.hp, &hp, sizeof hp) == 0 &&
                   f.tokenizer_size == sizeof tok && memcmp(f.tokenizer, tok, sizeof tok) == 0;
        int aligned = 1, values = 1;
        for (uint32_t i = 0; i < f.n_tensors; i++) aligned &= f.tensors[i].offset % 64 == 0;
        const PhiTensorInfo *v = phi_file_find(&f, "vec");
        values &= v && memcmp(v->data, vec, sizeof vec) == 0;
        for (int t = 0; t < 4; t++) {
            char name[16];
            float y[64];
            snprintf(name, sizeof name, "mat_%d", t);
            const PhiTensorInfo *ti = phi_file_find(&f, name);
            if (!ti) { values = 0; continue; }
            MatView m = matview(ti->type, ti->data, 3, 64);
            matview_dequant_row(&m, 2, y);
            float tol = t == 0 ? 0 : t == 1 ? 2e-3f : t == 2 ? 2e-2f : 0.3f;
            for (int i = 0; i < 64; i++) values &= fabsf(y[i] - mat[128 + i]) <= tol;
        }
        t_check(good && aligned && values, "roundtrip_hparams_tokenizer_tensors",
                "%u tensors, all 64-byte aligned, values within type tolerance", f.n_tensors);
        phi_file_free(&f);
    }

    /* Every truncation is rejected with one line. */
    int trunc_bad = 0;
    for (uint64_t k = 0; k < n; k += (k < 1024 ? 1 : 61))
        if (parses(b, k, err, sizeof err) || !one_line(err)) trunc_bad++;
    t_check(trunc_bad == 0, "truncated_files_rejected", "%d accepted of all prefixes", trunc_bad);

    /* Hand-crafted corruptions of single fields. */
    struct { const char *name; uint64_t off; uint64_t value; int width; } cases[] = {
        {"bad_magic", 0, 0x4c45444f4d494858ull, 8},
        {"bad_version", 8, 99, 4},
        {"bad_file_size", 16, 1u << 30, 8},
        {"hparams_outside", 24, 1ull << 60, 8},
        {"tokenizer_outside", 48, 1ull << 62, 8},
        {"dir_count_huge", 64, 1ull << 40, 8},
        {"dir_count_overflow", 64, 0x0200000000000000ull, 8},
        {"data_offset_misaligned", 72, 65, 8},
        {"data_offset_zero", 72, 0, 8},
        {"data_offset_in_directory", 72, 384, 8},
        {"hparams_in_header", 24, 0, 8},
        {"hparams_on_directory", 24, 384, 8},
        {"tokenizer_in_header", 40, 64, 8},
        {"tokenizer_on_directory", 40, 384, 8},
        {"directory_on_hparams", 56, 128, 8},
        {"sliding_window_2^31", 128 + 44, 0x80000000u, 4},
        {"pad_id_outside_vocab", 128 + 64, 100, 4},
        {"arch_unknown", 128 + 0, 7, 4},
        {"vocab_zero", 128 + 4, 0, 4},
        {"heads_not_divisible", 128 + 20, 3, 4},
        {"layers_absurd", 128 + 12, 1u << 30, 4},
        {"rope_dims_odd", 128 + 40, 15, 4},
        {"stop_id_outside_vocab", 128 + 72, 5000, 4},
        {"rms_eps_nan", 128 + 4 * 27, 0x7fc00000u, 4},
        {"tensor_type_unknown", 384 + 64, 9, 4},
        {"tensor_ndim_3", 384 + 68, 3, 4},
        {"tensor_shape_mismatch", 384 + 128 + 80, 63, 8},
        {"tensor_offset_misaligned", 384 + 88, 1, 8},
        {"tensor_offset_outside", 384 + 88, 1ull << 50, 8},
        {"tensor_size_wrong", 384 + 128 + 96, 12, 8},
        {"tensors_overlap", 384 + 128 + 88, 0, 8},
        {"name_not_terminated", 384, 0x4141414141414141ull, 8},
    };
    uint8_t *c = malloc(n);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b, n);
        uint64_t v = cases[i].value;
        if (!strcmp(cases[i].name, "tensors_overlap")) { /* second tensor onto the first */
            memcpy(&v, b + 384 + 88, 8);
        }
        if (!strcmp(cases[i].name, "name_not_terminated")) {
            memset(c + 384, 'A', 64);
        } else {
            for (int k = 0; k < cases[i].width; k++) c[cases[i].off + k] = (uint8_t)(v >> (8 * k));
        }
        err[0] = 0;
        int accepted = parses(c, n, err, sizeof err);
        char tname[80];
        snprintf(tname, sizeof tname, "corrupt_%s", cases[i].name);
        t_check(!accepted && one_line(err), tname, "%s", err);
    }

    /* Tensor data over the metadata: data_offset 0 and the first tensor's data at 0 (the
     * header), 128 (hyperparameters) or 384 (directory). */
    static const uint64_t over[] = {0, 128, 384};
    for (int i = 0; i < 3; i++) {
        memcpy(c, b, n);
        memset(c + 72, 0, 8);
        for (int k = 0; k < 8; k++) c[384 + 88 + k] = (uint8_t)(over[i] >> (8 * k));
        err[0] = 0;
        char tn[64];
        snprintf(tn, sizeof tn, "corrupt_tensor_data_at_%llu", (unsigned long long)over[i]);
        t_check(!parses(c, n, err, sizeof err) && one_line(err), tn, "%s", err);
    }

    /* Duplicate names. */
    memcpy(c, b, n);
    memcpy(c + 384 + 128, c + 384, 64);
    t_check(!parses(c, n, err, sizeof err), "corrupt_duplicate_name", "%s", err);

    /* Random byte flips in the metadata never crash (errors or a still-valid file). */
    int flips_ok = 1;
    t_seed(99);
    for (int i = 0; i < 20000; i++) {
        memcpy(c, b, n);
        uint64_t pos = (uint64_t)((t_randf() + 1) * 0.5f * 1024) % n;
        c[pos] ^= (uint8_t)(1 + (i % 255));
        err[0] = 0;
        if (!parses(c, n, err, sizeof err) && !one_line(err)) flips_ok = 0;
    }
    t_check(flips_ok, "random_flips_handled", "20000 single-byte corruptions, no crash, one-line errors");

    /* A failed write leaves nothing behind. */
    char path2[600];
    snprintf(path2, sizeof path2, "%s/format_abort.phi", t_tmp_dir());
    w = phi_writer_open(path2, &hp, tok, sizeof tok, err, sizeof err);
    if (w) {
        phi_writer_add_tensor(w, "vec", TENSOR_F32, 1, 64, 1, err, sizeof err);
        phi_writer_begin_data(w, err, sizeof err);
        phi_writer_abort(w);
    }
    t_check(access(path2, F_OK) != 0 && temporaries_of(path2) == 0, "abort_removes_output", "");

    /* A sliding window of at least max_seq_len reads as 0 (none); a shorter one is kept. */
    static const uint32_t windows[][2] = {{127, 127}, {128, 0}, {262144, 0}, {0, 0}};
    for (int i = 0; i < 4; i++) {
        PhiHParams h = hp;
        h.sliding_window = windows[i][0];
        PhiFile pf;
        uint64_t n3 = 0;
        uint8_t *b3 = NULL;
        int rc3 = -1;
        w = phi_writer_open(path2, &h, tok, sizeof tok, err, sizeof err);
        if (w && phi_writer_add_tensor(w, "vec", TENSOR_F32, 1, 64, 1, err, sizeof err) == 0 &&
            phi_writer_begin_data(w, err, sizeof err) == 0 && phi_writer_finish(w, err, sizeof err) == 0 &&
            (b3 = t_read_all(path2, &n3)))
            rc3 = phi_file_parse(b3, n3, &pf, err, sizeof err);
        else if (w)
            phi_writer_abort(w);
        char tn[64];
        snprintf(tn, sizeof tn, "sliding_window_%u_reads_as_%u", windows[i][0], windows[i][1]);
        t_check(rc3 == 0 && pf.hp.sliding_window == windows[i][1] && b3 && rd_u32(b3 + 128 + 44) == windows[i][0],
                tn, "%s", rc3 ? err : "stored as written");
        if (rc3 == 0) phi_file_free(&pf);
        free(b3);
        remove(path2);
    }

    PhiHParams bad = hp;
    bad.rope_dims = 32;
    t_check(phi_writer_open(path2, &bad, tok, sizeof tok, err, sizeof err) == NULL,
            "writer_rejects_bad_hparams", "%s", err);
    free(c);
    free(b);
    return t_done();
}
