/* The tokenizer from GGUF metadata (model/gguf_vocab.c, tokenizer/tok_vocab.c) against the
 * tokenizer.json of the same model: the same merges, pieces and special flags; the same ids on
 * every tokenizer test text phi has (tests/data/tokenizer_cases.txt with Hugging Face's ids,
 * tests/data/bytelevel/cases.txt, tests/data/tokenizer-features/cases.txt, llama.cpp's vectors);
 * the same chat template kind and rendering; the section round trip; and corrupt metadata
 * refused with one line (plus every truncation and random byte flips, no crash). */
#include "app/chat.h"
#include "base/fileio.h"
#include "base/json.h"
#include "model/gguf_vocab.h"
#include "tests/gguf_vocab_write.h"
#include "tests/harness.h"
#include "tokenizer/tok_internal.h"

#include <string.h>

/* ---- helpers ---- */

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

typedef struct {
    uint8_t *buf;
    Gguf g;
    int parsed;
} GgufFile;

/* The tokenizer of a GGUF file on disk, or NULL (err set). */
static Tokenizer *gguf_tok_file(const char *path, char *err, size_t errlen) {
    uint64_t size;
    uint8_t *buf = t_read_all(path, &size);
    if (!buf) {
        snprintf(err, errlen, "%s: cannot read", path);
        return NULL;
    }
    Gguf g;
    Tokenizer *t = NULL;
    if (gguf_parse(buf, size, &g, err, errlen) == 0) {
        t = gguf_tokenizer(&g, err, errlen);
        gguf_free(&g);
    }
    free(buf);
    return t;
}

/* From an image in memory (an exact-size copy, so ASan sees any over-read). */
static Tokenizer *gguf_tok_mem(const uint8_t *b, size_t n, char *err, size_t errlen, int *parsed) {
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, b, n);
    Gguf g;
    Tokenizer *t = NULL;
    *parsed = gguf_parse(copy, n, &g, err, errlen) == 0;
    if (*parsed) {
        t = gguf_tokenizer(&g, err, errlen);
        gguf_free(&g);
    }
    free(copy);
    return t;
}

static int *encode(const Tokenizer *t, const char *s, size_t len, int *n) {
    char err[256];
    int need = tok_encode(t, s, len, 0, NULL, 0, err, sizeof err);
    int *ids = malloc(sizeof(int) * (size_t)(need > 0 ? need : 1));
    *n = need < 0 ? -1 : tok_encode(t, s, len, 0, ids, need, err, sizeof err);
    return ids;
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na <= 0 || memcmp(a, b, sizeof(int) * (size_t)na) == 0);
}

static char *decode(const Tokenizer *t, const int *ids, int n, size_t *len) {
    TokDecoder d;
    tok_decoder_init(&d, t);
    size_t cap = 64, o = 0; /* a piece decodes to at most 3 bytes per byte of its text */
    for (int i = 0; i < n; i++) cap += 3 * (tok_piece(t, ids[i]) ? strlen(tok_piece(t, ids[i])) : 0) + 8;
    char *out = malloc(cap + 64);
    for (int i = 0; i < n; i++) o += tok_decoder_push(&d, ids[i], out + o, cap + 64 - o);
    o += tok_decoder_flush(&d, out + o, cap + 64 - o);
    *len = o;
    return out;
}

static void print_ids(const char *label, const int *ids, int n) {
    printf("  %s (%d):", label, n);
    for (int i = 0; i < n && i < 32; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 32 ? " ..." : "");
}

/* ---- the test texts: every case of phi's tokenizer test files ---- */

typedef struct {
    char *text, *dec;
    size_t len, dec_len;
    int *ids, n_ids; /* reference ids (Hugging Face) of the file's own tokenizer; n_ids < 0: none */
} Case;

typedef struct {
    Case *c;
    int n;
} Cases;

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
        } else out[n++] = c;
    }
    return n;
}

static int parse_ids(const char *s, int *ids) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (ids) ids[n] = (int)v;
        n++;
        s = end;
    }
    return n;
}

/* 'case CAT TEXT' / 'ids ...' / 'dec TEXT' files (other lines ignored). With `category`, only
 * that category's cases. Returns -1 if the file cannot be read. */
