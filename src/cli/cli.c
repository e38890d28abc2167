/* cli.c — `shardnet COMMAND ...`: the table of commands, each with the one table of the options
 * it takes, and what is made from those tables: the parser, `shardnet COMMAND --help`, the
 * overview (`shardnet --help`), and the dispatch to the command (cmd_*.c). What an error means
 * for the process is exit.c's.
 *
 * An option a command's table does not list is a usage error naming the command; --help (or
 * -h) anywhere on the line prints the command's usage on stdout and exits 0. */
#include "cli.h"
#include "cli_internal.h"

#include <stddef.h> // defines: offsetof
#include <stdio.h>  // defines: fprintf, printf, snprintf, fputs, fputc, setvbuf
#include <stdlib.h> // defines: strtol, atoi, getenv, calloc, free
#include <string.h> // defines: strcmp, strncmp, strchr, strcspn, memset

#include "cpu.h"     // defines: sn_cpu_kernels
#include "data_conf.h" // defines: SN_SPLIT_TRAIN, SN_SPLIT_VAL, SN_SPLIT_TEST
#include "ops.h"     // defines: sn_ops_onednn_free

/* ---------------------------------------------------------------- the tables */

enum opt_kind {
    OPT_FLAG,     /* no value: the int field is set to 1 */
    OPT_TEXT,     /* a string (a path, a name): the const char * field */
    OPT_COUNT,    /* an integer >= 0, where 0 is a value of its own (--limit 0: all, --step 0) */
    OPT_POSITIVE, /* an integer >= 1: an option whose 0 would mean nothing is refused at 0 */
    OPT_SPLIT,    /* train, val (validation) or test: an SN_SPLIT_ value */
    OPT_SET,      /* SECTION.KEY=VALUE, appended to sets (repeatable) */
};

enum {
    OPT_REQUIRED = 1, /* shown without brackets in the synopsis (the command checks it) */
    OPT_COMMON = 2,   /* --set: left out of the overview's synopses, explained once below them */
    OPT_IN_NAME = 4,  /* part of the command's name (bench --allreduce): not in its synopsis */
};

struct cli_opt {
    const char *name;  /* "--iters"; NULL ends a table */
    const char *alias; /* "-o" for --output, or NULL */
    const char *meta;  /* the value's name in the help ("N", "FILE"); NULL for OPT_FLAG */
    enum opt_kind kind;
    size_t field;      /* offsetof(struct cli_args, ...) */
    int flags;
    const char *help;  /* one line (wrapped when printed) */
    int max;           /* OPT_COUNT, OPT_POSITIVE: the largest value (0: 2^30) */
};

/* Exit statuses: each command says which it can end with; the overview shows them all. */
enum {
    X_DONE = 1, X_DONE_TRAIN = 2, X_ERROR = 4, X_USAGE = 8, X_STOPPED = 16, X_PEER_LOST = 32,
    X_KILLED = 64
};
static const struct {
    int bit, code;
    const char *text;
} exit_statuses[] = {
    {X_DONE, SN_EXIT_DONE, "done"},
    {X_DONE_TRAIN, SN_EXIT_DONE, "done (also: a resumed run with nothing left to train)"},
    {X_ERROR, SN_EXIT_ERROR, "error: config, data, checkpoint or a numerical failure, named on "
                             "stderr"},
    {X_USAGE, SN_EXIT_USAGE, "usage error"},
    {X_STOPPED, SN_EXIT_RESUMABLE, "stopped on request (SIGUSR1, SIGTERM, SIGINT: Ctrl-C): a "
                                   "checkpoint holds the run, --resume continues it"},
    {X_PEER_LOST, SN_DIST_PEER_LOST_EXIT, "peer lost: a rank died or stopped answering "
                                          "(watchdog); the job was ended"},
    {X_KILLED, 130, "a second SIGINT (Ctrl-C) ended the run at once, without a checkpoint (143: "
                    "a second SIGTERM); the last checkpoint holds what was saved"},
};
#define X_ONE (X_DONE | X_ERROR | X_USAGE)  /* a command in one process */
#define X_JOB (X_ONE | X_PEER_LOST)         /* a command on every rank of an MPI job */

