#include "server/oai.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errmsg.h"
#include "base/json.h"

static int perr(const char **param, const char *name, char *err, size_t errlen, const char *fmt, const char *what) {
    if (param) *param = name;
    snprintf(err, errlen, fmt, what);
    return -1;
}

/* A number field: absent or null keeps *out; otherwise it must be a number in [lo, hi]. */
static int get_num(const JsonValue *root, const char *name, double lo, double hi, float *out,
                   const char **param, char *err, size_t errlen) {
    const JsonValue *v = json_get(root, name);
    if (!v || json_type(v) == JSON_NULL) return 0;
    if (json_type(v) != JSON_NUMBER) return perr(param, name, err, errlen, "'%s' must be a number", name);
    double x = json_num(v, 0);
    if (!(x >= lo && x <= hi)) {
        if (param) *param = name;
        snprintf(err, errlen, "'%s' must be between %g and %g", name, lo, hi);
        return -1;
    }
    *out = (float)x;
    return 0;
}

static int get_int(const JsonValue *root, const char *name, long long lo, long long hi, long long *out, int *given,
                   const char **param, char *err, size_t errlen) {
    const JsonValue *v = json_get(root, name);
    if (given) *given = 0;
    if (!v || json_type(v) == JSON_NULL) return 0;
    long long x;
    if (json_type(v) != JSON_NUMBER || json_int(v, &x)) return perr(param, name, err, errlen, "'%s' must be an integer", name);
    if (x < lo || x > hi) {
        if (param) *param = name;
        snprintf(err, errlen, "'%s' must be between %lld and %lld", name, lo, hi);
        return -1;
    }
    *out = x;
    if (given) *given = 1;
    return 0;
}

static int get_bool(const JsonValue *root, const char *name, int *out, const char **param, char *err, size_t errlen) {
    const JsonValue *v = json_get(root, name);
    if (!v || json_type(v) == JSON_NULL) return 0;
    if (json_type(v) != JSON_BOOL) return perr(param, name, err, errlen, "'%s' must be a boolean", name);
    *out = json_bool(v, 0);
    return 0;
}

static char *dup_str(const JsonValue *v, size_t *len_out) {
    size_t len;
    const char *s = json_str(v, &len);
    if (!s) return NULL;
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len + 1);
    if (len_out) *len_out = len;
    return d;
}

/* A message's content: a string, or an array of {"type":"text","text":...} parts (joined). */
static char *content_text(const JsonValue *c, int *bad) {
    *bad = 0;
    if (json_type(c) == JSON_NULL) return strdup(""); /* e.g. an assistant turn that only called tools */
    if (json_type(c) == JSON_STRING) {
        size_t len;
        char *s = dup_str(c, &len);
        if (s && strlen(s) != len) { free(s); *bad = 1; return NULL; } /* NUL inside */
        return s;
    }
    if (json_type(c) != JSON_ARRAY) { *bad = 1; return NULL; }
    Sb b = {0};
    sb_puts(&b, "");
    for (size_t i = 0; i < json_count(c); i++) {
        const JsonValue *part = json_at(c, i);
        const char *type = json_str(json_get(part, "type"), NULL);
        size_t len;
        const char *text = json_str(json_get(part, "text"), &len);
        if (!type || strcmp(type, "text") || !text || strlen(text) != len) { sb_free(&b); *bad = 1; return NULL; }
        sb_put(&b, text, len);
    }
    if (b.oom) { sb_free(&b); return NULL; }
    return b.p;
}

/* [{"id": N, "scale": S}, ...] into ids[n] and scales[n] (llama-server's per-request "lora" and
 * the body of POST /lora-adapters). On failure the caller frees what was allocated. */
