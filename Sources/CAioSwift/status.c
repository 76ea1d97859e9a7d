/* Status names and messages from the header's one table, AIOS_ERRNO_MAP. */
#define _GNU_SOURCE
#include <string.h>
#include "aio_swift.h"
#include "aios_status.h"

const char *aiosi_status_name(int code) {
  switch (code) {
    case 0: return "AIOS_OK";
#define AIOS_NAME_CASE_(name, value, msg) case value: return "AIOS_" #name;
    AIOS_ERRNO_MAP(AIOS_NAME_CASE_)
#undef AIOS_NAME_CASE_
    default: break;
  }
  if (code < 0 && code > -3000) {
    const char *name = strerrorname_np(-code);
    if (name != NULL) return name;
  }
  return "UNKNOWN";
}

const char *aiosi_status_message(int code) {
  switch (code) {
    case 0: return "success";
#define AIOS_MSG_CASE_(name, value, msg) case value: return msg;
    AIOS_ERRNO_MAP(AIOS_MSG_CASE_)
#undef AIOS_MSG_CASE_
    default: break;
  }
  if (code < 0 && code > -3000) {
    const char *desc = strerrordesc_np(-code);
    if (desc != NULL) return desc;
  }
  return "unknown error";
}
