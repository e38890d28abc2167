/* cli.c — `shardnet COMMAND ...`: argument parsing, and the only place that decides what an
 * error means for the process (exit code, abort of an MPI job). */
#include "cli.h"

#include <math.h>   // defines: fabs, isnan
#include <signal.h> // defines: sigaction, sig_atomic_t
#include <stdio.h>  // defines: fprintf, printf
#include <stdlib.h> // defines: strtol, strtoull, malloc
#include <errno.h>  // defines: errno
#include <string.h> // defines: strcmp, strncmp, strchr, strerror
#include <strings.h> // defines: strncasecmp
#include <unistd.h> // defines: execv

#include "checkpoint.h"
#include "config.h"
#include "cpu.h"
#include "dataset.h"
#include "datasets.h"
#include "dist.h"
#include "model.h"
#include "summary.h"
#include "ops.h"
#include "plot.h"
#include "timeline.h"
#include "bench.h"
#include "inference.h"
#include "record.h"
#include "settings.h"
#include "train.h"
#include "hooks.h"
#include "weights.h"

#define SN_MAX_SETS 64
/* Exit statuses: one table, in --help and in the README. */
#define SN_EXIT_DONE 0
#define SN_EXIT_ERROR 1      /* config, data, checkpoint, numerical: fix and run again */
#define SN_EXIT_USAGE 2
#define SN_EXIT_RESUMABLE 75 /* EX_TEMPFAIL: stopped on request, `--resume` continues */
/* SN_DIST_PEER_LOST_EXIT (76): a rank died or hung; the watchdog or a failed collective ended
 * the job. Not resumable on its own terms: restart deliberately (--resume auto). */

static const char usage_text[] =
    "usage: shardnet COMMAND [ARGS]\n"
    "\n"
    "  summary CONFIG [--expand-nested]  print the network as Keras's model.summary() does;\n"
    "                                    a [base] is one row unless --expand-nested\n"
    "  train CONFIG [--resume CKPT|auto] [--init CKPT]\n"
    "                                    train (under mpirun/srun: data-parallel on every rank);\n"
    "                                    --init: start from CKPT's weights, a new optimizer\n"
    "                                    SIGUSR1/SIGTERM save a resumable checkpoint, exit 75\n"
    "  evaluate CONFIG --checkpoint CKPT [--data DIR] [--split test|val|train]\n"
    "                                    loss and accuracy of a checkpoint on a split\n"
    "  predict CONFIG --checkpoint CKPT [--top K] [--digits D] IMAGE...\n"
    "                                    class probabilities of each image\n"
    "  bench CONFIG [--batch N] [--iters N] [--backend auto|blas|onednn|winograd|ref] [--data-only]\n"
    "        [--csv FILE] [--trace FILE] images/s, GFLOP/s and per-layer times; --csv: the\n"
    "                                    figures as a CSV row too (images/s, allreduce, scaling)\n"
    "  timeline TRACE.json -o STEP.png [--step N]\n"
    "                                    one step of a --trace file drawn: every rank's lanes\n"
    "                                    (compute, allreduce buckets, data) on a time axis in ms\n"
    "  bench --allreduce [--sizes 4K,64K,1M,16M] [--iters N] [--csv FILE]\n"
    "                                    the gradient exchange alone: median time per message\n"
    "                                    size over the job's ranks (--csv: a row per size)\n"
    "  import-weights CONFIG --keras FILE.h5 -o CKPT [--by-name]\n"
    "                                    a Keras weight file (Keras 2 .h5 or Keras 3\n"
    "                                    .weights.h5) as a checkpoint of CONFIG's network;\n"
    "                                    --by-name: only CONFIG's layers of a larger file\n"
    "  extract CONFIG --checkpoint CKPT -o FEATURES [--data DIR]\n"
    "                                    a base's outputs over train, val and test, for a top\n"
    "                                    trained on them ([data] features = FEATURES)\n"
    "  export-weights CONFIG --checkpoint CKPT -o FILE.h5\n"
    "                                    a checkpoint as a Keras 2 weight file\n"
    "                                    (model.load_weights reads it)\n"
    "  inspect CKPT [--compare OTHER] [--config CONFIG] [--record]\n"
    "                                    a checkpoint's header, parameter hash (per layer with\n"
    "                                    --config), largest differences to OTHER, and with\n"
    "                                    --record its run record (config, classes, state)\n"
    "  dataset fashion-mnist OUTDIR [--source DIR] [--limit N]\n"
    "                                    write Fashion-MNIST as an image directory\n"
    "  dataset shapes OUTDIR [--limit N] write a synthetic 2-class RGB set (circle, square) shaped\n"
    "                                    like the book's cats_vs_dogs_small\n"
    "  plot HISTORY.csv [MORE.csv ...] -o FIGURE.png|.svg\n"
    "                                    training and validation accuracy and loss against\n"
    "                                    epochs, one colour per run (history.csv of train)\n"
    "  plot --scaling SCALING.csv [...] -o FIGURE.png|.svg\n"
    "                                    images/s and efficiency against ranks, with the ideal\n"
    "                                    (scaling.csv of cluster/scaling)\n"
    "  version\n"
    "\n"
    "Options for commands that take a CONFIG:\n"
    "  --set SECTION.KEY=VALUE           override a config key (repeatable)\n"
    "  --trace FILE [--trace-events N]   train, bench: a Chrome-trace timeline of every rank\n"
    "                                    (Perfetto, chrome://tracing), written by rank 0 at the\n"
    "                                    end; N events per rank at most (default 524288)\n"
    "\n"
    "Exit status:\n"
    "  0   done (also: a resumed run with nothing left to train)\n"
    "  1   error: config, data, checkpoint or a numerical failure, named on stderr\n"
    "  2   usage error\n"
    "  75  stopped on request (SIGUSR1, SIGTERM): a checkpoint holds the run, --resume\n"
    "      continues it\n"
    "  76  peer lost: a rank died or stopped answering (watchdog); the job was ended\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "shardnet: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage_text);
    return 2;
}

