# Plan quality: the balanced policy, the lower bound and reports, `eplb report` on the command line.
eplb_unit_test(test_balanced test_balanced.c)
target_compile_definitions(test_balanced PRIVATE EPLB_SHARED_DIR="${EPLB_SHARED_DIR}")
eplb_unit_test(test_quality test_quality.c)
eplb_cli_test(cli_report cli_report.sh)
eplb_unit_test(test_quality_multi test_quality_multi.c)
eplb_unit_test(test_quality_replan test_quality_replan.c)
eplb_cli_test(cli_report_replan cli_report_replan.sh)
eplb_unit_test(test_balanced_target test_balanced_target.c)
