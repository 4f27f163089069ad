/* Byte-level BPE (tokenizer type 2, Phi-4-mini style) tests against tests/data/bytelevel/ (made
 * by scripts/gen_bytelevel_cases.mjs): the o200k pre-tokenizer split, exact encoding and
 * decoding against Hugging Face for a trained test vocabulary (and its ignore_merges variant),
 * streaming decode, the tokenizer.json import checks, the section round trip, hostile section
 * blobs, and the encoding speed. `test_bytelevel --bench [file]` only prints the speed. */
#include "base/fileio.h"
#include "tests/harness.h"
#include "tokenizer/tok_internal.h"

#include <string.h>
#include <time.h>

#define DATA "tests/data/bytelevel"

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

static int write_all(const char *path, const char *s, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(s, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* ---- the cases file ---- */

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
    int *v, n;
} Ints;

static Ints parse_ints(const char *s) {
    Ints r = {malloc(sizeof(int) * (strlen(s) / 2 + 1)), 0};
    for (;;) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s) break;
        r.v[r.n++] = (int)x;
        s = end;
    }
    return r;
}

typedef struct {
    char cat[32];
    char *text, *dec; /* text NULL: a decode-only case */
    size_t len, dec_len;
    Ints split, ids, ids2, dec_ids;
} Case;