static int report(const struct sn_err *err)
{
    fprintf(stderr, "shardnet: error: %s\n", err->msg);
    return 1;
}

/* Options shared by the commands that read a config. */
struct args {
    const char *config;
    const char *sets[SN_MAX_SETS];
    int n_sets;
    const char *checkpoint, *data, *resume, *compare, *backend, *source, *layers_config;
    const char *keras, *output, *init, *csv, *trace, *sizes;
    int split, batch, iters, data_only, limit, top, digits, allow_config_change, record, by_name;
    int expand_nested, scaling, allreduce;
    int trace_events, step; /* step: -1 unless --step */
    char **positional;
    int n_positional;
};

static int parse_int_arg(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 1 << 30)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof *a);
    a->positional = calloc((size_t)argc + 1, sizeof *a->positional);
    a->split = SN_SPLIT_TEST;
    a->step = -1;
    if (!a->positional)
        return usage_error("%s", "out of memory");
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(o, "--set") == 0) {
            if (v && a->n_sets == SN_MAX_SETS)
                return usage_error("too many --set options (at most %s)", "64");
            if (v)
                a->sets[a->n_sets++] = v;
        } else if (strcmp(o, "--checkpoint") == 0)
            a->checkpoint = v;
        else if (strcmp(o, "--data") == 0)
            a->data = v;
        else if (strcmp(o, "--resume") == 0)
            a->resume = v;
        else if (strcmp(o, "--compare") == 0)
            a->compare = v;
        else if (strcmp(o, "--config") == 0)
            a->layers_config = v;
        else if (strcmp(o, "--backend") == 0)
            a->backend = v;
        else if (strcmp(o, "--source") == 0)
            a->source = v;
        else if (strcmp(o, "--sizes") == 0)
            a->sizes = v;
        else if (strcmp(o, "--csv") == 0)
            a->csv = v;
        else if (strcmp(o, "--init") == 0)
            a->init = v;
        else if (strcmp(o, "--keras") == 0)
            a->keras = v;
        else if (strcmp(o, "-o") == 0 || strcmp(o, "--output") == 0)
            a->output = v;
        else if (strcmp(o, "--trace") == 0)
            a->trace = v;
        else if (strcmp(o, "--trace-events") == 0 || strcmp(o, "--step") == 0) {
            int *dst = o[2] == 't' ? &a->trace_events : &a->step;
            if (v && (parse_int_arg(v, dst) != 0 || (dst == &a->trace_events && *dst < 1)))
                return usage_error("%s: expected a positive integer", v);
        }
        else if (strcmp(o, "--split") == 0) {
            if (v && strcmp(v, "train") == 0)
                a->split = SN_SPLIT_TRAIN;
            else if (v && (strcmp(v, "val") == 0 || strcmp(v, "validation") == 0))
                a->split = SN_SPLIT_VAL;
            else if (v && strcmp(v, "test") == 0)
                a->split = SN_SPLIT_TEST;
            else if (v)
                return usage_error("--split %s: use train, val or test", v);
        } else if (strcmp(o, "--batch") == 0 || strcmp(o, "--iters") == 0 ||
                   strcmp(o, "--limit") == 0 || strcmp(o, "--top") == 0 ||
                   strcmp(o, "--digits") == 0) {
            int *dst = o[2] == 'b'   ? &a->batch
                       : o[2] == 'i' ? &a->iters
                       : o[2] == 'l' ? &a->limit
                       : o[2] == 'd' ? &a->digits
                                     : &a->top;
            if (v && parse_int_arg(v, dst) != 0)
                return usage_error("%s: expected a non-negative integer", v);
        } else if (strcmp(o, "--data-only") == 0) {
            a->data_only = 1;
            takes = 0;
        } else if (strcmp(o, "--allow-config-change") == 0) {
            a->allow_config_change = 1;
            takes = 0;
        } else if (strcmp(o, "--record") == 0) {
            a->record = 1;
            takes = 0;
        } else if (strcmp(o, "--by-name") == 0) {
            a->by_name = 1;
            takes = 0;
        } else if (strcmp(o, "--expand-nested") == 0) {
            a->expand_nested = 1;
            takes = 0;
        } else if (strcmp(o, "--scaling") == 0) {
            a->scaling = 1;
            takes = 0;
        } else if (strcmp(o, "--allreduce") == 0) {
            a->allreduce = 1;
            takes = 0;
        } else if (strncmp(o, "--", 2) == 0 && o[2] != '\0') {
            return usage_error("unknown option %s", o);
        } else {
            a->positional[a->n_positional++] = argv[i];
            takes = 0;
        }
        if (takes) {
            if (!v)
                return usage_error("%s needs a value", o);
            i++;
        }
    }
    return 0;
}