static int lora_items(const JsonValue *arr, int *n, int **ids, float **scales, const char **param, char *err,
                      size_t errlen) {
    *n = 0;
    if (json_type(arr) != JSON_ARRAY || json_count(arr) > 4096)
        return perr(param, "lora", err, errlen, "'%s' must be an array of {\"id\": integer, \"scale\": number}", "lora");
    size_t k = json_count(arr);
    *ids = malloc((k ? k : 1) * sizeof **ids);
    *scales = malloc((k ? k : 1) * sizeof **scales);
    if (!*ids || !*scales) return perr(param, NULL, err, errlen, "%s", "out of memory");
    for (size_t i = 0; i < k; i++) {
        const JsonValue *it = json_at(arr, i), *id = json_get(it, "id"), *sc = json_get(it, "scale");
        long long x = -1;
        double s = json_num(sc, NAN);
        if (json_type(it) != JSON_OBJECT || json_type(id) != JSON_NUMBER || json_int(id, &x) || x < 0 || x > 0x7fffffff) {
            if (param) *param = "lora";
            snprintf(err, errlen, "lora[%zu]: 'id' must be a non-negative integer", i);
            return -1;
        }
        if (json_type(sc) != JSON_NUMBER || !isfinite(s) || !isfinite((float)s)) {
            if (param) *param = "lora";
            snprintf(err, errlen, "lora[%zu]: 'scale' must be a finite number", i);
            return -1;
        }
        (*ids)[i] = (int)x;
        (*scales)[i] = (float)s;
        *n = (int)i + 1;
    }
    return 0;
}

int oai_parse_lora(const char *body, size_t len, int *n, int **ids, float **scales, char *err, size_t errlen) {
    char jerr[200];
    *n = 0;
    *ids = NULL;
    *scales = NULL;
    Json *doc = json_parse(body, len, jerr, sizeof jerr);
    if (!doc) {
        snprintf(err, errlen, "the body is not valid JSON: %s", jerr);
        return -1;
    }
    int rc = lora_items(json_root(doc), n, ids, scales, NULL, err, errlen);
    json_free(doc);
    if (rc) {
        free(*ids), free(*scales);
        *ids = NULL, *scales = NULL, *n = 0;
    }
    return rc;
}

