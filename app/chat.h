/* Chat: the model's chat template, and conversations that keep the KV cache between turns. */
#ifndef PHI_CHAT_H
#define PHI_CHAT_H

#include <stdio.h>

#include "app/prompt_cache.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/sampler.h"

typedef enum {
    CHAT_PHI3,      /* <|role|>\n content <|end|>\n ... <|assistant|>\n  (Phi-3-mini, Phi-3.5) */
    CHAT_PHI3_USER, /* user/assistant only, no system role (Phi-3-medium's template) */
    CHAT_PHI4,      /* <|role|> content <|end|> ... <|assistant|>  (Phi-4-mini: no newlines) */
} ChatKind;

typedef struct {
    const char *role; /* "system", "user" or "assistant" */
    char *content;
} ChatMessage;

/* Which template a chat_template (Jinja source, may be NULL) is; Phi-3 when there is none. */
ChatKind chat_kind(const char *template_source);
/* Whether a rendered conversation starts with BOS (add_bos_token, or the template emits it). */
int chat_wants_bos(const char *template_source, int add_bos_token);
/* The conversation as the template renders it, ending with the assistant's generation prompt.
 * Returns a malloc'd string. */
char *chat_render(ChatKind kind, const ChatMessage *msgs, int n);

typedef struct {
    const char *system;    /* system prompt or NULL */
    const char *prompt;    /* first user message, or NULL to read it from `in` */
    int interactive;       /* keep reading user messages from `in` until EOF */
    GenOptions gen;        /* n_predict per reply, out */
    long *n_prompt_evaluated; /* if not NULL: receives the prompt positions evaluated in all turns */
    /* Optional: lines starting with '/' are offered to command first (e.g. /lora); it returns 1
     * when it handled the line (the conversation is then evaluated again from the start at the
     * next turn, as the model may have changed), 0 to treat the line as a message. */
    int (*command)(void *ctx, const char *line);
    void *command_ctx;
    int perf; /* a stats line per reply on stderr (llama.cpp's --perf) */
    /* --prompt-cache FILE: the first prompt evaluated (system prompt and first message) starts
     * from the KV state in the file when they share a prefix, and is saved there (unless
     * prompt_cache_ro). Not used while LoRA adapters are attached. */
    const char *prompt_cache;
    int prompt_cache_ro;
    const PromptCacheKey *cache_key;
} ChatOptions;

/* Runs the conversation. Each turn re-renders the whole conversation, tokenizes it, and
 * evaluates only the tokens after the longest prefix already in the KV cache, so the result
 * equals a full re-evaluation of the rendered text. Returns 0, or -1 with err. */
int chat_run(const Model *m, State *s, Sampler *smp, const ChatOptions *o, FILE *in, char *err,
             size_t errlen);

#endif
