/* trace.c — see trace.h. The events of a rank sit in one array, in the order they ended; at the
 * end the rank sorts its own by lane and start (parents before their children, as the format's
 * nesting wants) and prints them as JSON text (trace_gather.c gathers the texts into the file). */
#include "trace.h"

#include <math.h>   // defines: fmin
#include <stdarg.h> // defines: va_list, va_start
#include <stdlib.h> // defines: malloc, realloc, free, qsort
#include <string.h> // defines: memset, strlen

#include "sys.h" // defines: sn_now, sn_atomic_open, sn_atomic_commit

int sn_trace_on;

struct event {
    double t0, t1;      /* sn_now() seconds */
    const char *name;   /* view (a literal or a layer's name) */
    const char *detail; /* view or NULL */
    int64_t arg;        /* what it means depends on cat (arg_names); < 0: none */
    int cat;
};

/* The recording state of this process (trace.h says why it is process-wide). */
static struct {
    struct event *ev;   /* owned, (cap) */
    size_t n, cap;
    size_t dropped;     /* events not recorded once the buffer was full */
    double full_at;     /* sn_now() of the first one */
    double zero;        /* this rank's time zero: when it left the start barrier */
    char *pool;         /* owned, (POOL_BYTES): copies of the events' details */
    size_t pool_used;
} T;

/* Details are copied (a checkpoint's path may be the caller's local buffer); they are rare. */
#define POOL_BYTES ((size_t)64 << 10)

static const char *const cat_names[SN_TRACE_N_CATS] = {
    "epoch",      "step",       "forward",   "backward",  "sync",
    "optimizer",  "validation", "checkpoint", "allreduce", "data"};
/* The key of an event's arg in its "args". */
static const char *const arg_names[SN_TRACE_N_CATS] = {
    "epoch", "step", "layer", "layer", "step", "step", "epoch", "step", "bucket", "step"};

/* Lanes (thread ids): compute 1, data 2, bucket b 10 + b. */
#define TID_COMPUTE 1
#define TID_DATA 2
#define TID_BUCKET0 10

const char *sn_trace_cat_name(enum sn_trace_cat cat)
{
    return (unsigned)cat < SN_TRACE_N_CATS ? cat_names[cat] : "?";
}

static int64_t event_tid(const struct event *e)
{
    if (e->cat == SN_TRACE_DATA)
        return TID_DATA;
    if (e->cat == SN_TRACE_ALLREDUCE)
        return TID_BUCKET0 + (e->arg > 0 ? e->arg : 0);
    return TID_COMPUTE;
}

void sn_trace_free(void)
{
    sn_trace_on = 0;
    free(T.ev);
    free(T.pool);
    memset(&T, 0, sizeof T);
}

int sn_trace_alloc(size_t capacity, struct sn_err *err)
{
    sn_trace_free();
    T.cap = capacity ? capacity : SN_TRACE_DEFAULT_EVENTS;
    SN_RETURN_IF(T.cap > ((size_t)1 << 26), err, SN_EINVAL,
                 "--trace-events %zu: at most %zu events per rank", T.cap, (size_t)1 << 26);
    T.ev = malloc(T.cap * sizeof *T.ev);
    T.pool = malloc(POOL_BYTES);
    if (!T.ev || !T.pool) {
        size_t cap = T.cap;
        sn_trace_free();
        return sn_err_set(err, SN_ENOMEM, "trace: out of memory for %zu events (%zu MB)", cap,
                          cap * sizeof *T.ev >> 20);
    }
    /* every page now, through a volatile pointer (a compiler may turn malloc + memset into a
       calloc, whose pages are only mapped on first touch — during a step) */
    for (size_t i = 0; i < T.cap * sizeof *T.ev; i += 4096)
        ((volatile char *)T.ev)[i] = 0;
    for (size_t i = 0; i < POOL_BYTES; i += 4096)
        ((volatile char *)T.pool)[i] = 0;
    return SN_OK;
}

void sn_trace_begin(void)
{
    T.zero = sn_now();
    sn_trace_on = T.ev != NULL;
}

void sn_trace_record(enum sn_trace_cat cat, const char *name, const char *detail, int64_t arg,
                     double t0, double t1)
{
    if (!sn_trace_on)
        return;
    if (T.n == T.cap) {
        if (T.dropped++ == 0)
            T.full_at = t1;
        return;
    }
    if (detail) {
        size_t len = strlen(detail) + 1;
        if (T.pool_used + len <= POOL_BYTES) {
            memcpy(T.pool + T.pool_used, detail, len);
            detail = T.pool + T.pool_used;
            T.pool_used += len;
        } else {
            detail = NULL;
        }
    }
    T.ev[T.n++] = (struct event){.t0 = t0, .t1 = t1, .name = name, .detail = detail, .arg = arg,
                                 .cat = (int)cat};
}

void sn_trace_pause(int paused)
{
    if (T.ev)
        sn_trace_on = !paused;
}

size_t sn_trace_count(void) { return T.n; }

