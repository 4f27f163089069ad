/* Tokenizer tests: exactness against llama.cpp's Phi-3 vectors and a Hugging Face reference corpus
 * (tests/data/tokenizer_cases.txt, made by scripts/gen_tokenizer_cases.mjs), decoding, the
 * section round trip, hostile section blobs, invalid UTF-8, tokenizer.model, and a speed figure.
 * `test_tokenizer --bench [file]` only prints the encoding speed. */
#include "base/fileio.h"
#include "tests/harness.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *s;
    size_t len, cap;
} Buf;

static void buf_put(Buf *b, const char *s, size_t len) {
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) abort();
    }
    memcpy(b->s + b->len, s, len);
    b->len += len;
    b->s[b->len] = 0;
}

/* Encodes into a malloc'd array; returns the count or -1 (err set). */
static int encode(const Tokenizer *t, const char *s, size_t len, int add_bos, int **ids, char *err) {
    int cap = 16;
    *ids = malloc(sizeof(int) * (size_t)cap);
    int n = tok_encode(t, s, len, add_bos, *ids, cap, err, 256);
    if (n > cap) {
        free(*ids);
        *ids = malloc(sizeof(int) * (size_t)n);
        int n2 = tok_encode(t, s, len, add_bos, *ids, n, err, 256);
        if (n2 != n) n = -2;
    }
    return n;
}

/* Streams ids through the decoder (one at a time, as generation does). */
static char *decode(const Tokenizer *t, const int *ids, int n, size_t *len) {
    TokDecoder d;
    tok_decoder_init(&d, t);
    Buf b = {0};
    char out[256];
    buf_put(&b, "", 0);
    for (int i = 0; i < n; i++) {
        size_t k = tok_decoder_push(&d, ids[i], out, sizeof out);
        buf_put(&b, out, k);
    }
    size_t k = tok_decoder_flush(&d, out, sizeof out);
    buf_put(&b, out, k);
    *len = b.len;
    return b.s;
}

static int parse_ids(const char *s, int *ids, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (n < cap) ids[n] = (int)v;
        n++;
        s = end;
    }
    return n;
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, sizeof(int) * (size_t)na) == 0);
}