/* Loads the config named by the first positional argument and applies --set options. */
static int load_config(struct args *a, struct sn_config **cfg, struct sn_err *err)
{
    SN_FORWARD(sn_config_load(cfg, a->config, err));
    for (int i = 0; i < a->n_sets; i++) {
        int rc = sn_config_override(*cfg, a->sets[i], err);
        if (rc != SN_OK) {
            sn_config_free(*cfg);
            *cfg = NULL;
            return rc;
        }
    }
    return SN_OK;
}

/* A command's config and its network (for batches of 1), for the commands that work on weights.
 * The caller frees all three, whatever the result (each may be NULL). */
static int load_network(struct args *a, struct sn_config **cfg, struct sn_settings **st,
                        struct sn_model **m, struct sn_err *err)
{
    *cfg = NULL, *st = NULL, *m = NULL;
    SN_FORWARD(load_config(a, cfg, err));
    *st = calloc(1, sizeof **st);
    SN_RETURN_IF(!*st, err, SN_ENOMEM, "out of memory");
    SN_FORWARD(sn_settings_load(*st, *cfg, err));
    return sn_settings_build(*st, *cfg, 1, m, err);
}

/* `import-weights CONFIG --keras FILE -o CKPT`: the network of CONFIG with the file's weights,
 * written as a checkpoint (no optimizer state: a start, not a resume). */
static int cmd_import_weights(struct args *a)
{
    if (!a->keras || !a->output)
        return usage_error("%s", "import-weights needs --keras FILE.h5 and -o CKPT");
    struct sn_err err = {0};
    struct sn_config *cfg;
    struct sn_settings *st;
    struct sn_model *m;
    int rc = load_network(a, &cfg, &st, &m, &err);
    if (rc == SN_OK) {
        sn_model_init_params(m, st->tc.seed); /* state (moving variance 1) for files without */
        rc = sn_weights_import_keras(m, a->keras, a->by_name, &err);
    }
    if (rc == SN_OK) {
        struct sn_record rec = {0};
        rc = sn_record_imported(cfg, st, a->keras, &rec, &err);
        struct sn_ckpt_meta meta = {.config_hash = cfg->hash,
                                    .model_hash = m->structure_hash,
                                    .world_size = 1,
                                    .n_params = m->n_params,
                                    .n_state = m->n_state,
                                    .best_val_loss = INFINITY,
                                    .val_loss = NAN,
                                    .lr = 1.0f,
                                    .seed = st->tc.seed,
                                    .record = rec.text};
        if (rc == SN_OK)
            rc = sn_checkpoint_save(a->output, &meta, m->params, m->state, NULL, &err);
        sn_record_free(&rec);
    }
    if (rc == SN_OK)
        printf("%s: %zu parameters of %s from %s\n", a->output, m->n_params, cfg->path, a->keras);
    sn_model_free(m);
    free(st);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : report(&err);
}

