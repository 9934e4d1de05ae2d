/* edit.h — the input line of `tern chat`: a small line editor in the manner of linenoise,
 * UTF-8 aware, with an input history.
 *
 * It is fed the bytes the terminal sends, one at a time (edit_key), and says what they did;
 * it never reads or writes the terminal itself, so chat.c keeps one loop for the terminal
 * and the network, and redraws the line (edit_render) under every line it prints. The
 * cursor moves by characters, not bytes, and the line is drawn by display columns (CJK
 * and other wide characters take two), scrolled sideways when it is wider than the
 * terminal. Keys: Left/Right (Ctrl-B/F), Home/End (Ctrl-A/E), Alt-B/F and Ctrl-Left/Right
 * by words, Backspace, Delete (Ctrl-D on a non-empty line), Ctrl-U/K to the start/end,
 * Ctrl-W a word back, Up/Down (Ctrl-P/N) through the history, Ctrl-L redraw, Enter. */
#ifndef TERN_CLI_EDIT_H
#define TERN_CLI_EDIT_H

#include <stddef.h>

#define EDIT_MAX 4096    /* bytes in a line */
#define EDIT_HISTORY 200 /* lines remembered */

typedef struct {
  char buf[EDIT_MAX];
  size_t len, pos; /* bytes; pos is the cursor */
  char *hist[EDIT_HISTORY];
  int nhist;
  int hidx;             /* -1: editing a new line, else the history entry shown */
  char saved[EDIT_MAX]; /* the new line while walking the history */
  unsigned char esc[8]; /* an escape sequence being received */
  size_t nesc;
} edit_t;

enum {
  EDIT_NONE = 0,  /* nothing to redraw (an escape sequence in progress) */
  EDIT_CHANGED,   /* the line or the cursor changed: redraw */
  EDIT_SUBMIT,    /* Enter: the line is in buf (NUL-terminated), the editor is empty again */
  EDIT_EOF,       /* Ctrl-D on an empty line */
  EDIT_INTERRUPT, /* Ctrl-C */
  EDIT_REDRAW,    /* Ctrl-L: redraw the screen */
};

void edit_init(edit_t *e);
void edit_free(edit_t *e);
/* One byte from the terminal; one of the EDIT_* values. */
int edit_key(edit_t *e, unsigned char b);
/* Adds a submitted line to the history (not empty ones, nor the same as the last). */
void edit_history_add(edit_t *e, const char *line);
/* Empties the line (what was submitted stays readable until the next key). */
void edit_clear(edit_t *e);
/* The escape sequence that draws prompt and line on the current terminal row, for a
 * terminal `cols` columns wide, with the cursor where it belongs; written into out
 * (NUL-terminated, cut to n). */
void edit_render(const edit_t *e, const char *prompt, int cols, char *out, size_t n);
/* Display columns of a UTF-8 string (wide characters 2, combining marks 0). */
int edit_width(const char *s, size_t n);

#endif
