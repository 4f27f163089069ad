/* Import from a Hugging Face model folder: tokenizer.json (model BPE with byte fallback, added
 * tokens, Prepend/Replace normalizers or a Metaspace pre-tokenizer; or byte-level BPE with the
 * o200k Split + ByteLevel pre-tokenizer, as Phi-4-mini's) plus tokenizer_config.json
 * (add_bos/add_eos, bos/eos/pad tokens, chat template). Anything the encoder cannot reproduce
 * exactly is rejected with a message instead of being approximated. (A folder without
 * tokenizer.json falls back to a SentencePiece tokenizer.model: tok_folder.c.) */
#include "base/json.h"
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define META "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

static int str_is(const JsonValue *v, const char *s) {
    size_t len;
    const char *p = json_str(v, &len);
    return p && len == strlen(s) && memcmp(p, s, len) == 0;
}

static int null_or_empty(const JsonValue *v) {
    size_t len;
    return json_type(v) == JSON_NULL || (json_str(v, &len) && len == 0);
}

/* Token text in tokenizer_config.json: a string or an AddedToken object {"content": ...}. */
static const char *token_text(const JsonValue *v, size_t *len) {
    if (json_type(v) == JSON_OBJECT) v = json_get(v, "content");
    return json_str(v, len);
}

/* One normalizer (recursing into Sequence). */
static int parse_normalizer(Tokenizer *t, const JsonValue *n, char *err, size_t errlen) {
    if (json_type(n) == JSON_NULL) return 0;
    const JsonValue *type = json_get(n, "type");
    if (str_is(type, "Sequence")) {
        const JsonValue *list = json_get(n, "normalizers");
        for (size_t i = 0; i < json_count(list); i++)
            if (parse_normalizer(t, json_at(list, i), err, errlen)) return -1;
        return 0;
    }
    if (str_is(type, "Prepend")) {
        if (!str_is(json_get(n, "prepend"), META))
            return errorf(err, errlen, "tokenizer.json: unsupported Prepend normalizer (only U+2581)");
        if (t->prefix != TOK_PREFIX_NONE) return errorf(err, errlen, "tokenizer.json: two prefix rules");
        t->prefix = TOK_PREFIX_EVERY;
        return 0;
    }
    if (str_is(type, "Replace")) {
        if (!str_is(json_get(json_get(n, "pattern"), "String"), " ") || !str_is(json_get(n, "content"), META))
            return errorf(err, errlen, "tokenizer.json: unsupported Replace normalizer (only ' ' -> U+2581)");
        t->opts |= TOK_O_SPACE_TO_META;
        return 0;
    }
    size_t len = 0;
    const char *name = json_str(type, &len);
    return errorf(err, errlen, "tokenizer.json: unsupported normalizer %.*s", name ? (int)len : 1,
                    name ? name : "?");
}

/* Whether the pre-tokenizer includes ByteLevel (itself or in a Sequence): byte-level BPE. */
static int has_byte_level(const JsonValue *p) {
    if (str_is(json_get(p, "type"), "ByteLevel")) return 1;
    const JsonValue *list = json_get(p, "pretokenizers");
    for (size_t i = 0; i < json_count(list); i++)
        if (str_is(json_get(json_at(list, i), "type"), "ByteLevel")) return 1;
    return 0;
}

/* Byte-level BPE: Sequence [Split(o200k regex, Isolated), ByteLevel(no prefix space, no regex)]
 * (Phi-4-mini), with a ByteLevel decoder and no normalizer. */