static Case *load_cases(const char *path, int *n_cases) {
    size_t len;
    char *all = read_file(path, &len, NULL, 0);
    if (!all) return NULL;
    Case *cs = calloc(len / 8 + 1, sizeof *cs), *cur = NULL;
    int n = 0;
    for (char *line = all; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!strncmp(line, "case ", 5) || !strncmp(line, "decode ", 7)) {
            cur = &cs[n++];
            if (line[0] == 'd') {
                snprintf(cur->cat, sizeof cur->cat, "decode");
                cur->dec_ids = parse_ints(line + 7);
            } else {
                const char *sp = strchr(line + 5, ' ');
                size_t cl = sp ? (size_t)(sp - line - 5) : strlen(line + 5);
                snprintf(cur->cat, sizeof cur->cat, "%.*s", (int)cl, line + 5);
                const char *tx = sp ? sp + 1 : "";
                cur->text = malloc(strlen(tx) + 1);
                cur->len = unescape(tx, cur->text);
            }
        } else if (cur && !strncmp(line, "split", 5)) {
            cur->split = parse_ints(line + 5);
        } else if (cur && !strncmp(line, "ids2", 4)) {
            cur->ids2 = parse_ints(line + 4);
        } else if (cur && !strncmp(line, "ids", 3)) {
            cur->ids = parse_ints(line + 3);
        } else if (cur && !strncmp(line, "dec", 3)) {
            const char *tx = line[3] ? line + 4 : "";
            cur->dec = malloc(strlen(tx) + 1);
            cur->dec_len = unescape(tx, cur->dec);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(all);
    *n_cases = n;
    return cs;
}

static void free_cases(Case *cs, int n) {
    for (int i = 0; i < n; i++) {
        free(cs[i].text);
        free(cs[i].dec);
        free(cs[i].split.v);
        free(cs[i].ids.v);
        free(cs[i].ids2.v);
        free(cs[i].dec_ids.v);
    }
    free(cs);
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

static const char *tally_str(const Tally *ty, int *all_ok, int *all) {
    static char s[1024];
    size_t o = 0;
    *all_ok = *all = 0;
    for (int i = 0; i < ty->n; i++) {
        o += (size_t)snprintf(s + o, sizeof s - o, "%s%s %d/%d", i ? ", " : "", ty->names[i], ty->ok[i], ty->total[i]);
        *all_ok += ty->ok[i];
        *all += ty->total[i];
    }
    return s;
}

/* ---- helpers ---- */

static Ints encode(const Tokenizer *t, const char *s, size_t len, char *err) {
    Ints r = {malloc(sizeof(int) * 16), 0};
    r.n = tok_encode(t, s, len, 0, r.v, 16, err, 256);
    if (r.n > 16) {
        free(r.v);
        r.v = malloc(sizeof(int) * (size_t)r.n);
        if (tok_encode(t, s, len, 0, r.v, r.n, err, 256) != r.n) r.n = -2;
    }
    return r;
}

static int same_ints(Ints a, Ints b) { return a.n == b.n && (a.n <= 0 || !memcmp(a.v, b.v, sizeof(int) * (size_t)a.n)); }

/* Streams ids one at a time; *whole_chars is cleared if a chunk is not complete UTF-8. */
static char *decode(const Tokenizer *t, const int *ids, int n, size_t *len, int *whole_chars) {
    TokDecoder d;
    tok_decoder_init(&d, t);
    Buf b = {0};
    char out[512];
    buf_put(&b, "", 0);
    for (int i = 0; i <= n; i++) {
        size_t k = i < n ? tok_decoder_push(&d, ids[i], out, sizeof out) : tok_decoder_flush(&d, out, sizeof out);
        if (tok_utf8_check(out, k) != k) *whole_chars = 0;
        buf_put(&b, out, k);
    }
    *len = b.len;
    return b.s;
}

static void show_mismatch(const Case *c, Ints want, Ints got) {
    printf("  mismatch [%s] \"%.60s\": want %d ids, got %d:", c->cat, c->text, want.n, got.n);
    for (int i = 0; i < got.n && i < 16; i++) printf(" %d", got.v[i]);
    printf("\n");
}

/* ---- tests ---- */

static void test_mapping(void) {
    int ok = 1, seen[0x144] = {0};
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp(b);
        if (cp >= 0x144 || seen[cp]++ || tok_cp_to_byte(cp) != (int)b) ok = 0;
        if ((b > 0x20 && b < 0x7F) && cp != b) ok = 0;
    }
    int inverse_rejects = tok_cp_to_byte(0x20) == -1 && tok_cp_to_byte(0xAD) == -1 && tok_cp_to_byte(0x144) == -1 &&
                          tok_cp_to_byte(0x120) == ' ' && tok_cp_to_byte(0x10A) == '\n';
    t_check(ok && inverse_rejects, "bytelevel_mapping", "256 bytes <-> distinct stand-ins U+0021..U+0143 (' ' = U+0120)");
}

static void test_unicode_classes(void) {
    static const struct {
        uint32_t cp;
        int cls;
    } want[] = {{'A', TOK_UC_UPPER},     {'z', TOK_UC_LOWER},     {'7', TOK_UC_NUMBER},     {'\t', TOK_UC_SPACE},
                {'\'', TOK_UC_OTHER},    {0x1C, TOK_UC_OTHER},    {0x85, TOK_UC_SPACE},     {0xA0, TOK_UC_SPACE},
                {0xAD, TOK_UC_OTHER},    {0xBD, TOK_UC_NUMBER},   {0xDF, TOK_UC_LOWER},     {0x1C5, TOK_UC_UPPER},
                {0x2B0, TOK_UC_LETTER},  {0x301, TOK_UC_MARK},    {0x93F, TOK_UC_MARK},     {0x966, TOK_UC_NUMBER},
                {0x1680, TOK_UC_SPACE},  {0x200B, TOK_UC_OTHER},  {0x2028, TOK_UC_SPACE},   {0x2167, TOK_UC_NUMBER},
                {0x3000, TOK_UC_SPACE},  {0x3005, TOK_UC_LETTER}, {0x4E00, TOK_UC_LETTER},  {0xFEFF, TOK_UC_OTHER},
                {0xFF21, TOK_UC_UPPER},  {0x1D7D9, TOK_UC_NUMBER}, {0x1F600, TOK_UC_OTHER}, {0x1F3FB, TOK_UC_OTHER},
                {0x20000, TOK_UC_LETTER}, {0xE0100, TOK_UC_MARK}, {0x10FFFF, TOK_UC_OTHER}};
    int ok = 1, sorted = (tok_uc_table[0] >> 3) == 0;
    for (int i = 1; i < tok_uc_table_len; i++)
        if ((tok_uc_table[i] >> 3) <= (tok_uc_table[i - 1] >> 3) || (tok_uc_table[i] & 7) == (tok_uc_table[i - 1] & 7) ||
            (tok_uc_table[i] & 7) > TOK_UC_SPACE)
            sorted = 0;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (tok_uc_class(want[i].cp) != want[i].cls) {
            printf("  U+%04X: class %d, want %d\n", (unsigned)want[i].cp, tok_uc_class(want[i].cp), want[i].cls);
            ok = 0;
        }
    t_check(ok && sorted, "bytelevel_unicode_classes", "%zu spot checks, %d table entries (Unicode %s)",
            sizeof want / sizeof *want, tok_uc_table_len, tok_uc_unicode_version);
}

static void test_split(const Case *cs, int n) {
    Tally ty = {0};
    for (int i = 0; i < n; i++) {
        const Case *c = &cs[i];
        if (!c->text) continue;
        int ok = 1, k = 0;
        for (size_t p = 0; p < c->len; k++) {
            size_t e = tok_pretok_o200k(c->text, c->len, p);
            if (e <= p || e > c->len || k >= c->split.n || (int)(e - p) != c->split.v[k]) {
                ok = 0;
                break;
            }
            p = e;
        }
        if (k != c->split.n) ok = 0;
        if (!ok) printf("  split mismatch [%s] \"%.60s\" at piece %d\n", c->cat, c->text, k);
        tally(&ty, c->cat, ok);
    }
    int good, all;
    const char *s = tally_str(&ty, &good, &all);
    t_check(all > 300 && good == all, "bytelevel_split", "%d/%d o200k splits match (%s)", good, all, s);
}

static void test_encode(const Tokenizer *t, const Case *cs, int n, int variant, const char *name) {
    Tally ty = {0};
    char err[256];
    for (int i = 0; i < n; i++) {
        const Case *c = &cs[i];
        if (!c->text) continue;
        Ints want = variant ? c->ids2 : c->ids, got = encode(t, c->text, c->len, err);
        int ok = same_ints(want, got);
        if (!ok) show_mismatch(c, want, got);
        tally(&ty, c->cat, ok);
        free(got.v);
    }
    int good, all;
    const char *s = tally_str(&ty, &good, &all);
    t_check(all > 300 && good == all, name, "%d/%d match HF (%s)", good, all, s);
}

static void test_decode(const Tokenizer *t, const Case *cs, int n) {
    Tally ty = {0};
    int exact = 0, texts = 0, whole = 1;
    for (int i = 0; i < n; i++) {
        const Case *c = &cs[i];
        Ints ids = c->text ? c->ids : c->dec_ids;
        size_t len;
        char *got = decode(t, ids.v, ids.n, &len, &whole);
        int ok = c->dec && len == c->dec_len && !memcmp(got, c->dec, len);
        if (!ok) printf("  decode mismatch [%s] \"%.40s\": got \"%.40s\"\n", c->cat, c->text ? c->text : "", got);
        if (c->text) {
            texts++;
            exact += len == c->len && !memcmp(got, c->text, len);
        }
        tally(&ty, c->cat, ok);
        free(got);
    }
    int good, all;
    const char *s = tally_str(&ty, &good, &all);
    t_check(good == all && whole, "bytelevel_decode",
            "%d/%d streaming decodes equal HF decode(skip_special_tokens) (%s); every chunk whole UTF-8; "
            "%d/%d give back the exact input",
            good, all, s, exact, texts);
}

/* A tokenizer.json edited so the importer must refuse it. */
static void test_import_rejects(const char *json, size_t len) {
    static const struct {
        const char *from, *to, *why;
    } edits[] = {
        {"\\\\s+(?!\\\\S)|\\\\s+\"", "\\\\s+\"", "another Split regex"},
        {"\"use_regex\": false", "\"use_regex\": true", "ByteLevel use_regex"},
        {"\"add_prefix_space\": false", "\"add_prefix_space\": true", "ByteLevel add_prefix_space"},
        {"\"normalizer\": null", "\"normalizer\": {\"type\": \"Prepend\", \"prepend\": \"\\u2581\"}", "a normalizer"},
        {"\"byte_fallback\": false", "\"byte_fallback\": true", "byte_fallback"},
        {"\"behavior\": \"Isolated\"", "\"behavior\": \"Removed\"", "Split behavior"},
        {"\"decoder\": {\n  \"type\": \"ByteLevel\"", "\"decoder\": {\n  \"type\": \"Fuse\"", "another decoder"},
    };
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/bytelevel_bad.json", t_tmp_dir());
    int ok = 1;
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        const char *at = strstr(json, edits[i].from);
        if (!at) {
            printf("  edit %zu (%s): text not found\n", i, edits[i].why);
            ok = 0;
            continue;
        }
        Buf b = {0};
        buf_put(&b, json, (size_t)(at - json));
        buf_put(&b, edits[i].to, strlen(edits[i].to));
        size_t skip = (size_t)(at - json) + strlen(edits[i].from);
        buf_put(&b, json + skip, len - skip);
        Tokenizer *t = write_all(path, b.s, b.len) ? NULL : tok_from_hf_json(path, NULL, err, sizeof err);
        if (t) printf("  %s was accepted\n", edits[i].why);
        ok &= t == NULL;
        tok_free(t);
        free(b.s);
    }
    t_check(ok, "bytelevel_import_rejects", "%zu unsupported tokenizer.json variants refused (last: %s)",
            sizeof edits / sizeof *edits, err);
}

