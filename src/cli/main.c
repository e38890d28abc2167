/* main.c — the shardnet executable: the command line is src/cli (cli.c dispatches). A run's
 * stop signals are caught first of all, so that one sent right after the start (a job cancelled
 * as it begins) still stops it with a checkpoint instead of killing it. */
#include <string.h> // defines: strcmp

#include "cli.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "train") == 0)
        sn_cli_catch_stop_signals();
    return sn_cli_main(argc, argv);
}
