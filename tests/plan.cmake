# Core: loads, placements and their files, `eplb plan` on the command line.
eplb_unit_test(test_loads test_loads.c)
eplb_unit_test(test_map_io test_map_io.c)
eplb_cli_test(cli_plan cli_plan.sh)