struct cli_command {
    const char *name;    /* as typed after shardnet ("bench --allreduce": bench with the flag) */
    const char *args;    /* the positional arguments before the options, or "" */
    const char *trailer; /* after the options, or NULL */
    const char *summary; /* what it does (wrapped when printed) */
    cli_command_fn *run;
    int needs_first;     /* the first argument (CONFIG, CKPT or TRACE) is required */
    int max_args;        /* arguments it takes besides the options (-1: any number) */
    int exits;           /* X_ bits */
    const struct cli_opt *opts;
};

#define F(x) offsetof(struct cli_args, x)
#define SET_OPT {"--set", NULL, "SECTION.KEY=VALUE", OPT_SET, 0, OPT_COMMON, \
                 "override a config key (repeatable)", 0}
#define TRACE_OPTS                                                                              \
    {"--trace", NULL, "FILE", OPT_TEXT, F(trace), 0,                                            \
     "a Chrome-trace timeline of every rank (Perfetto, chrome://tracing), written by rank 0 "   \
     "at the end", 0},                                                                          \
    {"--trace-events", NULL, "N", OPT_POSITIVE, F(trace_events), 0,                             \
     "at most N events per rank in the trace (default 524288)", 0}
#define END_OPTS {NULL, NULL, NULL, OPT_FLAG, 0, 0, NULL, 0}

