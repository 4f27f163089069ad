/* Internals shared by the tokenizer's source files: the Tokenizer struct, piece flags, and the
 * builder used by every importer (tokenizer.json, tokenizer.model, synthetic, section loader).
 * Importers fill pieces and merges, then tok_finalize validates everything and builds the
 * lookup tables, so the section loader and the importers share one set of checks. */
#ifndef PHI_TOK_INTERNAL_H
#define PHI_TOK_INTERNAL_H

#include "base/errmsg.h"
#include "base/fileio.h"
#include "base/json.h"
#include "tokenizer/tokenizer.h"

#include <stdarg.h>
#include <stdint.h>

/* Piece kinds (flags bits 0-2). */
enum {
    TOK_KIND_NORMAL = 0,  /* ordinary text piece */
    TOK_KIND_BYTE = 1,    /* "<0xHH>": decodes to one raw byte */
    TOK_KIND_CONTROL = 2, /* <s>, </s>, <|end|>...: never printed */
    TOK_KIND_UNKNOWN = 3, /* <unk> */
    TOK_KIND_UNUSED = 4,  /* a hole in the id space: empty text, never produced */
    TOK_KIND_USER = 5,    /* user-defined text piece that is not part of the BPE vocabulary */
    TOK_KIND_MAX = 5
};
#define TOK_KIND_MASK 0x7u
#define TOK_F_BPE 0x0008u         /* in the BPE model's vocabulary (chars / merge results) */
#define TOK_F_ADDED 0x0010u       /* added token: matched in the text before BPE */
#define TOK_F_LSTRIP 0x0020u      /* added token swallows whitespace on its left */
#define TOK_F_RSTRIP 0x0040u      /* ... and on its right */
#define TOK_F_NORMALIZED 0x0080u  /* added token matched in the normalized text */
#define TOK_F_SPECIAL 0x0100u     /* special token (skipped by the decoder) */
#define TOK_F_SINGLE_WORD 0x0200u /* added token only matches as a whole word */
#define TOK_F_ALL 0x03FFu

/* Tokenizer types (section "type" field). */
#define TOK_TYPE_SPM_BPE 1  /* BPE over Unicode chars, spaces as U+2581, byte fallback */
#define TOK_TYPE_BYTE_BPE 2 /* GPT-2 style byte-level BPE: pieces spell bytes as printable chars */

/* Pre-tokenizers of byte-level BPE (section "pretok" field). */
#define TOK_PRETOK_NONE 0  /* type 1 */
#define TOK_PRETOK_O200K 1 /* the o200k_base split regex (Phi-4-mini), see tok_pretok_o200k */

/* Dummy-prefix modes: where a U+2581 is prepended before BPE. */
#define TOK_PREFIX_NONE 0
#define TOK_PREFIX_EVERY 1 /* every text segment between added tokens (HF Prepend normalizer) */
#define TOK_PREFIX_FIRST 2 /* only a segment that starts the text (SentencePiece, Metaspace "first") */

/* Option flags (section "flags" field). */
#define TOK_O_ADD_BOS 0x01u
#define TOK_O_ADD_EOS 0x02u
#define TOK_O_BYTE_FALLBACK 0x04u
#define TOK_O_FUSE_UNK 0x08u
#define TOK_O_RANK_BY_SCORE 0x10u /* merge priority = score of the merged piece (SentencePiece) */
#define TOK_O_IGNORE_MERGES 0x20u /* a whole segment that is a piece is emitted as is */
#define TOK_O_SPACE_TO_META 0x40u /* normalizer replaces ' ' by U+2581 */
#define TOK_O_HAS_SCORES 0x80u    /* per-piece scores are stored */
#define TOK_O_PRETOK_META 0x100u  /* prefix + replace are HF's Metaspace pre-tokenizer (see encode) */
#define TOK_O_COLLAPSE_SPACES 0x200u /* normalizer trims ' ' at both ends and squeezes runs */
#define TOK_O_ALL 0x3FFu

#define TOK_MAX_PIECES (1 << 24)
#define TOK_MAX_PIECE_LEN 65535

typedef struct {
    uint32_t off, len; /* text in t->text (NUL-terminated there) */
    uint32_t flags;
    float score;
} TokPiece;

typedef struct {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, new_id;
} MergeSlot;

typedef struct {
    int32_t next, child; /* sibling list / first child, -1 none */
    int32_t id;          /* token ending here, -1 none */
    uint8_t byte;
} TrieNode;

typedef struct {
    TrieNode *nodes;
    int n, cap;
    uint8_t first[32]; /* bitmap of first bytes, to skip most positions quickly */
} AddedTrie;

struct Tokenizer {
    int type;
    uint32_t opts;  /* TOK_O_* */
    int prefix;     /* TOK_PREFIX_* */
    int pretok;     /* TOK_PRETOK_* */
    int n_pieces;
    TokPiece *pieces;
    char *text;
    size_t text_len, text_cap;
    int n_merges, merges_cap;
    int32_t *merges; /* n_merges pairs (left, right) in rank order */
    int unk_id, bos_id, eos_id, pad_id;
    char *chat_template; /* NULL if none */