static int parse_byte_level(Tokenizer *t, const JsonValue *root, char *err, size_t errlen) {
    const JsonValue *p = json_get(root, "pre_tokenizer"), *list = json_get(p, "pretokenizers");
    const JsonValue *split = json_at(list, 0), *bl = json_at(list, 1);
    if (!str_is(json_get(p, "type"), "Sequence") || json_count(list) != 2 ||
        !str_is(json_get(split, "type"), "Split") || !str_is(json_get(bl, "type"), "ByteLevel"))
        return errorf(err, errlen, "tokenizer.json: byte-level BPE needs the pre_tokenizer Sequence [Split, ByteLevel]");
    if (!str_is(json_get(json_get(split, "pattern"), "Regex"), tok_o200k_pattern) ||
        !str_is(json_get(split, "behavior"), "Isolated") || json_bool(json_get(split, "invert"), 0))
        return errorf(err, errlen, "tokenizer.json: unsupported Split pre-tokenizer (only o200k's regex, Isolated)");
    if (json_bool(json_get(bl, "add_prefix_space"), 1) || json_bool(json_get(bl, "use_regex"), 1))
        return errorf(err, errlen, "tokenizer.json: ByteLevel pre-tokenizer with add_prefix_space or use_regex");
    const JsonValue *dec = json_get(root, "decoder");
    if (!str_is(json_get(dec, "type"), "ByteLevel"))
        return errorf(err, errlen, "tokenizer.json: byte-level BPE needs the ByteLevel decoder");
    if (t->prefix != TOK_PREFIX_NONE || (t->opts & TOK_O_SPACE_TO_META))
        return errorf(err, errlen, "tokenizer.json: byte-level BPE with a normalizer is not supported");
    if (t->opts & TOK_O_BYTE_FALLBACK)
        return errorf(err, errlen, "tokenizer.json: byte-level BPE with byte_fallback");
    t->type = TOK_TYPE_BYTE_BPE;
    t->pretok = TOK_PRETOK_O200K;
    return 0;
}

static int parse_pre_tokenizer(Tokenizer *t, const JsonValue *root, char *err, size_t errlen) {
    const JsonValue *p = json_get(root, "pre_tokenizer");
    if (json_type(p) == JSON_NULL) return 0;
    if (has_byte_level(p)) return parse_byte_level(t, root, err, errlen);
    while (str_is(json_get(p, "type"), "Sequence") && json_count(json_get(p, "pretokenizers")) == 1)
        p = json_at(json_get(p, "pretokenizers"), 0); /* a one-element Sequence is its element */
    if (json_type(p) == JSON_NULL) return 0;
    if (!str_is(json_get(p, "type"), "Metaspace"))
        return errorf(err, errlen, "tokenizer.json: unsupported pre_tokenizer (only null or Metaspace)");
    if (!str_is(json_get(p, "replacement"), META))
        return errorf(err, errlen, "tokenizer.json: Metaspace replacement is not U+2581");
    if (json_bool(json_get(p, "split"), 1))
        return errorf(err, errlen, "tokenizer.json: Metaspace with split=true is not supported");
    const JsonValue *scheme = json_get(p, "prepend_scheme");
    int mode;
    if (str_is(scheme, "always")) mode = TOK_PREFIX_EVERY;
    else if (str_is(scheme, "first")) mode = TOK_PREFIX_FIRST;
    else if (str_is(scheme, "never")) mode = TOK_PREFIX_NONE;
    else if (!scheme) mode = json_bool(json_get(p, "add_prefix_space"), 1) ? TOK_PREFIX_EVERY : TOK_PREFIX_NONE;
    else return errorf(err, errlen, "tokenizer.json: unknown Metaspace prepend_scheme");
    if (t->prefix != TOK_PREFIX_NONE && mode != TOK_PREFIX_NONE)
        return errorf(err, errlen, "tokenizer.json: two prefix rules");
    if (mode != TOK_PREFIX_NONE) t->prefix = mode;
    t->opts |= TOK_O_SPACE_TO_META | TOK_O_PRETOK_META;
    return 0;
}

/* Reads an id field in [0, TOK_MAX_PIECES). */
static int get_id(const JsonValue *v, int *id) {
    long long x;
    if (json_int(v, &x) || x < 0 || x >= TOK_MAX_PIECES) return -1;
    *id = (int)x;
    return 0;
}

