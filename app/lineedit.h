/* A small line editor for the chat prompt on a terminal: left/right, home/end (also Ctrl-A/E),
 * backspace/delete, up/down history; the cursor moves by UTF-8 characters. The terminal is in raw
 * mode only while a line is read, and is restored on every way out of the read (Enter, Ctrl-D,
 * Ctrl-C, an error) and when SIGTERM/SIGHUP/SIGQUIT end the process mid-read. */
#ifndef PHI_LINEEDIT_H
#define PHI_LINEEDIT_H

#include <stddef.h>

typedef struct {
    int fd_in, fd_out;
    char **hist; /* the lines entered, oldest first */
    int n_hist, cap_hist;
    size_t max_len; /* a line longer than this many bytes is not accepted (a bell instead) */
    /* if not NULL: a flag a SIGINT handler sets; found set once the terminal is raw (a Ctrl-C that
     * came as a signal just before), the read ends as LE_INTERRUPT */
    volatile int *intr;
} LineEdit;

/* 1 when fd is a terminal the editor can drive (not when $TERM is "dumb" or unset). */
int lineedit_usable(int fd);
void lineedit_init(LineEdit *le, int fd_in, int fd_out, size_t max_len);
void lineedit_free(LineEdit *le);

enum { LE_LINE, LE_EOF, LE_INTERRUPT, LE_ERROR };
/* Shows `prompt` and reads one line. LE_LINE: *line is the text (malloc'd, no newline), kept in the
 * history when not empty; LE_EOF: Ctrl-D on an empty line or end of input; LE_INTERRUPT: Ctrl-C
 * (the line is dropped); LE_ERROR: the terminal could not be set up or read. */
int lineedit_read(LineEdit *le, const char *prompt, char **line);

#endif
