/* main.c — the shardnet executable: the command line is src/cli (cli.c dispatches). */
#include "cli.h"

int main(int argc, char **argv) { return sn_cli_main(argc, argv); }
