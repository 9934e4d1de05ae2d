/* jsonlim.h — nesting limits for JSON that peers send.
 *
 * jansson accepts 2,048 levels and SQLite's JSON1 about 1,000; a stored document deeper
 * than SQLite's limit made every conversation query that touched a document field fail
 * for everyone ("JSON nested too deep" aborts the whole statement). Every document tern
 * accepts from a client, an app server or a hook is therefore held to JSON_MAX_DEPTH
 * levels, checked on the text before jansson builds anything (so a deep document costs a
 * linear scan, never a deep tree or a deep recursion). */
#ifndef TERN_JSONLIM_H
#define TERN_JSONLIM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Points jansson's allocator at xmalloc/free (buf.h): an allocation that fails aborts, as
 * every other allocation of the server does, instead of coming back as a NULL that a
 * json_object_set_new or json_pack caller does not check. jansson's allocator is one per
 * process: call it first in main, before any JSON value exists (ternd, tern, tern-bench).
 * Not in libtern, which leaves its host's allocation policy alone. */
void json_abort_on_oom(void);

/* Deepest nesting of arrays and objects tern accepts in a document ([] and {} are 1). */
#define JSON_MAX_DEPTH 64

/* The nesting depth of JSON text s[0..len) (a scalar is 0), counting brackets outside
 * strings without parsing anything else; once it passes max it stops and returns max + 1.
 * Malformed text gets some number: the parser refuses it afterwards. */
int json_text_depth(const char *s, size_t len, int max);
/* json_loadb / json_loads that refuse text nested deeper than JSON_MAX_DEPTH: NULL, with
 * err->text (when err is given) saying so. flags and err as for jansson. */
json_t *json_loadb_capped(const char *buf, size_t len, size_t flags, json_error_t *err);
json_t *json_loads_capped(const char *s, size_t flags, json_error_t *err);
/* The nesting depth of a parsed value, at most max + 1 (the walk stops there). */
int json_value_depth(const json_t *v, int max);
/* A JSON string of s[0..len), with ill-formed UTF-8 replaced by U+FFFD: text stored by an
 * older build that took any bytes must still appear (jansson refuses such strings, and a
 * history row used to vanish with them). Never NULL. */
json_t *json_stringn_lossy(const char *s, size_t len);
/* A stored document as the API shows it: the object the JSON text doc holds (an empty one
 * when doc is NULL or not an object) with objectId and the ISO 8601 createdAt and updatedAt
 * set over it. Never NULL. */
json_t *json_stored_object(const char *doc, const char *id, int64_t created_at, int64_t updated_at);
/* Bytes of v's compact text (JSON_COMPACT | JSON_ENCODE_ANY), computed without building it. */
size_t json_compact_size(const json_t *v);

#endif
