/* edit.c — see edit.h. UTF-8 is walked by hand (lead byte, continuation bytes 10xxxxxx);
 * display widths come from a short table of the wide and zero-width ranges instead of
 * wcwidth(3), which depends on the locale and says -1 for CJK under the C locale that
 * scripts and tmux sessions often have. */
#include "edit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void edit_init(edit_t *e) {
  memset(e, 0, sizeof *e);
  e->hidx = -1;
}

void edit_free(edit_t *e) {
  for (int i = 0; i < e->nhist; i++) free(e->hist[i]);
  e->nhist = 0;
}

void edit_clear(edit_t *e) {
  e->len = e->pos = 0;
  e->hidx = -1;
}

/* ---- UTF-8 */

static int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

static size_t next_char(const edit_t *e, size_t i) {
  if (i >= e->len) return e->len;
  i++;
  while (i < e->len && is_cont((unsigned char)e->buf[i])) i++;
  return i;
}

static size_t prev_char(const edit_t *e, size_t i) {
  if (i == 0) return 0;
  i--;
  while (i > 0 && is_cont((unsigned char)e->buf[i])) i--;
  return i;
}

/* The code point at s (n bytes available); *len its bytes. Malformed: the byte, length 1. */
static uint32_t decode(const unsigned char *s, size_t n, size_t *len) {
  unsigned char c = s[0];
  size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (k == 0 || k > n) {
    *len = 1;
    return c;
  }
  uint32_t cp = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
  for (size_t i = 1; i < k; i++) {
    if (!is_cont(s[i])) {
      *len = 1;
      return c;
    }
    cp = cp << 6 | (s[i] & 0x3F);
  }
  *len = k;
  return cp;
}

