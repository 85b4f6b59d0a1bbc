{
  # One addon, three code paths. Portable code is built for baseline x86-64; each ISA folder is a static
  # library built with its own -m flags, and cpu.cc picks the path at load time from CPUID.
  # NOTE: ISA translation units must hold plain functions and intrinsics only (no std templates, no N-API):
  # an inline template instantiated there with AVX-512 could be chosen by the linker for baseline callers.
  # -ffp-contract=off: every FMA is written as one. With implicit contraction, GCC could fuse a scalar loop's
  # a*b - c*d one way in its vectorized version and another in the version it runs when the arrays might overlap,
  # a choice made at run time from the addresses: results then hung on where the arrays happened to lie.
  "target_defaults": {
    "cflags!": ["-fno-exceptions", "-O2", "-O0", "-fno-omit-frame-pointer"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-O2", "-O0"],
    "cflags": ["-O3", "-fPIC", "-fno-math-errno", "-fno-trapping-math", "-fomit-frame-pointer", "-ffp-contract=off"],
    "cflags_cc": ["-O3", "-std=c++17", "-fexceptions", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"],
    "include_dirs": ["native"],
    "conditions": [["OS!='linux' or target_arch!='x64'", {"defines": ["FATHOM_NO_X86"]}]]
  },
  "targets": [
    {
      "target_name": "fathom_avx512",
      "type": "static_library",
      "cflags": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mavx512vnni", "-mfma", "-mf16c", "-mavx2"],
      "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mavx512vnni", "-mfma", "-mf16c", "-mavx2"],
      "sources": ["<!@(node scripts/list_sources.mjs native/arch/x86/avx512)"]
    },
    {
      "target_name": "fathom_avx2",
      "type": "static_library",
      "cflags": ["-mavx2", "-mfma", "-mf16c"],
      "cflags_cc": ["-mavx2", "-mfma", "-mf16c"],
      "sources": ["<!@(node scripts/list_sources.mjs native/arch/x86/avx2)"]
    },
    {
      "target_name": "fathom",
      "dependencies": ["fathom_avx512", "fathom_avx2"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "libraries": ["-lpthread"],
      "sources": ["<!@(node scripts/list_sources.mjs native native/kernels native/bind)"]
    }
  ]
}