static const struct cli_opt summary_opts[] = {
    {"--expand-nested", NULL, NULL, OPT_FLAG, F(expand_nested), 0,
     "the layers of a [base] network row by row, not as one row", 0},
    SET_OPT,
    END_OPTS,
};
static const struct cli_opt train_opts[] = {
    {"--resume", NULL, "CKPT|auto", OPT_TEXT, F(resume), 0,
     "continue the run CKPT holds; auto: the run's last checkpoint, or a fresh start if it has "
     "none yet", 0},
    {"--init", NULL, "CKPT", OPT_TEXT, F(init), 0,
     "start from CKPT's weights, with a new optimizer", 0},
    {"--allow-config-change", NULL, NULL, OPT_FLAG, F(allow_config_change), 0,
     "resume although the config changed since the checkpoint (the changes are named)", 0},
    SET_OPT,
    TRACE_OPTS,
    END_OPTS,
};
static const struct cli_opt evaluate_opts[] = {
    {"--checkpoint", NULL, "CKPT", OPT_TEXT, F(checkpoint), OPT_REQUIRED, "the weights to score",
     0},
    {"--data", NULL, "DIR", OPT_TEXT, F(data), 0,
     "the images in DIR instead of [data] dir: a root (train/, val/, test/) or a split folder", 0},
    {"--split", NULL, "test|val|train", OPT_SPLIT, F(split), 0,
     "which split of the data (default test)", 0},
    SET_OPT,
    END_OPTS,
};
static const struct cli_opt predict_opts[] = {
    {"--checkpoint", NULL, "CKPT", OPT_TEXT, F(checkpoint), OPT_REQUIRED, "the weights to run", 0},
    {"--top", NULL, "K", OPT_POSITIVE, F(top), 0, "the K most probable classes of each image "
                                                  "(default 1)", 0},
    {"--digits", NULL, "D", OPT_POSITIVE, F(digits), 0,
     "decimals of each probability, 1 to 9 (default 3)", 9},
    SET_OPT,
    END_OPTS,
};
static const struct cli_opt bench_opts[] = {
    {"--batch", NULL, "N", OPT_POSITIVE, F(batch), 0,
     "images per step and rank (default: [train] batch_size over the ranks)", 0},
    {"--iters", NULL, "N", OPT_POSITIVE, F(iters), 0,
     "timed steps (default 20; --data-only: at most one pass over the train split)", 0},
    {"--backend", NULL, "auto|blas|onednn|winograd|ref", OPT_TEXT, F(backend), 0,
     "the arithmetic backend instead of [model] backend", 0},
    {"--data-only", NULL, NULL, OPT_FLAG, F(data_only), 0,
     "the data pipeline alone, against plain decoding of the same files", 0},
    {"--csv", NULL, "FILE", OPT_TEXT, F(csv), 0,
     "the figures as a CSV row too (images/s, allreduce, scaling)", 0},
    SET_OPT,
    TRACE_OPTS,
    END_OPTS,
};
static const struct cli_opt allreduce_opts[] = {
    {"--allreduce", NULL, NULL, OPT_FLAG, F(allreduce), OPT_IN_NAME,
     "time the gradient exchange alone, without a config", 0},
    {"--sizes", NULL, "LIST", OPT_TEXT, F(sizes), 0,
     "message sizes in bytes, K, M, G = 1024, 1024^2, 1024^3 (default 4K,64K,1M,16M)", 0},
    {"--iters", NULL, "N", OPT_POSITIVE, F(iters), 0,
     "timed calls per size (default: about 64 MB per size, 10 to 200 calls)", 0},
    {"--csv", NULL, "FILE", OPT_TEXT, F(csv), 0, "the figures as CSV too, a row per size", 0},
    END_OPTS,
};
static const struct cli_opt timeline_opts[] = {
    {"--output", "-o", "STEP.png", OPT_TEXT, F(output), OPT_REQUIRED, "the picture to write", 0},
    {"--step", NULL, "N", OPT_COUNT, F(step), 0,
     "the step to draw, from 0 (default: the middle one of those every rank recorded)", 0},
    END_OPTS,
};
static const struct cli_opt import_opts[] = {
    {"--keras", NULL, "FILE.h5", OPT_TEXT, F(keras), OPT_REQUIRED,
     "the Keras weight file (Keras 2 .h5 or Keras 3 .weights.h5)", 0},
    {"--output", "-o", "CKPT", OPT_TEXT, F(output), OPT_REQUIRED, "the checkpoint to write", 0},
    {"--by-name", NULL, NULL, OPT_FLAG, F(by_name), 0,
     "take CONFIG's layers by name from a file of a larger network", 0},
    {"--class-names", NULL, "A,B,...|@FILE", OPT_TEXT, F(class_names), 0,
     "the classes of the network's outputs, in order (@FILE: one per line), kept in the "
     "checkpoint for predict and evaluate (default: [data] class_names)", 0},
    SET_OPT,
    END_OPTS,
};
static const struct cli_opt export_opts[] = {
    {"--checkpoint", NULL, "CKPT", OPT_TEXT, F(checkpoint), OPT_REQUIRED, "the weights to write",
     0},
    {"--output", "-o", "FILE.h5", OPT_TEXT, F(output), OPT_REQUIRED,
     "the Keras 2 weight file to write", 0},
    SET_OPT,
    END_OPTS,
};
static const struct cli_opt extract_opts[] = {
    {"--checkpoint", NULL, "CKPT", OPT_TEXT, F(checkpoint), OPT_REQUIRED, "the base's weights", 0},
    {"--output", "-o", "FEATURES", OPT_TEXT, F(output), OPT_REQUIRED,
     "the feature file to write", 0},
    {"--data", NULL, "DIR", OPT_TEXT, F(data), 0, "the images in DIR instead of [data] dir", 0},
    SET_OPT,
    END_OPTS,
};
static const struct cli_opt inspect_opts[] = {
    {"--compare", NULL, "OTHER", OPT_TEXT, F(compare), 0,
     "OTHER's header too, and how the two differ: parameters, state, optimizer moments", 0},
    {"--config", NULL, "CONFIG", OPT_TEXT, F(layers_config), 0,
     "a parameter hash per layer of CONFIG's network", 0},
    {"--record", NULL, NULL, OPT_FLAG, F(record), 0,
     "the run record too (config, classes, state)", 0},
    {"--set", NULL, "SECTION.KEY=VALUE", OPT_SET, 0, 0,
     "override a key of --config's CONFIG (repeatable)", 0},
    END_OPTS,
};
static const struct cli_opt dataset_opts[] = {
    {"--source", NULL, "DIR", OPT_TEXT, F(source), 0,
     "fashion-mnist: the folder of its IDX files (default /usr/share/datasets/fashion-mnist)", 0},
    {"--limit", NULL, "N", OPT_COUNT, F(limit), 0, "at most N images per split (0: all)", 0},
    END_OPTS,
};
static const struct cli_opt plot_opts[] = {
    {"--output", "-o", "FIGURE.png|.svg", OPT_TEXT, F(output), OPT_REQUIRED,
     "the figure to write; the extension chooses the format", 0},
    {"--scaling", NULL, NULL, OPT_FLAG, F(scaling), 0,
     "the CSV files are scaling.csv of cluster/scaling: images/s and efficiency against ranks, "
     "with the ideal", 0},
    END_OPTS,
};
static const struct cli_opt no_opts[] = {END_OPTS};

