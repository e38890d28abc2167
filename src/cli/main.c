/* main.c — the shardnet executable: everything is in cli.c. */
#include "cli.h"

int main(int argc, char **argv) { return sn_cli_main(argc, argv); }
