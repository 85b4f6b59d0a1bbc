// CPU feature detection and the code path (ISA) kernels dispatch on. One build runs on any x86-64:
// the AVX-512 path needs AVX512F/BW/VL/DQ + FMA, the AVX2 path AVX2 + FMA + F16C; otherwise scalar.
#pragma once

namespace fathom {

enum Isa { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

struct CpuFeatures {
  bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512dq, avx512bf16, avx512vnni;
};

const CpuFeatures& cpu_features();
Isa best_isa();              // the best path this CPU supports
Isa current_isa();           // the path kernels use now
bool set_isa(Isa isa);       // false (and no change) if the CPU lacks it
bool has_bf16_dot();         // AVX512-BF16 instructions usable on the current path
const char* isa_name(Isa isa);

}  // namespace fathom
