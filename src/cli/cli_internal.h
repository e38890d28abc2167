/* cli_internal.h — what the files of src/cli share, and nothing outside src/cli includes: the
 * parsed command line, usage errors, the exit policy, OpenBLAS's kernel choice, and the commands.
 *
 *   cli.c        the command and option tables; the parser, --help and the overview; dispatch
 *   exit.c       an sn_err as a message and an exit status; ending an MPI job; signals
 *   kernels.c    which OpenBLAS kernels this CPU runs (may start the process again)
 *   cmd_run.c    the commands that run on every rank of a job: train, bench, extract,
 *                bench --allreduce
 *   cmd_model.c  the commands on one network or checkpoint: summary, evaluate, predict,
 *                import-weights, export-weights, inspect
 *   cmd_files.c  the commands on files: dataset, plot, timeline */
#ifndef SN_CLI_INTERNAL_H
#define SN_CLI_INTERNAL_H

#include <signal.h> // defines: sig_atomic_t

#include "config.h"
#include "dist.h"
#include "err.h"

#define SN_MAX_SETS 64

/* Exit statuses: one table, in each command's --help and in the README. */
#define SN_EXIT_DONE 0
#define SN_EXIT_ERROR 1      /* config, data, checkpoint, numerical: fix and run again */
#define SN_EXIT_USAGE 2
#define SN_EXIT_RESUMABLE 75 /* EX_TEMPFAIL: stopped on request, `--resume` continues */
/* SN_DIST_PEER_LOST_EXIT (76, dist.h): a rank died or hung; the watchdog or a failed collective
 * ended the job. Not resumable on its own terms: restart deliberately (--resume auto). */

/* A command line, parsed (cli.c). Each field is set by its option (--config sets
 * layers_config, -o output) when the command's table lists that option; the others keep their
 * defaults (0, NULL, split test, step -1). */
struct cli_args {
    const char *config; /* the first argument after the command: CONFIG, CKPT or TRACE */
    const char *sets[SN_MAX_SETS];
    int n_sets;
    const char *checkpoint, *data, *resume, *compare, *backend, *source, *layers_config;
    const char *keras, *output, *init, *csv, *trace, *sizes;
    int split, batch, iters, data_only, limit, top, digits, allow_config_change, record, by_name;
    int expand_nested, scaling, allreduce;
    int trace_events, step; /* step: -1 unless --step */
    const char *class_names; /* import-weights --class-names: "a,b,c" or "@FILE" */
    char **positional;      /* owned (the strings are argv's): [0] is the command itself */
    int n_positional;
};

/* A command: runs with its arguments parsed; argc/argv are main's, for the commands that start
 * MPI (which may consume arguments) or start the process again. @return the exit status */
typedef int cli_command_fn(struct cli_args *a, int *argc, char ***argv);

/* ---- cli.c */
/* Prints "shardnet: " + fmt (with arg) and the overview on stderr. @return SN_EXIT_USAGE */
int cli_usage_error(const char *fmt, const char *arg);
/* Loads a->config and applies its --set options. On failure *cfg is NULL and err says why. */
int cli_load_config(const struct cli_args *a, struct sn_config **cfg, struct sn_err *err);

/* ---- exit.c */
/* Prints "shardnet: error: MSG" on stderr. @return SN_EXIT_ERROR */
int cli_report(const struct sn_err *err);
/* Ends an MPI run with rc (an SN_ code) and err: cleanly on every rank when the error is
 * collective or there is one rank (@return the exit status), otherwise by naming this rank and
 * aborting the job so that no rank is left waiting in a collective (no return). */
int cli_finish_dist(struct sn_dist *d, int rc, const struct sn_err *err);
/* After sn_dist_init: the watchdog's message goes to stderr as "shardnet: MSG", then the job
 * ends with SN_DIST_PEER_LOST_EXIT; and rank 0 prints the launcher's start line when
 * SN_RUN_STARTED is set ("SN_RUN_STARTED TOKEN WORLD" on stdout). */
void cli_watch_dist(struct sn_dist *d);
/* The stop signals' handlers (installed by main as its first act, sn_cli_catch_stop_signals in
 * cli.h; again here, which changes nothing but keeps a stop already asked for).
 * @return the flag the handlers set (process-wide): training stops at the next step */
volatile sig_atomic_t *cli_catch_stop_signals(void);
/* hold = 1, before an exec of this program: blocks the stop signals and raises again each one
 * already received, so that the new program (which unblocks them once its handlers are in) gets
 * them. hold = 0, when the exec failed: drops those and unblocks. Nothing when the handlers
 * were never installed (a command other than train). */
void cli_hold_stop_signals(int hold);

/* ---- kernels.c */
/* Runs the fastest correct OpenBLAS kernels for this CPU, starting the process again (argv)
 * with OPENBLAS_CORETYPE when needed; records the line sn_cpu_kernels() returns. */
void cli_select_kernels(char **argv);

/* ---- the commands */
cli_command_fn cmd_train, cmd_bench, cmd_bench_allreduce, cmd_extract;       /* cmd_run.c */
cli_command_fn cmd_summary, cmd_evaluate, cmd_predict, cmd_import_weights;    /* cmd_model.c */
cli_command_fn cmd_export_weights, cmd_inspect;                               /* cmd_model.c */
cli_command_fn cmd_dataset, cmd_plot, cmd_timeline;                           /* cmd_files.c */

#endif