/* `export-weights CONFIG --checkpoint CKPT -o FILE.h5` */
static int cmd_export_weights(struct args *a)
{
    if (!a->checkpoint || !a->output)
        return usage_error("%s", "export-weights needs --checkpoint CKPT and -o FILE.h5");
    struct sn_err err = {0};
    struct sn_config *cfg;
    struct sn_settings *st;
    struct sn_model *m;
    int rc = load_network(a, &cfg, &st, &m, &err);
    struct sn_ckpt_meta meta;
    if (rc == SN_OK)
        rc = sn_checkpoint_load(a->checkpoint, &meta, m->params, (int64_t)m->n_params, m->state,
                                (int64_t)m->n_state, NULL, -1, &err);
    if (rc == SN_OK && meta.model_hash != m->structure_hash)
        rc = sn_err_set(&err, SN_EINVAL, "%s holds another network than %s (model hash %016llx, "
                                         "the config's %016llx)",
                        a->checkpoint, cfg->path, (unsigned long long)meta.model_hash,
                        (unsigned long long)m->structure_hash);
    if (rc == SN_OK)
        rc = sn_weights_export_keras(m, a->output, &err);
    if (rc == SN_OK)
        printf("%s: %zu parameters of %s, Keras 2 layout\n", a->output, m->n_params,
               a->checkpoint);
    sn_model_free(m);
    free(st);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : report(&err);
}

static int cmd_summary(struct args *a)
{
    struct sn_err err = {0};
    struct sn_config *cfg;
    struct sn_settings *st;
    struct sn_model *m;
    int rc = load_network(a, &cfg, &st, &m, &err);
    if (rc == SN_OK)
        sn_model_summary(m, m->name, a->expand_nested, stdout);
    sn_model_free(m);
    free(st);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : report(&err);
}

/* Ends an MPI run after an error: once and cleanly when every rank knows it, otherwise by
 * aborting the job so that no rank is left waiting in a collective. */
static int finish_dist(struct sn_dist *d, int rc, const struct sn_err *err)
{
    if (rc == SN_OK) {
        sn_dist_finalize(d);
        return 0;
    }
    if (err->collective || d->world == 1) {
        if (err->msg[0] && d->world > 1)
            fprintf(stderr, "shardnet: %s (rank %d): %s\n", rc == SN_ESTOP ? "stopped" : "error",
                    d->rank, err->msg);
        else if (err->msg[0])
            fprintf(stderr, "shardnet: %s: %s\n", rc == SN_ESTOP ? "stopped" : "error", err->msg);
        sn_dist_finalize(d);
        return rc == SN_ESTOP ? SN_EXIT_RESUMABLE : SN_EXIT_ERROR;
    }
    /* one rank's failure: the others may be waiting for it in a collective */
    sn_dist_abort(d, rc == SN_EMPI ? SN_DIST_PEER_LOST_EXIT : SN_EXIT_ERROR, err->msg);
}

/* The one piece of process-wide state: a signal handler can reach nothing else. SIGUSR1 (SLURM's
 * warning before the time limit) and SIGTERM (preemption, scancel) ask training to stop at the
 * next step with a resumable checkpoint; a second SIGTERM kills as usual. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGTERM, &sa, NULL);
}

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
            return usage_error("--sizes %s: expected sizes in bytes like 4K,64K,1M,16M", list);
        unsigned long long mul = 1;
        if (*end == 'K' || *end == 'k')
            mul = 1ULL << 10, end++;
        else if (*end == 'M' || *end == 'm')
            mul = 1ULL << 20, end++;
        else if (*end == 'G' || *end == 'g')
            mul = 1ULL << 30, end++;
        if ((*end != ',' && *end != '\0') || v == 0 || v > (1ULL << 30) / mul ||
            (v * mul) % 4 != 0)
            return usage_error("--sizes %s: each size must be a whole number of 4-byte floats, "
                               "from 4 to 1G bytes (4K,64K,1M,16M)", list);
        if (o->n_sizes == SN_ALLREDUCE_MAX_SIZES)
            return usage_error("--sizes %s: at most 32 sizes", list);
        o->sizes[o->n_sizes++] = (size_t)(v * mul);
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && !*p)
            return usage_error("--sizes %s: a size is missing after the last comma", list);
    }
    if (o->n_sizes == 0)
        return usage_error("--sizes %s: no size given", list);
    return 0;
}

/* `bench --allreduce`: no config, every rank of the job. */
static int cmd_bench_allreduce(struct args *a, int *argc, char ***argv)
{
    struct sn_allreduce_opts o = {.iters = a->iters, .csv = a->csv};
    if (a->sizes) {
        int rc = parse_sizes(a->sizes, &o);
        if (rc != 0)
            return rc;
    }
    if (a->config)
        return usage_error("bench --allreduce takes no CONFIG (got %s)", a->config);
    if (a->batch || a->backend || a->data_only || a->n_sets)
        return usage_error("%s", "bench --allreduce takes only --sizes, --iters and --csv");
    struct sn_err err = {0};
    struct sn_dist d;
    if (sn_dist_init(&d, argc, argv, &err) != SN_OK)
        return report(&err);
    int rc = sn_bench_allreduce(&d, &o, stdout, &err);
    return finish_dist(&d, rc, &err);
}