static int load_cases(const char *path, const char *category, Cases *cs) {
    size_t len;
    char *all = read_file(path, &len, NULL, 0);
    if (!all) return -1;
    Case *cur = NULL;
    for (char *line = all; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!strncmp(line, "case ", 5)) {
            const char *sp = strchr(line + 5, ' ');
            size_t cl = sp ? (size_t)(sp - line - 5) : strlen(line + 5);
            cur = NULL;
            if (!category || (strlen(category) == cl && !strncmp(line + 5, category, cl))) {
                cs->c = realloc(cs->c, sizeof *cs->c * (size_t)(cs->n + 1));
                cur = &cs->c[cs->n++];
                memset(cur, 0, sizeof *cur);
                const char *tx = sp ? sp + 1 : "";
                cur->text = malloc(strlen(tx) + 1);
                cur->len = unescape(tx, cur->text);
                cur->n_ids = -1;
            }
        } else if (cur && !strncmp(line, "ids ", 4)) {
            int n = parse_ids(line + 4, NULL);
            cur->ids = malloc(sizeof(int) * (size_t)(n + 1));
            cur->n_ids = parse_ids(line + 4, cur->ids);
        } else if (cur && !strncmp(line, "dec", 3) && (line[3] == ' ' || !line[3])) {
            const char *tx = line[3] ? line + 4 : "";
            cur->dec = malloc(strlen(tx) + 1);
            cur->dec_len = unescape(tx, cur->dec);
        } else if (!strncmp(line, "decode ", 7)) {
            cur = NULL; /* decode-only entries of the byte-level file */
        }
        line = nl ? nl + 1 : NULL;
    }
    free(all);
    return 0;
}

static void free_cases(Cases *cs) {
    for (int i = 0; i < cs->n; i++) {
        free(cs->c[i].text);
        free(cs->c[i].dec);
        free(cs->c[i].ids);
    }
    free(cs->c);
    cs->c = NULL;
    cs->n = 0;
}

/* All test texts: Phi-3's HF cases, the byte-level cases, the feature cases. */
static Cases g_phi3, g_bytelevel, g_features;

static const Cases *all_sets[3] = {&g_phi3, &g_bytelevel, &g_features};
static const char *set_names[3] = {"tokenizer_cases", "bytelevel", "features"};

/* Encodings of a and b equal on every text of every set; prints the first differences. */
static void check_same_on_all(const Tokenizer *a, const Tokenizer *b, const char *name, const char *what) {
    int total = 0, ok = 0, shown = 0;
    char line[256] = "";
    size_t o = 0;
    for (int s = 0; s < 3; s++) {
        int set_ok = 0;
        for (int i = 0; i < all_sets[s]->n; i++) {
            const Case *c = &all_sets[s]->c[i];
            int na, nb;
            int *x = encode(a, c->text, c->len, &na), *y = encode(b, c->text, c->len, &nb);
            int same = na >= 0 && same_ids(x, na, y, nb);
            set_ok += same;
            if (!same && shown++ < 3) {
                printf("  differs on \"%.*s\"\n", c->len > 60 ? 60 : (int)c->len, c->text);
                print_ids("gguf", x, na);
                print_ids("json", y, nb);
            }
            free(x);
            free(y);
        }
        total += all_sets[s]->n;
        ok += set_ok;
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%s %d/%d", s ? ", " : "", set_names[s], set_ok,
                              all_sets[s]->n);
    }
    t_check(total > 1000 && ok == total, name, "%s: %d/%d texts encode the same (%s)", what, ok, total, line);
}

/* Encodings equal the reference ids (and decodes the reference decode) for the cases of a set
 * that `use` accepts (NULL: all). */
static void check_reference(const Tokenizer *t, const Cases *cs, int (*use)(const Case *), const char *name,
                            const char *what) {
    int n = 0, ok = 0, dec_n = 0, dec_ok = 0, shown = 0;
    for (int i = 0; i < cs->n; i++) {
        const Case *c = &cs->c[i];
        if (c->n_ids < 0 || (use && !use(c))) continue;
        int ng;
        int *got = encode(t, c->text, c->len, &ng);
        n++;
        int same = same_ids(got, ng, c->ids, c->n_ids);
        ok += same;
        if (!same && shown++ < 3) {
            printf("  mismatch on \"%.*s\"\n", c->len > 60 ? 60 : (int)c->len, c->text);
            print_ids("want", c->ids, c->n_ids);
            print_ids("got", got, ng);
        }
        if (c->dec) {
            size_t dl;
            char *d = decode(t, c->ids, c->n_ids, &dl);
            dec_n++;
            int same_dec = dl == c->dec_len && !memcmp(d, c->dec, dl);
            dec_ok += same_dec;
            if (!same_dec && shown++ < 3)
                printf("  decode of \"%.*s\": \"%.*s\", want \"%.*s\"\n", c->len > 60 ? 60 : (int)c->len, c->text,
                       (int)dl, d, (int)c->dec_len, c->dec);
            free(d);
        }
        free(got);
    }
    t_check(n > 0 && ok == n && dec_ok == dec_n, name, "%s: %d/%d encodings equal Hugging Face's ids, %d/%d decodes its text",
            what, ok, n, dec_ok, dec_n);
}

