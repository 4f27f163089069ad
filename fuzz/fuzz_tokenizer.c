/* libFuzzer harness for the tokenizer's untrusted inputs. The first byte picks a mode:
 *   0: tok_load on the rest of the input;
 *   1: tok_load on a valid synthetic section patched by the input ((u24 offset, u8 xor) groups,
 *      the first group's xor byte also truncating the blob when odd), so the fuzzer reaches the
 *      checks behind the size check at once;
 *   2: tok_from_spm_model (tokenizer.model protobuf) on the rest of the input;
 *   3: as 1 with a byte-level BPE section (tests/data/bytelevel/tokenizer.json, run from the
 *      repository root; mode 1 is used when it cannot be read).
 * Whatever loads must encode text (fixed strings and the input's tail), decode the ids, and
 * survive a serialize/load round trip.
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_tokenizer.c tokenizer/ *.c base/json.c -lm */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

static uint8_t *g_blob, *g_blob_bl;
static uint64_t g_size, g_size_bl;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[256];
    Tokenizer *t = tok_synthetic(400, err, sizeof err);
    if (!t || tok_serialize(t, &g_blob, &g_size, err, sizeof err)) __builtin_trap();
    tok_free(t);
    t = tok_from_hf_dir("tests/data/bytelevel", err, sizeof err);
    if (t && tok_serialize(t, &g_blob_bl, &g_size_bl, err, sizeof err)) __builtin_trap();
    tok_free(t);
    return 0;
}

static void exercise(const Tokenizer *t, const uint8_t *tail, size_t tail_len) {
    static const char *texts[] = {"Hello world", "  <s> x</s>\n\t", "\xE2\x96\x81\xF0\x9F\x98\x80", "<unk><0x41>", "",
                                  "It'S 1234567 <|user|>\r\n  x \xC5\xBF\xE0\xA4\x95\xE0\xA4\xBF <|end|> "};
    char err[256], out[64];
    int ids[256];
    for (size_t i = 0; i <= sizeof texts / sizeof *texts; i++) {
        const char *s = i < sizeof texts / sizeof *texts ? texts[i] : (const char *)tail;
        size_t len = i < sizeof texts / sizeof *texts ? strlen(s) : tail_len;
        int n = tok_encode(t, s, len, 1, ids, 256, err, sizeof err);
        if (n > 256) n = 256;
        TokDecoder d;
        tok_decoder_init(&d, t);
        for (int k = 0; k < n; k++) {
            if (ids[k] < 0 || ids[k] >= tok_vocab_size(t)) __builtin_trap();
            tok_decoder_push(&d, ids[k], out, sizeof out);
        }
        tok_decoder_push(&d, -5, out, sizeof out);
        tok_decoder_flush(&d, out, sizeof out);
    }
    for (int id = -1; id <= tok_vocab_size(t) && id < 600; id++) {
        tok_piece(t, id);
        tok_is_special(t, id);
    }
    uint8_t *blob;
    uint64_t size;
    if (tok_serialize(t, &blob, &size, err, sizeof err)) __builtin_trap();
    Tokenizer *again = tok_load(blob, size, err, sizeof err);
    if (!again) __builtin_trap(); /* whatever was accepted must round-trip */
    tok_free(again);
    free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int mode = data[0] % 4;
    data++;
    size--;
    char err[256];
    Tokenizer *t = NULL;
    size_t tail = size < 24 ? size : 24;
    if (mode == 0) {
        t = tok_load(data, size, err, sizeof err);
    } else if (mode == 1 || mode == 3) {
        const uint8_t *src = mode == 3 && g_blob_bl ? g_blob_bl : g_blob;
        uint64_t src_size = mode == 3 && g_blob_bl ? g_size_bl : g_size;
        uint8_t *b = malloc(src_size);
        memcpy(b, src, src_size);
        uint64_t len = src_size;
        for (size_t i = 0; i + 4 <= size; i += 4) {
            uint64_t off = ((uint64_t)data[i] | (uint64_t)data[i + 1] << 8 | (uint64_t)data[i + 2] << 16) % src_size;
            b[off] ^= data[i + 3];
            if (i == 0 && (data[3] & 1)) len = off;
        }
        uint8_t *exact = malloc(len ? len : 1); /* exact size so ASan sees over-reads */
        memcpy(exact, b, len);
        free(b);
        t = tok_load(exact, len, err, sizeof err);
        free(exact);
    } else {
        t = tok_from_spm_model(data, size, NULL, err, sizeof err);
    }
    if (t) exercise(t, data + size - tail, tail);
    else if (!err[0]) __builtin_trap(); /* a rejection always says why */
    tok_free(t);
    return 0;
}