/* The pieces: model.vocab, then added_tokens on top (ids may extend the vocabulary). */
static Tokenizer *build_pieces(const JsonValue *model, const JsonValue *added, int byte_level, char *err,
                               size_t errlen) {
    const JsonValue *vocab = json_get(model, "vocab");
    if (json_type(vocab) != JSON_OBJECT) {
        errorf(err, errlen, "tokenizer.json: model.vocab is not an object");
        return NULL;
    }
    int max_id = -1;
    size_t nv = json_count(vocab), na = json_count(added);
    for (size_t i = 0; i < nv; i++) {
        int id;
        if (get_id(json_value_at(vocab, i), &id)) {
            errorf(err, errlen, "tokenizer.json: vocab entry %zu has an invalid id", i);
            return NULL;
        }
        if (id > max_id) max_id = id;
    }
    for (size_t i = 0; i < na; i++) {
        int id;
        if (get_id(json_get(json_at(added, i), "id"), &id)) {
            errorf(err, errlen, "tokenizer.json: added token %zu has an invalid id", i);
            return NULL;
        }
        if (id > max_id) max_id = id;
    }
    Tokenizer *t = tok_alloc(max_id + 1, err, errlen);
    if (!t) return NULL;
    for (size_t i = 0; i < nv; i++) {
        size_t len;
        const char *s = json_key_at(vocab, i, &len);
        int id = 0;
        get_id(json_value_at(vocab, i), &id);
        if ((t->pieces[id].flags & TOK_KIND_MASK) != TOK_KIND_UNUSED) {
            errorf(err, errlen, "tokenizer.json: vocab id %d is used twice", id);
            goto fail;
        }
        /* byte-level vocabularies spell bytes as chars: "<0x41>" is just text there */
        uint32_t kind = !byte_level && tok_parse_byte_piece(s, len, NULL) ? TOK_KIND_BYTE : TOK_KIND_NORMAL;
        if (tok_set_piece(t, id, s, len, kind | TOK_F_BPE, 0, err, errlen)) goto fail;
    }
    const JsonValue *unk = json_get(model, "unk_token");
    if (json_type(unk) == JSON_STRING) {
        size_t len;
        const char *s = json_str(unk, &len);
        for (size_t i = 0; i < nv && t->unk_id < 0; i++) {
            size_t kl;
            const char *k = json_key_at(vocab, i, &kl);
            if (kl == len && memcmp(k, s, len) == 0) get_id(json_value_at(vocab, i), &t->unk_id);
        }
        if (t->unk_id < 0) {
            errorf(err, errlen, "tokenizer.json: unk_token is not in the vocabulary");
            goto fail;
        }
        t->pieces[t->unk_id].flags = (t->pieces[t->unk_id].flags & ~TOK_KIND_MASK) | TOK_KIND_UNKNOWN;
    }
    for (size_t i = 0; i < na; i++) {
        const JsonValue *a = json_at(added, i);
        int id = 0;
        get_id(json_get(a, "id"), &id);
        size_t len;
        const char *s = json_str(json_get(a, "content"), &len);
        if (!s || !len) {
            errorf(err, errlen, "tokenizer.json: added token %d has no content", id);
            goto fail;
        }
        TokPiece *p = &t->pieces[id];
        int special = json_bool(json_get(a, "special"), 0);
        uint32_t f = TOK_F_ADDED;
        if (json_bool(json_get(a, "lstrip"), 0)) f |= TOK_F_LSTRIP;
        if (json_bool(json_get(a, "rstrip"), 0)) f |= TOK_F_RSTRIP;
        if (json_bool(json_get(a, "normalized"), !special)) f |= TOK_F_NORMALIZED;
        if (json_bool(json_get(a, "single_word"), 0)) f |= TOK_F_SINGLE_WORD;
        if (special) f |= TOK_F_SPECIAL;
        uint32_t kind = p->flags & TOK_KIND_MASK;
        if (kind != TOK_KIND_UNUSED) {
            if (p->len != len || memcmp(t->text + p->off, s, len) != 0) {
                errorf(err, errlen, "tokenizer.json: added token %d differs from vocab piece %d", id, id);
                goto fail;
            }
            if (special && kind == TOK_KIND_NORMAL) kind = TOK_KIND_CONTROL;
            p->flags = (p->flags & TOK_F_BPE) | kind | f;
        } else if (tok_set_piece(t, id, s, len, (special ? TOK_KIND_CONTROL : TOK_KIND_USER) | f, 0, err,
                                 errlen)) {
            goto fail;
        }
    }
    return t;
fail:
    tok_free(t);
    return NULL;
}