/* ---- Phi-3: llama.cpp's vocab GGUF against tokenizer.json ---- */

static void check_structure(const Tokenizer *g, const Tokenizer *j, const char *name) {
    int merges = g->n_merges == j->n_merges && !memcmp(g->merges, j->merges, sizeof(int32_t) * 2 * (size_t)g->n_merges);
    int texts = 0, special = 0, n = tok_vocab_size(j);
    for (int id = 0; id < n; id++) {
        const char *a = tok_piece(g, id), *b = tok_piece(j, id);
        texts += a && b && !strcmp(a, b);
        special += tok_is_special(g, id) == tok_is_special(j, id);
    }
    t_check(merges && tok_vocab_size(g) == n && texts == n && special == n && tok_bos_id(g) == tok_bos_id(j) &&
                tok_eos_id(g) == tok_eos_id(j) && tok_unk_id(g) == tok_unk_id(j) && tok_pad_id(g) == tok_pad_id(j),
            name, "%d merges %s tokenizer.json's (rank by rank); %d/%d pieces, %d/%d special flags equal; "
            "bos %d eos %d unk %d pad %d", g->n_merges, merges ? "equal" : "DIFFER from", texts, n, special, n,
            tok_bos_id(g), tok_eos_id(g), tok_unk_id(g), tok_pad_id(g));
}

