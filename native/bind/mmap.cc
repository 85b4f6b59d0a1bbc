// Memory-maps a file (copy-on-write, so tensors over it can be written without touching the file) and hands it
// to JS as an external ArrayBuffer; the mapping is released when the ArrayBuffer is garbage-collected.
#include "bind.h"
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fathom {
namespace {

Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw_arg(info, "map_file", "expects a path");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Napi::Error::New(env, "[map_file] cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    throw Napi::Error::New(env, "[map_file] cannot stat " + path + ": " + std::strerror(e));
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    close(fd);
    return Napi::ArrayBuffer::New(env, 0);
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) throw Napi::Error::New(env, "[map_file] cannot map " + path + ": " + std::strerror(e));
  struct Hint { size_t size; };
  Hint* hint = new Hint{size};
  return Napi::ArrayBuffer::New(env, p, size, [](Napi::Env, void* data, Hint* h) {
    munmap(data, h->size);
    delete h;
  }, hint);
}

void Register(Napi::Env env, Napi::Object exports) { set_fn(env, exports, "mapFile", MapFile); }
FATHOM_REGISTER(Register);

}  // namespace
}  // namespace fathom
