# Faults (issue #17): a rank killed under mpirun during the gather and the migration, two
# writers of one output at once, a full disk. Each is bounded (TIMEOUT, and `timeout` inside);
# the full-disk test mounts a tmpfs and reports SKIP (exit 77) where mounting is refused.
eplb_cli_test(cli_kill_rank cli_kill_rank.sh)
set_tests_properties(cli_kill_rank PROPERTIES TIMEOUT 600)
eplb_cli_test(cli_concurrent_write cli_concurrent_write.sh)
set_tests_properties(cli_concurrent_write PROPERTIES TIMEOUT 300)
eplb_cli_test(cli_full_disk cli_full_disk.sh)
set_tests_properties(cli_full_disk PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
