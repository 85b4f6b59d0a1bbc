#include "bind.h"
#include <vector>

namespace fathom {

static std::vector<Registrar>& registrars() {
  static std::vector<Registrar> r;
  return r;
}
int add_registrar(Registrar r) { registrars().push_back(r); return 0; }
void run_registrars(Napi::Env env, Napi::Object exports) { for (Registrar r : registrars()) r(env, exports); }

void throw_arg(const Napi::CallbackInfo& info, const char* op, const std::string& msg) {
  throw Napi::TypeError::New(info.Env(), std::string("[") + op + "] " + msg);
}

template <napi_typedarray_type T, class E>
static E* typed(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need, const char* tname) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw_arg(info, op, "argument " + std::to_string(i) + " must be a " + tname);
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  if (ta.TypedArrayType() != T) throw_arg(info, op, "argument " + std::to_string(i) + " must be a " + tname);
  if (need < 0 || static_cast<int64_t>(ta.ElementLength()) < need)
    throw_arg(info, op, "argument " + std::to_string(i) + " (" + tname + ") has " + std::to_string(ta.ElementLength()) +
                            " elements, needs " + std::to_string(need));
  return reinterpret_cast<E*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

float* f32_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need) {
  return typed<napi_float32_array, float>(info, i, op, need, "Float32Array");
}
double* f64_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need) {
  return typed<napi_float64_array, double>(info, i, op, need, "Float64Array");
}
uint16_t* u16_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need) {
  return typed<napi_uint16_array, uint16_t>(info, i, op, need, "Uint16Array");
}
int32_t* i32_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need) {
  return typed<napi_int32_array, int32_t>(info, i, op, need, "Int32Array");
}
uint8_t* u8_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t need) {
  return typed<napi_uint8_array, uint8_t>(info, i, op, need, "Uint8Array");
}
uint8_t* bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* op, size_t* len) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw_arg(info, op, "argument " + std::to_string(i) + " must be a typed array");
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  *len = ta.ByteLength();
  return static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
}
bool is_nullish(const Napi::CallbackInfo& info, size_t i) {
  return i >= info.Length() || info[i].IsNull() || info[i].IsUndefined();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t lo, int64_t hi) {
  if (i >= info.Length() || !info[i].IsNumber()) throw_arg(info, op, "argument " + std::to_string(i) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw_arg(info, op, "argument " + std::to_string(i) + " must be an integer in [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "], got " + std::to_string(d));
  return static_cast<int64_t>(d);
}
double num_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsNumber()) throw_arg(info, op, "argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw_arg(info, op, "argument " + std::to_string(i) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

void set_fn(Napi::Env env, Napi::Object exports, const char* name, Napi::Function::Callback cb) {
  exports.Set(name, Napi::Function::New(env, cb, name));
}

namespace {
void finalize_packed(napi_env env, void* data, void* hint) {
  const PackedKind* kind = static_cast<const PackedKind*>(hint);
  int64_t change = 0;
  napi_adjust_external_memory(env, -static_cast<int64_t>(kind->bytes(data)), &change);
  kind->free(data);
}
}  // namespace

Napi::Object wrap_packed(Napi::Env env, const char* op, const PackedKind& kind, void* p,
                         const std::initializer_list<Napi::PropertyDescriptor>& props) {
  Napi::Object o = Napi::Object::New(env);
  if (napi_type_tag_object(env, o, &kind.tag) != napi_ok ||
      napi_wrap(env, o, p, finalize_packed, const_cast<PackedKind*>(&kind), nullptr) != napi_ok) {
    kind.free(p);
    throw Napi::Error::New(env, std::string("[") + op + "] could not wrap the packed matrix");
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(kind.bytes(p)));
  o.DefineProperties(props);
  o.Freeze();
  return o;
}

const void* packed_value(const Napi::CallbackInfo& info, Napi::Value v, const char* op, const PackedKind& kind,
                         const std::string& name) {
  bool tagged = false;
  if (v.IsObject()) napi_check_object_type_tag(info.Env(), v, &kind.tag, &tagged);
  if (!tagged) throw_arg(info, op, name + " must be " + kind.what);
  void* raw = nullptr;
  if (napi_unwrap(info.Env(), v, &raw) != napi_ok || !raw) throw_arg(info, op, name + " is not a live packed matrix");
  return raw;
}

const void* packed_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const PackedKind& kind) {
  if (i >= info.Length()) throw_arg(info, op, "argument " + std::to_string(i) + " must be " + kind.what);
  return packed_value(info, info[i], op, kind, "argument " + std::to_string(i));
}

}  // namespace fathom
