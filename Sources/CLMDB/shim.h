#ifndef TELEMETRYFLOW_CLMDB_SHIM_H
#define TELEMETRYFLOW_CLMDB_SHIM_H
#include <lmdb.h>
#endif