/* Merges as "a b" strings or ["a", "b"] pairs; a repeated pair keeps its last rank (as HF's
 * map insertion does), which is the same as dropping the earlier copies. */
static int parse_merges(Tokenizer *t, const JsonValue *merges, char *err, size_t errlen) {
    size_t n = json_count(merges);
    if (json_type(merges) != JSON_ARRAY) return errorf(err, errlen, "tokenizer.json: model.merges is not an array");
    int32_t *pairs = malloc((n ? n : 1) * 2 * sizeof *pairs);
    uint32_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    int64_t *last = malloc(cap * sizeof *last); /* pair table: index of the last occurrence */
    uint64_t *keys = calloc(cap, sizeof *keys);
    int rc = -1;
    if (!pairs || !last || !keys) {
        errorf(err, errlen, "tokenizer.json: out of memory");
        goto done;
    }
    for (size_t m = 0; m < n; m++) {
        const JsonValue *v = json_at(merges, m);
        const char *a, *b;
        size_t la, lb;
        if (json_type(v) == JSON_ARRAY && json_count(v) == 2) {
            a = json_str(json_at(v, 0), &la);
            b = json_str(json_at(v, 1), &lb);
        } else {
            size_t len;
            const char *s = json_str(v, &len);
            const char *sp = s ? memchr(s, ' ', len) : NULL;
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
                errorf(err, errlen, "tokenizer.json: merge %zu is not \"a b\"", m);
                goto done;
            }
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = len - la - 1;
        }
        int ia = a ? tok_lookup_bpe(t, a, la) : -1, ib = b ? tok_lookup_bpe(t, b, lb) : -1;
        if (ia < 0 || ib < 0) {
            errorf(err, errlen, "tokenizer.json: merge %zu uses a piece not in the vocabulary", m);
            goto done;
        }
        pairs[2 * m] = ia;
        pairs[2 * m + 1] = ib;
        uint64_t key = ((uint64_t)ia << 32 | (uint32_t)ib) + 1;
        uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
        while (keys[i] && keys[i] != key) i = (i + 1) & (cap - 1);
        keys[i] = key;
        last[i] = (int64_t)m;
    }
    for (size_t m = 0; m < n; m++) {
        uint64_t key = ((uint64_t)pairs[2 * m] << 32 | (uint32_t)pairs[2 * m + 1]) + 1;
        uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
        while (keys[i] != key) i = (i + 1) & (cap - 1);
        if (last[i] == (int64_t)m && tok_add_merge(t, pairs[2 * m], pairs[2 * m + 1], err, errlen)) goto done;
    }
    rc = 0;
done:
    free(pairs);
    free(last);
    free(keys);
    return rc;
}

static int check_model_options(Tokenizer *t, const JsonValue *model, char *err, size_t errlen) {
    const JsonValue *type = json_get(model, "type");
    if (type && !str_is(type, "BPE"))
        return errorf(err, errlen, "tokenizer.json: unsupported model type (only BPE)");
    double dropout = json_num(json_get(model, "dropout"), 0);
    if (dropout != 0) return errorf(err, errlen, "tokenizer.json: BPE dropout is not supported");
    if (!null_or_empty(json_get(model, "continuing_subword_prefix")) ||
        !null_or_empty(json_get(model, "end_of_word_suffix")))
        return errorf(err, errlen, "tokenizer.json: subword prefix/suffix is not supported");
    if (json_bool(json_get(model, "byte_fallback"), 0)) t->opts |= TOK_O_BYTE_FALLBACK;
    if (json_bool(json_get(model, "fuse_unk"), 0)) t->opts |= TOK_O_FUSE_UNK;
    if (json_bool(json_get(model, "ignore_merges"), 0)) t->opts |= TOK_O_IGNORE_MERGES;
    return 0;
}

