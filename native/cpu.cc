#include "cpu.h"
#include <atomic>
#if defined(__x86_64__) && !defined(FATHOM_NO_X86)
#include <cpuid.h>
#endif

namespace fathom {
namespace {

CpuFeatures detect() {
  CpuFeatures f{};
#if defined(__x86_64__) && !defined(FATHOM_NO_X86)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  bool ymm_os = (xcr0 & 0x6) == 0x6;
  bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_os) { f.fma = false; f.f16c = false; }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = ymm_os && (b & (1u << 5));
    f.avx512f = zmm_os && (b & (1u << 16));
    f.avx512dq = zmm_os && (b & (1u << 17));
    f.avx512bw = zmm_os && (b & (1u << 30));
    f.avx512vl = zmm_os && (b & (1u << 31));
    f.avx512vnni = zmm_os && (c & (1u << 11));
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = zmm_os && (a & (1u << 5));
#endif
  return f;
}

const CpuFeatures g_features = detect();

Isa detect_best() {
  const CpuFeatures& f = g_features;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.avx2 && f.f16c) return ISA_AVX512;
  if (f.avx2 && f.fma && f.f16c) return ISA_AVX2;
  return ISA_SCALAR;
}

std::atomic<int> g_isa{static_cast<int>(detect_best())};

}  // namespace

const CpuFeatures& cpu_features() { return g_features; }
Isa best_isa() { return detect_best(); }
Isa current_isa() { return static_cast<Isa>(g_isa.load(std::memory_order_relaxed)); }
bool set_isa(Isa isa) {
  if (isa > best_isa() || isa < ISA_SCALAR) return false;
  g_isa.store(static_cast<int>(isa));
  return true;
}
bool has_bf16_dot() { return current_isa() == ISA_AVX512 && g_features.avx512bf16; }
const char* isa_name(Isa isa) {
  switch (isa) {
    case ISA_AVX512: return "avx512";
    case ISA_AVX2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace fathom
