/* bytes.c — the little-endian writer and the bounded reader of bytes.h. */
#include "bytes.h"

#include <limits.h> // defines: INT_MAX
#include <stdlib.h> // defines: realloc
#include <string.h> // defines: memcpy, memchr, strlen

void sn_wbuf_bytes(struct sn_wbuf *b, const void *v, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, v, n);
    b->n += n;
}

void sn_wbuf_u64(struct sn_wbuf *b, uint64_t v)
{
    unsigned char s[8];
    for (int i = 0; i < 8; i++)
        s[i] = (unsigned char)(v >> (8 * i));
    sn_wbuf_bytes(b, s, 8);
}

void sn_wbuf_u32(struct sn_wbuf *b, uint32_t v)
{
    unsigned char s[4];
    for (int i = 0; i < 4; i++)
        s[i] = (unsigned char)(v >> (8 * i));
    sn_wbuf_bytes(b, s, 4);
}

void sn_wbuf_str(struct sn_wbuf *b, const char *s)
{
    size_t n = strlen(s);
    sn_wbuf_u32(b, (uint32_t)n);
    sn_wbuf_bytes(b, s, n);
}

static uint64_t get_uint(struct sn_rbuf *r, int bytes)
{
    if (r->bad || r->n - r->off < (size_t)bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += (size_t)bytes;
    return v;
}

uint32_t sn_rbuf_u32(struct sn_rbuf *r)
{
    return (uint32_t)get_uint(r, 4);
}

uint64_t sn_rbuf_u64(struct sn_rbuf *r)
{
    return get_uint(r, 8);
}

int sn_rbuf_count(struct sn_rbuf *r, size_t min_bytes)
{
    uint32_t n = sn_rbuf_u32(r);
    if (r->bad || n > INT_MAX / 2 || (size_t)n > (r->n - r->off) / min_bytes) {
        r->bad = 1;
        return 0;
    }
    return (int)n;
}

void sn_rbuf_str(struct sn_rbuf *r, char *out, size_t cap, int may_be_empty)
{
    uint32_t n = sn_rbuf_u32(r);
    if (r->bad || n >= cap || r->n - r->off < n || (n == 0 && !may_be_empty) ||
        memchr(r->p + r->off, '\0', n) != NULL) {
        r->bad = 1;
        out[0] = '\0';
        return;
    }
    memcpy(out, r->p + r->off, n);
    out[n] = '\0';
    r->off += n;
}
