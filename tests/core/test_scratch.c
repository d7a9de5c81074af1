/* test_scratch.c - core/util.c's scratch arrays (eplb__take, eplb__scratch_free): zeroed, aligned,
 * owned until freed together; an impossible size fails the scratch, not the process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/eplb_int.h"

/* Every array taken is zeroed and aligned for any type, and distinct from the others. */
static void test_take_zeroed_aligned(void **state) {
  (void)state;
  eplb__scratch sc = {0};
  double *a = eplb__take(&sc, 100, sizeof *a);
  unsigned char *b = eplb__take(&sc, 3, 1);
  int64_t *c = eplb__take(&sc, 7, sizeof *c);
  assert_false(sc.failed);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  for (int i = 0; i < 100; i++)
    assert_true(a[i] == 0.0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(b[i], 0);
  assert_int_equal((uintptr_t)a % _Alignof(max_align_t), 0);
  assert_int_equal((uintptr_t)c % _Alignof(max_align_t), 0);
  assert_true((void *)a != (void *)b && (void *)b != (void *)c);
  a[99] = 1.5; /* writable to its last item (ASan checks the bounds) */
  c[6] = -1;
  eplb__scratch_free(&sc);
  assert_null(sc.head);
}

/* A zero-length array is a valid pointer. */
static void test_take_zero_items(void **state) {
  (void)state;
  eplb__scratch sc = {0};
  assert_non_null(eplb__take(&sc, 0, sizeof(double)));
  assert_false(sc.failed);
  eplb__scratch_free(&sc);
}

/* A size that overflows returns NULL and marks the scratch failed; what was taken before stays
 * owned and is freed with the rest; freeing clears the mark. */
static void test_take_overflow_fails(void **state) {
  (void)state;
  eplb__scratch sc = {0};
  int32_t *ok = eplb__take(&sc, 10, sizeof *ok);
  assert_non_null(ok);
  assert_null(eplb__take(&sc, SIZE_MAX / 2, 4));
  assert_true(sc.failed);
  assert_non_null(sc.head);
  eplb__scratch_free(&sc);
  assert_false(sc.failed);
  assert_null(sc.head);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_take_zeroed_aligned),
      cmocka_unit_test(test_take_zero_items),
      cmocka_unit_test(test_take_overflow_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
