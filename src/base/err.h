/* err.h — error reporting for the library: functions return an int code and fill a struct sn_err.
 *
 * The library never exits, aborts or prints: it returns, and only the CLI (src/cli) decides what
 * a failure means for the process and says it. Where the library writes text, it writes to a
 * stream its caller handed it. A message names what failed (file, config line, key, rank) and,
 * where there is one, what to do next ("HINT: ..."). */
#ifndef SN_ERR_H
#define SN_ERR_H

#include <stddef.h>

enum sn_code {
    SN_OK = 0,
    SN_EINVAL,  /* bad argument or config value */
    SN_EIO,     /* a file could not be opened, read or written */
    SN_ENOMEM,  /* allocation failed */
    SN_EFORMAT, /* a file's content is not what it should be (checkpoint, image, IDX) */
    SN_EDATA,   /* the dataset is unusable (no classes, empty class, ...) */
    SN_EMPI,    /* an MPI call failed or another rank failed */
    SN_ENUM,    /* numerical failure: NaN or infinite loss */
    SN_ESTOP,   /* stopped on request (signal) */
};

struct sn_err {
    int code;
    int collective; /* set when every rank met this same error at the same point: the CLI then
                       reports it once and ends every rank normally instead of aborting the job */
    char msg[1536];
};

/* Fills err (if not NULL) with code and a printf-style message. @return code, so that
 * `return sn_err_set(err, SN_EINVAL, ...)` reads as one statement. */
int sn_err_set(struct sn_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an error already set, to add context on the way up. @return err->code */
int sn_err_wrap(struct sn_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *sn_code_name(int code);

#define SN_RETURN_IF(cond, err, code, ...)                                                         \
    do {                                                                                           \
        if (cond)                                                                                  \
            return sn_err_set((err), (code), __VA_ARGS__);                                         \
    } while (0)

#define SN_FORWARD(expr)                                                                           \
    do {                                                                                           \
        int sn_rc_ = (expr);                                                                       \
        if (sn_rc_ != SN_OK)                                                                       \
            return sn_rc_;                                                                         \
    } while (0)

#endif
