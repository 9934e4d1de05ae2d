/* fscopy.h — copying files and directory trees for backups and restores (blocking: call
 * off the network loops, or before they start).
 *
 * Copies are written to a temporary name beside the target, fsync'd, then renamed, so a
 * target is never half there; new files get mode 0600 and directories 0700 (ternd's
 * umask keeps the data its owner's). */
#ifndef TERN_FSCOPY_H
#define TERN_FSCOPY_H

#include <stddef.h>
#include <stdint.h>

/* Copies the regular file src to dst (replacing it). 0, or -errno. *bytes (may be NULL)
 * gets the size copied. */
int fs_copy_file(const char *src, const char *dst, int64_t *bytes);
/* Copies every regular file under the directory src into dst (created when missing),
 * subdirectories included; other kinds of entries are skipped. A src that does not exist
 * copies nothing and returns 0. *nfiles and *bytes (may be NULL) add up what it copied. */
int fs_copy_tree(const char *src, const char *dst, long *nfiles, int64_t *bytes);
/* 1 when path is a directory with no entries, 0 when it is something else, -errno. */
int fs_dir_empty(const char *path);
/* 1 when the existing path is the directory dir or lies under it, symbolic links resolved
 * (a tree copied into itself would copy its copy: cp's "into itself"); 0 when it does not
 * or dir does not exist, -errno. */
int fs_within(const char *path, const char *dir);
/* Makes the directory (mode 0700), its missing parents too. 0, or -errno. */
int fs_mkdirs(const char *path);

#endif