static int cmd_version(struct cli_args *a, int *argc, char ***argv);

/* In the order of the overview. */
static const struct cli_command commands[] = {
    {"summary", "CONFIG", NULL,
     "print the network as Keras's model.summary() does; a [base] is one row unless "
     "--expand-nested",
     cmd_summary, 1, 1, X_ONE, summary_opts},
    {"train", "CONFIG", NULL,
     "train (under mpirun/srun: data-parallel on every rank); SIGUSR1 and SIGTERM save a "
     "resumable checkpoint and exit 75",
     cmd_train, 1, 1, (X_JOB & ~X_DONE) | X_DONE_TRAIN | X_STOPPED | X_KILLED, train_opts},
    {"evaluate", "CONFIG", NULL, "loss and accuracy of a checkpoint on a split", cmd_evaluate,
     1, 1, X_ONE, evaluate_opts},
    {"predict", "CONFIG", "IMAGE...", "class probabilities of each image", cmd_predict, 1, -1,
     X_ONE, predict_opts},
    {"bench", "CONFIG", NULL,
     "images/s, GFLOP/s and per-layer times (under mpirun: the allreduce split and the scaling "
     "against rank 0 alone); see also bench --allreduce",
     cmd_bench, 1, 1, X_JOB, bench_opts},
    {"bench --allreduce", "", NULL,
     "the gradient exchange alone, on every rank of the job: median time per message size",
     cmd_bench_allreduce, 0, -1, X_JOB, allreduce_opts},
    {"timeline", "TRACE.json", NULL,
     "one step of a --trace file drawn: every rank's lanes (compute, allreduce buckets, data) "
     "on a time axis in ms",
     cmd_timeline, 1, 1, X_ONE, timeline_opts},
    {"import-weights", "CONFIG", NULL,
     "a Keras weight file as a checkpoint of CONFIG's network (weights, no optimizer state)",
     cmd_import_weights, 1, 1, X_ONE, import_opts},
    {"export-weights", "CONFIG", NULL,
     "a checkpoint as a Keras 2 weight file (model.load_weights reads it)", cmd_export_weights,
     1, 1, X_ONE, export_opts},
    {"extract", "CONFIG", NULL,
     "a base's outputs over train, val and test, for a top trained on them "
     "([data] features = FEATURES)",
     cmd_extract, 1, 1, X_JOB, extract_opts},
    {"inspect", "CKPT", NULL,
     "a checkpoint's header and parameter hash, per layer with --config, its differences to "
     "OTHER, and with --record its run record",
     cmd_inspect, 1, 1, X_ONE, inspect_opts},
    {"dataset", "fashion-mnist|shapes OUTDIR", NULL,
     "write Fashion-MNIST as an image directory, or a synthetic 2-class RGB set (circle, "
     "square) shaped like the book's cats_vs_dogs_small",
     cmd_dataset, 0, 2, X_ONE, dataset_opts},
    {"plot", "HISTORY.csv [MORE.csv ...]", NULL,
     "training and validation accuracy and loss against epochs, one colour per run "
     "(history.csv of train); with --scaling, images/s and efficiency against ranks",
     cmd_plot, 0, -1, X_ONE, plot_opts},
    {"version", "", NULL, "the version, and the OpenBLAS and oneDNN kernels this CPU runs",
     cmd_version, 0, 0, X_DONE | X_USAGE, no_opts},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* ---------------------------------------------------------------- help */

#define HELP_WIDTH 79
#define HELP_OPT_COLUMN 30 /* where an option's help starts */

/* The length of the word at p: up to a space outside brackets, so that "[--iters N]" and
 * "[MORE.csv ...]" stay whole. */
static size_t word_len(const char *p)
{
    size_t n = 0;
    for (int depth = 0; p[n] && (p[n] != ' ' || depth > 0); n++)
        depth += p[n] == '[' ? 1 : p[n] == ']' && depth > 0 ? -1 : 0;
    return n;
}

/* Writes text from column col (already reached), breaking between words before HELP_WIDTH;
 * each following line starts at column indent. Ends the line. */
static void put_wrapped(FILE *f, const char *text, int col, int indent)
{
    const char *p = text;
    int first = 1;
    while (*p) {
        size_t word = word_len(p);
        if (!first && col + 1 + (int)word > HELP_WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (!first) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int)word, p);
        col += (int)word;
        first = 0;
        p += word;
        while (*p == ' ')
            p++;
    }
    fputc('\n', f);
}

