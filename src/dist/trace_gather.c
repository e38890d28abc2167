/* trace_gather.c — see trace_gather.h. Each rank formats its own events (trace.c); rank 0
 * gathers the texts and writes them as one file. Every rank takes part in every collective
 * whatever failed on it, with an empty part, and every failure is agreed before the next one,
 * so that no rank is left waiting. */
#include "trace_gather.h"

#include <stdint.h> // defines: uint64_t
#include <stdlib.h> // defines: calloc, malloc, free
#include <string.h> // defines: memcpy

#include "sys.h" // defines: sn_atomic_open, sn_atomic_commit

int sn_trace_start(struct sn_dist *d, size_t capacity, struct sn_err *err)
{
    struct sn_err local = {0};
    int arc = sn_trace_alloc(capacity, &local);
    /* every rank's allocation is everyone's outcome; the barrier then aligns the clocks */
    int rc = arc;
    if (d && d->world > 1) {
        int any = arc != SN_OK;
        rc = sn_dist_allreduce_max_int(d, &any, err);
        if (rc == SN_OK && any && arc == SN_OK)
            rc = sn_err_set(err, SN_EMPI, "%s", ""); /* the rank that failed reports */
        if (rc == SN_OK && !any)
            rc = sn_dist_barrier(d, err);
    }
    if (arc != SN_OK)
        *err = local, rc = arc;
    if (rc != SN_OK) {
        err->collective = 1;
        sn_trace_free();
        return rc;
    }
    sn_trace_begin();
    return SN_OK;
}

/* What rank 0 learns of each rank besides its text. */
struct rank_info {
    uint64_t bytes;
    struct sn_trace_stats stats;
};

static int write_file(const char *path, const char *all, const struct rank_info *info, int world,
                      FILE *note, struct sn_err *err)
{
    struct sn_atomic_file af;
    SN_FORWARD(sn_atomic_open(&af, path, err));
    uint64_t recorded = 0, dropped = 0;
    for (int r = 0; r < world; r++)
        recorded += info[r].stats.recorded, dropped += info[r].stats.dropped;
    fputs("{\"traceEvents\":[\n", af.f);
    /* every part starts with ",\n": the first one's comma goes */
    uint64_t off = 0;
    int first = 1;
    for (int r = 0; r < world; r++) {
        const char *p = all + off;
        size_t n = (size_t)info[r].bytes;
        off += info[r].bytes;
        if (n > 0 && first) {
            p += 2, n -= 2, first = 0;
        }
        fwrite(p, 1, n, af.f);
    }
    fprintf(af.f,
            "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{\"generator\":\"shardnet\","
            "\"ranks\":%d,\"clock\":\"each rank's monotonic clock from the moment it left a "
            "barrier at the start\",\"events\":%llu,\"dropped_events\":%llu,\"truncated\":%s}}\n",
            world, (unsigned long long)recorded, (unsigned long long)dropped,
            dropped ? "true" : "false");
    if (ferror(af.f)) {
        sn_atomic_abort(&af);
        return sn_err_set(err, SN_EIO, "%s: write failed (disk full?)", path);
    }
    SN_FORWARD(sn_atomic_commit(&af, err));
    if (!note)
        return SN_OK;
    fprintf(note, "trace: %llu events of %d rank%s written to %s\n", (unsigned long long)recorded,
            world, world > 1 ? "s" : "", path);
    for (int r = 0; r < world; r++)
        if (info[r].stats.dropped)
            fprintf(note,
                    "trace: rank %d's buffer filled %.3f s into the run after %llu events: %llu "
                    "later events were not recorded (the file says so); HINT: --trace-events N "
                    "for a larger buffer\n",
                    r, info[r].stats.full_at, (unsigned long long)info[r].stats.recorded,
                    (unsigned long long)info[r].stats.dropped);
    fflush(note);
    return SN_OK;
}

/* Makes a failure of some ranks every rank's: *rc stays this rank's own error, or becomes
 * SN_EMPI without a message (the failing rank reports). */
static int agree(struct sn_dist *d, int world, int rc, struct sn_err *err)
{
    if (world == 1)
        return rc;
    int failed = rc != SN_OK;
    struct sn_err coll = {0};
    if (sn_dist_allreduce_max_int(d, &failed, &coll) != SN_OK) {
        *err = coll;
        return coll.code;
    }
    if (failed && rc == SN_OK)
        rc = sn_err_set(err, SN_EMPI, "%s", "");
    return rc;
}

int sn_trace_finish(struct sn_dist *d, const char *path, FILE *note, struct sn_err *err)
{
    int world = d ? d->world : 1, rank = d ? d->rank : 0;
    char *text = NULL, *all = NULL;
    size_t len = 0, *counts = NULL;
    struct rank_info mine = {0};
    int rc = sn_trace_format(rank, d ? d->host : NULL, &text, &len, &mine.stats, err);
    mine.bytes = len;
    struct rank_info *info = calloc((size_t)world, sizeof *info);
    counts = calloc((size_t)world, sizeof *counts);
    if (rc == SN_OK && (!info || !counts))
        rc = sn_err_set(err, SN_ENOMEM, "trace: out of memory");
    rc = agree(d, world, rc, err);
    if (rc == SN_OK && world > 1)
        rc = sn_dist_allgather(d, &mine, info, sizeof mine, err);
    else if (rc == SN_OK)
        info[0] = mine;
    uint64_t total = 0;
    for (int r = 0; rc == SN_OK && r < world; r++) {
        total += info[r].bytes;
        counts[r] = (size_t)info[r].bytes;
    }
    if (rc == SN_OK && rank == 0 && (all = malloc(total + 1)) == NULL)
        rc = sn_err_set(err, SN_ENOMEM, "trace: out of memory for %llu bytes of gathered events",
                        (unsigned long long)total);
    /* rank 0's buffer is everyone's business before the gather enters it */
    rc = agree(d, world, rc, err);
    if (rc == SN_OK && world > 1)
        rc = sn_dist_gatherv(d, text, len, all, counts, err);
    else if (rc == SN_OK && total)
        memcpy(all, text, total);
    free(text);
    int wrc = SN_OK;
    if (rc == SN_OK && rank == 0)
        wrc = write_file(path, all, info, world, note, err);
    /* rank 0's outcome is everyone's */
    if (rc == SN_OK)
        rc = agree(d, world, wrc, err);
    if (rc != SN_OK)
        err->collective = 1;
    free(all);
    free(counts);
    free(info);
    sn_trace_free();
    return rc;
}