/* The commands that run on every rank of an MPI job. */
enum job { JOB_TRAIN, JOB_BENCH, JOB_EXTRACT };

static int cmd_job(struct args *a, enum job job, int *argc, char ***argv)
{
    if (job == JOB_EXTRACT && (!a->checkpoint || !a->output))
        return usage_error("%s", "extract needs --checkpoint CKPT and -o FEATURES");
    if (job == JOB_BENCH && a->trace && a->data_only)
        return usage_error("%s", "--trace records training steps: not with --data-only");
    struct sn_err err = {0};
    struct sn_dist d;
    if (sn_dist_init(&d, argc, argv, &err) != SN_OK)
        return report(&err);
    struct sn_config *cfg = NULL;
    int rc = load_config(a, &cfg, &err);
    if (rc != SN_OK) {
        /* every rank reads the same file: report once */
        err.collective = 1;
        if (d.rank != 0)
            err.msg[0] = '\0';
        return finish_dist(&d, rc, &err);
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
                                     .stop = &stop_requested,
                                     .trace = a->trace,
                                     .trace_events = (size_t)a->trace_events};
        catch_stop_signals();
        rc = sn_train(cfg, &d, &opts, &err);
    }
    sn_config_free(cfg);
    return finish_dist(&d, rc, &err);
}

/* `timeline TRACE -o PNG [--step N]` */
static int cmd_timeline(struct args *a)
{
    if (!a->output)
        return usage_error("%s", "timeline needs -o FILE.png");
    struct sn_err err = {0};
    struct sn_timeline_info info;
    int rc = sn_timeline_render(a->config, a->output, a->step, &info, &err);
    if (rc != SN_OK)
        return report(&err);
    printf("%s: step %lld of %d rank%s, %.3f ms, from %s\n", a->output, info.step, info.ranks,
           info.ranks > 1 ? "s" : "", info.ms, a->config);
    return 0;
}

static int cmd_evaluate(struct args *a)
{
    if (!a->checkpoint)
        return usage_error("%s needs --checkpoint FILE", "evaluate");
    struct sn_err err = {0};
    struct sn_config *cfg;
    if (load_config(a, &cfg, &err) != SN_OK)
        return report(&err);
    struct sn_eval_result res;
    int rc = sn_evaluate(cfg, a->checkpoint, a->data, a->split, stdout, stderr, &res, &err);
    sn_config_free(cfg);
    if (rc != SN_OK)
        return report(&err);
    static const char *const names[] = {"train", "val", "test"};
    printf("%s: %lld images - loss: %.4f - accuracy: %.4f\n", names[a->split], res.n, res.loss,
           res.accuracy);
    if (res.skipped)
        printf("%lld unreadable files skipped\n", res.skipped);
    return 0;
}

static int cmd_predict(struct args *a)
{
    if (!a->checkpoint)
        return usage_error("%s needs --checkpoint FILE", "predict");
    if (a->n_positional < 3)
        return usage_error("%s needs at least one IMAGE", "predict");
    struct sn_err err = {0};
    struct sn_config *cfg;
    if (load_config(a, &cfg, &err) != SN_OK)
        return report(&err);
    int rc = sn_predict(cfg, a->checkpoint, a->positional + 2, a->n_positional - 2,
                        a->top ? a->top : 1, a->digits ? (a->digits > 9 ? 9 : a->digits) : 3,
                        stdout, stderr, &err);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : report(&err);
}

