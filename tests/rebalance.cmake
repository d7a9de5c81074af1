# Online re-balancing: the decision (eplb/rebalance.h) and `eplb replay` on the command line.
eplb_unit_test(test_rebalance test_rebalance.c)
eplb_cli_test(cli_replay cli_replay.sh)