static int cp_width(uint32_t cp) {
  static const uint32_t zero[][2] = {
      {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A}, {0x064B, 0x065F},
      {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
      {0x200B, 0x200F}, {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xE0100, 0xE01EF},
  };
  static const uint32_t wide[][2] = {
      {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},   {0x23F0, 0x23F0},
      {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},   {0x2648, 0x2653},   {0x267F, 0x267F},
      {0x2693, 0x2693},   {0x26A1, 0x26A1},   {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},
      {0x26CE, 0x26CE},   {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F5},   {0x26FA, 0x26FD},
      {0x2705, 0x2705},   {0x270A, 0x270B},   {0x2728, 0x2728},   {0x274C, 0x274C},   {0x2753, 0x2755},
      {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},   {0x2B1B, 0x2B1C},
      {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},
      {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
      {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F},
      {0x1F680, 0x1F6FF}, {0x1F900, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
  };
  if (cp == 0) return 0;
  if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return 0;
  for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
    if (cp >= zero[i][0] && cp <= zero[i][1]) return 0;
  for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
    if (cp >= wide[i][0] && cp <= wide[i][1]) return 2;
  return 1;
}

int edit_width(const char *s, size_t n) {
  int w = 0;
  for (size_t i = 0; i < n;) {
    size_t k;
    w += cp_width(decode((const unsigned char *)s + i, n - i, &k));
    i += k;
  }
  return w;
}

/* ---- editing */

static void insert(edit_t *e, unsigned char b) {
  if (e->len + 1 >= sizeof e->buf) return;
  memmove(e->buf + e->pos + 1, e->buf + e->pos, e->len - e->pos);
  e->buf[e->pos++] = (char)b;
  e->len++;
}

static void delete_range(edit_t *e, size_t from, size_t to) {
  if (to <= from) return;
  memmove(e->buf + from, e->buf + to, e->len - to);
  e->len -= to - from;
  if (e->pos > to) e->pos -= to - from;
  else if (e->pos > from) e->pos = from;
}

static int is_word(unsigned char c) { return c != ' ' && c != '\t'; }

static size_t word_left(const edit_t *e, size_t i) {
  while (i > 0 && !is_word((unsigned char)e->buf[i - 1])) i--;
  while (i > 0 && is_word((unsigned char)e->buf[i - 1])) i--;
  return i;
}

static size_t word_right(const edit_t *e, size_t i) {
  while (i < e->len && !is_word((unsigned char)e->buf[i])) i++;
  while (i < e->len && is_word((unsigned char)e->buf[i])) i++;
  return i;
}

static void show(edit_t *e, const char *s) {
  size_t n = strlen(s);
  if (n >= sizeof e->buf) n = sizeof e->buf - 1;
  memcpy(e->buf, s, n);
  e->len = e->pos = n;
}

static void history_move(edit_t *e, int dir) {
  if (e->nhist == 0) return;
  if (e->hidx == -1) {
    if (dir > 0) return;
    memcpy(e->saved, e->buf, e->len);
    e->saved[e->len] = 0;
    e->hidx = e->nhist - 1;
  } else if (dir < 0) {
    if (e->hidx == 0) return;
    e->hidx--;
  } else if (e->hidx == e->nhist - 1) {
    e->hidx = -1;
    show(e, e->saved);
    return;
  } else {
    e->hidx++;
  }
  show(e, e->hist[e->hidx]);
}

void edit_history_add(edit_t *e, const char *line) {
  if (!*line || (e->nhist && strcmp(e->hist[e->nhist - 1], line) == 0)) return;
  char *copy = strdup(line);
  if (!copy) return;
  if (e->nhist == EDIT_HISTORY) {
    free(e->hist[0]);
    memmove(e->hist, e->hist + 1, (EDIT_HISTORY - 1) * sizeof *e->hist);
    e->nhist--;
  }
  e->hist[e->nhist++] = copy;
}

/* A complete escape sequence (without the ESC): what it asks. */
static int escape(edit_t *e, const unsigned char *s, size_t n) {
  char final = (char)s[n - 1];
  int csi = s[0] == '[', ss3 = s[0] == 'O';
  if (n == 1) { /* Alt-key */
    if (final == 'b') e->pos = word_left(e, e->pos);
    else if (final == 'f') e->pos = word_right(e, e->pos);
    else return EDIT_NONE;
    return EDIT_CHANGED;
  }
  if (!csi && !ss3) return EDIT_NONE;
  int ctrl = csi && n >= 4 && s[n - 2] == '5'; /* ESC [ 1 ; 5 C */
  switch (final) {
  case 'A': history_move(e, -1); break;
  case 'B': history_move(e, +1); break;
  case 'C': e->pos = ctrl ? word_right(e, e->pos) : next_char(e, e->pos); break;
  case 'D': e->pos = ctrl ? word_left(e, e->pos) : prev_char(e, e->pos); break;
  case 'H': e->pos = 0; break;
  case 'F': e->pos = e->len; break;
  case '~': {
    int code = (int)strtol((const char *)s + 1, NULL, 10); /* ESC [ n ~: a short run of digits */
    if (code == 1 || code == 7) e->pos = 0;
    else if (code == 4 || code == 8) e->pos = e->len;
    else if (code == 3) delete_range(e, e->pos, next_char(e, e->pos));
    else return EDIT_NONE;
    break;
  }
  default: return EDIT_NONE;
  }
  return EDIT_CHANGED;
}

int edit_key(edit_t *e, unsigned char b) {
  if (e->nesc) {                                /* inside ESC …: collect until the final byte */
    if (e->nesc == 1 && b != '[' && b != 'O') { /* ESC x: Alt-x */
      e->nesc = 0;
      return escape(e, &b, 1);
    }
    if (e->nesc - 1 < sizeof e->esc) e->esc[e->nesc - 1] = b;
    e->nesc++;
    int done = e->nesc > 2 && (e->esc[0] == 'O' || (b >= 0x40 && b <= 0x7E));
    if (!done && e->nesc - 1 < sizeof e->esc) return EDIT_NONE;
    size_t n = e->nesc - 1 < sizeof e->esc ? e->nesc - 1 : sizeof e->esc;
    e->nesc = 0;
    return done ? escape(e, e->esc, n) : EDIT_NONE;
  }
  switch (b) {
  case 27: e->nesc = 1; return EDIT_NONE;
  case '\r':
  case '\n':
    e->buf[e->len] = 0;
    e->pos = e->len;
    e->hidx = -1;
    return EDIT_SUBMIT;
  case 3: return EDIT_INTERRUPT;
  case 4:
    if (e->len == 0) return EDIT_EOF;
    delete_range(e, e->pos, next_char(e, e->pos));
    return EDIT_CHANGED;
  case 1: e->pos = 0; return EDIT_CHANGED;
  case 5: e->pos = e->len; return EDIT_CHANGED;
  case 2: e->pos = prev_char(e, e->pos); return EDIT_CHANGED;
  case 6: e->pos = next_char(e, e->pos); return EDIT_CHANGED;
  case 11: e->len = e->pos; return EDIT_CHANGED;
  case 21: delete_range(e, 0, e->pos); return EDIT_CHANGED;
  case 23: delete_range(e, word_left(e, e->pos), e->pos); return EDIT_CHANGED;
  case 16: history_move(e, -1); return EDIT_CHANGED;
  case 14: history_move(e, +1); return EDIT_CHANGED;
  case 12: return EDIT_REDRAW;
  case 8:
  case 0x7F: delete_range(e, prev_char(e, e->pos), e->pos); return EDIT_CHANGED;
  default:
    if (b < 32) return EDIT_NONE; /* other control keys (Tab …) */
    insert(e, b);
    return EDIT_CHANGED;
  }
}

void edit_render(const edit_t *e, const char *prompt, int cols, char *out, size_t n) {
  int pw = edit_width(prompt, strlen(prompt));
  int avail = cols - pw - 1;
  if (avail < 8) avail = 8;
  /* the window [start, end) of the line that is shown: the cursor always inside it */
  size_t start = 0;
  while (edit_width(e->buf + start, e->pos - start) > avail) start = next_char(e, start);
  size_t end = start;
  int w = 0;
  while (end < e->len) {
    size_t k;
    int cw = cp_width(decode((const unsigned char *)e->buf + end, e->len - end, &k));
    if (w + cw > avail) break;
    w += cw;
    end += k;
  }
  int back = edit_width(e->buf + e->pos, end - e->pos);
  int len = snprintf(out, n, "\r\033[K%s%.*s", prompt, (int)(end - start), e->buf + start);
  if (back > 0 && len >= 0 && (size_t)len < n) snprintf(out + len, n - (size_t)len, "\033[%dD", back);
}
