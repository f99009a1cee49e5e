// meshplane_bpf: a thin node-addon-api layer over libbpf 1.1. It loads objects, pins,
// attaches and detaches, and moves bytes in and out of maps; every decision (what to
// write, which policy applies) is made in TypeScript.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <napi.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "maps.h"
#include "object.h"

namespace mesh {

// detachLink(linkPinPath) -> false when nothing was pinned there. BPF_LINK_DETACH cuts
// the attachment even if another process still holds an fd to the link; then the pin goes.
static Napi::Value DetachLink(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string pin = info[0].As<Napi::String>();
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0 && errno == ENOENT) return Napi::Boolean::New(env, false);
  if (fd < 0) ThrowErrno(env, errno, "bpf_obj_get", "", pin);
  int err = bpf_link_detach(fd);
  int saved = errno;
  close(fd);
  // EINVAL/ENOLINK: already detached (its cgroup is gone); the pin still has to go.
  if (err && saved != EINVAL && saved != ENOLINK) ThrowErrno(env, saved, "bpf_link_detach", "", pin);
  if (unlink(pin.c_str()) != 0 && errno != ENOENT) ThrowErrno(env, errno, "unlink", "", pin);
  return Napi::Boolean::New(env, true);
}

// linkInfo(linkPinPath) -> { id, progId, type, cgroupId, attachType } | null
static Napi::Value LinkInfo(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string pin = info[0].As<Napi::String>();
  int fd = bpf_obj_get(pin.c_str());
  if (fd < 0 && errno == ENOENT) return env.Null();
  if (fd < 0) ThrowErrno(env, errno, "bpf_obj_get", "", pin);
  struct bpf_link_info li = {};
  __u32 len = sizeof(li);
  int err = bpf_obj_get_info_by_fd(fd, &li, &len);
  int saved = errno;
  close(fd);
  if (err) ThrowErrno(env, saved, "bpf_obj_get_info_by_fd", "", pin);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", li.id);
  o.Set("progId", li.prog_id);
  o.Set("type", li.type);
  if (li.type == BPF_LINK_TYPE_CGROUP) {
    o.Set("cgroupId", Napi::BigInt::New(env, (uint64_t)li.cgroup.cgroup_id));
    o.Set("attachType", li.cgroup.attach_type);
  }
  return o;
}

// probe() -> true, or throws with the errno of creating a tiny map (EPERM without CAP_BPF).
static Napi::Value Probe(const Napi::CallbackInfo &info) {
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "mesh_probe", 4, 4, 1, nullptr);
  if (fd < 0) ThrowErrno(info.Env(), errno, "bpf_map_create", "mesh_probe");
  close(fd);
  return Napi::Boolean::New(info.Env(), true);
}

static Napi::Value LibbpfVersion(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfLogger();
  exports.Set("BpfObject", BpfObject::Init(env));
  exports.Set("detachLink", Napi::Function::New(env, DetachLink));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo));
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion));
  InitMaps(env, exports);
  return exports;
}

}  // namespace mesh

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mesh::Init(env, exports); }

NODE_API_MODULE(meshplane_bpf, InitModule)