static void test_config(const Tokenizer *t) {
    int eot = tok_piece_id(t, "<|endoftext|>", 13);
    const char *tmpl = tok_chat_template(t);
    int ok = eot >= 0 && tok_bos_id(t) == eot && tok_eos_id(t) == eot && !tok_add_bos(t) && tmpl &&
             strstr(tmpl, "add_generation_prompt") && tok_is_special(t, tok_piece_id(t, "<|end|>", 7)) &&
             !tok_is_special(t, tok_piece_id(t, "<|tool|>", 8));
    t_check(ok, "bytelevel_config", "bos/eos <|endoftext|> = %d, no BOS, chat template (%zu bytes), special flags", eot,
            tmpl ? strlen(tmpl) : 0);
    /* Phi-4-mini's own tokenizer_config.json on top of the test vocabulary (same token texts) */
    const char *data = t_data_dir();
    char cfg[512], err[256];
    snprintf(cfg, sizeof cfg, "%s/phi4-mini-tokenizer-config/tokenizer_config.json", data ? data : ".");
    FILE *f = data ? fopen(cfg, "rb") : NULL;
    if (!f) {
        t_skip("bytelevel_phi4_config", "%s missing", cfg);
        return;
    }
    fclose(f);
    Tokenizer *p = tok_from_hf_json(DATA "/tokenizer.json", cfg, err, sizeof err);
    tmpl = p ? tok_chat_template(p) : NULL;
    ok = p && tmpl && !strncmp(tmpl, "{% for message in messages %}", 29) && tok_bos_id(p) == eot &&
         tok_eos_id(p) == eot && tok_pad_id(p) == eot && !tok_add_bos(p);
    t_check(ok, "bytelevel_phi4_config", "%s", p ? "Phi-4-mini's template and <|endoftext|> bos/eos/pad" : err);
    tok_free(p);
}