/* One line per layer: name, parameter count, hash of its parameters. */
static int print_layer_hashes(const char *config, struct args *a, const struct sn_ckpt_meta *meta,
                              const float *params, struct sn_err *err)
{
    struct sn_config *cfg;
    struct sn_model *m;
    const char *saved = a->config;
    a->config = config;
    int rc = load_config(a, &cfg, err);
    a->config = saved;
    SN_FORWARD(rc);
    rc = sn_model_build(&m, cfg, 1, &sn_ops_blas, err);
    sn_config_free(cfg);
    SN_FORWARD(rc);
    if (m->n_params != meta->n_params)
        rc = sn_err_set(err, SN_EFORMAT, "%s: the checkpoint has %llu parameters, %s's network %zu",
                        a->config, (unsigned long long)meta->n_params, config, m->n_params);
    for (int i = 0; rc == SN_OK && i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        if (l->n_params == 0)
            continue;
        printf("  layer %-20s %9zu parameters, hash %016llx%s\n", l->name, l->n_params,
               (unsigned long long)sn_hash_bytes(params + l->param_off,
                                                 l->n_params * sizeof(float), SN_HASH_INIT),
               l->trainable ? "" : " (frozen)");
    }
    sn_model_free(m);
    return rc;
}

static int cmd_inspect(struct args *a)
{
    struct sn_err err = {0};
    const char *paths[2] = {a->config, a->compare};
    struct sn_ckpt_meta meta[2];
    float *buf[2][3] = {{NULL}};
    int rc = SN_OK;
    for (int k = 0; k < 2 && paths[k] && rc == SN_OK; k++) {
        rc = sn_checkpoint_read_meta(paths[k], &meta[k], &err);
        if (rc != SN_OK)
            break;
        buf[k][0] = malloc((meta[k].n_params + 1) * sizeof(float));
        buf[k][1] = malloc((meta[k].n_state + 1) * sizeof(float));
        buf[k][2] = malloc((meta[k].n_opt + 1) * sizeof(float));
        if (!buf[k][0] || !buf[k][1] || !buf[k][2])
            rc = sn_err_set(&err, SN_ENOMEM, "out of memory");
        else
            rc = sn_checkpoint_load(paths[k], &meta[k], buf[k][0], -1, buf[k][1], -1, buf[k][2],
                                    -1, &err);
        if (rc != SN_OK)
            break;
        const struct sn_ckpt_meta *mt = &meta[k];
        printf("%s\n  format version %u, config hash %016llx, model hash %016llx\n"
               "  epoch %d, step %lld, world size %d, seed %llu\n"
               "  %llu parameters, %llu state values, %llu optimizer values\n"
               "  best val_loss %.6f, val_loss %.6f, lr scale %g\n"
               "  parameter hash %016llx, state hash %016llx, optimizer hash %016llx\n",
               paths[k], mt->version, (unsigned long long)mt->config_hash,
               (unsigned long long)mt->model_hash, mt->epoch, (long long)mt->step, mt->world_size,
               (unsigned long long)mt->seed, (unsigned long long)mt->n_params,
               (unsigned long long)mt->n_state, (unsigned long long)mt->n_opt, mt->best_val_loss,
               mt->val_loss, mt->lr,
               (unsigned long long)sn_hash_bytes(buf[k][0], mt->n_params * sizeof(float),
                                                 SN_HASH_INIT),
               (unsigned long long)sn_hash_bytes(buf[k][1], mt->n_state * sizeof(float),
                                                 SN_HASH_INIT),
               (unsigned long long)sn_hash_bytes(buf[k][2], mt->n_opt * sizeof(float),
                                                 SN_HASH_INIT));
        if (a->record) {
            char *text;
            rc = sn_checkpoint_read_record(paths[k], &text, &err);
            if (rc == SN_OK)
                printf("  run record:\n%s", text);
            free(text);
        }
    }
    if (rc == SN_OK && a->layers_config)
        rc = print_layer_hashes(a->layers_config, a, &meta[0], buf[0][0], &err);
    if (rc == SN_OK && a->compare) {
        if (meta[0].n_params != meta[1].n_params) {
            rc = sn_err_set(&err, SN_EFORMAT, "%s has %llu parameters, %s has %llu: not comparable",
                            paths[0], (unsigned long long)meta[0].n_params, paths[1],
                            (unsigned long long)meta[1].n_params);
        } else {
            /* relative to the largest parameter: elementwise ratios are meaningless for
               parameters that sit near zero (a bias after one step) */
            double max_abs = 0, max_mag = 0;
            for (uint64_t i = 0; i < meta[0].n_params; i++) {
                double x = buf[0][0][i], y = buf[1][0][i], dif = fabs(x - y);
                if (dif > max_abs || isnan(dif))
                    max_abs = dif;
                max_mag = fmax(max_mag, fmax(fabs(x), fabs(y)));
            }
            printf("compare: max abs diff %.3e, max rel diff %.3e (to the largest |parameter|, "
                   "%.3e)%s\n",
                   max_abs, max_mag > 0 ? max_abs / max_mag : max_abs, max_mag,
                   max_abs == 0 ? " (identical parameters)" : "");
        }
    }
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            free(buf[k][j]);
    return rc == SN_OK ? 0 : report(&err);
}

