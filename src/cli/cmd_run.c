/* cmd_run.c — the commands that run on every rank of an MPI job (or alone): train, bench,
 * extract, and bench --allreduce. Each starts the process group, installs the watchdog's
 * message, and ends the job through cli_finish_dist. */
#include "cli_internal.h"

#include <errno.h>  // defines: errno
#include <stdio.h>  // defines: stdout
#include <stdlib.h> // defines: strtoull

#include "bench.h"
#include "inference.h"
#include "train.h"

/* --sizes 4K,64K,1M,16M: byte counts, K = 1024, M = 1024^2, G = 1024^3, each a whole number
 * of floats. Returns 0, or the usage error's exit status. */
static int parse_sizes(const char *list, struct sn_allreduce_opts *o)
{
    o->n_sizes = 0;
    for (const char *p = list; *p;) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno || *p == '-')
            return cli_usage_error("--sizes %s: expected sizes in bytes like 4K,64K,1M,16M", list);
        unsigned long long mul = 1;
        if (*end == 'K' || *end == 'k')
            mul = 1ULL << 10, end++;
        else if (*end == 'M' || *end == 'm')
            mul = 1ULL << 20, end++;
        else if (*end == 'G' || *end == 'g')
            mul = 1ULL << 30, end++;
        if ((*end != ',' && *end != '\0') || v == 0 || v > (1ULL << 30) / mul ||
            (v * mul) % 4 != 0)
            return cli_usage_error("--sizes %s: each size must be a whole number of 4-byte "
                                   "floats, from 4 to 1G bytes (4K,64K,1M,16M)",
                                   list);
        if (o->n_sizes == SN_ALLREDUCE_MAX_SIZES)
            return cli_usage_error("--sizes %s: at most 32 sizes", list);
        o->sizes[o->n_sizes++] = (size_t)(v * mul);
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && !*p)
            return cli_usage_error("--sizes %s: a size is missing after the last comma", list);
    }
    if (o->n_sizes == 0)
        return cli_usage_error("--sizes %s: no size given", list);
    return 0;
}

/* `bench --allreduce`: no config, every rank of the job. Its table (cli.c) lets through only
 * --sizes, --iters and --csv. */
int cmd_bench_allreduce(struct cli_args *a, int *argc, char ***argv)
{
    struct sn_allreduce_opts o = {.iters = a->iters, .csv = a->csv};
    if (a->sizes) {
        int rc = parse_sizes(a->sizes, &o);
        if (rc != 0)
            return rc;
    }
    if (a->config)
        return cli_usage_error("bench --allreduce takes no CONFIG (got %s)", a->config);
    struct sn_err err = {0};
    struct sn_dist d;
    if (sn_dist_init(&d, argc, argv, &err) != SN_OK)
        return cli_report(&err);
    cli_watch_dist(&d);
    int rc = sn_bench_allreduce(&d, &o, stdout, &err);
    return cli_finish_dist(&d, rc, &err);
}

enum job { JOB_TRAIN, JOB_BENCH, JOB_EXTRACT };

/* A command with a CONFIG on every rank: the process group, the config (read by every rank,
 * its errors said once), the job, the end of the job. */
static int run_job(struct cli_args *a, enum job job, int *argc, char ***argv)
{
    if (job == JOB_EXTRACT && (!a->checkpoint || !a->output))
        return cli_usage_error("%s", "extract needs --checkpoint CKPT and -o FEATURES");
    if (job == JOB_BENCH && a->trace && a->data_only)
        return cli_usage_error("%s", "--trace records training steps: not with --data-only");
    struct sn_err err = {0};
    struct sn_dist d;
    if (sn_dist_init(&d, argc, argv, &err) != SN_OK)
        return cli_report(&err);
    cli_watch_dist(&d);
    struct sn_config *cfg = NULL;
    int rc = cli_load_config(a, &cfg, &err);
    if (rc != SN_OK) {
        /* every rank reads the same file: report once */
        err.collective = 1;
        if (d.rank != 0)
            err.msg[0] = '\0';
        return cli_finish_dist(&d, rc, &err);
    }
    if (job == JOB_EXTRACT) {
        rc = sn_extract(cfg, a->checkpoint, a->data, a->output, &d, stdout, stderr, &err);
    } else if (job == JOB_BENCH) {
        struct sn_bench_opts bo = {.batch = a->batch, .iters = a->iters,
                                   .data_only = a->data_only, .backend = a->backend,
                                   .csv = a->csv, .trace = a->trace,
                                   .trace_events = (size_t)a->trace_events};
        rc = sn_bench(cfg, &d, &bo, stdout, stderr, &err);
    } else {
        struct sn_train_opts opts = {.resume = a->resume,
                                     .init = a->init,
                                     .allow_config_change = a->allow_config_change,
                                     .out = stdout,
                                     .errs = stderr,
                                     .stop = cli_catch_stop_signals(),
                                     .trace = a->trace,
                                     .trace_events = (size_t)a->trace_events};
        rc = sn_train(cfg, &d, &opts, &err);
    }
    sn_config_free(cfg);
    return cli_finish_dist(&d, rc, &err);
}

int cmd_train(struct cli_args *a, int *argc, char ***argv)
{
    return run_job(a, JOB_TRAIN, argc, argv);
}

int cmd_bench(struct cli_args *a, int *argc, char ***argv)
{
    return run_job(a, JOB_BENCH, argc, argv);
}

int cmd_extract(struct cli_args *a, int *argc, char ***argv)
{
    return run_job(a, JOB_EXTRACT, argc, argv);
}
