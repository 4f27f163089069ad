/* A small regular-expression matcher for the patterns adapter configs use (PEFT's
 * target_modules as a string is matched with Python's re.fullmatch against module names such as
 * "model.layers.3.self_attn.qkv_proj").
 *
 * Supported (Python syntax): literals, '.', classes [abc] [a-z] [^...], the escapes \d \w \s
 * \D \W \S and an escaped punctuation character, groups (...) and (?:...), alternation |,
 * quantifiers * + ? {m} {m,} {m,n} (and their lazy forms *? +? ?? {..}?, which fullmatch treats
 * alike), anchors ^ and $. Refused with one line: lookaround (?= (?! (?<, backreferences,
 * \b \B \A \Z, flags (?i) and anything else. Matching compiles to an NFA and simulates it
 * (time linear in the text times the pattern, never exponential), so untrusted patterns cannot
 * hang it; patterns are limited to 4096 instructions. */
#ifndef PHI_REGEX_H
#define PHI_REGEX_H

#include <stddef.h>

typedef struct Regex Regex;

/* Compile pattern[0..len). NULL with one line in err when it is invalid or unsupported. */
Regex *regex_compile(const char *pattern, size_t len, char *err, size_t errlen);
/* 1 when the whole of s[0..n) matches (re.fullmatch), else 0. */
int regex_fullmatch(const Regex *re, const char *s, size_t n);
void regex_free(Regex *re);

#endif