int oai_parse(const char *body, size_t len, int chat, OaiRequest *r, const char **param, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (param) *param = NULL;
    r->chat = chat;
    r->max_tokens = -1;
    r->temperature = 1; /* OpenAI's defaults */
    r->top_p = 1;
    r->repeat_penalty = 1;
    char jerr[200];
    Json *doc = json_parse(body, len, jerr, sizeof jerr);
    if (!doc) {
        snprintf(err, errlen, "the body is not valid JSON: %s", jerr);
        return -1;
    }
    const JsonValue *root = json_root(doc);
    int rc = -1;
    long long x = 0;
    int given;
    if (json_type(root) != JSON_OBJECT) {
        snprintf(err, errlen, "the body must be a JSON object");
        goto out;
    }
    if (chat) {
        const JsonValue *msgs = json_get(root, "messages");
        if (json_type(msgs) != JSON_ARRAY || json_count(msgs) == 0) {
            perr(param, "messages", err, errlen, "'%s' must be a non-empty array", "messages");
            goto out;
        }
        size_t n = json_count(msgs);
        if (n > OAI_MAX_MESSAGES) { perr(param, "messages", err, errlen, "too many %s", "messages"); goto out; }
        r->msgs = calloc(n, sizeof *r->msgs);
        if (!r->msgs) { snprintf(err, errlen, "out of memory"); goto out; }
        for (size_t i = 0; i < n; i++) {
            const JsonValue *m = json_at(msgs, i);
            const char *role = json_str(json_get(m, "role"), NULL);
            if (json_type(m) != JSON_OBJECT || !role) {
                perr(param, "messages", err, errlen, "each of '%s' must be an object with a string 'role'", "messages");
                goto out;
            }
            const char *canon = !strcmp(role, "system") || !strcmp(role, "developer") ? "system"
                                : !strcmp(role, "user") ? "user" : !strcmp(role, "assistant") ? "assistant" : NULL;
            if (!canon) {
                char safe[64];
                if (param) *param = "messages";
                snprintf(err, errlen, "messages[%zu]: unsupported role '%s' (system, user, assistant)", i,
                         err_printable(role, strlen(role), safe, sizeof safe));
                goto out;
            }
            int bad;
            const JsonValue *c = json_get(m, "content");
            char *text = content_text(c, &bad);
            if (!text) {
                if (param) *param = "messages";
                snprintf(err, errlen, bad ? "messages[%zu]: 'content' must be a string or an array of text parts"
                                          : "out of memory", i);
                goto out;
            }
            r->msgs[r->n_msgs++] = (phi_message){canon, text};
        }
    } else {
        const JsonValue *p = json_get(root, "prompt");
        if (json_type(p) == JSON_ARRAY && json_count(p) == 1 && json_type(json_at(p, 0)) == JSON_STRING)
            p = json_at(p, 0); /* ["text"]: one prompt (n = 1) */
        if (json_type(p) == JSON_STRING) {
            size_t plen;
            if (!(r->prompt = dup_str(p, &plen))) { snprintf(err, errlen, "out of memory"); goto out; }
            if (strlen(r->prompt) != plen) { perr(param, "prompt", err, errlen, "'%s' contains a NUL character", "prompt"); goto out; }
        } else if (json_type(p) == JSON_ARRAY && json_count(p) > 0) {
            size_t n = json_count(p);
            if (n > 1 << 20) { perr(param, "prompt", err, errlen, "'%s' is too long", "prompt"); goto out; }
            r->prompt_ids = malloc(n * sizeof *r->prompt_ids);
            if (!r->prompt_ids) { snprintf(err, errlen, "out of memory"); goto out; }
            for (size_t i = 0; i < n; i++) {
                long long id;
                if (json_int(json_at(p, i), &id) || id < 0 || id > 0x7fffffff) {
                    perr(param, "prompt", err, errlen, "'%s' must be a string or an array of token ids (one prompt)", "prompt");
                    goto out;
                }
                r->prompt_ids[i] = (int)id;
            }
            r->n_prompt_ids = (int)n;
        } else {
            perr(param, "prompt", err, errlen, "'%s' must be a non-empty string or an array of token ids", "prompt");
            goto out;
        }
    }
    const JsonValue *model = json_get(root, "model");
    if (model && json_type(model) != JSON_STRING && json_type(model) != JSON_NULL) {
        perr(param, "model", err, errlen, "'%s' must be a string", "model");
        goto out;
    }
    if (get_int(root, "max_tokens", 0, 0x7fffffff, &x, &given, param, err, errlen)) goto out;
    if (given) r->max_tokens = (int)x;
    if (get_int(root, "max_completion_tokens", 0, 0x7fffffff, &x, &given, param, err, errlen)) goto out;
    if (given) r->max_tokens = (int)x;
    if (get_int(root, "n", 1, 1, &x, NULL, param, err, errlen)) goto out;
    if (get_num(root, "temperature", 0, 2, &r->temperature, param, err, errlen) ||
        get_num(root, "top_p", 0, 1, &r->top_p, param, err, errlen) ||
        get_num(root, "min_p", 0, 1, &r->min_p, param, err, errlen) ||
        get_num(root, "presence_penalty", -2, 2, &r->presence_penalty, param, err, errlen) ||
        get_num(root, "frequency_penalty", -2, 2, &r->frequency_penalty, param, err, errlen) ||
        get_num(root, "repeat_penalty", 0.0001, 10, &r->repeat_penalty, param, err, errlen))
        goto out;
    if (get_int(root, "top_k", 0, 1 << 30, &x, &given, param, err, errlen)) goto out;
    if (given) r->top_k = (int)x;
    if (get_int(root, "seed", INT64_MIN, INT64_MAX, &x, &r->has_seed, param, err, errlen)) goto out;
    r->seed = (uint64_t)x;
    if (get_bool(root, "stream", &r->stream, param, err, errlen) ||
        get_bool(root, "ignore_eos", &r->ignore_eos, param, err, errlen))
        goto out;
    const JsonValue *so = json_get(root, "stream_options");
    if (so && json_type(so) != JSON_NULL) {
        if (json_type(so) != JSON_OBJECT) { perr(param, "stream_options", err, errlen, "'%s' must be an object", "stream_options"); goto out; }
        if (get_bool(so, "include_usage", &r->include_usage, param, err, errlen)) goto out;
    }
    const JsonValue *lora = json_get(root, "lora");
    if (lora && json_type(lora) != JSON_NULL) {
        r->has_lora = 1;
        if (lora_items(lora, &r->n_lora, &r->lora_id, &r->lora_scale, param, err, errlen)) goto out;
    }
    const JsonValue *stop = json_get(root, "stop");
    if (stop && json_type(stop) != JSON_NULL) {
        int is_arr = json_type(stop) == JSON_ARRAY;
        size_t n = is_arr ? json_count(stop) : 1;
        if ((!is_arr && json_type(stop) != JSON_STRING) || n > OAI_MAX_STOP) {
            perr(param, "stop", err, errlen, "'%s' must be a string or an array of at most 4 strings", "stop");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            const JsonValue *s = is_arr ? json_at(stop, i) : stop;
            size_t slen;
            char *d = json_type(s) == JSON_STRING ? dup_str(s, &slen) : NULL;
            if (!d || slen == 0 || strlen(d) != slen) {
                free(d);
                perr(param, "stop", err, errlen, "'%s' must hold non-empty strings", "stop");
                goto out;
            }
            r->stop[r->n_stop++] = d;
        }
    }
    rc = 0;
out:
    json_free(doc);
    if (rc) oai_free(r);
    return rc;
}