/* Serialize/load gives the same blob and the same encodings. */
static void test_section(const Tokenizer *t, const Case *cs, int n, int variant, const char *name) {
    uint8_t *blob = NULL, *blob2 = NULL;
    uint64_t size = 0, size2 = 0;
    char err[256];
    Tokenizer *u = NULL;
    int ok = !tok_serialize(t, &blob, &size, err, sizeof err) && (u = tok_load(blob, size, err, sizeof err)) &&
             !tok_serialize(u, &blob2, &size2, err, sizeof err) && size == size2 && !memcmp(blob, blob2, size);
    int same = 0, total = 0;
    for (int i = 0; ok && i < n; i++) {
        if (!cs[i].text) continue;
        Ints got = encode(u, cs[i].text, cs[i].len, err);
        same += same_ints(got, variant ? cs[i].ids2 : cs[i].ids);
        total++;
        free(got.v);
    }
    t_check(ok && same == total, name, "%llu bytes; reloaded: identical blob, %d/%d encodings match HF",
            (unsigned long long)size, same, total);
    free(blob);
    free(blob2);
    tok_free(u);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* A loaded blob must be usable: encode and decode some text without crashing. */
static void exercise(const Tokenizer *t) {
    static const char text[] = "Hello, world! It's 12345 <|user|> \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd\n\n";
    char err[256];
    Ints ids = encode(t, text, sizeof text - 1, err);
    size_t len;
    int whole = 1;
    free(decode(t, ids.v, ids.n, &len, &whole));
    free(ids.v);
}

static void test_hostile_blobs(const Tokenizer *t) {
    uint8_t *blob;
    uint64_t size;
    char err[256];
    if (tok_serialize(t, &blob, &size, err, sizeof err)) {
        t_check(0, "bytelevel_section_truncated", "%s", err);
        return;
    }
    int trunc_ok = 1;
    for (uint64_t n = 0; n < size; n++) {
        uint8_t *b = malloc(n ? n : 1); /* exact size so ASan sees over-reads */
        memcpy(b, blob, n);
        err[0] = 0;
        Tokenizer *u = tok_load(b, n, err, sizeof err);
        if (u || !err[0] || strchr(err, '\n')) trunc_ok = 0;
        tok_free(u);
        free(b);
    }
    t_check(trunc_ok, "bytelevel_section_truncated", "all %llu truncations rejected with a one-line error",
            (unsigned long long)size);
    /* header fields that do not fit type 2 */
    static const struct {
        int off;
        uint32_t val;
    } fields[] = {{8, 1}, {8, 3}, {52, 0}, {52, 2}, {12, 0x04}, {12, 0x40}, {12, 0x100}, {16, 1}, {16, 2}};
    int fields_ok = 1;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        uint8_t *b = malloc(size);
        memcpy(b, blob, size);
        put_u32(b + fields[i].off, fields[i].val);
        Tokenizer *u = tok_load(b, size, err, sizeof err);
        if (u) printf("  header field at %d = %u was accepted\n", fields[i].off, fields[i].val);
        fields_ok &= u == NULL;
        tok_free(u);
        free(b);
    }
    /* a piece with the <0xHH> byte kind is not byte-level */
    uint8_t *b = malloc(size);
    memcpy(b, blob, size);
    b[56 + 4 * 65] = (uint8_t)((b[56 + 4 * 65] & ~7u) | 1u);
    Tokenizer *u = tok_load(b, size, err, sizeof err);
    fields_ok &= u == NULL;
    tok_free(u);
    free(b);
    t_check(fields_ok, "bytelevel_section_bad_fields", "%zu bad header fields and a byte-kind piece rejected (last: %s)",
            sizeof fields / sizeof *fields, err);
    /* random corruption: rejected, or loads and is safe to use */
    uint64_t rs = 0x9E3779B97F4A7C15ull;
    int rejected = 0, valid = 0, bad_err = 0;
    for (int i = 0; i < 300; i++) {
        b = malloc(size);
        memcpy(b, blob, size);
        int flips = 1 + i % 4;
        for (int k = 0; k < flips; k++) {
            rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
            uint64_t off = i % 3 == 0 ? rs % 64 : rs % size; /* the header a third of the time */
            b[off] ^= (uint8_t)(1u << ((rs >> 40) & 7));
        }
        err[0] = 0;
        u = tok_load(b, size, err, sizeof err);
        if (u) {
            valid++;
            exercise(u);
        } else {
            rejected++;
            bad_err += !err[0] || strchr(err, '\n') != NULL;
        }
        tok_free(u);
        free(b);
    }
    t_check(bad_err == 0, "bytelevel_section_corrupted", "300 corrupted blobs: %d rejected with an error, %d still valid (and safe to use)",
            rejected, valid);
    free(blob);
}

