/* cli.h — the `shardnet` command line. The only code that prints, exits or aborts: it turns the
 * library's errors into messages and exit statuses. */
#ifndef SN_CLI_H
#define SN_CLI_H

#define SN_VERSION "0.1.0"

/* Runs `shardnet argv...`. @return the process exit status: 0 done, 1 error, 2 usage error,
 * 75 stopped on request (resumable), 76 peer lost (`shardnet --help` lists them) */
int sn_cli_main(int argc, char **argv);

/* For `train`, before anything else in main: SIGUSR1, SIGTERM and SIGINT ask the run to stop at
 * its next step with a checkpoint (exit 75), even when they come while it starts up; a second
 * SIGTERM or SIGINT ends it at once (killed by that signal: 143, 130). Other commands keep the
 * signals' default actions. */
void sn_cli_catch_stop_signals(void);

#endif
