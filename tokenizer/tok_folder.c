/* A Hugging Face model folder's tokenizer: tokenizer.json with tokenizer_config.json
 * (tok_hf.c), else the SentencePiece tokenizer.model with the same config (tok_spm.c); then
 * chat_template.jinja when the config carried no template (newer folders keep it apart). */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

Tokenizer *tok_from_hf_dir(const char *dir, char *err, size_t errlen) {
    size_t dl = strlen(dir);
    char *json = malloc(dl + 32), *cfg = malloc(dl + 32), *spm = malloc(dl + 32), *jinja = malloc(dl + 32);
    Tokenizer *t = NULL;
    if (!json || !cfg || !spm || !jinja) {
        errorf(err, errlen, "tokenizer: out of memory");
        goto done;
    }
    sprintf(json, "%s/tokenizer.json", dir);
    sprintf(cfg, "%s/tokenizer_config.json", dir);
    sprintf(spm, "%s/tokenizer.model", dir);
    sprintf(jinja, "%s/chat_template.jinja", dir);
    if (file_exists(json)) {
        t = tok_from_hf_json(json, cfg, err, errlen);
    } else if (file_exists(spm)) {
        size_t len;
        char *data = read_file(spm, &len, err, errlen);
        if (data) t = tok_from_spm_model((const uint8_t *)data, len, cfg, err, errlen);
        free(data);
    } else {
        errorf(err, errlen, "%s: neither tokenizer.json nor tokenizer.model found", dir);
    }
    if (t && !t->chat_template && file_exists(jinja)) { /* newer HF folders keep it apart */
        size_t len;
        char *s = read_file(jinja, &len, err, errlen);
        if (!s || tok_set_template(t, s, len, err, errlen)) {
            tok_free(t);
            t = NULL;
        }
        free(s);
    }
done:
    free(json);
    free(cfg);
    free(spm);
    free(jinja);
    return t;
}
