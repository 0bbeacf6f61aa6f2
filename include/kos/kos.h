/* kos: key orchestration service library. Umbrella header. */
#ifndef KOS_KOS_H
#define KOS_KOS_H

#include <kos/common.h>
#include <kos/access.h>
#include <kos/backend.h>
#include <kos/client.h>
#include <kos/config.h>
#include <kos/cred.h>
#include <kos/devinit.h>
#include <kos/envelope.h>
#include <kos/keys.h>
#include <kos/ledger.h>
#include <kos/pipeline.h>
#include <kos/policy.h>
#include <kos/scope.h>
#include <kos/service.h>
#include <kos/shamir.h>
#include <kos/store.h>
#include <kos/trust.h>

#endif