/* One element of a synopsis: "--iters N", "-o FILE", "--record". */
static void synopsis_item(char *buf, size_t n, const struct cli_opt *o)
{
    const char *name = o->alias ? o->alias : o->name;
    int req = o->flags & OPT_REQUIRED;
    snprintf(buf, n, "%s%s%s%s%s%s", req ? "" : "[", name, o->meta ? " " : "",
             o->meta ? o->meta : "", req ? "" : "]", o->kind == OPT_SET ? "..." : "");
}

/* "NAME ARGS [--opt X] ... TRAILER", wrapped, from column col; continuation lines at indent.
 * with_common: --set too. */
static void put_synopsis(FILE *f, const struct cli_command *c, int col, int indent,
                         int with_common)
{
    char line[2048];
    size_t len = (size_t)snprintf(line, sizeof line, "%s%s%s", c->name, c->args[0] ? " " : "",
                                  c->args);
    for (const struct cli_opt *o = c->opts; o->name && len < sizeof line; o++) {
        if ((o->flags & OPT_IN_NAME) || (!with_common && (o->flags & OPT_COMMON)))
            continue;
        char item[128];
        synopsis_item(item, sizeof item, o);
        len += (size_t)snprintf(line + len, sizeof line - len, " %s", item);
    }
    if (c->trailer && len < sizeof line)
        snprintf(line + len, sizeof line - len, " %s", c->trailer);
    put_wrapped(f, line, col, indent);
}

static void put_exit_statuses(FILE *f, int exits)
{
    fputs("\nExit status:\n", f);
    for (size_t i = 0; i < sizeof exit_statuses / sizeof exit_statuses[0]; i++)
        if (exits & exit_statuses[i].bit) {
            fprintf(f, "  %-3d ", exit_statuses[i].code);
            put_wrapped(f, exit_statuses[i].text, 6, 6);
        }
}