/* bos/eos/pad/unk tokens, add_bos/add_eos and the chat template from tokenizer_config.json. */
int tok_apply_config(Tokenizer *t, const JsonValue *cfg, char *err, size_t errlen) {
    static const char *names[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    int *ids[4] = {&t->bos_id, &t->eos_id, &t->pad_id, &t->unk_id};
    for (int k = 0; k < 4; k++) {
        size_t len;
        const char *s = token_text(json_get(cfg, names[k]), &len);
        if (!s) continue;
        int id = tok_find_any(t, s, len);
        if (id < 0) return errorf(err, errlen, "tokenizer_config.json: %s is not a known token", names[k]);
        *ids[k] = id;
    }
    const JsonValue *v = json_get(cfg, "add_bos_token");
    if (json_type(v) == JSON_BOOL) t->opts = json_bool(v, 0) ? t->opts | TOK_O_ADD_BOS : t->opts & ~TOK_O_ADD_BOS;
    v = json_get(cfg, "add_eos_token");
    if (json_type(v) == JSON_BOOL) t->opts = json_bool(v, 0) ? t->opts | TOK_O_ADD_EOS : t->opts & ~TOK_O_ADD_EOS;
    const JsonValue *tmpl = json_get(cfg, "chat_template");
    if (json_type(tmpl) == JSON_ARRAY) { /* named templates: take "default", else the first */
        const JsonValue *pick = NULL;
        for (size_t i = 0; i < json_count(tmpl); i++)
            if (!pick || str_is(json_get(json_at(tmpl, i), "name"), "default")) pick = json_at(tmpl, i);
        tmpl = json_get(pick, "template");
    }
    size_t len;
    const char *s = json_str(tmpl, &len);
    if (s && tok_set_template(t, s, len, err, errlen)) return -1;
    return 0;
}

/* Without tokenizer_config.json: BOS from the post-processor template, else "<s>"/"</s>". */
static void guess_specials(Tokenizer *t, const JsonValue *root) {
    t->bos_id = tok_find_any(t, "<s>", 3);
    t->eos_id = tok_find_any(t, "</s>", 4);
    const JsonValue *pp = json_get(root, "post_processor");
    if (!str_is(json_get(pp, "type"), "TemplateProcessing")) return;
    const JsonValue *first = json_at(json_get(pp, "single"), 0);
    const JsonValue *sp = json_get(json_get(first, "SpecialToken"), "id");
    size_t len;
    const char *s = json_str(sp, &len);
    if (!s) return;
    int id = tok_find_any(t, s, len);
    if (id >= 0) {
        t->bos_id = id;
        t->opts |= TOK_O_ADD_BOS;
    }
}

Tokenizer *tok_from_hf_json(const char *json_path, const char *config_path, char *err, size_t errlen) {
    char jerr[256];
    Json *doc = json_parse_file(json_path, jerr, sizeof jerr);
    if (!doc) {
        errorf(err, errlen, "%s: %s", json_path, jerr);
        return NULL;
    }
    Json *cfg = NULL;
    struct stat st;
    if (config_path && stat(config_path, &st) == 0) {
        cfg = json_parse_file(config_path, jerr, sizeof jerr);
        if (!cfg) {
            errorf(err, errlen, "%s: %s", config_path, jerr);
            json_free(doc);
            return NULL;
        }
    }
    const JsonValue *root = json_root(doc), *model = json_get(root, "model");
    Tokenizer *t = NULL;
    if (json_type(model) != JSON_OBJECT) {
        errorf(err, errlen, "%s: no model object", json_path);
        goto fail;
    }
    t = build_pieces(model, json_get(root, "added_tokens"), has_byte_level(json_get(root, "pre_tokenizer")), err,
                     errlen);
    if (!t || check_model_options(t, model, err, errlen) ||
        parse_normalizer(t, json_get(root, "normalizer"), err, errlen) ||
        parse_pre_tokenizer(t, root, err, errlen) ||
        tok_build_index(t, err, errlen) || parse_merges(t, json_get(model, "merges"), err, errlen))
        goto fail;
    if (cfg) {
        if (tok_apply_config(t, json_root(cfg), err, errlen)) goto fail;
    } else {
        guess_specials(t, root);
    }
    if (tok_finalize(t, err, errlen)) goto fail;
    json_free(doc);
    json_free(cfg);
    return t;
fail:
    tok_free(t);
    json_free(doc);
    json_free(cfg);
    return NULL;
}
