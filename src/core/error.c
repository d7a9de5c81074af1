/* error.c - error codes, their messages, and the per-thread detail message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/eplb_int.h"

/* Longest detail message kept; longer ones are cut. */
#define EPLB__ERRMSG_MAX 1024

static _Thread_local char errmsg[EPLB__ERRMSG_MAX];

const char *eplb_strerror(int err) {
  switch (err) {
#define EPLB__ERR_MSG(name, val, msg) \
  case EPLB_##name:                   \
    return msg;
    EPLB_ERRNO_MAP(EPLB__ERR_MSG)
#undef EPLB__ERR_MSG
  default:
    return "unknown error";
  }
}

const char *eplb_err_name(int err) {
  switch (err) {
#define EPLB__ERR_NAME(name, val, msg) \
  case EPLB_##name:                    \
    return "EPLB_" #name;
    EPLB_ERRNO_MAP(EPLB__ERR_NAME)
#undef EPLB__ERR_NAME
  default:
    return "EPLB_UNKNOWN";
  }
}

const char *eplb_last_error(void) { return errmsg; }

int eplb__err_msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  /* va_start is right above: clang 14's analyzer misreads it here (a false positive). */
  vsnprintf(errmsg, sizeof errmsg, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
  va_end(ap);
  /* The detail is one line: fold any newline a caller's text carried in. */
  for (char *c = errmsg; *c; c++)
    if (*c == '\n' || *c == '\r')
      *c = ' ';
  return 0;
}

unsigned eplb_version(void) {
  return EPLB_VERSION_MAJOR * 10000u + EPLB_VERSION_MINOR * 100u + EPLB_VERSION_PATCH;
}

const char *eplb_version_string(void) { return EPLB_VERSION_STRING; }
