/* kos: the client library's installed API (libkos-client, kos-client(3)).
 * Umbrella header. */
#ifndef KOS_KOS_H
#define KOS_KOS_H

#include <kos/common.h>
#include <kos/names.h>
#include <kos/client.h>

#endif
