/* The Phi tokenizers: SentencePiece-style BPE with byte fallback (Phi-3) or GPT-2 style
 * byte-level BPE with the o200k pre-tokenizer (Phi-4-mini), with added/special tokens, built
 * from a Hugging Face tokenizer.json (+ tokenizer_config.json) or from a GGUF file's vocabulary
 * arrays (tok_from_vocab, model/gguf_vocab.c), stored in the phi file as one
 * opaque section (layout in docs/FORMAT.md, "Tokenizer section"), and loaded from it with full validation. */
#ifndef PHI_TOKENIZER_H
#define PHI_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

/* From a model folder: tokenizer.json (required) and tokenizer_config.json (optional:
 * add_bos_token, add_eos_token, chat template, bos/eos tokens). */
Tokenizer *tok_from_hf_dir(const char *dir, char *err, size_t errlen);
/* From the bytes of a SentencePiece BPE tokenizer.model (what tok_from_hf_dir uses when the
 * folder has no tokenizer.json); BOS is added by default, as SentencePiece does. */
Tokenizer *tok_from_spm(const uint8_t *data, size_t len, char *err, size_t errlen);
/* A stand-in for synthetic models (quant --random): n_vocab ids, of which the first 259 are
 * <unk>, <s>, </s> and the 256 byte tokens, and the rest are distinct printable pieces. */
Tokenizer *tok_synthetic(int n_vocab, char *err, size_t errlen);

/* A vocabulary given as plain arrays, as GGUF files carry it (llama.cpp's tokenizer.ggml.* keys;
 * model/gguf_vocab.c reads them). Everything is validated: the arrays may come from an
 * untrusted file. See docs/GGUF.md, "Tokenizer", for how each field is used. */
enum { TOK_VOCAB_SPM = 1, TOK_VOCAB_BPE = 2 }; /* ggml "llama" (SentencePiece BPE, scores), "gpt2" (byte-level, merges) */
/* ggml token types (tokenizer.ggml.token_type). */
enum { TOK_TT_NORMAL = 1, TOK_TT_UNKNOWN = 2, TOK_TT_CONTROL = 3, TOK_TT_USER = 4, TOK_TT_UNUSED = 5, TOK_TT_BYTE = 6 };
/* Per-token strip flags (tok_vocab.strip): the token absorbs whitespace on its left / right. */
#define TOK_VOCAB_LSTRIP 1u
#define TOK_VOCAB_RSTRIP 2u

typedef struct {
    const char *s; /* not NUL-terminated */
    size_t len;
} TokStr;

typedef struct {
    int kind;                 /* TOK_VOCAB_SPM or TOK_VOCAB_BPE */
    int n_tokens;
    const TokStr *tokens;     /* n_tokens texts; BPE: byte-level spelling (GPT-2's stand-ins) */
    const float *scores;      /* SPM: required (merge priority); BPE: ignored, may be NULL */
    const int32_t *types;     /* TOK_TT_* per token; NULL: all normal */
    const uint8_t *strip;     /* TOK_VOCAB_*STRIP per token (only on tokens matched in text); may be NULL */
    int n_merges;
    const TokStr *merges;     /* BPE: "left right", rank order; SPM: must be 0 (derived from scores) */
    const char *pre;          /* BPE pre-tokenizer name (tokenizer.ggml.pre): "gpt-4o"; SPM: ignored */
    size_t pre_len;
    int bos_id, eos_id, unk_id, pad_id; /* -1: none */
    int add_bos, add_eos;
    int add_space_prefix;     /* SPM: U+2581 before each text segment (llama.cpp's default 1) */
    const char *chat_template; /* NULL: none */
    size_t chat_template_len;
} TokVocab;

/* Builds the tokenizer (NULL with one line in err for anything malformed). SentencePiece
 * vocabularies get the merges Hugging Face's converter derives from the scores, so they encode
 * exactly as the model's tokenizer.json; a trailing run of "[PADn]" padding tokens (unknown or
 * unused type) is not part of the vocabulary. */
Tokenizer *tok_from_vocab(const TokVocab *v, char *err, size_t errlen);

/* The phi file's tokenizer section. tok_serialize returns a malloc'd blob. tok_load validates
 * everything (it parses untrusted bytes) and copies what it needs. */
int tok_serialize(const Tokenizer *t, uint8_t **blob, uint64_t *size, char *err, size_t errlen);
Tokenizer *tok_load(const uint8_t *blob, uint64_t size, char *err, size_t errlen);
void tok_free(Tokenizer *t);

int tok_vocab_size(const Tokenizer *t); /* number of pieces (may be < the model's vocab rows) */
int tok_bos_id(const Tokenizer *t);     /* -1 if none */
int tok_eos_id(const Tokenizer *t);
int tok_add_bos(const Tokenizer *t);    /* add_bos_token of tokenizer_config.json */
/* Piece text as stored (e.g. "▁the", "<0x41>", "<|end|>"), or NULL for ids out of range. */
const char *tok_piece(const Tokenizer *t, int id);
/* Control/special tokens (<s>, </s>, <|end|>, ...) are never printed by the decoder. */
int tok_is_special(const Tokenizer *t, int id);
int tok_unk_id(const Tokenizer *t);     /* -1 if none */
int tok_pad_id(const Tokenizer *t);     /* -1 if none */
int tok_add_eos(const Tokenizer *t);    /* add_eos_token of tokenizer_config.json */
/* Chat template (Jinja source from tokenizer_config.json), or NULL if none. */
const char *tok_chat_template(const Tokenizer *t);
/* Id of the piece whose text is exactly s[0..len) (added tokens first, e.g. "<|end|>"), or -1. */
int tok_piece_id(const Tokenizer *t, const char *s, size_t len);

/* Encode UTF-8 text. Added/special tokens are matched in the text first, then BPE runs on the
 * segments between them. Writes at most cap ids to ids; returns the number of ids the text
 * needs (may exceed cap: call again with more room), or -1 with err (invalid UTF-8). */
int tok_encode(const Tokenizer *t, const char *text, size_t len, int add_bos, int *ids, int cap,
               char *err, size_t errlen);

/* Streaming decoder: feed ids one at a time, get the bytes that are ready to print (complete
 * UTF-8 characters; byte-fallback and byte-level pieces are assembled; for SentencePiece-style
 * BPE the dummy-prefix space of the first piece is dropped as Hugging Face's decode does;
 * special tokens produce nothing). */
typedef struct {
    const Tokenizer *t;
    int first;            /* nothing emitted yet */
    unsigned char pending[8];
    int n_pending;
    int special;          /* print special tokens as their text (llama.cpp's --special; HF decode with
                           * skip_special_tokens=False); set after tok_decoder_init */
} TokDecoder;
void tok_decoder_init(TokDecoder *d, const Tokenizer *t);
/* Appends up to cap-1 bytes + NUL to out; returns the number of bytes written. */
size_t tok_decoder_push(TokDecoder *d, int id, char *out, size_t cap);
/* Flush an incomplete trailing character (as U+FFFD). */
size_t tok_decoder_flush(TokDecoder *d, char *out, size_t cap);

#endif
