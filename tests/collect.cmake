# Step 1, collect: collector and config (unit), gather under mpirun (1, 2, 4 ranks), CLI tests of
# merge and simulate, and the SIGKILL crash test of the atomic write.
eplb_unit_test(test_collect test_collect.c)
target_link_libraries(test_collect PRIVATE Threads::Threads)
eplb_unit_test(test_config test_config.c)

foreach(np 1 2 4)
  eplb_mpi_test(test_gather ${np} test_gather.c)
endforeach()
# A rank that fails an assertion could leave the others waiting in a collective: bound the wait.
set_tests_properties(test_gather_np1 test_gather_np2 test_gather_np4 PROPERTIES TIMEOUT 120)

eplb_cli_test(cli_merge cli_merge.sh)
eplb_cli_test(cli_simulate cli_simulate.sh)
eplb_cli_test(cli_crash cli_crash.sh)
