# The deepseek policy of eplb_plan(): golden references, parameter rules, float32 semantics,
# and random inputs checked against independently computed invariants.
eplb_unit_test(test_plan_deepseek test_plan_deepseek.c)
eplb_unit_test(test_plan_random test_plan_random.c)