static int cmd_dataset(struct args *a)
{
    const char *kind = a->n_positional == 3 ? a->positional[1] : "";
    int fashion = strcmp(kind, "fashion-mnist") == 0, shapes = strcmp(kind, "shapes") == 0;
    if (!fashion && !shapes)
        return usage_error("%s", "usage: shardnet dataset fashion-mnist|shapes OUTDIR [--limit N]");
    struct sn_err err = {0};
    const char *out = a->positional[2];
    int rc = shapes ? sn_dataset_shapes(out, a->limit, &err)
                    : sn_dataset_fashion_mnist(a->source ? a->source
                                                         : "/usr/share/datasets/fashion-mnist",
                                               out, a->limit, &err);
    if (rc != SN_OK)
        return report(&err);
    printf("%s holds %s/train, %s/%s and %s/test\n", out, out, out, shapes ? "validation" : "val",
           out);
    return 0;
}

/* `plot CSV... -o FIGURE`: training curves, or with --scaling the scaling figure. */
static int cmd_plot(struct args *a)
{
    if (!a->output)
        return usage_error("%s", "plot needs -o FIGURE.png or -o FIGURE.svg");
    if (a->n_positional < 2)
        return usage_error("%s", "plot needs at least one CSV file");
    struct sn_err err = {0};
    const char *const *csv = (const char *const *)a->positional + 1;
    int n = a->n_positional - 1;
    int rc = a->scaling ? sn_plot_scaling(csv, n, a->output, &err)
                        : sn_plot_curves(csv, n, a->output, &err);
    if (rc != SN_OK)
        return report(&err);
    printf("%s: %s of %d run%s\n", a->output,
           a->scaling ? "images/s and efficiency against ranks" : "accuracy and loss curves", n,
           n > 1 ? "s" : "");
    return 0;
}

/* ---------------------------------------------------------------- OpenBLAS's kernels (cpu.h) */

/* Is this the process the job prints warnings from (rank 0, or no launcher)? Read before MPI. */
static int first_rank(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return strcmp(getenv(vars[i]), "0") == 0;
    return 1;
}

/* Starts this program again with OPENBLAS_CORETYPE=core: OpenBLAS reads it only when it is
 * loaded. SN_BLAS_CORETYPE tells the new process that the choice was ours, SN_BLAS_FAILED which
 * core types failed the check. Returns only if the exec failed. */
