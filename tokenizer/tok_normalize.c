/* The segment normalizer (SentencePiece's and Hugging Face's Prepend/Replace/Metaspace): an
 * optional U+2581 prefix, ' ' -> U+2581, and SentencePiece's collapsing of extra spaces. The
 * encoder runs it on each text segment; the index builder on the added tokens that match
 * normalized text (tok_build.c), so both see the same bytes. */
#include "tokenizer/tok_internal.h"

#include <string.h>

/* Optional U+2581 prefix, then ' ' -> U+2581. With `conditional`, no prefix when the result
 * would already start with U+2581 (HF's Metaspace). */
size_t tok_prefix_and_replace(const Tokenizer *t, const char *s, size_t len, int at_start,
                              int conditional, char *out) {
    static const char meta[3] = {(char)0xE2, (char)0x96, (char)0x81}; /* U+2581 */
    size_t o = 0;
    int repl = (t->opts & TOK_O_SPACE_TO_META) != 0;
    int starts_meta = len && ((repl && s[0] == ' ') || (len >= 3 && tok_is_meta_at(s, 0)));
    if (len && (t->prefix == TOK_PREFIX_EVERY || (t->prefix == TOK_PREFIX_FIRST && at_start)) &&
        !(conditional && starts_meta)) {
        memcpy(out, meta, 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (repl && s[i] == ' ') {
            memcpy(out + o, meta, 3);
            o += 3;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

size_t tok_normalize(const Tokenizer *t, const char *s, size_t len, int at_start, char *out) {
    if (t->opts & TOK_O_PRETOK_META) { /* the normalizer is the identity; Metaspace comes later */
        memcpy(out, s, len);
        return len;
    }
    if (!(t->opts & TOK_O_COLLAPSE_SPACES)) return tok_prefix_and_replace(t, s, len, at_start, 0, out);
    /* SentencePiece's remove_extra_whitespaces: drop leading ' ', squeeze runs of ' ', and
     * drop trailing U+2581 of the result (spaces, literal U+2581, even the dummy prefix).
     * The squeezed copy goes to the end of out (3 * len bytes are free there). */
    while (len && s[0] == ' ') s++, len--;
    char *tmp = out + 2 * len + 3;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] == ' ' && n && tmp[n - 1] == ' ')) tmp[n++] = s[i];
    size_t o = tok_prefix_and_replace(t, tmp, n, at_start, 0, out);
    while (o >= 3 && tok_is_meta_at(out, o - 3)) o -= 3;
    return o;
}
