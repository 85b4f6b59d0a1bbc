// Quantized matrix products: out[m, n] = sum_k x[m, k] * w[n, k] for a weight W [N, K] stored as ggml Q8_0, Q4_0,
// Q4_K blocks or as int8 with one f32 scale per row. Activations are quantized inside the call (llama.cpp style):
// int8 blocks of 32 with an f32 scale for q8_0 / q4_0, 256-blocks (q8_K-like, sums per 32) for q4_K, one scale per
// row of x for int8.
//
// Packed layout (one layout for every code path, so a packing stays valid when the path changes): rows are
// interleaved in groups of QG = 16 (the last group zero padded). Each group is a "meta" region (scales; padded to
// 64 bytes) followed by a "quants" region; groups are 64-byte aligned and contiguous, so a group is read front to back.
// In the quants region, a 64-byte vector holds 4 consecutive bytes of each of the 16 rows (lane r = row r), which is
// what one vpdpbusd consumes (16 rows x 4 k):
//   q8_0: per 32-block b: 8 vectors; vector j lane r = row r's q[4j..4j+4) (int8).           meta: [nb][16] f16 d
//   q4_0: per 32-block b: 4 vectors; vector v lane r = row r's ggml bytes [4v..4v+4): low nibbles = elements 4v+t,
//         high nibbles = elements 16+4v+t (unsigned q; w = d * (q - 8)).                     meta: [nb][16] f16 d
//   q4_K: per 256-super-block: 4 x 8 vectors; vector (g, v) lane r = row r's qs bytes [32g+4v..+4): low nibbles =
//         sub-block 2g elements 4v+t, high nibbles = sub-block 2g+1 elements 4v+t.
//         meta per super-block (320 bytes): d[16] f16, dmin[16] f16, sc[8][16] u8, m[8][16] u8 (6-bit values unpacked)
//   int8: per 32-block (K zero padded to a multiple of 32): 8 vectors like q8_0.               meta: [16] f32 scale
// The AVX2 path reads the same vectors as two 8-row halves (bytes 0..31 and 32..63).
//
// This header holds plain declarations only (no templates): it is included by the ISA translation units.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fathom {

enum QuantKind { QK_Q8_0 = 0, QK_Q4_0 = 1, QK_Q4_K = 2, QK_INT8 = 3 };

constexpr int QUANT_QG = 16;            // rows per group
constexpr int QUANT_Q4K_META = 320;     // meta bytes per q4_K super-block per group

struct QuantPacked {
  int kind;             // QuantKind
  int isa;              // code path current when packed (informational: the layout is shared by all paths)
  int64_t N, K;         // logical shape
  int64_t Kp;           // K padded (int8: to 32; others: K)
  int64_t nb;           // 32-blocks per row (Kp / 32)
  int64_t ngroups;      // ceil(N / 16)
  int64_t meta_bytes;   // per group, multiple of 64
  int64_t group_bytes;  // per group (meta + quants), multiple of 64
  size_t bytes;         // total allocation
  uint8_t* data;        // 64-byte aligned
};

// Quantized activations for rows [0, M) of x. q: int8 [M][ldq] (ldq = Kp, zero padded); d: f32 scales [M][ldd]
// (per 32-block for q8_0/q4_0, per 256 for q4_K, one per row for int8); s: int32 sums of q per 32-block [M][lds].
struct QuantX {
  const int8_t* q;
  const float* d;
  const int32_t* s;
  int64_t ldq, ldd, lds;
};

// Activations for M >= 2 re-laid out in tiles of T rows (T = the path's tile: AVX-512 8, AVX2 4; a last partial tile
// is zero padded), so that one kernel call streams a weight group once and applies each weight vector to all T rows
// with a single pointer per array and constant offsets. Tile t starts at q + t * sq, d + t * sd, c + t * sc:
//   q: int8 [nb][T][32]                     (block b of tile row i at (b * T + i) * 32)
//   d: f32 [ndb][T]                         (the activation scales of QuantX, ndb = ldd)
//   c: int32 [nb][T] accumulator starts:    q8_0: -128 * sum (VNNI: weights biased by 128; else 0), q4_0: -8 * sum,
//                                           q4_K: [nb / 2][T] the sums of sub-blocks 2k, 2k+1 as an int16 pair
//                                           (low half 2k; for the mins, by vpmaddwd), int8: per chunk of 256 blocks
//                                           [nchunks][T] of -128 * sum (VNNI) or 0
struct QuantXT {
  const int8_t* q;
  const float* d;
  const int32_t* c;
  int64_t sq, sd, sc;
};

// Entry points used by the N-API glue (arguments already validated). Returns nullptr on allocation failure.
// data: ggml bytes row by row (block kinds) or int8 [N][K] (QK_INT8, with scales [N]).
QuantPacked* quant_pack(int kind, int64_t N, int64_t K, const uint8_t* data, const float* scales);
void quant_packed_free(QuantPacked* p);
bool quant_packed_compatible(const QuantPacked* p);
void quant_matmul(int64_t M, const float* x, const QuantPacked* p, float* out);
// Several weights of one kind and K, weight i against input xs[i] (M x K; inputs at the same address, e.g. q, k and v's,
// are quantized once): one parallel pass covers every weight's groups, and each out[i] gets exactly what
// quant_matmul(M, xs[i], ps[i], outs[i]) gives (MLA's per-head k_b / v_b in one call; q, k, v or gate and up).
void quant_matmul_many(int64_t M, int n, const float* const* xs, const QuantPacked* const* ps, float* const* outs);

// ---- ISA kernels (plain functions) for M = 1 (matvec) and the scalar path. One call: rows [m0, m0+mt) of x against
// group g of p; writes out[(m0+i)*ldo + 16g + r] for r < min(16, N - 16g).
typedef void (*quant_group_fn)(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out,
                               int64_t ldo);

void quant_avx512_q8_0(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512_q4_0(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512_q4_K(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512_int8(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
// AVX-512BW without VNNI (vpmaddubsw + vpmaddwd).
void quant_avx512bw_q8_0(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512bw_q4_0(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512bw_q4_K(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512bw_int8(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);

// ---- Tiled kernels for M >= 2. One call: tile t (rows [t*T, t*T + mt), mt <= T) against group g; writes
// out[i * ldo + 16g + r] (out points at the tile's first row).
typedef void (*quant_tile_fn)(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out,
                              int64_t ldo);
constexpr int QUANT_T_AVX512 = 8;
constexpr int QUANT_T_AVX2 = 4;

void quant_avx512_q8_0_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512_q4_0_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512_q4_K_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512_int8_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512bw_q8_0_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512bw_q4_0_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512bw_q4_K_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx512bw_int8_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx2_q8_0_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx2_int8_t(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo);

void quant_avx2_q8_0(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx2_q4_0(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx2_q4_K(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);
void quant_avx2_int8(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo);

}  // namespace fathom