static void restart_with(char **argv, const char *core, const char *failed)
{
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("SN_BLAS_CORETYPE", core, 1);
    if (failed && *failed)
        setenv("SN_BLAS_FAILED", failed, 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    if (first_rank())
        fprintf(stderr, "shardnet: warning: cannot start again with OPENBLAS_CORETYPE=%s (%s); "
                        "continuing with the kernels OpenBLAS chose\n",
                core, strerror(errno));
}

/* Whether a core type is listed in the comma-separated list (test hook BLAS_WRONG:
 * the check treats these core types as computing wrong products). */
static int listed(const char *list, const char *core)
{
    size_t n = strlen(core);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncasecmp(p, core, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Runs the fastest correct OpenBLAS kernels for this CPU: upgrades OpenBLAS's own choice when
 * it is below the CPU's level and the user set no OPENBLAS_CORETYPE; checks the GEMM and steps
 * down a level while it is wrong. Records the line the start line, bench and version print. */
static void select_kernels(char **argv)
{
    struct sn_cpu cpu;
    sn_cpu_detect(&cpu);
    char version[32], core[32];
    sn_ops_blas_info(version, sizeof version, core, sizeof core);
    const char *set = getenv("OPENBLAS_CORETYPE");
    const char *ours = getenv("SN_BLAS_CORETYPE");
    const char *failed = getenv("SN_BLAS_FAILED");
    if (!set || !*set) {
        const char *up = sn_blas_core_upgrade(cpu.isa, core);
        if (up)
            restart_with(argv, up, failed);
    }
    if (sn_ops_blas_check() != 0 || listed(sn_test_hook("BLAS_WRONG"), core)) {
        char now_failed[256];
        snprintf(now_failed, sizeof now_failed, "%s%s%s", failed ? failed : "",
                 failed ? "," : "", core);
        const char *next = sn_blas_core_below(core);
        if (next)
            restart_with(argv, next, now_failed);
        else if (first_rank())
            fprintf(stderr, "shardnet: warning: OpenBLAS's %s kernels computed a wrong product in "
                            "the start-up check, and no kernels are left to try\n",
                    core);
    }
    if (failed && first_rank())
        fprintf(stderr, "shardnet: warning: OpenBLAS kernels %s computed a wrong product in the "
                        "start-up check; running its %s kernels instead\n",
                failed, core);
    char line[384], dnnl[64];
    sn_ops_onednn_describe(dnnl, sizeof dnnl);
    const char *how = set && ours && strcmp(set, ours) == 0 ? "chosen for"
                      : set && *set                          ? "set by OPENBLAS_CORETYPE; CPU"
                                                             : "OpenBLAS's choice; CPU";
    snprintf(line, sizeof line, "OpenBLAS %s %s kernels (%s %s%s, %s%s%s); %s", version, core,
             how, sn_isa_name(cpu.isa), cpu.amx ? " AMX" : "", cpu.model,
             failed ? "; failed the check: " : "", failed ? failed : "", dnnl);
    sn_cpu_set_kernels(line);
}

int sn_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    select_kernels(argv);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("shardnet %s\n%s\n", SN_VERSION, sn_cpu_kernels());
        return 0;
    }
    static const char *const commands[] = {"summary", "train",   "bench",   "evaluate",
                                           "predict", "inspect", "dataset", "import-weights",
                                           "export-weights", "extract", "plot", "timeline", NULL};
    int known = 0;
    for (int i = 0; commands[i] && !known; i++)
        known = strcmp(cmd, commands[i]) == 0;
    if (!known)
        return usage_error("unknown command '%s'", cmd);
    /* A log file shows each line as it is written, in order, not a buffer at exit. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct args a;
    int rc = parse_args(argc - 1, argv + 1, &a);
    if (rc != 0)
        return rc;
    /* positional[0] is the command itself */
    a.config = a.n_positional > 1 ? a.positional[1] : NULL;
    int is_bench = strcmp(cmd, "bench") == 0;
    int needs_config = strcmp(cmd, "dataset") != 0 && strcmp(cmd, "plot") != 0 &&
                       !(is_bench && a.allreduce);
    int traced = strcmp(cmd, "train") == 0 || is_bench;
    if ((a.trace || a.trace_events) && !traced)
        rc = usage_error("%s: --trace and --trace-events are for train and bench", cmd);
    else if (a.step >= 0 && strcmp(cmd, "timeline") != 0)
        rc = usage_error("%s: --step is for timeline", cmd);
    else if (a.trace_events && !a.trace)
        rc = usage_error("%s", "--trace-events needs --trace FILE");
    else if ((a.allreduce && !is_bench) || (!a.allreduce && a.sizes))
        rc = usage_error("%s: --allreduce and --sizes go with bench --allreduce", cmd);
    else if (a.csv && !is_bench)
        rc = usage_error("%s: --csv is for bench", cmd);
    else if (a.allreduce && a.trace)
        rc = usage_error("%s", "bench --allreduce takes no --trace");
    else if (needs_config && !a.config)
        rc = usage_error("%s needs a CONFIG (or CKPT, TRACE) argument", cmd);
    else if (strcmp(cmd, "timeline") == 0)
        rc = cmd_timeline(&a);
    else if (is_bench && a.allreduce)
        rc = cmd_bench_allreduce(&a, &argc, &argv);
    else if (strcmp(cmd, "summary") == 0)
        rc = cmd_summary(&a);
    else if (strcmp(cmd, "train") == 0)
        rc = cmd_job(&a, JOB_TRAIN, &argc, &argv);
    else if (strcmp(cmd, "bench") == 0)
        rc = cmd_job(&a, JOB_BENCH, &argc, &argv);
    else if (strcmp(cmd, "evaluate") == 0)
        rc = cmd_evaluate(&a);
    else if (strcmp(cmd, "predict") == 0)
        rc = cmd_predict(&a);
    else if (strcmp(cmd, "inspect") == 0)
        rc = cmd_inspect(&a);
    else if (strcmp(cmd, "import-weights") == 0)
        rc = cmd_import_weights(&a);
    else if (strcmp(cmd, "export-weights") == 0)
        rc = cmd_export_weights(&a);
    else if (strcmp(cmd, "extract") == 0)
        rc = cmd_job(&a, JOB_EXTRACT, &argc, &argv);
    else if (strcmp(cmd, "plot") == 0)
        rc = cmd_plot(&a);
    else
        rc = cmd_dataset(&a);
    free(a.positional);
    sn_ops_onednn_free();
    return rc;
}
