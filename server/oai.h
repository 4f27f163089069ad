/* The OpenAI API's request bodies (validated into OaiRequest) and response bodies (the
 * chat.completion / text_completion objects, their streamed chunks, errors), as
 * https://platform.openai.com/docs/api-reference describes them. */
#ifndef PHI_SERVER_OAI_H
#define PHI_SERVER_OAI_H

#include <stddef.h>
#include <stdint.h>

#include "phi.h"
#include "server/sbuf.h"

#define OAI_MAX_STOP 4        /* OpenAI's limit on stop sequences */
#define OAI_MAX_MESSAGES 1024

typedef struct {
    int chat;               /* 1: /v1/chat/completions, 0: /v1/completions */
    phi_message *msgs;      /* chat: n_msgs messages (content owned by the request) */
    int n_msgs;
    char *prompt;           /* completions: prompt text, or */
    int *prompt_ids;        /* ... prompt token ids */
    int n_prompt_ids;
    int max_tokens;         /* -1: not given (until a stop token or the context is full) */
    float temperature, top_p, min_p;
    int top_k;
    float presence_penalty, frequency_penalty, repeat_penalty;
    int has_seed;
    uint64_t seed;
    char *stop[OAI_MAX_STOP];
    int n_stop;
    int stream, include_usage;
    int ignore_eos;
    int has_lora;           /* "lora": [{"id": N, "scale": S}, ...] was given (llama-server's field) */
    int n_lora;
    int *lora_id;           /* ids as given (checked against the preloaded list by the server) */
    float *lora_scale;
} OaiRequest;

/* Parse and validate a request body. 0, or -1 with a message for a 400 response and the name
 * of the offending parameter in *param (may be NULL). */
int oai_parse(const char *body, size_t len, int chat, OaiRequest *r, const char **param, char *err, size_t errlen);
void oai_free(OaiRequest *r);
/* A LoRA list [{"id": N, "scale": S}, ...] as the body of POST /lora-adapters: ids (integers
 * >= 0) and finite scales in malloc'd arrays (free both). 0, or -1 with a message for a 400. */
int oai_parse_lora(const char *body, size_t len, int *n, int **ids, float **scales, char *err, size_t errlen);

/* {"error":{"message":...,"type":...,"param":...,"code":...}} */
void oai_error(Sb *b, const char *message, const char *type, const char *param, const char *code);

typedef struct {
    const char *id;        /* "chatcmpl-..." / "cmpl-..." */
    const char *model;
    long long created;
    int chat;
} OaiMeta;

/* The whole non-streamed response. finish: "stop" or "length". n_cached: prompt tokens found in the
 * slot's KV cache (usage.prompt_tokens_details.cached_tokens). */
void oai_response(Sb *b, const OaiMeta *m, const char *text, size_t len, const char *finish, int n_prompt,
                  int n_gen, int n_cached);
/* One SSE event "data: {chunk}\n\n". role_chunk: the chat's first chunk (delta.role). text may be
 * NULL (no content); finish may be NULL; with_usage: 1 adds "usage": null (include_usage). */
void oai_chunk(Sb *b, const OaiMeta *m, int role_chunk, const char *text, size_t len, const char *finish,
               int with_usage);
/* The final usage chunk of include_usage (choices []). */
void oai_usage_chunk(Sb *b, const OaiMeta *m, int n_prompt, int n_gen, int n_cached);

#endif