/* `shardnet COMMAND --help`: the synopsis, what it does, each option, the exit statuses. */
static void put_command_help(FILE *f, const struct cli_command *c)
{
    fputs("usage: shardnet ", f);
    put_synopsis(f, c, 16, 16 + (int)strcspn(c->name, " ") + 1, 1);
    fputc('\n', f);
    put_wrapped(f, c->summary, 0, 0);
    fputs("\nOptions:\n", f);
    for (const struct cli_opt *o = c->opts; o->name; o++) {
        char head[128];
        int n = snprintf(head, sizeof head, "  %s%s%s%s%s", o->alias ? o->alias : "",
                         o->alias ? ", " : "", o->name, o->meta ? " " : "", o->meta ? o->meta : "");
        if (n + 2 > HELP_OPT_COLUMN) {
            fprintf(f, "%s\n%*s", head, HELP_OPT_COLUMN, "");
        } else {
            fprintf(f, "%-*s", HELP_OPT_COLUMN, head);
        }
        put_wrapped(f, o->help, HELP_OPT_COLUMN, HELP_OPT_COLUMN);
    }
    fprintf(f, "%-*s", HELP_OPT_COLUMN, "  -h, --help");
    put_wrapped(f, "print this help and exit", HELP_OPT_COLUMN, HELP_OPT_COLUMN);
    put_exit_statuses(f, c->exits);
}

/* `shardnet --help`: every command's synopsis and what it does, then the exit statuses. */
static void put_overview(FILE *f)
{
    fputs("usage: shardnet COMMAND [ARGS]\n\n", f);
    int exits = 0;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fputs("  ", f);
        put_synopsis(f, &commands[i], 2, 8, 0);
        fputs("      ", f);
        put_wrapped(f, commands[i].summary, 6, 6);
        exits |= commands[i].exits;
    }
    fputs("\nOptions of the commands that take a CONFIG:\n"
          "  --set SECTION.KEY=VALUE     override a config key (repeatable)\n"
          "\n"
          "shardnet COMMAND --help (or shardnet help COMMAND) lists a command's options.\n",
          f);
    put_exit_statuses(f, exits & ~X_DONE);
}

int cli_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "shardnet: ");
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    put_overview(stderr);
    return SN_EXIT_USAGE;
}

/* ---------------------------------------------------------------- parsing */

static const struct cli_opt *find_opt(const struct cli_opt *t, const char *s)
{
    for (; t->name; t++)
        if (strcmp(s, t->name) == 0 || (t->alias && strcmp(s, t->alias) == 0))
            return t;
    return NULL;
}

/* Whether any command takes s as an option. */
static int known_option(const char *s)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (find_opt(commands[i].opts, s))
            return 1;
    return 0;
}

static int is_help(const char *s) { return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0; }

/* Whether the option s stands on the line (argv of the command's arguments) as an option, not
 * as the value of one, reading the line with c's table. */
static int on_line(const struct cli_command *c, int argc, char **argv, const char *s)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], s) == 0)
            return 1;
        const struct cli_opt *o = find_opt(c->opts, argv[i]);
        if (o && o->kind != OPT_FLAG)
            i++;
    }
    return 0;
}

/* A usage error about an option of command c: "shardnet: MSG (see shardnet CMD --help)".
 * @return SN_EXIT_USAGE */
static int option_error(const struct cli_command *c, const char *msg)
{
    fprintf(stderr, "shardnet: %s (see shardnet %s --help)\n", msg, c->name);
    return SN_EXIT_USAGE;
}

/* The integer value v of option o (typed as `typed`) into *out: a whole decimal number from
 * lo (0 or 1, by o's kind) to o's max. @return 0, or the usage error's exit status */
