#include "object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace mesh {

Napi::Function BpfObject::Init(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceMethod("load", &BpfObject::Load),
                         InstanceMethod("programs", &BpfObject::Programs),
                         InstanceMethod("maps", &BpfObject::Maps),
                         InstanceMethod("attachCgroup", &BpfObject::AttachCgroup),
                         InstanceMethod("attachSkMsg", &BpfObject::AttachSkMsg),
                         InstanceMethod("detachSkMsg", &BpfObject::DetachSkMsg),
                         InstanceMethod("close", &BpfObject::Close),
                     });
}

// new BpfObject(objectPath, pinRootPath)
BpfObject::BpfObject(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BpfObject>(info) {
  std::string path = info[0].As<Napi::String>();
  std::string pin_root = info[1].As<Napi::String>();
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
  TakeLibbpfLog();
  obj_ = bpf_object__open_file(path.c_str(), &opts);
  if (!obj_) ThrowErrno(info.Env(), errno, "bpf_object__open_file", "", path + "\n" + TakeLibbpfLog());
}

BpfObject::~BpfObject() {
  if (obj_) bpf_object__close(obj_);
}

struct bpf_object *BpfObject::Obj(Napi::Env env) {
  if (!obj_) ThrowErrno(env, EBADF, "bpf_object", "", "object is closed");
  return obj_;
}

struct bpf_program *BpfObject::Prog(Napi::Env env, const std::string &name) {
  struct bpf_program *p = bpf_object__find_program_by_name(Obj(env), name.c_str());
  if (!p) ThrowErrno(env, ENOENT, "bpf_object__find_program_by_name", "", "no program " + name);
  if (!loaded_) ThrowErrno(env, EBADF, "bpf_program", "", "object is not loaded");
  return p;
}

int BpfObject::MapFd(Napi::Env env, const std::string &name) {
  struct bpf_map *m = bpf_object__find_map_by_name(Obj(env), name.c_str());
  if (!m) ThrowErrno(env, ENOENT, "bpf_object__find_map_by_name", name);
  return bpf_map__fd(m);
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo &info) {
  TakeLibbpfLog();
  int err = bpf_object__load(Obj(info.Env()));
  if (err) ThrowErrno(info.Env(), err, "bpf_object__load", "", TakeLibbpfLog());
  loaded_ = true;
  return info.Env().Undefined();
}

Napi::Value BpfObject::Programs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  struct bpf_program *p;
  uint32_t i = 0;
  bpf_object__for_each_program(p, Obj(env)) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_program__name(p));
    o.Set("section", bpf_program__section_name(p));
    o.Set("fd", loaded_ ? bpf_program__fd(p) : -1);
    out.Set(i++, o);
  }
  return out;
}

Napi::Value BpfObject::Maps(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  struct bpf_map *m;
  uint32_t i = 0;
  bpf_object__for_each_map(m, Obj(env)) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bpf_map__name(m));
    o.Set("fd", loaded_ ? bpf_map__fd(m) : -1);
    o.Set("type", (double)bpf_map__type(m));
    o.Set("keySize", bpf_map__key_size(m));
    o.Set("valueSize", bpf_map__value_size(m));
    o.Set("maxEntries", bpf_map__max_entries(m));
    const char *pin = bpf_map__pin_path(m);
    o.Set("pinPath", pin ? Napi::Value(Napi::String::New(env, pin)) : env.Null());
    out.Set(i++, o);
  }
  return out;
}

// attachCgroup(program, cgroupDir, linkPinPath) -> "attached" | "adopted"
// A link pinned by an earlier agent is adopted: its program is swapped atomically
// (BPF_LINK_UPDATE), so connections never see a moment without the hook.
Napi::Value BpfObject::AttachCgroup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string prog_name = info[0].As<Napi::String>();
  std::string cg_path = info[1].As<Napi::String>();
  std::string pin = info[2].As<Napi::String>();
  struct bpf_program *prog = Prog(env, prog_name);

  struct stat cg_st;
  if (stat(cg_path.c_str(), &cg_st) != 0) ThrowErrno(env, errno, "stat", "", cg_path);

  if (access(pin.c_str(), F_OK) == 0) {
    struct bpf_link *link = bpf_link__open(pin.c_str());
    if (!link) ThrowErrno(env, errno, "bpf_link__open", "", pin);
    struct bpf_link_info li = {};
    __u32 len = sizeof(li);
    int err = bpf_obj_get_info_by_fd(bpf_link__fd(link), &li, &len);
    // A pinned link on another cgroup is someone else's: never hijack it.
    if (!err && (li.type != BPF_LINK_TYPE_CGROUP || li.cgroup.cgroup_id != (__u64)cg_st.st_ino)) err = -EEXIST;
    if (!err) err = bpf_link__update_program(link, prog);
    bpf_link__destroy(link);  // closes our fd; the pin keeps the link
    if (err) ThrowErrno(env, err, "bpf_link__update_program", "", pin + " (" + prog_name + ")");
    return Napi::String::New(env, "adopted");
  }

  int cg_fd = open(cg_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg_fd < 0) ThrowErrno(env, errno, "open", "", cg_path);
  TakeLibbpfLog();
  struct bpf_link *link = bpf_program__attach_cgroup(prog, cg_fd);
  int saved = errno;
  close(cg_fd);
  if (!link) ThrowErrno(env, saved, "bpf_program__attach_cgroup", "", prog_name + " -> " + cg_path);
  int err = bpf_link__pin(link, pin.c_str());
  if (err) {
    bpf_link__destroy(link);  // unpinned: destroying detaches, leaving nothing behind
    ThrowErrno(env, err, "bpf_link__pin", "", pin);
  }
  bpf_link__disconnect(link);  // keep the attachment alive after our fd closes
  bpf_link__destroy(link);
  return Napi::String::New(env, "attached");
}

// attachSkMsg(program, sockhashMapName): the sockhash holds the program, so the
// attachment lives as long as the pinned map does. Re-attaching replaces it.
Napi::Value BpfObject::AttachSkMsg(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string prog_name = info[0].As<Napi::String>();
  std::string map_name = info[1].As<Napi::String>();
  int prog_fd = bpf_program__fd(Prog(env, prog_name));
  int map_fd = MapFd(env, map_name);
  int err = bpf_prog_attach(prog_fd, map_fd, BPF_SK_MSG_VERDICT, 0);
  if (err) ThrowErrno(env, err, "bpf_prog_attach(BPF_SK_MSG_VERDICT)", map_name);
  return env.Undefined();
}

// detachSkMsg(program, sockhashMapName) -> false when it was not attached
Napi::Value BpfObject::DetachSkMsg(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string prog_name = info[0].As<Napi::String>();
  std::string map_name = info[1].As<Napi::String>();
  int prog_fd = bpf_program__fd(Prog(env, prog_name));
  int map_fd = MapFd(env, map_name);
  int err = bpf_prog_detach2(prog_fd, map_fd, BPF_SK_MSG_VERDICT);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err) ThrowErrno(env, err, "bpf_prog_detach2(BPF_SK_MSG_VERDICT)", map_name);
  return Napi::Boolean::New(env, true);
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo &info) {
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
  loaded_ = false;
  return info.Env().Undefined();
}

}  // namespace mesh