/* Decoder details: held-back partial characters, one U+FFFD per broken run, no space stripped. */
static void test_decoder_details(const Tokenizer *t) {
    char out[64], name[4];
    int byte_id[256];
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        byte_id[b] = tok_piece_id(t, name, tok_bytes_to_pieces(&c, 1, name));
    }
    TokDecoder d;
    tok_decoder_init(&d, t);
    size_t a = tok_decoder_push(&d, byte_id[0xE2], out, sizeof out), b = tok_decoder_push(&d, byte_id[0x82], out, sizeof out);
    size_t c = tok_decoder_push(&d, byte_id[0xAC], out, sizeof out);
    int ok = a == 0 && b == 0 && c == 3 && !strcmp(out, "\xe2\x82\xac");
    tok_decoder_init(&d, t);
    a = tok_decoder_push(&d, byte_id[' '], out, sizeof out);
    ok &= a == 1 && out[0] == ' ';
    tok_decoder_push(&d, byte_id[0xF0], out, sizeof out);
    tok_decoder_push(&d, byte_id[0x9F], out, sizeof out);
    a = tok_decoder_flush(&d, out, sizeof out);
    ok &= a == 3 && !strcmp(out, "\xef\xbf\xbd");
    t_check(ok, "bytelevel_decoder_details",
            "E2 82 AC held back until complete; a leading space kept; an unfinished run flushes as one U+FFFD");
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: the machine may be shared */
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench(const Tokenizer *t, const char *text, size_t len, const char *what) {
    char err[256];
    int *ids = malloc(sizeof(int) * (len + 16));
    int n = 0, reps = 0;
    double t0 = now(), secs;
    do {
        n = tok_encode(t, text, len, 0, ids, (int)len + 16, err, sizeof err);
        reps++;
        secs = now() - t0;
    } while (secs < 0.5 && reps < 20);
    double per = secs / reps;
    t_check(n > 0, "bytelevel_speed", "%s: %.2f MB -> %d tokens in %.1f ms CPU = %.1f MB/s", what, (double)len / 1e6, n,
            per * 1e3, (double)len / 1e6 / per);
    free(ids);
}