static int store_int(const struct cli_command *c, const struct cli_opt *o, const char *typed,
                     const char *v, int *out)
{
    long lo = o->kind == OPT_POSITIVE ? 1 : 0, hi = o->max > 0 ? o->max : 1L << 30;
    char *end;
    long x = strtol(v, &end, 10);
    if (*v != '\0' && *end == '\0' && x >= lo && x <= hi) {
        *out = (int)x;
        return 0;
    }
    char msg[256];
    if (o->max > 0)
        snprintf(msg, sizeof msg, "%s %.40s: expected a whole number from %ld to %ld", typed, v,
                 lo, hi);
    else
        snprintf(msg, sizeof msg, "%s %.40s: expected a whole number of %ld or more", typed, v,
                 lo);
    return option_error(c, msg);
}

/* Stores the value v (NULL: none on the line) of option o of command c, as typed (typed).
 * @return 0, or the usage error's exit status */
static int store(const struct cli_command *c, struct cli_args *a, const struct cli_opt *o,
                 const char *typed, const char *v)
{
    void *field = (char *)a + o->field;
    if (o->kind == OPT_FLAG) {
        *(int *)field = 1;
        return 0;
    }
    char msg[256];
    if (!v) {
        snprintf(msg, sizeof msg, "%s needs a value: %s %s", typed, typed, o->meta);
        return option_error(c, msg);
    }
    switch (o->kind) {
    case OPT_TEXT:
        *(const char **)field = v;
        break;
    case OPT_COUNT:
    case OPT_POSITIVE:
        return store_int(c, o, typed, v, field);
    case OPT_SPLIT:
        if (strcmp(v, "train") == 0)
            a->split = SN_SPLIT_TRAIN;
        else if (strcmp(v, "val") == 0 || strcmp(v, "validation") == 0)
            a->split = SN_SPLIT_VAL;
        else if (strcmp(v, "test") == 0)
            a->split = SN_SPLIT_TEST;
        else {
            snprintf(msg, sizeof msg, "--split %.40s: use train, val or test", v);
            return option_error(c, msg);
        }
        break;
    case OPT_SET:
        if (a->n_sets == SN_MAX_SETS)
            return option_error(c, "too many --set options (at most 64)");
        a->sets[a->n_sets++] = v;
        break;
    case OPT_FLAG:
        break;
    }
    return 0;
}

/* argv[0] is the command's word. @return 0, or the usage error's exit status */
static int parse_args(const struct cli_command *c, int argc, char **argv, struct cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->split = SN_SPLIT_TEST;
    a->step = -1;
    a->positional = calloc((size_t)argc + 1, sizeof *a->positional);
    if (!a->positional)
        return cli_usage_error("%s", "out of memory");
    a->positional[a->n_positional++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const struct cli_opt *o = find_opt(c->opts, s);
        if (o) {
            int rc = store(c, a, o, s, i + 1 < argc ? argv[i + 1] : NULL);
            if (rc != 0)
                return rc;
            if (o->kind != OPT_FLAG)
                i++;
        } else if (known_option(s)) {
            fprintf(stderr, "shardnet: %s does not take %s (see shardnet %s --help)\n", c->name, s,
                    c->name);
            return SN_EXIT_USAGE;
        } else if (strncmp(s, "--", 2) == 0 && s[2] != '\0') {
            return cli_usage_error("unknown option %s", s);
        } else {
            a->positional[a->n_positional++] = argv[i];
        }
    }
    a->config = a->n_positional > 1 ? a->positional[1] : NULL;
    if (c->max_args >= 0 && a->n_positional - 1 > c->max_args) {
        char msg[256];
        if (c->max_args == 0)
            snprintf(msg, sizeof msg, "%s takes no arguments; '%.60s' is extra", c->name,
                     a->positional[1]);
        else
            snprintf(msg, sizeof msg, "%s takes %s; '%.60s' is extra", c->name, c->args,
                     a->positional[c->max_args + 1]);
        return option_error(c, msg);
    }
    return 0;
}

int cli_load_config(const struct cli_args *a, struct sn_config **cfg, struct sn_err *err)
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

/* ---------------------------------------------------------------- dispatch */

