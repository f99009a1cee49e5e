#include "errors.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <string.h>

#include <cstdarg>
#include <cstdio>

namespace mesh {

std::string ErrnoName(int err) {
  if (err < 0) err = -err;
  switch (err) {  // kernel-internal values that glibc has no name for
    case 512: return "ERESTARTSYS";
    case 524: return "ENOTSUPP";
    default: break;
  }
  // libbpf's own codes (bpf_object__open/load): LIBBPF_ERRNO__FORMAT and friends.
  static const char *const kLibbpf[] = {"LIBELF", "FORMAT", "KVERSION", "ENDIAN", "INTERNAL", "RELOC", "LOAD",
                                        "VERIFY", "PROG2BIG", "KVER", "PROGTYPE", "WRNGPID", "INVSEQ", "NLPARSE"};
  if (err >= 4000 && err < 4000 + (int)(sizeof(kLibbpf) / sizeof(kLibbpf[0])))
    return std::string("LIBBPF_ERRNO__") + kLibbpf[err - 4000];
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

std::string MapNameOf(int fd) {
  struct bpf_map_info info = {};
  __u32 len = sizeof(info);
  if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return "";
  return info.name;
}

void ThrowErrno(Napi::Env env, int err, const std::string &op, const std::string &map,
                const std::string &detail, long done) {
  if (err < 0) err = -err;
  std::string code = ErrnoName(err);
  char text[256];
  libbpf_strerror(err, text, sizeof(text));  // knows both errno and LIBBPF_ERRNO__* texts
  std::string msg = op + (map.empty() ? "" : "(" + map + ")") + ": " + code + " " + text;
  if (!detail.empty()) msg += "\n" + detail;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, op));
  if (!map.empty()) e.Set("map", Napi::String::New(env, map));
  if (done >= 0) e.Set("done", Napi::Number::New(env, (double)done));
  throw e;
}

static std::string g_log;

static int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  if (n > 0) g_log.append(buf, n < (int)sizeof(buf) ? n : sizeof(buf) - 1);
  // Verifier logs can be long: keep the tail, which names the failing instruction.
  if (g_log.size() > 16384) g_log.erase(0, g_log.size() - 16384);
  return n;
}

void InstallLibbpfLogger() { libbpf_set_print(LibbpfPrint); }

std::string TakeLibbpfLog() {
  std::string out;
  out.swap(g_log);
  return out;
}

}  // namespace mesh
