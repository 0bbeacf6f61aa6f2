/* kos's server library (libkos-server, linked into kosd and kosctl only;
 * never installed): every module's header. */
#ifndef KOS_SERVER_H
#define KOS_SERVER_H

#include <kos/kos.h>
#include "common/envelope.h"
#include "common/shamir.h"
#include <kos/access.h>
#include <kos/backend.h>
#include <kos/kosconf.h>
#include <kos/cred.h>
#include <kos/devinit.h>
#include <kos/keys.h>
#include <kos/ledger.h>
#include <kos/pipeline.h>
#include <kos/policy.h>
#include <kos/scope.h>
#include <kos/service.h>
#include <kos/store.h>
#include <kos/trust.h>

#endif
