/* Import of a SentencePiece BPE tokenizer.model (a protobuf ModelProto). SentencePiece merges
 * the adjacent pair whose concatenation is the highest-scoring piece (leftmost on ties), so
 * every split of every piece into two pieces becomes a merge and the tokenizer is flagged
 * TOK_O_RANK_BY_SCORE: tok_finalize ranks merges by the score of their result. The dummy
 * prefix is added once, at the start of the text (TOK_PREFIX_FIRST). */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const uint8_t *p, *end;
} Pb;

enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6 };

static int pb_varint(Pb *b, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return -1;
        uint8_t c = *b->p++;
        x |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Reads one field header and its payload: varints in *v, fixed32 in *v, length-delimited
 * payloads in *sub. Returns the field number, 0 at the end, -1 on malformed input. */
static int pb_field(Pb *b, uint64_t *v, Pb *sub) {
    if (b->p >= b->end) return 0;
    uint64_t key;
    if (pb_varint(b, &key)) return -1;
    int field = (int)(key >> 3), wire = (int)(key & 7);
    if (key >> 3 == 0 || key >> 3 > 536870911u) return -1;
    *v = 0;
    sub->p = sub->end = NULL;
    switch (wire) {
    case 0:
        return pb_varint(b, v) ? -1 : field;
    case 1:
        if (b->end - b->p < 8) return -1;
        b->p += 8;
        return field;
    case 2: {
        uint64_t len;
        if (pb_varint(b, &len) || len > (uint64_t)(b->end - b->p)) return -1;
        sub->p = b->p;
        sub->end = b->p + len;
        b->p += len;
        return field;
    }
    case 5:
        if (b->end - b->p < 4) return -1;
        *v = (uint64_t)b->p[0] | (uint64_t)b->p[1] << 8 | (uint64_t)b->p[2] << 16 | (uint64_t)b->p[3] << 24;
        b->p += 4;
        return field;
    default:
        return -1;
    }
}

typedef struct {
    const char *s;
    size_t len;
    float score;
    int type;
} SpPiece;

typedef struct {
    SpPiece *pieces;
    int n, cap;
    int model_type, byte_fallback;
    int unk_id, bos_id, eos_id, pad_id;
    int add_dummy_prefix, remove_extra_ws, escape_ws, has_charsmap, suffix_ws;
} SpModel;

static int parse_piece(Pb *b, SpPiece *sp) {
    uint64_t v;
    Pb sub;
    int f;
    sp->s = NULL;
    sp->len = 0;
    sp->score = 0;
    sp->type = SP_NORMAL;
    while ((f = pb_field(b, &v, &sub)) > 0) {
        if (f == 1 && sub.p) {
            sp->s = (const char *)sub.p;
            sp->len = (size_t)(sub.end - sub.p);
        } else if (f == 2) {
            uint32_t bits = (uint32_t)v;
            memcpy(&sp->score, &bits, 4);
        } else if (f == 3) {
            sp->type = (int)v;
        }
    }
    return f < 0 || !sp->s ? -1 : 0;
}

static int parse_trainer(Pb *b, SpModel *m) {
    uint64_t v;
    Pb sub;
    int f;
    while ((f = pb_field(b, &v, &sub)) > 0) {
        int32_t iv = (int32_t)(uint32_t)v; /* int32 fields: negative values are sign-extended */
        if (f == 3) m->model_type = (int)v;
        else if (f == 24) m->suffix_ws = v != 0;
        else if (f == 35) m->byte_fallback = v != 0;
        else if (f == 40) m->unk_id = iv;
        else if (f == 41) m->bos_id = iv;
        else if (f == 42) m->eos_id = iv;
        else if (f == 43) m->pad_id = iv;
    }
    return f;
}

static int parse_normalizer_spec(Pb *b, SpModel *m) {
    uint64_t v;
    Pb sub;
    int f;
    while ((f = pb_field(b, &v, &sub)) > 0) {
        if (f == 2) m->has_charsmap = sub.p && sub.end > sub.p;
        else if (f == 3) m->add_dummy_prefix = v != 0;
        else if (f == 4) m->remove_extra_ws = v != 0;
        else if (f == 5) m->escape_ws = v != 0;
    }
    return f;
}

static int parse_model(const uint8_t *data, size_t len, SpModel *m, char *err, size_t errlen) {
    Pb b = {data, data + len};
    uint64_t v;
    Pb sub;
    int f;
    /* proto2 defaults */
    m->model_type = 1;
    m->unk_id = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    m->add_dummy_prefix = m->remove_extra_ws = m->escape_ws = 1;
    while ((f = pb_field(&b, &v, &sub)) > 0) {
        if (f == 1 && sub.p) {
            if (m->n == m->cap) {
                int cap = m->cap ? m->cap * 2 : 1024;
                if (cap > TOK_MAX_PIECES) return errorf(err, errlen, "tokenizer.model: too many pieces");
                SpPiece *np = realloc(m->pieces, (size_t)cap * sizeof *np);
                if (!np) return errorf(err, errlen, "tokenizer.model: out of memory");
                m->pieces = np;
                m->cap = cap;
            }
            if (parse_piece(&sub, &m->pieces[m->n]))
                return errorf(err, errlen, "tokenizer.model: malformed piece %d", m->n);
            m->n++;
        } else if (f == 2 && sub.p) {
            if (parse_trainer(&sub, m) < 0) return errorf(err, errlen, "tokenizer.model: malformed trainer_spec");
        } else if (f == 3 && sub.p) {
            if (parse_normalizer_spec(&sub, m) < 0)
                return errorf(err, errlen, "tokenizer.model: malformed normalizer_spec");
        }
    }
    if (f < 0) return errorf(err, errlen, "tokenizer.model: malformed protobuf");
    if (m->n == 0) return errorf(err, errlen, "tokenizer.model: no pieces");
    if (m->model_type != 2)
        return errorf(err, errlen, "tokenizer.model: model type %d is not BPE (only BPE is supported)", m->model_type);
    if (m->has_charsmap)
        return errorf(err, errlen, "tokenizer.model: Unicode normalization rules are not supported");
    if (!m->escape_ws || m->suffix_ws)
        return errorf(err, errlen, "tokenizer.model: unsupported whitespace options");
    return 0;
}

/* Every split of a piece into two pieces is a merge (order is irrelevant: ranks come from
 * scores). Only normal and user-defined pieces take part, as in SentencePiece. */
static int add_spm_merges(Tokenizer *t, char *err, size_t errlen) {
    for (int id = 0; id < t->n_pieces; id++) {
        const TokPiece *p = &t->pieces[id];
        if (!(p->flags & TOK_F_BPE) || (p->flags & TOK_KIND_MASK) == TOK_KIND_BYTE) continue;
        const char *s = t->text + p->off;
        for (uint32_t k = 1; k < p->len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* split at char boundaries */
            int a = tok_lookup_bpe(t, s, k), b = tok_lookup_bpe(t, s + k, p->len - k);
            if (a < 0 || b < 0 || (t->pieces[a].flags & TOK_KIND_MASK) == TOK_KIND_BYTE ||
                (t->pieces[b].flags & TOK_KIND_MASK) == TOK_KIND_BYTE)
                continue;
            if (tok_add_merge(t, a, b, err, errlen)) return -1;
        }
    }
    return 0;
}

Tokenizer *tok_from_spm_model(const uint8_t *data, size_t len, const char *config_path, char *err,
                              size_t errlen) {
    SpModel m = {0};
    Tokenizer *t = NULL;
    Json *cfg = NULL;
    if (parse_model(data, len, &m, err, errlen)) goto fail;
    t = tok_alloc(m.n, err, errlen);
    if (!t) goto fail;
    for (int i = 0; i < m.n; i++) {
        const SpPiece *sp = &m.pieces[i];
        uint32_t flags;
        switch (sp->type) {
        case SP_NORMAL: flags = TOK_KIND_NORMAL | TOK_F_BPE; break;
        case SP_UNKNOWN: flags = TOK_KIND_UNKNOWN; break;
        case SP_CONTROL: flags = TOK_KIND_CONTROL; break;
        case SP_USER_DEFINED: flags = TOK_KIND_USER | TOK_F_BPE | TOK_F_ADDED | TOK_F_NORMALIZED; break;
        case SP_UNUSED: flags = TOK_KIND_NORMAL; break; /* never produced */
        case SP_BYTE: flags = TOK_KIND_BYTE | TOK_F_BPE; break;
        default: errorf(err, errlen, "tokenizer.model: piece %d has unknown type %d", i, sp->type); goto fail;
        }
        if (tok_set_piece(t, i, sp->s, sp->len, flags, sp->score, err, errlen)) goto fail;
    }
    int *ids[4] = {&t->unk_id, &t->bos_id, &t->eos_id, &t->pad_id};
    int vals[4] = {m.unk_id, m.bos_id, m.eos_id, m.pad_id};
    for (int k = 0; k < 4; k++) *ids[k] = vals[k] >= 0 && vals[k] < m.n ? vals[k] : -1;
    t->opts = TOK_O_HAS_SCORES | TOK_O_RANK_BY_SCORE | TOK_O_SPACE_TO_META | TOK_O_FUSE_UNK | TOK_O_ADD_BOS;
    if (m.byte_fallback) t->opts |= TOK_O_BYTE_FALLBACK;
    if (m.remove_extra_ws) t->opts |= TOK_O_COLLAPSE_SPACES;
    t->prefix = m.add_dummy_prefix ? TOK_PREFIX_FIRST : TOK_PREFIX_NONE;
    if (tok_build_index(t, err, errlen) || add_spm_merges(t, err, errlen)) goto fail;
    struct stat st;
    if (config_path && stat(config_path, &st) == 0) {
        char jerr[256];
        cfg = json_parse_file(config_path, jerr, sizeof jerr);
        if (!cfg) {
            errorf(err, errlen, "%s: %s", config_path, jerr);
            goto fail;
        }
        if (tok_apply_config(t, json_root(cfg), err, errlen)) goto fail;
    }
    if (tok_finalize(t, err, errlen)) goto fail;
    json_free(cfg);
    free(m.pieces);
    return t;
fail:
    json_free(cfg);
    free(m.pieces);
    tok_free(t);
    return NULL;
}

Tokenizer *tok_from_spm(const uint8_t *data, size_t len, char *err, size_t errlen) {
    return tok_from_spm_model(data, len, NULL, err, errlen);
}