/* ~1 MB of the cases' texts, optionally only the ASCII-only ones (English and code). */
static char *corpus_megabyte(const Case *cs, int n, int ascii_only, size_t *len) {
    Buf b = {0};
    buf_put(&b, "", 0);
    for (int round = 0; b.len < (1u << 20) && round < 100000; round++)
        for (int i = 0; i < n && b.len < (1u << 20); i++) {
            if (!cs[i].text || !cs[i].len) continue;
            int ascii = 1;
            for (size_t k = 0; k < cs[i].len && ascii; k++) ascii = (unsigned char)cs[i].text[k] < 0x80;
            if (ascii_only && !ascii) continue;
            buf_put(&b, cs[i].text, cs[i].len);
            buf_put(&b, "\n", 1);
        }
    *len = b.len;
    return b.s;
}

int main(int argc, char **argv) {
    char err[256];
    int n = 0;
    Case *cs = load_cases(DATA "/cases.txt", &n);
    Tokenizer *t = tok_from_hf_dir(DATA, err, sizeof err);
    Tokenizer *t2 = tok_from_hf_json(DATA "/ignore-merges/tokenizer.json", NULL, err, sizeof err);
    if (!cs || !t || !t2) {
        t_check(0, "bytelevel_load", "%s", !cs ? DATA "/cases.txt missing" : err);
        return t_done();
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        size_t len;
        char *text = argc > 2 ? read_file(argv[2], &len, NULL, 0) : corpus_megabyte(cs, n, 0, &len);
        if (text) bench(t, text, len, argc > 2 ? argv[2] : "test texts");
        free(text);
    } else {
        test_mapping();
        test_unicode_classes();
        test_split(cs, n);
        test_encode(t, cs, n, 0, "bytelevel_encode");
        test_encode(t2, cs, n, 1, "bytelevel_encode_ignore_merges");
        test_decode(t, cs, n);
        test_decoder_details(t);
        test_config(t);
        size_t jlen;
        char *json = read_file(DATA "/tokenizer.json", &jlen, NULL, 0);
        if (json) test_import_rejects(json, jlen);
        free(json);
        test_section(t, cs, n, 0, "bytelevel_section");
        test_section(t2, cs, n, 1, "bytelevel_section_ignore_merges");
        test_hostile_blobs(t);
        size_t len;
        char *text = corpus_megabyte(cs, n, 0, &len);
        bench(t, text, len, "mixed test texts");
        free(text);
        text = corpus_megabyte(cs, n, 1, &len);
        bench(t, text, len, "ASCII test texts (English, code)");
        free(text);
    }
    tok_free(t);
    tok_free(t2);
    free_cases(cs, n);
    return t_done();
}