double sn_trace_event_cost(void)
{
    enum { N = 1024 };
    if (!sn_trace_on || T.cap - T.n < N)
        return 0;
    size_t n0 = T.n;
    double best = 1e30;
    for (int rep = 0; rep < 20; rep++) {
        double start = sn_now();
        for (int i = 0; i < N; i++) {
            double t0 = sn_trace_clock();
            sn_trace_end(SN_TRACE_FORWARD, "cost", i, t0);
        }
        best = fmin(best, (sn_now() - start) / N);
        T.n = n0;
    }
    return best;
}

int sn_trace_probe(const char *path, struct sn_err *err)
{
    struct sn_atomic_file af;
    if (sn_atomic_open(&af, path, err) != SN_OK)
        return sn_err_wrap(err, "--trace");
    sn_atomic_abort(&af);
    return SN_OK;
}

/* ---- the JSON text ---------------------------------------------------------------------- */

struct text {
    char *s;
    size_t len, cap;
    int failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 1 << 16;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

/* A JSON string's contents: quotes, backslashes and control characters escaped. */
static void put_escaped(struct text *t, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(t, "\\%c", c);
        else if (c < 0x20)
            put(t, "\\u%04x", c);
        else
            put(t, "%c", c);
    }
}

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    int64_t tx = event_tid(x), ty = event_tid(y);
    if (tx != ty)
        return tx < ty ? -1 : 1;
    if (x->t0 != y->t0)
        return x->t0 < y->t0 ? -1 : 1;
    if (x->t1 != y->t1)
        return x->t1 > y->t1 ? -1 : 1; /* the longer (the parent) first */
    return 0;
}

static void put_thread(struct text *t, int rank, int64_t tid, const char *name, int64_t index,
                       int sort)
{
    put(t, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%lld,\"name\":\"thread_name\",\"args\":{\"name\":"
           "\"%s",
        rank, (long long)tid, name);
    if (index >= 0)
        put(t, " %lld", (long long)index);
    put(t, "\"}}");
    put(t, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%lld,\"name\":\"thread_sort_index\",\"args\":"
           "{\"sort_index\":%d}}",
        rank, (long long)tid, sort);
}

/* This rank's events and lane names, each element preceded by ",\n". */
static void format_rank(struct text *t, int rank, const char *host)
{
    qsort(T.ev, T.n, sizeof *T.ev, cmp_event);
    put(t, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"name\":\"process_name\",\"args\":{\"name\":"
           "\"rank %d",
        rank, rank);
    if (host && host[0]) {
        put(t, " (");
        put_escaped(t, host);
        put(t, ")");
    }
    put(t, "\"}}");
    put(t, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"name\":\"process_sort_index\",\"args\":"
           "{\"sort_index\":%d}}",
        rank, rank);
    put_thread(t, rank, TID_COMPUTE, "compute", -1, 0);
    int64_t max_bucket = -1;
    for (size_t i = 0; i < T.n; i++)
        if (T.ev[i].cat == SN_TRACE_ALLREDUCE && T.ev[i].arg > max_bucket)
            max_bucket = T.ev[i].arg;
    for (int64_t b = 0; b <= max_bucket; b++)
        put_thread(t, rank, TID_BUCKET0 + b, "allreduce bucket", b, 1 + (int)b);
    put_thread(t, rank, TID_DATA, "data", -1, 1000);
    for (size_t i = 0; i < T.n && !t->failed; i++) {
        const struct event *e = &T.ev[i];
        double ts = 1e6 * (e->t0 - T.zero), dur = 1e6 * (e->t1 - e->t0);
        put(t, ",\n{\"ph\":\"X\",\"pid\":%d,\"tid\":%lld,\"ts\":%.3f,\"dur\":%.3f,\"cat\":\"%s\","
               "\"name\":\"",
            rank, (long long)event_tid(e), ts, dur > 0 ? dur : 0.0, cat_names[e->cat]);
        put_escaped(t, e->name);
        put(t, "\"");
        int args = e->arg >= 0 || e->detail;
        if (args)
            put(t, ",\"args\":{");
        if (e->arg >= 0)
            put(t, "\"%s\":%lld", arg_names[e->cat], (long long)e->arg);
        if (e->detail) {
            put(t, "%s\"detail\":\"", e->arg >= 0 ? "," : "");
            put_escaped(t, e->detail);
            put(t, "\"");
        }
        put(t, args ? "}}" : "}");
    }
    if (T.dropped)
        put(t, ",\n{\"ph\":\"i\",\"s\":\"p\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"name\":\"trace "
               "buffer full\",\"args\":{\"recorded\":%zu,\"dropped\":%zu}}",
            rank, TID_COMPUTE, 1e6 * (T.full_at - T.zero), T.n, T.dropped);
}

int sn_trace_format(int rank, const char *host, char **text, size_t *len,
                    struct sn_trace_stats *stats, struct sn_err *err)
{
    sn_trace_on = 0;
    struct text t = {0};
    format_rank(&t, rank, host);
    *stats = (struct sn_trace_stats){.recorded = T.n, .dropped = T.dropped,
                                     .full_at = T.dropped ? T.full_at - T.zero : 0};
    if (t.failed) {
        free(t.s);
        *text = NULL;
        *len = 0;
        return sn_err_set(err, SN_ENOMEM, "trace: out of memory for the text of %zu events", T.n);
    }
    *text = t.s;
    *len = t.len;
    return SN_OK;
}
