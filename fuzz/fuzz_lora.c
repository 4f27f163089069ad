/* libFuzzer harness for LoRA adapter reading (convert/lora_load.c, base/regex.c): the input is
 * [u16 config length][adapter_config.json text][adapter_model.safetensors bytes] for a tiny
 * model's hyperparameters, or with a first byte of 0xff a regular expression and a name to match
 * (NUL between them), or with a first byte of 0xfe a GGUF adapter file. An accepted adapter must fit the model and hold finite values; a refused
 * one leaves one line. */

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/regex.h"
#include "convert/lora_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    err[0] = 0;
    if (size >= 1 && data[0] == 0xff) {
        const uint8_t *nul = memchr(data + 1, 0, size - 1);
        size_t plen = nul ? (size_t)(nul - data - 1) : size - 1;
        Regex *re = regex_compile((const char *)data + 1, plen, err, sizeof err);
        if (!re && (!err[0] || strchr(err, '\n'))) __builtin_trap();
        if (re && nul) regex_fullmatch(re, (const char *)nul + 1, size - plen - 2);
        regex_free(re);
        return 0;
    }
    if (size >= 1 && data[0] == 0xfe) { /* a GGUF adapter */
        PhiHParams h2 = {.vocab_size = 512, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                         .head_dim = 16, .hidden_dim = 132};
        LoraAdapter *ad = lora_from_gguf("fuzz", data + 1, size - 1, &h2, err, sizeof err);
        if (ad && lora_adapter_check(ad, &h2, err, sizeof err)) __builtin_trap();
        if (!ad && (!err[0] || strchr(err, '\n'))) __builtin_trap();
        lora_adapter_free(ad);
        return 0;
    }
    if (size < 2) return 0;
    size_t clen = (size_t)(data[0] | data[1] << 8);
    if (clen > size - 2) clen = size - 2;
    const uint8_t *st_bytes = data + 2 + clen;
    size_t st_len = size - 2 - clen;
    PhiHParams hp = {.vocab_size = 512, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .head_dim = 16, .hidden_dim = 132}; /* quant --random tiny, as tests/test_lora.c */
    StFile f;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    if (st_parse_header(st_bytes, st_len, st_len, &f, err, sizeof err)) return 0;
    int fd = memfd_create("st", 0);
    if (fd < 0 || write(fd, st_bytes, st_len) != (ssize_t)st_len) {
        if (fd >= 0) close(fd);
        st_close(&f);
        return 0;
    }
    f.fd = fd; /* st_close closes it */
    err[0] = 0;
    LoraAdapter *ad = lora_from_peft("fuzz", (const char *)data + 2, clen, &f, &hp, err, sizeof err);
    if (ad) {
        if (lora_adapter_check(ad, &hp, err, sizeof err)) __builtin_trap();
        for (int i = 0; i < ad->n; i++)
            for (int k = 0; k < ad->p[i].rank * ad->p[i].cols; k++)
                if (!isfinite(ad->p[i].a[k])) __builtin_trap();
        LoraSet *set = lora_set_new(&hp);
        if (set && lora_set_add(set, ad, 1.0f, err, sizeof err)) __builtin_trap();
        lora_set_free(set);
        lora_adapter_free(ad);
    } else if (!err[0] || strchr(err, '\n')) {
        __builtin_trap();
    }
    st_close(&f);
    return 0;
}