void oai_free(OaiRequest *r) {
    for (int i = 0; i < r->n_msgs; i++) free((char *)r->msgs[i].content);
    free(r->msgs);
    free(r->prompt);
    free(r->prompt_ids);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->lora_id);
    free(r->lora_scale);
    memset(r, 0, sizeof *r);
}

void oai_error(Sb *b, const char *message, const char *type, const char *param, const char *code) {
    sb_puts(b, "{\"error\":{\"message\":");
    sb_json_str(b, message, strlen(message));
    sb_puts(b, ",\"type\":");
    sb_json_str(b, type, strlen(type));
    sb_puts(b, ",\"param\":");
    if (param) sb_json_str(b, param, strlen(param));
    else sb_puts(b, "null");
    sb_puts(b, ",\"code\":");
    if (code) sb_json_str(b, code, strlen(code));
    else sb_puts(b, "null");
    sb_puts(b, "}}");
}

static void head(Sb *b, const OaiMeta *m, const char *object) {
    sb_puts(b, "{\"id\":");
    sb_json_str(b, m->id, strlen(m->id));
    sb_printf(b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object, m->created);
    sb_json_str(b, m->model, strlen(m->model));
    sb_puts(b, ",\"system_fingerprint\":\"phi\"");
}

static void usage(Sb *b, int n_prompt, int n_gen, int n_cached) {
    sb_printf(b, "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d,"
              "\"prompt_tokens_details\":{\"cached_tokens\":%d}}", n_prompt, n_gen, n_prompt + n_gen, n_cached);
}

void oai_response(Sb *b, const OaiMeta *m, const char *text, size_t len, const char *finish, int n_prompt,
                  int n_gen, int n_cached) {
    head(b, m, m->chat ? "chat.completion" : "text_completion");
    sb_puts(b, ",\"choices\":[{\"index\":0,");
    if (m->chat) {
        sb_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
        sb_json_str(b, text, len);
        sb_puts(b, ",\"refusal\":null}");
    } else {
        sb_puts(b, "\"text\":");
        sb_json_str(b, text, len);
    }
    sb_printf(b, ",\"logprobs\":null,\"finish_reason\":\"%s\"}],", finish);
    usage(b, n_prompt, n_gen, n_cached);
    sb_puts(b, "}");
}

void oai_chunk(Sb *b, const OaiMeta *m, int role_chunk, const char *text, size_t len, const char *finish,
               int with_usage) {
    sb_puts(b, "data: ");
    head(b, m, m->chat ? "chat.completion.chunk" : "text_completion");
    sb_puts(b, ",\"choices\":[{\"index\":0,");
    if (m->chat) {
        sb_puts(b, "\"delta\":{");
        if (role_chunk) sb_puts(b, "\"role\":\"assistant\"");
        if (text) {
            if (role_chunk) sb_puts(b, ",");
            sb_puts(b, "\"content\":");
            sb_json_str(b, text, len);
        }
        sb_puts(b, "}");
    } else {
        sb_puts(b, "\"text\":");
        sb_json_str(b, text ? text : "", text ? len : 0);
    }
    sb_puts(b, ",\"logprobs\":null,\"finish_reason\":");
    if (finish) sb_printf(b, "\"%s\"", finish);
    else sb_puts(b, "null");
    sb_puts(b, "}]");
    if (with_usage) sb_puts(b, ",\"usage\":null");
    sb_puts(b, "}\n\n");
}

void oai_usage_chunk(Sb *b, const OaiMeta *m, int n_prompt, int n_gen, int n_cached) {
    sb_puts(b, "data: ");
    head(b, m, m->chat ? "chat.completion.chunk" : "text_completion");
    sb_puts(b, ",\"choices\":[],");
    usage(b, n_prompt, n_gen, n_cached);
    sb_puts(b, "}\n\n");
}
