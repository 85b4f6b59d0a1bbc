// N-API glue helpers. Each native/bind/*.cc file registers its functions with FATHOM_REGISTER and checks
// every argument (type, length against the dimensions given) before calling a kernel: a kernel must never
// read or write out of bounds, whatever JS passes. Errors name the function: "[gemm_f32] ...".
#pragma once
#include <napi.h>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace fathom {

typedef void (*Registrar)(Napi::Env env, Napi::Object exports);
int add_registrar(Registrar r);
void run_registrars(Napi::Env env, Napi::Object exports);

#define FATHOM_REGISTER(fn) static int fathom_registered_##fn = ::fathom::add_registrar(fn)

[[noreturn]] void throw_arg(const Napi::CallbackInfo& info, const char* op, const std::string& msg);

// Typed-array arguments. `need` is the minimum element count; the pointer is to the view's first element.
float* f32_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need);
double* f64_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need);
uint16_t* u16_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need);
int32_t* i32_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need);
uint8_t* u8_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need);
// Any typed array, as bytes; *len receives its byte length.
uint8_t* bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* op, size_t* len);
bool is_nullish(const Napi::CallbackInfo& info, size_t i);

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t lo, int64_t hi);
double num_arg(const Napi::CallbackInfo& info, size_t i, const char* op);
bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* op);

void set_fn(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback cb);

// A kind of native object (a packed weight) owned by a frozen, type-tagged JS object: `free` runs when that object is
// collected, and V8 is told of its `bytes` as external memory for as long as it lives.
struct PackedKind {
  napi_type_tag tag;
  const char* what;                 // for errors: "a packed matrix made by packB"
  size_t (*bytes)(const void* p);
  void (*free)(void* p);
};
// Wraps p (freed here if wrapping fails) with the given read-only properties.
Napi::Object wrap_packed(Napi::Env env, const char* op, const PackedKind& kind, void* p,
                         const std::initializer_list<Napi::PropertyDescriptor>& props);
// The live object of `kind` at argument i (a TypeError naming the argument otherwise).
const void* packed_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const PackedKind& kind);
// The same for a value (e.g. an array element); `name` says which in the error.
const void* packed_value(const Napi::CallbackInfo& info, Napi::Value v, const char* op, const PackedKind& kind,
                         const std::string& name);

}  // namespace fathom