static void print_ids(const char *label, const int *ids, int n) {
    printf("  %s (%d):", label, n);
    for (int i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* ---- llama.cpp vectors ---- */

static void test_llamacpp_vectors(const Tokenizer *t, const char *data) {
    char path[512];
    size_t li, lo;
    snprintf(path, sizeof path, "%s/llamacpp-vocab/ggml-vocab-phi-3.gguf.inp", data);
    char *inp = read_file(path, &li, NULL, 0);
    snprintf(path, sizeof path, "%s/llamacpp-vocab/ggml-vocab-phi-3.gguf.out", data);
    char *out = read_file(path, &lo, NULL, 0);
    if (!inp || !out) {
        t_skip("tokenizer_llamacpp_vectors", "%s missing", path);
        free(inp);
        free(out);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int cases = 0, ok = 0;
    char *p = inp, *q = out, err[256];
    for (;;) {
        char *e = strstr(p, sep);
        char *nl = strchr(q, '\n');
        if (!e || !nl) break;
        *nl = 0;
        int want[4096], *got;
        int nw = parse_ids(q, want, 4096);
        int ng = encode(t, p, (size_t)(e - p), 0, &got, err);
        cases++;
        if (same_ids(got, ng, want, nw)) ok++;
        else {
            printf("  mismatch on case %d: \"%.*s\"\n", cases, (int)(e - p), p);
            print_ids("want", want, nw);
            print_ids("got", got, ng);
        }
        free(got);
        p = e + sizeof sep - 1;
        q = nl + 1;
    }
    t_check(cases > 40 && ok == cases, "tokenizer_llamacpp_vectors", "%d/%d cases match (phi-3, no BOS)", ok,
            cases);
    free(inp);
    free(out);
}

/* ---- reference corpus ---- */

static size_t unescape(const char *s, char *out) {
    size_t n = 0;
    while (*s) {
        if (*s != '\\') {
            out[n++] = *s++;
            continue;
        }
        s++;
        char c = *s++;
        if (c == 'n') out[n++] = '\n';
        else if (c == 't') out[n++] = '\t';
        else if (c == 'r') out[n++] = '\r';
        else if (c == 'x') {
            char hex[3] = {s[0], s[1], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            s += 2;
        } else out[n++] = c; /* '\\' */
    }
    return n;
}

typedef struct {
    char cat[32];
    char *text, *dec;
    size_t len, dec_len;
    int *ids, n_ids;
    int *spm, n_spm;       /* n_spm < 0: no spm line (llama2c tokenizer.model) */
    int *spm512, n_spm512; /* tok512.model */
} Case;

typedef struct {
    Case *c;
    int n;
} Corpus;

static int load_corpus(const char *path, Corpus *cp) {
    size_t len;
    char *all = read_file(path, &len, NULL, 0);
    if (!all) return -1;
    cp->c = calloc(len / 8 + 1, sizeof *cp->c);
    cp->n = 0;
    Case *cur = NULL;
    for (char *line = all; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!strncmp(line, "case ", 5)) {
            cur = &cp->c[cp->n++];
            const char *sp = strchr(line + 5, ' ');
            size_t cl = sp ? (size_t)(sp - line - 5) : strlen(line + 5);
            snprintf(cur->cat, sizeof cur->cat, "%.*s", (int)cl, line + 5);
            const char *tx = sp ? sp + 1 : "";
            cur->text = malloc(strlen(tx) + 1);
            cur->len = unescape(tx, cur->text);
            cur->n_spm = cur->n_spm512 = -1;
        } else if (cur && !strncmp(line, "ids", 3)) {
            int n = parse_ids(line + 3, NULL, 0);
            cur->ids = malloc(sizeof(int) * (size_t)(n + 1));
            cur->n_ids = parse_ids(line + 3, cur->ids, n);
        } else if (cur && !strncmp(line, "dec", 3)) {
            const char *tx = line[3] ? line + 4 : "";
            cur->dec = malloc(strlen(tx) + 1);
            cur->dec_len = unescape(tx, cur->dec);
        } else if (cur && !strncmp(line, "spm512", 6)) {
            int n = parse_ids(line + 6, NULL, 0);
            cur->spm512 = malloc(sizeof(int) * (size_t)(n + 1));
            cur->n_spm512 = parse_ids(line + 6, cur->spm512, n);
        } else if (cur && !strncmp(line, "spm", 3)) {
            int n = parse_ids(line + 3, NULL, 0);
            cur->spm = malloc(sizeof(int) * (size_t)(n + 1));
            cur->n_spm = parse_ids(line + 3, cur->spm, n);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(all);
    return 0;
}

static void free_corpus(Corpus *cp) {
    for (int i = 0; i < cp->n; i++) {
        free(cp->c[i].text);
        free(cp->c[i].dec);
        free(cp->c[i].ids);
        free(cp->c[i].spm);
        free(cp->c[i].spm512);
    }
    free(cp->c);
}

/* Per-category tallies printed in the PASS/FAIL line. */
typedef struct {
    char names[16][32];
    int total[16], ok[16], n;
} Tally;

static void tally(Tally *ty, const char *cat, int ok) {
    int i = 0;
    while (i < ty->n && strcmp(ty->names[i], cat)) i++;
    if (i == ty->n && ty->n < 16) snprintf(ty->names[ty->n++], 32, "%s", cat);
    if (i < 16) {
        ty->total[i]++;
        ty->ok[i] += ok;
    }
}

static int tally_line(const Tally *ty, char *out, size_t cap, int *all_ok) {
    size_t o = 0;
    int tot = 0, ok = 0;
    for (int i = 0; i < ty->n; i++) {
        o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s %d/%d", i ? ", " : "", ty->names[i], ty->ok[i],
                              ty->total[i]);
        tot += ty->total[i];
        ok += ty->ok[i];
    }
    *all_ok = tot > 0 && ok == tot;
    return ok;
}

static void show_case(const char *why, const Case *c) {
    printf("  %s [%s] \"%.*s\"\n", why, c->cat, c->len > 80 ? 80 : (int)c->len, c->text);
}

/* Encoding and streaming decoding vs HF for every case, also through a section round trip. */
static void test_corpus(const Tokenizer *t, const Tokenizer *loaded, const Corpus *cp) {
    Tally enc = {0}, dec = {0}, sec = {0};
    int roundtrip = 0, valid = 0;
    char err[256], line[1024];
    for (int i = 0; i < cp->n; i++) {
        const Case *c = &cp->c[i];
        int *got = NULL, *got2 = NULL;
        int n = encode(t, c->text, c->len, 0, &got, err);
        int ok = same_ids(got, n, c->ids, c->n_ids);
        tally(&enc, c->cat, ok);
        if (!ok) {
            show_case("encode mismatch", c);
            print_ids("want", c->ids, c->n_ids);
            print_ids("got", got, n);
        }
        int n2 = loaded ? encode(loaded, c->text, c->len, 0, &got2, err) : -1;
        tally(&sec, c->cat, same_ids(got2, n2, got, n));
        size_t dl;
        char *d = decode(t, c->ids, c->n_ids, &dl);
        int dok = c->dec && dl == c->dec_len && memcmp(d, c->dec, dl) == 0;
        tally(&dec, c->cat, dok);
        if (!dok) show_case("decode mismatch", c);
        valid++;
        roundtrip += dl == c->len && memcmp(d, c->text, dl) == 0;
        free(d);
        free(got);
        free(got2);
    }
    int all;
    int ok = tally_line(&enc, line, sizeof line, &all);
    t_check(all, "tokenizer_corpus_encode", "%d/%d match HF (%s)", ok, cp->n, line);
    ok = tally_line(&dec, line, sizeof line, &all);
    t_check(all, "tokenizer_corpus_decode", "%d/%d streaming decodes equal HF decode(skip_special_tokens) (%s); "
            "%d/%d give back the exact input", ok, cp->n, line, roundtrip, valid);
    ok = tally_line(&sec, line, sizeof line, &all);
    t_check(all, "tokenizer_corpus_section", "%d/%d encodings identical after tok_serialize/tok_load", ok, cp->n);
}

/* Small hand-made tokenizer.json files (lstrip, single_word, normalized added tokens, unk
 * without byte fallback, Metaspace) against the Rust library's output. */
static void test_features(void) {
    const char *dir = "tests/data/tokenizer-features";
    char path[256], err[256], line[512];
    Corpus cp = {0};
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    if (load_corpus(path, &cp)) {
        t_skip("tokenizer_features", "%s not found (run from the repository root)", path);
        return;
    }
    Tally enc = {0}, dec = {0}, sec = {0};
    Tokenizer *t = NULL, *l = NULL;
    char loaded_cat[32] = "";
    for (int i = 0; i < cp.n; i++) {
        const Case *c = &cp.c[i];
        if (strcmp(c->cat, loaded_cat)) {
            tok_free(t);
            snprintf(path, sizeof path, "%s/%s", dir, c->cat);
            snprintf(loaded_cat, sizeof loaded_cat, "%s", c->cat);
            t = tok_from_hf_dir(path, err, sizeof err);
            if (!t) printf("  %s: %s\n", path, err);
            tok_free(l);
            l = NULL;
            uint8_t *blob;
            uint64_t size;
            if (t && !tok_serialize(t, &blob, &size, err, sizeof err)) {
                l = tok_load(blob, size, err, sizeof err);
                free(blob);
            }
        }
        int *got = NULL, n = t ? encode(t, c->text, c->len, 0, &got, err) : -1;
        int ok = same_ids(got, n, c->ids, c->n_ids);
        tally(&enc, c->cat, ok);
        if (!ok) {
            show_case("encode mismatch", c);
            print_ids("want", c->ids, c->n_ids);
            print_ids("got", got, n);
        }
        int *got2 = NULL, n2 = l ? encode(l, c->text, c->len, 0, &got2, err) : -1;
        tally(&sec, c->cat, same_ids(got2, n2, got, n));
        free(got2);
        size_t dl = 0;
        char *d = t ? decode(t, c->ids, c->n_ids, &dl) : NULL;
        int dok = d && c->dec && dl == c->dec_len && memcmp(d, c->dec, dl) == 0;
        tally(&dec, c->cat, dok);
        if (!dok) printf("  decode mismatch [%s] \"%s\": want \"%s\" got \"%s\"\n", c->cat, c->text, c->dec, d ? d : "");
        free(d);
        free(got);
    }
    tok_free(t);
    tok_free(l);
    int all, ok = tally_line(&enc, line, sizeof line, &all);
    t_check(all, "tokenizer_features_encode", "%d/%d match HF (%s)", ok, cp.n, line);
    ok = tally_line(&dec, line, sizeof line, &all);
    t_check(all, "tokenizer_features_decode", "%d/%d match HF decode (%s)", ok, cp.n, line);
    ok = tally_line(&sec, line, sizeof line, &all);
    t_check(all, "tokenizer_features_section", "%d/%d encodings identical after tok_serialize/tok_load", ok, cp.n);
    free_corpus(&cp);
}

/* Plain SentencePiece (tokenizer.model, no added tokens) vs spm_encode on single-line cases. */
static void test_corpus_spm(const Tokenizer *t, const Corpus *cp, int which, const char *name) {
    Tally ty = {0};
    char err[256], line[1024];
    for (int i = 0; i < cp->n; i++) {
        const Case *c = &cp->c[i];
        const int *want = which ? c->spm512 : c->spm;
        int n_want = which ? c->n_spm512 : c->n_spm;
        if (n_want < 0) continue;
        int *got;
        int n = encode(t, c->text, c->len, 0, &got, err);
        int ok = same_ids(got, n, want, n_want);
        tally(&ty, c->cat, ok);
        if (!ok) {
            show_case("spm mismatch", c);
            print_ids("want", want, n_want);
            print_ids("got", got, n);
        }
        free(got);
    }
    int all, ok = tally_line(&ty, line, sizeof line, &all);
    t_check(all, name, "%d match (%s)", ok, line);
}

/* ---- synthetic tokenizer, section blobs, errors ---- */

static const char *roundtrip_texts[] = {
    "Hello world", " leading space", "tabs\tand\nnew lines", "ünïcödé and 😀 emoji", "   ", "a", "",
    "The quick brown fox jumps over the lazy dog. 0123456789 !@#$%^&*()", "<s>control</s> in text",
};

/* decode(encode(x)) == x for a tokenizer without special tokens in x. */
static int check_roundtrips(const Tokenizer *t, int *bad_case) {
    char err[256];
    for (size_t i = 0; i < sizeof roundtrip_texts / sizeof *roundtrip_texts; i++) {
        const char *s = roundtrip_texts[i];
        if (strstr(s, "<s>")) continue;
        int *ids;
        int n = encode(t, s, strlen(s), 1, &ids, err);
        size_t dl;
        char *d = decode(t, ids, n, &dl);
        int ok = n >= 0 && dl == strlen(s) && memcmp(d, s, dl) == 0 && (n == 0 || ids[0] == tok_bos_id(t));
        free(d);
        free(ids);
        if (!ok) {
            *bad_case = (int)i;
            return 0;
        }
    }
    return 1;
}

/* Same encodings of every round-trip text (and of its corpus, if any) from both tokenizers. */
static int same_encodings(const Tokenizer *a, const Tokenizer *b) {
    char err[256];
    for (size_t i = 0; i < sizeof roundtrip_texts / sizeof *roundtrip_texts; i++) {
        const char *s = roundtrip_texts[i];
        int *x, *y;
        int nx = encode(a, s, strlen(s), 1, &x, err), ny = encode(b, s, strlen(s), 1, &y, err);
        int ok = same_ids(x, nx, y, ny);
        free(x);
        free(y);
        if (!ok) return 0;
    }
    return 1;
}

static void test_synthetic(void) {
    char err[256];
    Tokenizer *t = tok_synthetic(1000, err, sizeof err);
    if (!t_check(t != NULL, "tokenizer_synthetic", "%s", t ? "1000 pieces" : err)) return;
    const char *p3 = tok_piece(t, 3), *p258 = tok_piece(t, 258);
    t_check(tok_vocab_size(t) == 1000 && tok_bos_id(t) == 1 && tok_eos_id(t) == 2 && tok_unk_id(t) == 0 &&
                !strcmp(p3, "<0x00>") && !strcmp(p258, "<0xFF>") && tok_is_special(t, 1) && !tok_is_special(t, 500) &&
                tok_piece(t, 1000) == NULL && tok_piece(t, -1) == NULL,
            "tokenizer_synthetic_layout", "<unk> <s> </s>, 256 byte pieces, then text pieces");
    int bad = -1;
    t_check(check_roundtrips(t, &bad), "tokenizer_synthetic_roundtrip", "decode(encode(x)) == x%s%s",
            bad >= 0 ? " fails on: " : "", bad >= 0 ? roundtrip_texts[bad] : "");
    int *ids;
    int n = encode(t, "the the the", 11, 0, &ids, err);
    t_check(n > 0 && n < 11, "tokenizer_synthetic_merges", "'the the the' -> %d ids (merges apply)", n);
    free(ids);
    Tokenizer *big = tok_synthetic(32064, err, sizeof err);
    t_check(big && check_roundtrips(big, &bad), "tokenizer_synthetic_32064", "%s", big ? "round trips" : err);
    tok_free(big);
    Tokenizer *none = tok_synthetic(258, err, sizeof err);
    t_check(!none && err[0], "tokenizer_synthetic_too_small", "%s", err);
    tok_free(t);
}

/* Loads a copy of exactly len bytes (so ASan sees any over-read). */
static Tokenizer *load_copy(const uint8_t *blob, uint64_t len, char *err) {
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, blob, len);
    Tokenizer *t = tok_load(copy, len, err, 256);
    free(copy);
    return t;
}

static void test_section(const Tokenizer *t, const char *name) {
    char err[256], tname[96];
    uint8_t *blob, *blob2;
    uint64_t size, size2;
    snprintf(tname, sizeof tname, "tokenizer_section_%s", name);
    if (tok_serialize(t, &blob, &size, err, sizeof err)) {
        t_check(0, tname, "serialize: %s", err);
        return;
    }
    Tokenizer *l = load_copy(blob, size, err);
    int ok = l && tok_serialize(l, &blob2, &size2, err, sizeof err) == 0;
    ok = ok && size2 == size && memcmp(blob, blob2, size) == 0;
    if (l) free(blob2);
    ok = ok && same_encodings(t, l) && tok_vocab_size(l) == tok_vocab_size(t) && tok_add_bos(l) == tok_add_bos(t) &&
         tok_eos_id(l) == tok_eos_id(t);
    const char *ct = tok_chat_template(t), *cl = l ? tok_chat_template(l) : NULL;
    ok = ok && ((!ct && !cl) || (ct && cl && !strcmp(ct, cl)));
    t_check(ok, tname, "%llu bytes; load gives identical blob, encodings and settings%s%s",
            (unsigned long long)size, l ? "" : ": ", l ? "" : err);
    tok_free(l);

    /* every truncation (for big blobs: the first 4 KiB, then ~2000 spread over the rest),
     * then random corruption */
    int trunc_ok = 1, n_trunc = 0;
    uint64_t step = size <= 8192 ? 1 : size / 2000;
    for (uint64_t len = 0; len < size; len += len < 4096 ? 1 : step) {
        n_trunc++;
        err[0] = 0;
        Tokenizer *x = load_copy(blob, len, err);
        if (x || !err[0] || strchr(err, '\n')) trunc_ok = 0;
        tok_free(x);
    }
    snprintf(tname, sizeof tname, "tokenizer_section_truncated_%s", name);
    t_check(trunc_ok, tname, "%d truncations (of %llu bytes) rejected with a one-line error", n_trunc,
            (unsigned long long)size);
    int loaded = 0, rejected = 0, bad_err = 0, iters = size > 100000 ? 200 : 3000;
    t_seed(0xC0FFEE);
    uint8_t *copy = malloc(size);
    for (int it = 0; it < iters; it++) {
        memcpy(copy, blob, size);
        int flips = 1 + (int)((t_randf() + 1) * 2);
        for (int f = 0; f < flips; f++) {
            /* half the flips hit the header and piece table, where most of the structure is */
            uint64_t lim = (it & 1) ? size : (size < 4096 ? size : 4096);
            uint64_t pos = (uint64_t)((t_randf() + 1) * 0.5 * (double)lim) % size;
            copy[pos] ^= (uint8_t)(1u << (int)((t_randf() + 1) * 4) % 8);
        }
        err[0] = 0;
        Tokenizer *x = tok_load(copy, size, err, sizeof err);
        if (x) {
            loaded++;
            int *ids; /* whatever loaded must still encode and decode safely */
            static const char probe[] = "Hello <s> world \xF0\x9F\x98\x80";
            int n = encode(x, probe, sizeof probe - 1, 1, &ids, err);
            size_t dl;
            free(decode(x, ids, n > 0 ? n : 0, &dl));
            free(ids);
            tok_free(x);
        } else {
            rejected++;
            bad_err += !err[0] || strchr(err, '\n') != NULL;
        }
    }
    free(copy);
    snprintf(tname, sizeof tname, "tokenizer_section_corrupted_%s", name);
    t_check(bad_err == 0, tname, "%d corrupted blobs: %d rejected with an error, %d still valid (and safe to use)",
            iters, rejected, loaded);
    free(blob);
}

static void test_bad_headers(void) {
    char err[256];
    Tokenizer *t = tok_synthetic(300, err, sizeof err);
    uint8_t *blob;
    uint64_t size;
    if (!t || tok_serialize(t, &blob, &size, err, sizeof err)) {
        tok_free(t);
        return;
    }
    struct {
        int off;
        uint32_t val;
        const char *what;
    } cases[] = {{0, 0x4B4F5451u, "magic"}, {4, 2, "version"}, {8, 7, "type"}, {12, 0xFFFF, "options"},
                 {16, 3, "prefix mode"}, {20, 0x7FFFFFFF, "piece count"}, {24, 0x40000000, "merge count"},
                 {28, 300, "unk id"}, {32, 0xFFFFFFFE, "bos id"}, {44, 12345, "text size"}, {48, 1, "template size"},
                 {52, 1, "reserved"}};
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t *c = malloc(size);
        memcpy(c, blob, size);
        for (int k = 0; k < 4; k++) c[cases[i].off + k] = (uint8_t)(cases[i].val >> (8 * k));
        err[0] = 0;
        Tokenizer *x = tok_load(c, size, err, sizeof err);
        if (x || !err[0]) {
            printf("  accepted a bad %s\n", cases[i].what);
            ok = 0;
        }
        tok_free(x);
        free(c);
    }
    t_check(ok, "tokenizer_section_bad_fields", "%zu bad header fields rejected (last: %s)",
            sizeof cases / sizeof *cases, err);
    free(blob);
    tok_free(t);
}

static void test_invalid_utf8(const Tokenizer *t, const char *name) {
    static const char *bad[] = {"\xff", "abc\x80", "\xc3", "ok \xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
                                "\xe2\x82", "x\xf8\x88\x80\x80\x80"};
    char err[256];
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int ids[64];
        err[0] = 0;
        int n = tok_encode(t, bad[i], strlen(bad[i]), 0, ids, 64, err, sizeof err);
        if (n != -1 || !strstr(err, "UTF-8")) ok = 0;
    }
    t_check(ok, name, "%zu invalid inputs -> -1 (\"%s\")", sizeof bad / sizeof *bad, err);
}

/* Decoder details with the Phi-3 vocabulary. */
static void test_decoder(const Tokenizer *t) {
    TokDecoder d;
    char out[64];
    int euro[3] = {tok_piece_id(t, "<0xE2>", 6), tok_piece_id(t, "<0x82>", 6), tok_piece_id(t, "<0xAC>", 6)};
    tok_decoder_init(&d, t);
    size_t a = tok_decoder_push(&d, euro[0], out, sizeof out), b = tok_decoder_push(&d, euro[1], out, sizeof out);
    size_t c = tok_decoder_push(&d, euro[2], out, sizeof out);
    t_check(a == 0 && b == 0 && c == 3 && !strcmp(out, "\xe2\x82\xac"), "tokenizer_decoder_bytes",
            "<0xE2><0x82><0xAC> held back until complete, then the euro sign");
    int hi = tok_piece_id(t, "\xe2\x96\x81Hi", 5), user = tok_piece_id(t, "<|user|>", 8);
    tok_decoder_init(&d, t);
    a = tok_decoder_push(&d, user, out, sizeof out);
    b = tok_decoder_push(&d, hi, out, sizeof out);
    int ok = a == 0 && b == 2 && !strcmp(out, "Hi");
    b = tok_decoder_push(&d, hi, out, sizeof out);
    t_check(ok && b == 3 && !strcmp(out, " Hi"), "tokenizer_decoder_strip",
            "special tokens print nothing; only the first text loses its leading space");
    tok_decoder_init(&d, t);
    tok_decoder_push(&d, euro[0], out, sizeof out);
    tok_decoder_push(&d, euro[1], out, sizeof out);
    a = tok_decoder_flush(&d, out, sizeof out);
    ok = a == 6 && !strcmp(out, "\xef\xbf\xbd\xef\xbf\xbd");
    tok_decoder_init(&d, t);
    tok_decoder_push(&d, euro[0], out, sizeof out);
    b = tok_decoder_push(&d, hi, out, sizeof out);
    t_check(ok && b == 6 && !strcmp(out, "\xef\xbf\xbd Hi"), "tokenizer_decoder_incomplete",
            "an unfinished byte run becomes U+FFFD per byte (flush, or before the next text piece)");
}

/* The other Phi-3 tokenizer folders: their own BOS settings and rstrip flags (the 2024-05
 * phi-3 file does not strip the newline after special tokens). Ids from HF tokenizers. */
static void test_variants(const char *data) {
    static const char *names[2] = {"phi-3", "phi-3-medium"};
    static const int want_bos[2] = {1, 0};
    static const char text[] = "<|user|>\nHello, world!<|end|>\n<|assistant|>";
    static const int want[2][11] = {{32010, 29871, 13, 10994, 29892, 3186, 29991, 32007, 29871, 13, 32001},
                                    {32010, 15043, 29892, 3186, 29991, 32007, 32001}};
    static const int n_want[2] = {11, 7};
    char dir[512], err[256];
    int *b;
    for (int v = 0; v < 2; v++) {
        snprintf(dir, sizeof dir, "%s/phi3-tokenizer/%s", data, names[v]);
        Tokenizer *t = tok_from_hf_dir(dir, err, sizeof err);
        int ok = t != NULL;
        if (t) {
            int nb = encode(t, text, sizeof text - 1, tok_add_bos(t), &b, err);
            int off = tok_add_bos(t) ? 1 : 0;
            ok = tok_add_bos(t) == want_bos[v] && (!off || b[0] == tok_bos_id(t)) &&
                 same_ids(b + off, nb - off, want[v], n_want[v]) && tok_eos_id(t) == 32000;
            free(b);
        }
        char name[64];
        snprintf(name, sizeof name, "tokenizer_load_%s", names[v]);
        t_check(ok, name, "%s", t ? (want_bos[v] ? "adds BOS <s>, chat ids match HF" : "no BOS, chat ids match HF") : err);
        tok_free(t);
    }
}

/* Encoding speed on ~1 MB of the corpus' text (printed, not asserted). */
static void bench(const Tokenizer *t, const char *text, size_t len, const char *what) {
    char err[256];
    int *ids = malloc(sizeof(int) * (len + 16));
    struct timespec t0, t1;
    int n = 0, reps = 0;
    double secs = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        n = tok_encode(t, text, len, 0, ids, (int)len + 16, err, sizeof err);
        reps++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    } while (secs < 0.5 && reps < 20);
    double per = secs / reps;
    t_check(n > 0, "tokenizer_speed", "%s: %.2f MB -> %d tokens in %.1f ms = %.1f MB/s", what, (double)len / 1e6, n,
            per * 1e3, (double)len / 1e6 / per);
    free(ids);
}

