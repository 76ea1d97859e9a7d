/* Internal: status names and messages, generated from AIOS_ERRNO_MAP. The
 * aiosi_ prefix keeps them out of the exported aios_* set. */
#ifndef AIOS_STATUS_H
#define AIOS_STATUS_H
const char *aiosi_status_name(int code);
const char *aiosi_status_message(int code);
#endif