static void check_llamacpp_vectors(const Tokenizer *t, const char *data, const char *file, const char *name) {
    char path[512];
    size_t li, lo;
    snprintf(path, sizeof path, "%s/llamacpp-vocab/%s.inp", data, file);
    char *inp = read_file(path, &li, NULL, 0);
    snprintf(path, sizeof path, "%s/llamacpp-vocab/%s.out", data, file);
    char *out = read_file(path, &lo, NULL, 0);
    if (!inp || !out) {
        t_skip(name, "%s missing", path);
        free(inp);
        free(out);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int cases = 0, ok = 0;
    char *p = inp, *q = out;
    for (;;) {
        char *e = strstr(p, sep), *nl = strchr(q, '\n');
        if (!e || !nl) break;
        *nl = 0;
        int nw = parse_ids(q, NULL), ng;
        int *want = malloc(sizeof(int) * (size_t)(nw + 1));
        parse_ids(q, want);
        int *got = encode(t, p, (size_t)(e - p), &ng);
        cases++;
        if (same_ids(got, ng, want, nw)) ok++;
        else {
            printf("  mismatch on case %d: \"%.*s\"\n", cases, (int)(e - p), p);
            print_ids("want", want, nw);
            print_ids("got", got, ng);
        }
        free(want);
        free(got);
        p = e + sizeof sep - 1;
        q = nl + 1;
    }
    t_check(cases > 40 && ok == cases, name, "%s: %d/%d of llama.cpp's vectors match (no BOS)", file, ok, cases);
    free(inp);
    free(out);
}

/* tok_serialize -> tok_load -> tok_serialize gives the same bytes, and the loaded tokenizer
 * encodes every text the same. */
static void check_roundtrip(const Tokenizer *t, const char *name) {
    char err[256];
    uint8_t *b1 = NULL, *b2 = NULL;
    uint64_t n1 = 0, n2 = 0;
    Tokenizer *l = NULL;
    int ok = tok_serialize(t, &b1, &n1, err, sizeof err) == 0 && (l = tok_load(b1, n1, err, sizeof err)) != NULL &&
             tok_serialize(l, &b2, &n2, err, sizeof err) == 0 && n1 == n2 && !memcmp(b1, b2, (size_t)n1);
    int texts = 0, total = 0;
    for (int s = 0; ok && s < 3; s++)
        for (int i = 0; i < all_sets[s]->n; i++) {
            const Case *c = &all_sets[s]->c[i];
            int na, nb;
            int *x = encode(t, c->text, c->len, &na), *y = encode(l, c->text, c->len, &nb);
            texts += na >= 0 && same_ids(x, na, y, nb);
            total++;
            free(x);
            free(y);
        }
    const char *tp = tok_chat_template(t), *lp = l ? tok_chat_template(l) : NULL;
    ok = ok && texts == total && tok_add_bos(l) == tok_add_bos(t) && ((!tp && !lp) || (tp && lp && !strcmp(tp, lp)));
    t_check(ok, name, "section of %llu bytes reloads and re-serializes byte for byte; %d/%d texts encode the same%s%s",
            (unsigned long long)n1, texts, total, ok ? "" : ": ", ok ? "" : err);
    free(b1);
    free(b2);
    tok_free(l);
}

static int no_phi_special(const Case *c) {
    /* the llama-spm vocabulary (Llama 2) has no Phi-3 added tokens: skip texts that spell them */
    return !memmem(c->text, c->len, "<|", 2) && !memmem(c->text, c->len, "</s>", 4) && !memmem(c->text, c->len, "<s>", 3) &&
           !memmem(c->text, c->len, "<unk>", 5);
}

static void test_phi3(const char *data) {
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/llamacpp-vocab/ggml-vocab-phi-3.gguf", data);
    Tokenizer *g = gguf_tok_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/phi3-tokenizer/phi-3-mini", data);
    Tokenizer *j = tok_from_hf_dir(path, err + 128, sizeof err - 128);
    if (!t_check(g && j, "gguf_vocab_phi3_load", "%s", !g ? err : !j ? err + 128 : "ggml-vocab-phi-3.gguf and phi-3-mini/tokenizer.json")) {
        tok_free(g);
        tok_free(j);
        return;
    }
    check_structure(g, j, "gguf_vocab_phi3_structure");
    check_reference(g, &g_phi3, NULL, "gguf_vocab_phi3_hf_cases", "tokenizer_cases.txt");
    check_same_on_all(g, j, "gguf_vocab_phi3_vs_json", "ggml-vocab-phi-3.gguf vs phi-3-mini tokenizer.json");
    check_llamacpp_vectors(g, data, "ggml-vocab-phi-3.gguf", "gguf_vocab_phi3_llamacpp_vectors");
    check_roundtrip(g, "gguf_vocab_phi3_roundtrip");

    /* Phi-3's chat turn: Hugging Face's ids for the tokenizer.json with rstrip on the special
     * tokens (phi-3-medium's, test_tokenizer's variant check): the newline after <|user|> and
     * <|end|> is absorbed, as llama.cpp does for files named phi-3 */
    static const char text[] = "<|user|>\nHello, world!<|end|>\n<|assistant|>";
    static const int want[] = {32010, 15043, 29892, 3186, 29991, 32007, 32001};
    int n;
    int *ids = encode(g, text, sizeof text - 1, &n);
    t_check(same_ids(ids, n, want, 7), "gguf_vocab_phi3_rstrip", "<|user|>\\nHello, world!<|end|>\\n<|assistant|> -> %d ids "
            "(Hugging Face: 32010 15043 29892 3186 29991 32007 32001)", n);
    free(ids);

    /* the chat template: the file carries phi-3's (2024-05) tokenizer_config.json template */
    snprintf(path, sizeof path, "%s/phi3-tokenizer/phi-3/tokenizer_config.json", data);
    Json *cfg = json_parse_file(path, err, sizeof err);
    const char *want_tpl = cfg ? json_str(json_get(json_root(cfg), "chat_template"), NULL) : NULL;
    const char *tpl = tok_chat_template(g);
    ChatMessage msgs[] = {{"system", "Be brief."}, {"user", "Write a haiku about the sea."},
                          {"assistant", "Waves fold into foam."}, {"user", "Another one"}};
    char *r1 = want_tpl ? chat_render(chat_kind(tpl), msgs, 4) : NULL;
    char *r2 = want_tpl ? chat_render(chat_kind(want_tpl), msgs, 4) : NULL;
    int n1 = -1, n2 = -2;
    int *i1 = r1 ? encode(g, r1, strlen(r1), &n1) : NULL, *i2 = r2 ? encode(j, r2, strlen(r2), &n2) : NULL;
    t_check(tpl && want_tpl && !strcmp(tpl, want_tpl) && chat_kind(tpl) == CHAT_PHI3_USER &&
                chat_wants_bos(tpl, tok_add_bos(g)) == 1 && !strcmp(r1, r2) && same_ids(i1, n1, i2, n2),
            "gguf_vocab_phi3_chat", "template equals phi-3/tokenizer_config.json's (kind %d, BOS %d); the rendered "
            "conversation encodes to the same %d ids as with tokenizer.json", tpl ? (int)chat_kind(tpl) : -1,
            tpl ? chat_wants_bos(tpl, tok_add_bos(g)) : -1, n1);
    free(i1);
    free(i2);
    free(r1);
    free(r2);
    json_free(cfg);
    tok_free(g);
    tok_free(j);

    /* Llama 2's SentencePiece vocabulary (no added tokens): llama.cpp's vectors, and the cases
     * without Phi-3's added tokens against Hugging Face's ids (the same pieces and merges) */
    snprintf(path, sizeof path, "%s/llamacpp-vocab/ggml-vocab-llama-spm.gguf", data);
    g = gguf_tok_file(path, err, sizeof err);
    if (t_check(g != NULL, "gguf_vocab_llama_spm_load", "%s", g ? "ggml-vocab-llama-spm.gguf" : err)) {
        check_llamacpp_vectors(g, data, "ggml-vocab-llama-spm.gguf", "gguf_vocab_llama_spm_vectors");
        check_reference(g, &g_phi3, no_phi_special, "gguf_vocab_llama_spm_hf_cases", "cases without added tokens");
    }
    tok_free(g);
}

/* The model GGUFs of ../shared/data/phi3-gguf against their Hugging Face folders. */
static void test_model_ggufs(const char *data) {
    static const struct { const char *gguf, *dir; } files[] = {
        {"trained-tiny-Q8_0.gguf", "phi3-trained-tiny"},
        {"trained-tiny-Q4_K_M.gguf", "phi3-trained-tiny"},
        {"longrope-f16.gguf", "phi3-tiny-ref/longrope"},
        {"phi4ish-f16.gguf", "phi3-tiny-ref/phi4ish"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[512], err[256], name[96];
        snprintf(path, sizeof path, "%s/phi3-gguf/%s", data, files[i].gguf);
        Tokenizer *g = gguf_tok_file(path, err, sizeof err);
        snprintf(path, sizeof path, "%s/%s", data, files[i].dir);
        Tokenizer *j = g ? tok_from_hf_dir(path, err, sizeof err) : NULL;
        snprintf(name, sizeof name, "gguf_vocab_%s", files[i].gguf);
        if (!g || !j) t_check(0, name, "%s", err);
        else {
            char what[160];
            snprintf(what, sizeof what, "%s vs %s/tokenizer.json", files[i].gguf, files[i].dir);
            check_same_on_all(g, j, name, what);
        }
        tok_free(g);
        tok_free(j);
    }
}

/* ---- byte-level: a gpt2 GGUF written from tests/data/bytelevel/tokenizer.json ---- */

/* The GGUF llama.cpp's converter would write for that tokenizer.json: tokens in id order (vocab,
 * then added tokens: special -> control, others -> user-defined), merges "a b", pre gpt-4o, with
 * Phi-4-mini's chat template. */
static int write_bytelevel_gguf(GwBuf *g, const char *tpl, char *err, size_t errlen) {
    Json *doc = json_parse_file("tests/data/bytelevel/tokenizer.json", err, errlen);
    if (!doc) return -1;
    const JsonValue *root = json_root(doc), *model = json_get(root, "model");
    const JsonValue *vocab = json_get(model, "vocab"), *merges = json_get(model, "merges"),
                    *added = json_get(root, "added_tokens");
    size_t nv = json_count(vocab), na = json_count(added), nm = json_count(merges), n = nv + na;
    const char **tok = calloc(n, sizeof *tok);
    int32_t *ty = calloc(n, sizeof *ty);
    char **mstr = calloc(nm ? nm : 1, sizeof *mstr);
    for (size_t i = 0; i < nv; i++) {
        long long id;
        json_int(json_value_at(vocab, i), &id);
        if (id >= 0 && (size_t)id < n) tok[id] = json_key_at(vocab, i, NULL), ty[id] = TOK_TT_NORMAL;
    }
    for (size_t i = 0; i < na; i++) {
        const JsonValue *a = json_at(added, i);
        long long id;
        json_int(json_get(a, "id"), &id);
        if (id >= 0 && (size_t)id < n)
            tok[id] = json_str(json_get(a, "content"), NULL), ty[id] = json_bool(json_get(a, "special"), 0) ? TOK_TT_CONTROL : TOK_TT_USER;
    }
    for (size_t m = 0; m < nm; m++) {
        const JsonValue *v = json_at(merges, m);
        const char *a = json_str(json_at(v, 0), NULL), *b = json_str(json_at(v, 1), NULL);
        mstr[m] = malloc(strlen(a) + strlen(b) + 2);
        sprintf(mstr[m], "%s %s", a, b);
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= tok[i] != NULL;
    if (ok) {
        GvFile f;
        gv_begin(&f, g);
        gv_str(&f, "general.architecture", "phi3");
        gv_str(&f, "general.name", "bytelevel test vocabulary");
        gv_str(&f, "tokenizer.ggml.model", "gpt2");
        gv_str(&f, "tokenizer.ggml.pre", "gpt-4o");
        gv_arr_str(&f, "tokenizer.ggml.tokens", tok, n);
        gv_arr_i32(&f, "tokenizer.ggml.token_type", ty, n);
        gv_arr_str(&f, "tokenizer.ggml.merges", (const char *const *)mstr, nm);
        gv_u32(&f, "tokenizer.ggml.bos_token_id", 961);
        gv_u32(&f, "tokenizer.ggml.eos_token_id", 961);
        gv_u32(&f, "tokenizer.ggml.padding_token_id", 961);
        gv_bool(&f, "tokenizer.ggml.add_bos_token", 0);
        if (tpl) gv_str(&f, "tokenizer.chat_template", tpl);
        gv_end(&f);
    } else {
        snprintf(err, errlen, "tokenizer.json ids are not contiguous");
    }
    for (size_t m = 0; m < nm; m++) free(mstr[m]);
    free(mstr);
    free(tok);
    free(ty);
    json_free(doc);
    return ok ? 0 : -1;
}

/* Added tokens whose tokenizer.json flags the GGUF rule (rstrip on every added token but
 * <|endoftext|>, nothing else) does not reproduce: texts spelling them are compared with the
 * tokenizer.json tokenizer carrying the rule's flags instead of Hugging Face's ids. */
static const char *const flagged[] = {"<mask>", "hello world", "<|caf\xC3\xA9|>", "<|\xE6\x97\xA5\xE6\x9C\xAC|>"};

static int no_flagged_token(const Case *c) {
    for (size_t i = 0; i < sizeof flagged / sizeof *flagged; i++)
        if (memmem(c->text, c->len, flagged[i], strlen(flagged[i]))) return 0;
    return 1;
}

/* The tokenizer.json tokenizer with the GGUF rule's added-token flags, through its section:
 * ADDED pieces get RSTRIP (all but <|endoftext|>) and lose LSTRIP / NORMALIZED. */
static Tokenizer *json_with_rule_flags(const Tokenizer *j, char *err, size_t errlen) {
    uint8_t *b;
    uint64_t n;
    if (tok_serialize(j, &b, &n, err, errlen)) return NULL;
    for (int id = 0; id < tok_vocab_size(j); id++) {
        uint8_t *p = b + 56 + 4 * id;
        uint32_t f = (uint32_t)p[0] | (uint32_t)p[1] << 8;
        if (!(f & TOK_F_ADDED)) continue;
        f &= ~(uint32_t)(TOK_F_LSTRIP | TOK_F_NORMALIZED | TOK_F_RSTRIP);
        if (strcmp(tok_piece(j, id), "<|endoftext|>")) f |= TOK_F_RSTRIP;
        p[0] = (uint8_t)f;
        p[1] = (uint8_t)(f >> 8);
    }
    Tokenizer *t = tok_load(b, n, err, errlen);
    free(b);
    return t;
}

static void test_bytelevel(const char *data) {
    char err[256];
    char *phi4_tpl = NULL;
    if (data) { /* Phi-4-mini's chat template, to check its recognition through the GGUF */
        char path[512];
        snprintf(path, sizeof path, "%s/phi4-mini-tokenizer-config/tokenizer_config.json", data);
        Json *cfg = json_parse_file(path, err, sizeof err);
        const char *s = cfg ? json_str(json_get(json_root(cfg), "chat_template"), NULL) : NULL;
        phi4_tpl = s ? strdup(s) : NULL;
        json_free(cfg);
    }
    GwBuf buf = {0};
    int parsed;
    Tokenizer *g = write_bytelevel_gguf(&buf, phi4_tpl, err, sizeof err) ? NULL : gguf_tok_mem(buf.b, buf.n, err, sizeof err, &parsed);
    Tokenizer *j = tok_from_hf_dir("tests/data/bytelevel", err + 128, sizeof err - 128);
    Tokenizer *jr = j ? json_with_rule_flags(j, err + 128, sizeof err - 128) : NULL;
    if (!t_check(g && jr, "gguf_vocab_bytelevel_load", "%s", !g ? err : !jr ? err + 128 : "gpt2 GGUF (pre gpt-4o) from tests/data/bytelevel")) {
        tok_free(g);
        tok_free(j);
        tok_free(jr);
        free(buf.b);
        free(phi4_tpl);
        return;
    }
    t_check(g->type == TOK_TYPE_BYTE_BPE && g->pretok == TOK_PRETOK_O200K && g->n_merges == j->n_merges &&
                !memcmp(g->merges, j->merges, sizeof(int32_t) * 2 * (size_t)g->n_merges) &&
                tok_vocab_size(g) == tok_vocab_size(j),
            "gguf_vocab_bytelevel_structure", "byte-level, o200k pre-tokenizer, %d merges equal tokenizer.json's, %d pieces",
            g->n_merges, tok_vocab_size(g));
    check_reference(g, &g_bytelevel, no_flagged_token, "gguf_vocab_bytelevel_hf_cases",
                    "bytelevel/cases.txt without <mask>, 'hello world', <|café|>, <|日本|>");
    check_same_on_all(g, jr, "gguf_vocab_bytelevel_vs_json", "gpt2 GGUF vs tokenizer.json with the GGUF's strip rule");
    check_roundtrip(g, "gguf_vocab_bytelevel_roundtrip");
    if (phi4_tpl) {
        const char *tpl = tok_chat_template(g);
        ChatMessage msgs[] = {{"system", "Be brief."}, {"user", "Hi there"}};
        char *r = chat_render(chat_kind(tpl), msgs, 2);
        int n;
        int *ids = encode(g, r, strlen(r), &n);
        t_check(tpl && !strcmp(tpl, phi4_tpl) && chat_kind(tpl) == CHAT_PHI4 && chat_kind(phi4_tpl) == CHAT_PHI4 &&
                    !chat_wants_bos(tpl, tok_add_bos(g)) && !strcmp(r, "<|system|>Be brief.<|end|><|user|>Hi there<|end|><|assistant|>") &&
                    n > 5 && ids[0] == 965 && ids[n - 1] == 962,
                "gguf_vocab_phi4_chat", "Phi-4-mini's template through the GGUF: kind %d, no BOS, %d ids from <|system|> to <|assistant|>",
                tpl ? (int)chat_kind(tpl) : -1, n);
        free(ids);
        free(r);
    } else {
        t_skip("gguf_vocab_phi4_chat", "no shared data (Phi-4-mini tokenizer_config.json)");
    }
    tok_free(g);
    tok_free(j);
    tok_free(jr);
    free(buf.b);
    free(phi4_tpl);
}

/* ---- corrupt metadata ---- */

static void test_corrupt(void) {
    GwBuf b = {0};
    char err[512];
    int parsed, refused = 0, total = 0;
    for (int bad = 0; bad < GV_COUNT; bad++) {
        int gpt2 = gv_is_gpt2_case(bad);
        if (bad == GV_OK) continue;
        gpt2 ? gv_tiny_gpt2(&b, bad) : gv_tiny_llama(&b, bad);
        err[0] = 0;
        Tokenizer *t = gguf_tok_mem(b.b, b.n, err, sizeof err, &parsed);
        total++;
        if (!t && parsed && one_line(err)) refused++;
        else printf("  %s: %s (parsed %d)\n", GV_NAMES[bad], t ? "accepted" : err, parsed);
        if (bad == GV_BOS_RANGE || bad == GV_BPE_PRE_UNK || bad == GV_MODEL_BERT) printf("  e.g. %s: %s\n", GV_NAMES[bad], err);
        tok_free(t);
    }
    t_check(refused == total, "gguf_vocab_corrupt", "%d/%d malformed tokenizer metadata refused with one line", refused, total);

    /* the tiny files themselves load and tokenize as their merges say */
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        k ? gv_tiny_gpt2(&b, GV_OK) : gv_tiny_llama(&b, GV_OK);
        Tokenizer *t = gguf_tok_mem(b.b, b.n, err, sizeof err, &parsed);
        int n;
        int *ids = t ? encode(t, "ab abc<|end|>\nab", 16, &n) : NULL;
        /* llama: ▁ab ▁ab c <|end|> (its rstrip takes the newline) ▁ab; gpt2: ab Ġab c <|end|> ab */
        static const int want_llama[] = {265, 265, 262, 267, 265};
        static const int want_gpt2[] = {257, 258, 'c', 260, 257};
        ok &= t && (k ? same_ids(ids, n, want_gpt2, 5) : same_ids(ids, n, want_llama, 5)) && tok_vocab_size(t) == (k ? 261 : 268);
        if (!t) printf("  tiny %s: %s\n", k ? "gpt2" : "llama", err);
        else if (!ok) print_ids(k ? "gpt2" : "llama", ids, n);
        free(ids);
        tok_free(t);
    }
    /* the Phi whitespace rule: by architecture phi3 (above), by name as llama.cpp, else none */
    static const struct { const char *arch, *name; int strip; } rule[] = {
        {"llama", "Phi-3 mini", 1}, {"llama", "my PHI3 finetune", 1}, {"llama", "Phi 3.5", 0}, {"llama", "tiny", 0}};
    for (size_t r = 0; r < sizeof rule / sizeof *rule; r++) {
        gv_tiny_llama_as(&b, GV_OK, rule[r].arch, rule[r].name);
        Tokenizer *t = gguf_tok_mem(b.b, b.n, err, sizeof err, &parsed);
        int n;
        int *ids = t ? encode(t, "<|end|>\nab", 10, &n) : NULL;
        static const int strip[] = {267, 265}, keep[] = {267, 259, 13, 264}; /* ▁ab / ▁ <0x0A> ab */
        int good = t && (rule[r].strip ? same_ids(ids, n, strip, 2) : same_ids(ids, n, keep, 4));
        if (!good) printf("  rule: arch %s, name %s: wrong ids\n", rule[r].arch, rule[r].name);
        ok &= good;
        free(ids);
        tok_free(t);
    }
    t_check(ok, "gguf_vocab_tiny", "tiny llama and gpt2 vocabularies: merges from scores / strings, rstrip after "
            "<|end|> (arch phi3, or a name with phi-3/phi3; not for others), [PAD] tail dropped");

    /* every truncation and random byte flips of the tiny files: refused or accepted, never a crash */
    long n_trunc = 0, n_flip = 0, accepted = 0;
    uint64_t rs = 0x2545F4914F6CDD1Dull;
    for (int k = 0; k < 2; k++) {
        k ? gv_tiny_gpt2(&b, GV_OK) : gv_tiny_llama(&b, GV_OK);
        for (size_t cut = 0; cut < b.n; cut += cut < 4096 ? 1 : 97) {
            Tokenizer *t = gguf_tok_mem(b.b, cut, err, sizeof err, &parsed);
            accepted += t != NULL;
            tok_free(t);
            n_trunc++;
        }
        uint8_t *copy = malloc(b.n);
        for (int it = 0; it < 3000; it++) {
            memcpy(copy, b.b, b.n);
            for (int f = 0; f < 3; f++) {
                rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
                copy[(rs >> 16) % b.n] = (uint8_t)(rs >> 40);
            }
            err[0] = 0;
            Tokenizer *t = gguf_tok_mem(copy, b.n, err, sizeof err, &parsed);
            if (!t && !one_line(err)) {
                printf("  flip %d: refused without one line\n", it);
                accepted = -1000000;
            }
            accepted += t != NULL;
            tok_free(t);
            n_flip++;
        }
        free(copy);
    }
    t_check(accepted >= 0, "gguf_vocab_fuzz", "%ld truncations and %ld random 3-byte corruptions: no crash, every "
            "refusal one line (%ld accepted)", n_trunc, n_flip, accepted);
    free(b.b);
}

int main(void) {
    const char *data = t_data_dir();
    if (load_cases("tests/data/tokenizer_cases.txt", NULL, &g_phi3) ||
        load_cases("tests/data/bytelevel/cases.txt", NULL, &g_bytelevel) ||
        load_cases("tests/data/tokenizer-features/cases.txt", NULL, &g_features)) {
        t_skip("gguf_vocab", "tests/data not found (run from the repository root)");
        return t_done();
    }
    test_corrupt();
    test_bytelevel(data);
    if (data) {
        test_phi3(data);
        test_model_ggufs(data);
    } else {
        t_skip("gguf_vocab_phi3", "no shared data folder (PHI_DATA or ../shared/data)");
    }
    free_cases(&g_phi3);
    free_cases(&g_bytelevel);
    free_cases(&g_features);
    return t_done();
}
