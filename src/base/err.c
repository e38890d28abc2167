/* err.c — see err.h. */
#include "err.h"

#include <stdarg.h> // defines: va_list
#include <stdio.h>  // defines: vsnprintf
#include <string.h> // defines: memmove, strlen

int sn_err_set(struct sn_err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->collective = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int sn_err_wrap(struct sn_err *err, const char *fmt, ...)
{
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = strlen(prefix), mlen = strlen(err->msg);
    if (plen + 2 + mlen + 1 > sizeof err->msg)
        mlen = sizeof err->msg - plen - 3;
    memmove(err->msg + plen + 2, err->msg, mlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen] = ':';
    err->msg[plen + 1] = ' ';
    err->msg[plen + 2 + mlen] = '\0';
    return err->code;
}

const char *sn_code_name(int code)
{
    static const char *names[] = {"ok", "invalid argument", "I/O error", "out of memory",
                                  "bad format", "bad dataset", "MPI failure", "numerical failure",
                                  "stopped"};
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
        return "unknown error";
    return names[code];
}