/* This process's rank among those a launcher started (mpirun, srun), read before MPI: 0 when
 * alone. *size: their number, 0 when unknown (srun's batch shell says none). */
static int launcher_rank(int *size)
{
    static const char *const ranks[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                        "SLURM_PROCID"};
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE",
                                        "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    *size = 0;
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++)
        if (getenv(ranks[i])) {
            const char *n = getenv(sizes[i]);
            *size = n ? atoi(n) : 0;
            return atoi(getenv(ranks[i]));
        }
    return 0;
}

/* A command of one process (not X_JOB's) started on several ranks (`mpirun -np 3 shardnet
 * predict ...`) runs on rank 0 alone: the others would print every line again, or write the
 * same files at once. @return 1 when this process is one of the others and must exit 0 */
static int leave_to_rank0(const struct cli_command *c)
{
    if (c->exits & X_PEER_LOST) /* runs on every rank */
        return 0;
    int size, rank = launcher_rank(&size);
    if (rank > 0)
        return 1;
    if (size > 1)
        fprintf(stderr, "shardnet: note: %s runs in one process: rank 0 of the %d the launcher "
                        "started runs it, the others exit at once\n",
                c->name, size);
    return 0;
}

static int cmd_version(struct cli_args *a, int *argc, char ***argv)
{
    printf("shardnet %s\n%s\n", SN_VERSION, sn_cpu_kernels());
    return SN_EXIT_DONE;
}

/* The command named name: a word, or a word and a flag ("bench --allreduce"). */
static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0)
            return &commands[i];
    return NULL;
}

/* bench's help shows bench --allreduce's too: one word, two forms. */
static void put_help(FILE *f, const struct cli_command *c)
{
    put_command_help(f, c);
    if (strcmp(c->name, "bench") == 0) {
        fputc('\n', f);
        put_command_help(f, find_command("bench --allreduce"));
    }
}

int sn_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        put_overview(stderr);
        return SN_EXIT_USAGE;
    }
    const char *word = argv[1];
    if (strcmp(word, "help") == 0 || is_help(word)) {
        if (argc > 2 && strcmp(word, "help") == 0) { /* shardnet help COMMAND */
            const struct cli_command *c = strchr(argv[2], ' ') ? NULL : find_command(argv[2]);
            if (!c)
                return cli_usage_error("unknown command '%s'", argv[2]);
            put_help(stdout, c);
            return SN_EXIT_DONE;
        }
        put_overview(stdout);
        return SN_EXIT_DONE;
    }
    if (strcmp(word, "--version") == 0)
        word = "version";
    const struct cli_command *c = strchr(word, ' ') ? NULL : find_command(word);
    if (!c)
        return cli_usage_error("unknown command '%s'", word);
    if (strcmp(c->name, "bench") == 0 && on_line(c, argc - 2, argv + 2, "--allreduce"))
        c = find_command("bench --allreduce");
    if (leave_to_rank0(c))
        return SN_EXIT_DONE;
    for (int i = 2; i < argc; i++) {
        const struct cli_opt *o = find_opt(c->opts, argv[i]);
        if (is_help(argv[i])) {
            put_help(stdout, c);
            return SN_EXIT_DONE;
        }
        if (o && o->kind != OPT_FLAG)
            i++;
    }
    cli_select_kernels(argv);
    /* A log file shows each line as it is written, in order, not a buffer at exit. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct cli_args a;
    int rc = parse_args(c, argc - 1, argv + 1, &a);
    if (rc != 0)
        ;
    else if (a.trace_events && !a.trace)
        rc = cli_usage_error("%s", "--trace-events needs --trace FILE");
    else if (c->needs_first && !a.config)
        rc = cli_usage_error("%s needs a CONFIG (or CKPT, TRACE) argument", c->name);
    else
        rc = c->run(&a, &argc, &argv);
    free(a.positional);
    sn_ops_onednn_free();
    return rc;
}
