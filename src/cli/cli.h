/* cli.h — the `shardnet` command line. The only place that turns errors into exit codes. */
#ifndef SN_CLI_H
#define SN_CLI_H

#define SN_VERSION "0.1.0"

/* Runs `shardnet argv...`. @return the process exit code: 0 success, 1 failure, 2 usage error */
int sn_cli_main(int argc, char **argv);

#endif
