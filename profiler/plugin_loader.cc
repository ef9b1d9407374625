// Loading the pprof writer plugin (plugin_loader.h).
#include "profiler/plugin_loader.h"

#include <dlfcn.h>
#include <errno.h>

#include "alloc/cxx_runtime.h"

// Defined when the static library's pprof objects are linked in.
extern "C" int assay_pprof_write(const AssayProfileData*, const char*, char*, size_t)
    __attribute__((weak));
extern "C" int assay_pprof_serialize(const AssayProfileData*, AssayPprofSinkFn, void*, char*,
                                     size_t) __attribute__((weak));

namespace assay::profiler::plugin {
namespace {

void* g_pprof_handle = nullptr;  // libassay_pprof.so, once loaded

// Loads libassay_pprof.so once; its handle, or nullptr with the reason in *why.
void* LoadPlugin(std::string* why) {
  static void* handle = nullptr;
  static std::string load_error;
  static bool tried = false;
  if (tried) {
    *why = load_error;
    return handle;
  }
  tried = true;
  Dl_info self;
  std::string dir = ".";
  if (dladdr(reinterpret_cast<void*>(&LoadPlugin), &self) != 0 && self.dli_fname != nullptr) {
    dir = self.dli_fname;
    const size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : dir.substr(0, slash);
  }
  // Beside libassay.so (a build tree), else in the private directory an
  // install puts it in (<libdir>/assay/, kept off the linker's search path).
  std::string path = dir + "/libassay_pprof.so";
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    load_error = "cannot load " + path + ": " + (e != nullptr ? e : "unknown error");
    path = dir + "/assay/libassay_pprof.so";
    h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  if (h == nullptr) {
    const char* e = dlerror();
    load_error += "; cannot load " + path + ": " + (e != nullptr ? e : "unknown error");
    *why = load_error;
    return nullptr;
  }
  // A program with its own, different libprotobuf in the global scope would
  // capture the writer's protobuf calls: refuse rather than crash it.
  const char* probe = "_ZN6google8protobuf8internal13VerifyVersionEiiPKc";
  void* global = dlsym(RTLD_DEFAULT, probe);
  void* ours = dlsym(h, probe);
  if (global != nullptr && ours != nullptr && global != ours) {
    load_error = "the program has its own libprotobuf; pprof output disabled";
    *why = load_error;
    return nullptr;
  }
  handle = h;
  __atomic_store_n(&g_pprof_handle, h, __ATOMIC_RELEASE);
  *why = load_error;
  return handle;
}

// The plugin's function `name` (static: `linked`, when the objects are in).
void* Function(void* linked, const char* name, std::string* why) {
  if (linked != nullptr) return linked;
  void* h = LoadPlugin(why);
  if (h == nullptr) return nullptr;
  void* f = dlsym(h, name);
  if (f == nullptr) *why = "libassay_pprof.so has no " + std::string(name);
  return f;
}

}  // namespace

int CallWriter(const AssayProfileData& data, const char* path, std::string* error) {
  auto writer = reinterpret_cast<AssayPprofWriteFn>(
      Function(reinterpret_cast<void*>(assay_pprof_write), "assay_pprof_write", error));
  if (writer == nullptr) return ENOSYS;
  char err[512] = "";
  const int rc = writer(&data, path, err, sizeof(err));
  if (rc != 0) *error = err;
  return rc;
}

int CallSerializer(const AssayProfileData& data, std::string* out, std::string* error) {
  auto serialize = reinterpret_cast<AssayPprofSerializeFn>(
      Function(reinterpret_cast<void*>(assay_pprof_serialize), "assay_pprof_serialize", error));
  if (serialize == nullptr) return ENOSYS;
  char err[512] = "";
  auto append = [](void* arg, const void* bytes, size_t len) -> int {
    try {
      static_cast<std::string*>(arg)->append(static_cast<const char*>(bytes), len);
      return 0;
    } catch (...) {
      internal::cxx::BalanceCatch();  // bad_alloc came through the program's runtime
      return ENOMEM;
    }
  };
  out->clear();
  const int rc = serialize(&data, append, out, err, sizeof(err));
  if (rc != 0) *error = err;
  return rc;
}

void* Symbol(const char* name, bool may_load) {
  if (__atomic_load_n(&g_pprof_handle, __ATOMIC_ACQUIRE) == nullptr) {
    // The static library links the objects in and never loads the plugin.
    if (!may_load || assay_pprof_write != nullptr) return nullptr;
    std::string why;
    LoadPlugin(&why);
  }
  void* h = __atomic_load_n(&g_pprof_handle, __ATOMIC_ACQUIRE);
  return h != nullptr ? dlsym(h, name) : nullptr;
}

}  // namespace assay::profiler::plugin
