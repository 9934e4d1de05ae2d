/* fuzz_target.h — the one function every harness in tests/fuzz defines, declared once for
 * the harnesses, libFuzzer's driver and replay_main.c alike (-Wmissing-prototypes). */
#ifndef TERN_FUZZ_TARGET_H
#define TERN_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input; returns 0 (libFuzzer's contract: other values are reserved). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
