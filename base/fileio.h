/* Reading whole files and streams (prompts, texts, tokenizer files). */
#ifndef PHI_FILEIO_H
#define PHI_FILEIO_H

#include <stddef.h>
#include <stdio.h>

/* The whole stream, NUL-terminated (malloc'd); *len excludes the NUL. NULL on a read error or
 * out of memory. */
char *read_stream(FILE *f, size_t *len);
/* The whole file; NULL with "PATH: reason" in err. */
char *read_file(const char *path, size_t *len, char *err, size_t errlen);

#endif
