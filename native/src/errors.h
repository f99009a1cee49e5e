// Errors cross into JS as exceptions that carry the errno name (`code`), the negative
// errno (`errno`, as Node's own system errors do), the syscall and the map's name, so
// callers can branch on `code` instead of parsing messages.
#pragma once
#include <napi.h>

#include <string>

namespace mesh {

// Name of an errno value ("ENOENT"), including the kernel-internal ones BPF leaks.
std::string ErrnoName(int err);

// Kernel name of the map behind `fd` (for error messages); "" when it cannot be read.
std::string MapNameOf(int fd);

// Throws `<op>(<map>): <CODE> <strerror>` with code/errno/syscall/map properties, and
// `done` (entries of a batch applied before the failure) when done >= 0.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string &op, const std::string &map,
                             const std::string &detail = "", long done = -1);

// libbpf writes diagnostics (verifier logs, pin mismatches) through a callback; the last
// lines are kept so a failed load can say WHY instead of just "EINVAL".
void InstallLibbpfLogger();
std::string TakeLibbpfLog();

}  // namespace mesh
