#pragma once
#include <napi.h>

struct bpf_object;
struct bpf_program;

namespace mesh {

// One opened (and then loaded) BPF object file. Maps declared LIBBPF_PIN_BY_NAME are
// pinned under (or, when already pinned and compatible, reused from) the pin root.
// Closing it drops only this process's fds: pinned maps and pinned links stay.
class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit BpfObject(const Napi::CallbackInfo &info);
  ~BpfObject() override;

 private:
  Napi::Value Load(const Napi::CallbackInfo &info);
  Napi::Value Programs(const Napi::CallbackInfo &info);
  Napi::Value Maps(const Napi::CallbackInfo &info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo &info);
  Napi::Value AttachSkMsg(const Napi::CallbackInfo &info);
  Napi::Value DetachSkMsg(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);

  struct bpf_object *Obj(Napi::Env env);
  struct bpf_program *Prog(Napi::Env env, const std::string &name);
  int MapFd(Napi::Env env, const std::string &name);

  struct bpf_object *obj_ = nullptr;
  bool loaded_ = false;
};

}  // namespace mesh
