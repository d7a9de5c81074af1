/* eplb/version.h - the one place that holds eplb's version.
 * The build (CMakeLists.txt) reads these three numbers from here. */
#ifndef EPLB_VERSION_H
#define EPLB_VERSION_H

#define EPLB_VERSION_MAJOR 0
#define EPLB_VERSION_MINOR 1
#define EPLB_VERSION_PATCH 0

#define EPLB__STR2(x) #x
#define EPLB__STR(x) EPLB__STR2(x)
/* "MAJOR.MINOR.PATCH" as a string literal. */
#define EPLB_VERSION_STRING \
  EPLB__STR(EPLB_VERSION_MAJOR) "." EPLB__STR(EPLB_VERSION_MINOR) "." EPLB__STR(EPLB_VERSION_PATCH)

#endif /* EPLB_VERSION_H */
