/* bytes.h — little-endian fields and length-prefixed strings, the same on every machine: the
 * byte formats of the index cache (index_cache.c) and of a packed file list (share.c). Used
 * inside src/data only.
 *
 * A writer that runs out of memory remembers it (oom) and is checked once at the end; a reader
 * that meets a field past the end or a bad string sets bad and returns zeros (empty strings)
 * from then on, so a parser reads on and checks bad once per loop. A reader never reads past
 * n. */
#ifndef SN_BYTES_H
#define SN_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialised is empty. p is owned (malloc'ed): the caller frees it, oom or not. */
struct sn_wbuf {
    unsigned char *p;
    size_t n, cap;
    int oom;           /* a write failed: p holds a prefix only */
};

void sn_wbuf_bytes(struct sn_wbuf *b, const void *v, size_t n);
void sn_wbuf_u32(struct sn_wbuf *b, uint32_t v);
void sn_wbuf_u64(struct sn_wbuf *b, uint64_t v);
void sn_wbuf_str(struct sn_wbuf *b, const char *s); /* u32 length, then the bytes (no NUL) */

/* Reads p[off .. n). p is a view. */
struct sn_rbuf {
    const unsigned char *p;
    size_t n, off;
    int bad;           /* a read failed: every later read returns 0 */
};

uint32_t sn_rbuf_u32(struct sn_rbuf *r);
uint64_t sn_rbuf_u64(struct sn_rbuf *r);
/* A u32 count of items that take at least min_bytes each: bad when it exceeds INT_MAX / 2 or
 * when the bytes left cannot hold that many. */
int  sn_rbuf_count(struct sn_rbuf *r, size_t min_bytes);
/* A string into out (cap bytes, NUL-terminated): bad when it does not fit, holds a NUL, or is
 * empty and may not be. */
void sn_rbuf_str(struct sn_rbuf *r, char *out, size_t cap, int may_be_empty);

#endif