    /* Built by tok_finalize. */
    int32_t *piece_hash; /* open addressing over BPE pieces: id or -1 */
    uint32_t piece_mask;
    MergeSlot *pairs;    /* open addressing over merges */
    uint32_t pair_mask;
    int32_t byte_id[256];  /* <0xHH> BPE piece per byte, -1 if missing */
    int32_t ascii_id[128]; /* single-char BPE piece per ASCII char, -1 if missing */
    AddedTrie raw_trie, norm_trie;
    int word_split; /* BPE may run per word (split before each U+2581 after another char) */
    int finalized;
};

/* Builder. */
Tokenizer *tok_alloc(int n_pieces, char *err, size_t errlen);
int tok_set_piece(Tokenizer *t, int id, const char *s, size_t len, uint32_t flags, float score,
                  char *err, size_t errlen);
int tok_add_merge(Tokenizer *t, int left, int right, char *err, size_t errlen);
int tok_set_template(Tokenizer *t, const char *s, size_t len, char *err, size_t errlen);
/* Validates the options, pieces and special ids and builds the piece index (tok_lookup_bpe
 * works after it); importers use it to resolve merges given as text. */
int tok_build_index(Tokenizer *t, char *err, size_t errlen);
/* Validates the pieces, ids, merges and options and builds the lookup tables. */
int tok_finalize(Tokenizer *t, char *err, size_t errlen);

/* Id of a BPE-vocabulary piece with exactly this text, or -1 (after tok_finalize). */
int tok_lookup_bpe(const Tokenizer *t, const char *s, size_t len);
/* Id of any piece with this text (added tokens first), or -1; linear, for importers. */
int tok_find_any(const Tokenizer *t, const char *s, size_t len);

/* Longest added token in trie tr that starts at s: its byte length (0 if none) and *id. */
int tok_trie_longest(const AddedTrie *tr, const char *s, size_t len, int *id);
/* The segment normalizer (tok_normalize.c): optional U+2581 prefix (when at_start is set and the
 * mode asks for it) and ' ' -> U+2581. out needs room for 3 + 3 * len bytes. Returns the output
 * length. */
size_t tok_normalize(const Tokenizer *t, const char *s, size_t len, int at_start, char *out);
/* Its first step alone (no space collapsing); with `conditional`, no prefix when the result would
 * already start with U+2581 (HF's Metaspace pre-tokenizer). */
size_t tok_prefix_and_replace(const Tokenizer *t, const char *s, size_t len, int at_start, int conditional,
                              char *out);
/* Is U+2581 (3 bytes) at s[i]? */
static inline int tok_is_meta_at(const char *s, size_t i) {
    return (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 && (unsigned char)s[i + 2] == 0x81;
}

/* Byte-level BPE (tok_bytelevel.c). */
/* GPT-2's printable stand-in for byte b (U+0021..U+0143), and the inverse (-1 if cp is none). */
uint32_t tok_byte_to_cp(unsigned b);
int tok_cp_to_byte(uint32_t cp);
/* Writes the stand-ins of s[0..len) as UTF-8 to out (room for 2 * len); returns the length. */
size_t tok_bytes_to_pieces(const char *s, size_t len, char *out);
/* Unicode classes of the pre-tokenizer (table in unicode_tables.c). */
enum { TOK_UC_OTHER, TOK_UC_UPPER, TOK_UC_LOWER, TOK_UC_LETTER, TOK_UC_MARK, TOK_UC_NUMBER, TOK_UC_SPACE };
int tok_uc_class(uint32_t cp);
extern const char tok_uc_unicode_version[];
extern const int tok_uc_table_len;
extern const uint32_t tok_uc_table[];
/* End of the o200k pre-token that starts at s[i] (i < len, valid UTF-8): > i. */
size_t tok_pretok_o200k(const char *s, size_t len, size_t i);
/* The Split regex tokenizer.json must carry for TOK_PRETOK_O200K. */
extern const char tok_o200k_pattern[];

/* UTF-8 helpers. */
/* Length of the valid UTF-8 character at s (1-4), or 0 if invalid/truncated. */
int tok_utf8_len(const unsigned char *s, size_t avail);
/* Offset of the first invalid byte, or len if all valid. */
size_t tok_utf8_check(const char *s, size_t len);
/* Is "<0xHH>" (uppercase hex)? Sets *byte. */
int tok_parse_byte_piece(const char *s, size_t len, int *byte);

/* Importers. */
Tokenizer *tok_from_hf_json(const char *json_path, const char *config_path, char *err,
                            size_t errlen);
/* tokenizer.model (SentencePiece protobuf); config_path (may be NULL or absent) is a
 * tokenizer_config.json applied on top. */
Tokenizer *tok_from_spm_model(const uint8_t *data, size_t len, const char *config_path, char *err,
                              size_t errlen);
/* Applies tokenizer_config.json (bos/eos/pad/unk tokens, add_bos/add_eos, chat template). */
int tok_apply_config(Tokenizer *t, const JsonValue *cfg, char *err, size_t errlen);

#endif
