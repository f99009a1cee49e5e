// Map CRUD on fds. Keys and values are raw bytes (Buffers) laid out by the TS encoders;
// batches are N keys (and values) packed back to back. No interpretation happens here.
#include "maps.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"

namespace mesh {

static int Fd(const Napi::CallbackInfo &info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
static uint32_t U32(const Napi::CallbackInfo &info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }
static Napi::Buffer<uint8_t> Buf(const Napi::CallbackInfo &info, size_t i) { return info[i].As<Napi::Buffer<uint8_t>>(); }

// Batch syscalls are missing for some map types (sockhash) and kernels; those fall back
// to one syscall per element instead of failing.
static constexpr int kENOTSUPP = 524;  // kernel-internal "operation not supported"
static bool NoBatch(int err) { return err == kENOTSUPP || err == EOPNOTSUPP; }

// openPinned(path) -> { fd, name, type, keySize, valueSize, maxEntries, flags, id }
static Napi::Value OpenPinned(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(env, errno, "bpf_obj_get", "", path);
  struct bpf_map_info mi = {};
  __u32 len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(fd, &mi, &len) != 0) {
    int saved = errno;
    close(fd);
    ThrowErrno(env, saved, "bpf_obj_get_info_by_fd", "", path);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", fd);
  o.Set("name", mi.name);
  o.Set("type", mi.type);
  o.Set("keySize", mi.key_size);
  o.Set("valueSize", mi.value_size);
  o.Set("maxEntries", mi.max_entries);
  o.Set("flags", mi.map_flags);
  o.Set("id", mi.id);
  return o;
}

static Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  close(Fd(info, 0));
  return info.Env().Undefined();
}

// lookup(fd, key, valueSize) -> Buffer | null
static Napi::Value Lookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(info, 0);
  auto key = Buf(info, 1);
  auto value = Napi::Buffer<uint8_t>::New(env, U32(info, 2));
  int err = bpf_map_lookup_elem(fd, key.Data(), value.Data());
  if (err == -ENOENT) return env.Null();
  if (err) ThrowErrno(env, err, "bpf_map_lookup_elem", MapNameOf(fd));
  return value;
}

// update(fd, key, value, flags)
static Napi::Value Update(const Napi::CallbackInfo &info) {
  int fd = Fd(info, 0);
  int err = bpf_map_update_elem(fd, Buf(info, 1).Data(), Buf(info, 2).Data(), U32(info, 3));
  if (err) ThrowErrno(info.Env(), err, "bpf_map_update_elem", MapNameOf(fd));
  return info.Env().Undefined();
}

// delete(fd, key) -> false when the key was absent (deletes are idempotent)
static Napi::Value Delete(const Napi::CallbackInfo &info) {
  int fd = Fd(info, 0);
  int err = bpf_map_delete_elem(fd, Buf(info, 1).Data());
  if (err == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (err) ThrowErrno(info.Env(), err, "bpf_map_delete_elem", MapNameOf(fd));
  return Napi::Boolean::New(info.Env(), true);
}

// updateBatch(fd, keys, values, count, flags) -> count written. One syscall per call
// where the map supports it; on failure the error says which element stopped it.
static Napi::Value UpdateBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(info, 0);
  auto keys = Buf(info, 1);
  auto values = Buf(info, 2);
  uint32_t total = U32(info, 3);
  if (total == 0) return Napi::Number::New(env, 0);
  size_t ks = keys.Length() / total, vs = values.Length() / total;
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = U32(info, 4));
  __u32 count = total;
  int err = bpf_map_update_batch(fd, keys.Data(), values.Data(), &count, &opts);
  if (err && NoBatch(-err)) {
    for (count = 0; count < total; count++) {
      err = bpf_map_update_elem(fd, keys.Data() + count * ks, values.Data() + count * vs, opts.elem_flags);
      if (err) break;
    }
  }
  if (err)
    ThrowErrno(env, err, "bpf_map_update_batch", MapNameOf(fd),
               "stopped at element " + std::to_string(count) + " of " + std::to_string(total), count);
  return Napi::Number::New(env, total);
}

