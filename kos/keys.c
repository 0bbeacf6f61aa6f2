#include "config.h"

#include "kos/internal.h"