static char *corpus_megabyte(const Corpus *cp, size_t *len) {
    Buf b = {0};
    buf_put(&b, "", 0);
    while (b.len < (1u << 20))
        for (int i = 0; i < cp->n && b.len < (1u << 20); i++) {
            buf_put(&b, cp->c[i].text, cp->c[i].len);
            buf_put(&b, "\n", 1);
        }
    *len = b.len;
    return b.s;
}

int main(int argc, char **argv) {
    char err[256];
    const char *data = t_data_dir();
    const char *corpus_path = "tests/data/tokenizer_cases.txt";
    Tokenizer *phi = NULL;
    if (data) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/phi3-tokenizer/phi-3-mini", data);
        phi = tok_from_hf_dir(dir, err, sizeof err);
        t_check(phi && tok_vocab_size(phi) == 32011 && tok_eos_id(phi) == 32000 && !tok_add_bos(phi) &&
                    tok_chat_template(phi) != NULL,
                "tokenizer_load_phi3_json", "%s", phi ? "32011 pieces, eos 32000, no BOS, chat template" : err);
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) { /* speed only: --bench [text file] */
        size_t len = 0;
        char *text = NULL;
        Corpus cp = {0};
        if (argc > 2) text = read_file(argv[2], &len, NULL, 0);
        else if (!load_corpus(corpus_path, &cp)) text = corpus_megabyte(&cp, &len);
        if (phi && text) bench(phi, text, len, argc > 2 ? argv[2] : "corpus text");
        free(text);
        free_corpus(&cp);
        tok_free(phi);
        return t_done();
    }

    test_synthetic();
    Tokenizer *syn = tok_synthetic(600, err, sizeof err);
    if (syn) {
        test_section(syn, "synthetic");
        test_invalid_utf8(syn, "tokenizer_invalid_utf8_synthetic");
    }
    tok_free(syn);
    test_bad_headers();
    test_features();

    if (!data) {
        t_skip("tokenizer_phi3", "no shared data folder (PHI_DATA or ../shared/data)");
        return t_done();
    }
    if (!phi) return t_done();
    test_llamacpp_vectors(phi, data);
    test_decoder(phi);
    test_variants(data);
    test_invalid_utf8(phi, "tokenizer_invalid_utf8_phi3");

    uint8_t *blob;
    uint64_t size;
    Tokenizer *loaded = NULL;
    if (!tok_serialize(phi, &blob, &size, err, sizeof err)) {
        loaded = tok_load(blob, size, err, sizeof err);
        free(blob);
    }
    Corpus cp = {0};
    if (load_corpus(corpus_path, &cp)) {
        t_skip("tokenizer_corpus", "%s not found (run from the repository root)", corpus_path);
    } else {
        test_corpus(phi, loaded, &cp);
        char path[512];
        snprintf(path, sizeof path, "%s/llama2c-tokenizer", data);
        Tokenizer *spm = tok_from_hf_dir(path, err, sizeof err);
        if (t_check(spm != NULL, "tokenizer_model_load", "%s", spm ? "llama2c tokenizer.model" : err)) {
            test_corpus_spm(spm, &cp, 0, "tokenizer_model_vs_spm_encode");
            test_section(spm, "spm");
        }
        tok_free(spm);
        /* tok512.model is not named tokenizer.model: read it directly */
        snprintf(path, sizeof path, "%s/tok512-tinystories/tok512.model", data);
        size_t ml;
        char *model = read_file(path, &ml, NULL, 0);
        spm = model ? tok_from_spm((const uint8_t *)model, ml, err, sizeof err) : NULL;
        if (t_check(spm != NULL, "tokenizer_model512_load", "%s", spm ? "tok512.model (squeezes spaces)" : err))
            test_corpus_spm(spm, &cp, 1, "tokenizer_model512_vs_spm_encode");
        free(model);
        tok_free(spm);
        size_t len;
        char *text = corpus_megabyte(&cp, &len);
        bench(phi, text, len, "corpus text");
        free(text);
    }
    free_corpus(&cp);
    tok_free(loaded);
    tok_free(phi);
    return t_done();
}