// deleteBatch(fd, keys, count) -> how many existed. Missing keys are skipped, not errors,
// because the reconciler re-issues deletes after a crash.
static Napi::Value DeleteBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(info, 0);
  auto keys = Buf(info, 1);
  uint32_t total = U32(info, 2);
  if (total == 0) return Napi::Number::New(env, 0);
  size_t ks = keys.Length() / total;
  uint32_t done = 0, deleted = 0;
  bool batch = true;
  while (done < total) {
    int err;
    __u32 count = total - done;
    if (batch) {
      err = bpf_map_delete_batch(fd, keys.Data() + done * ks, &count, nullptr);
      if (err && NoBatch(-err)) {
        batch = false;
        continue;
      }
    } else {
      count = 0;
      err = bpf_map_delete_elem(fd, keys.Data() + done * ks);
      if (!err) count = 1;
    }
    done += count;
    deleted += count;
    if (err == -ENOENT) {
      done++;  // the key at `done` is already gone: skip it
    } else if (err) {
      ThrowErrno(env, err, "bpf_map_delete_batch", MapNameOf(fd), "stopped at element " + std::to_string(done), done);
    }
  }
  return Napi::Number::New(env, deleted);
}

// keys(fd, keySize) -> Buffer of every key back to back (get_next_key walk)
static Napi::Value Keys(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(info, 0);
  size_t ks = U32(info, 1);
  std::vector<uint8_t> out, next(ks);
  const void *prev = nullptr;
  for (;;) {
    int err = bpf_map_get_next_key(fd, prev, next.data());
    if (err == -ENOENT) break;
    if (err) ThrowErrno(env, err, "bpf_map_get_next_key", MapNameOf(fd));
    out.insert(out.end(), next.begin(), next.end());
    prev = out.data() + out.size() - ks;
  }
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
}

// dump(fd, keySize, valueSize) -> { keys, values, count }. Batch lookup (one syscall per
// chunk) where supported, else get_next_key + lookup; entries deleted mid-walk are skipped.
static Napi::Value Dump(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(info, 0);
  size_t ks = U32(info, 1), vs = U32(info, 2);
  std::vector<uint8_t> keys, values;
  size_t n = 0;
  std::vector<uint8_t> in(ks < 8 ? 8 : ks), out(in.size());
  bool first = true, batch = true;
  while (batch) {
    __u32 chunk = 4096;
    keys.resize((n + chunk) * ks);
    values.resize((n + chunk) * vs);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : in.data(), out.data(), keys.data() + n * ks,
                                   values.data() + n * vs, &chunk, nullptr);
    if (err && NoBatch(-err) && first) {
      batch = false;
      break;
    }
    if (err && err != -ENOENT) ThrowErrno(env, err, "bpf_map_lookup_batch", MapNameOf(fd));
    n += chunk;
    if (err == -ENOENT) break;  // end of map
    in.swap(out);
    first = false;
  }
  if (!batch) {
    std::vector<uint8_t> k(ks);
    const void *prev = nullptr;
    std::vector<uint8_t> prev_buf(ks);
    for (;;) {
      int err = bpf_map_get_next_key(fd, prev, k.data());
      if (err == -ENOENT) break;
      if (err) ThrowErrno(env, err, "bpf_map_get_next_key", MapNameOf(fd));
      keys.resize((n + 1) * ks);
      values.resize((n + 1) * vs);
      err = bpf_map_lookup_elem(fd, k.data(), values.data() + n * vs);
      if (!err) {
        memcpy(keys.data() + n * ks, k.data(), ks);
        n++;
      } else if (err != -ENOENT) {
        ThrowErrno(env, err, "bpf_map_lookup_elem", MapNameOf(fd));
      }
      prev_buf = k;
      prev = prev_buf.data();
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), n * ks));
  o.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), n * vs));
  o.Set("count", Napi::Number::New(env, (double)n));
  return o;
}

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("openPinned", Napi::Function::New(env, OpenPinned));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("lookup", Napi::Function::New(env, Lookup));
  exports.Set("update", Napi::Function::New(env, Update));
  exports.Set("delete", Napi::Function::New(env, Delete));
  exports.Set("updateBatch", Napi::Function::New(env, UpdateBatch));
  exports.Set("deleteBatch", Napi::Function::New(env, DeleteBatch));
  exports.Set("keys", Napi::Function::New(env, Keys));
  exports.Set("dump", Napi::Function::New(env, Dump));
}

}  // namespace mesh
