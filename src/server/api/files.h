/* files.h — uploaded files on the local disk (the storage half of the file endpoint).
 *
 * One directory holds, per file, its bytes in a file named by its objectId (24 lowercase
 * hex digits) and its metadata in a JSON sidecar "<objectId>.json" — no table in the
 * message store. Both are written to a temporary name, synced and renamed into place,
 * the sidecar last: a file exists once its sidecar does, so readers never see a partial
 * one, and a crash leaves at most a stray temporary ("*.tmp") behind.
 *
 * An objectId is used once: files_put refuses an id stored before, and files_delete leaves
 * a tombstone ("<id>.gone", empty) so that a deleted id is never stored again — an upload
 * token (rest_files.c) names its id for an hour, and after its upload was given up and
 * deleted (fileCallback result false) it must not put new bytes under the same URL.
 *
 * Every function but files_new_id/files_valid_id and the upload slots does blocking file
 * I/O: call them off the network loops (rest_files.c runs them on libuv's thread pool).
 * They are safe to call from several threads at once: each object is written once. */
#ifndef TERN_FILES_H
#define TERN_FILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FILES_ID_LEN 24

typedef struct files files_t;

/* Uses (and creates, mode 0700) the directory. TERN_EIO, logged, when it cannot. */
int files_open(const char *dir, files_t **out);
void files_free(files_t *f); /* NULL is a no-op */

/* A fresh random objectId into id (FILES_ID_LEN chars + NUL). */
void files_new_id(char id[FILES_ID_LEN + 1]);
/* 1 when s is an objectId this module could have made (so it is safe in a path). */
int files_valid_id(const char *s);

/* Stores the bytes, then the metadata (borrowed). 0, TERN_EIO, or TERN_EEXIST when the id
 * is stored already, was deleted, or another call is storing it ("<id>.claim" exists
 * meanwhile; a crash mid-write leaves it, and that id taken). A delete that overlaps the
 * call wins: what it wrote is taken out again and it returns TERN_EEXIST. */
int files_put(const files_t *f, const char *id, const void *data, size_t n, const json_t *meta);
/* The same over metadata stored alone (an external file whose bytes arrive now: an
 * import's rehost): the bytes and the new metadata replace it. A retired id stays retired
 * (TERN_EEXIST). */
int files_put_bytes(const files_t *f, const char *id, const void *data, size_t n, const json_t *meta);
/* The metadata (new reference, caller decrefs) or TERN_ENOENT; TERN_EIO when unreadable. */
int files_get_meta(const files_t *f, const char *id, json_t **meta);
/* Opens the bytes for reading: the descriptor (caller closes) and the size. TERN_ENOENT
 * when the file has no metadata (not there, being written, or deleted). */
int files_open_data(const files_t *f, const char *id, int *fd, int64_t *size);
/* Stores metadata alone, replacing any (an imported file whose bytes stay at its external
 * URL: files_open_data then finds none). 0, TERN_EINVAL or TERN_EIO. */
int files_put_meta(const files_t *f, const char *id, const json_t *meta);
/* Calls cb with the objectId of every stored file (in no order); TERN_EIO when the
 * directory cannot be read. */
int files_list(const files_t *f, void (*cb)(void *arg, const char *id), void *arg);
/* Retires the id for good (its tombstone), removes the metadata (the file is gone from
 * then on), then the bytes. TERN_ENOENT when it was not there — retired all the same. */
int files_delete(const files_t *f, const char *id);

/* Upload slots: an upload's body is held in memory until it is stored, so how many may be
 * in flight is capped, per peer address and in all. No file I/O; any thread. */
typedef struct files_slot files_slot_t;
/* Takes a slot for an upload from ip: 0 with *out, or TERN_EAGAIN when ip has per_ip in
 * flight, TERN_E2BIG when all have total (a limit of 0: none). */
int files_slot_take(files_t *f, const char *ip, long per_ip, long total, files_slot_t **out);
void files_slot_release(void *slot); /* a files_slot_t; NULL is a no-op */
/* Slots in use now, and uploads refused for want of one since start. */
void files_slot_stats(files_t *f, long *in_use, long *refused);

#endif
