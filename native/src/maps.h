#pragma once
#include <napi.h>

namespace mesh {
// Registers the fd-based map functions (openPinned, lookup, update, delete, batch ops,
// iteration) on the module exports.
void InitMaps(Napi::Env env, Napi::Object exports);
}  // namespace mesh
