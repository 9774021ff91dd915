// Bit-packed binary GEMM (XNOR- and AND-popcount): schemas and the CPU kernels.
//
// The specification is bnn_shared/ext/bitops.py. Packing (bitops_pack): along the last axis
// of x (length k), element j goes to bit j % 64 of int64 word j / 64 (LSB first); the bit is
// 1 where x > 0 (+1 of a ±1 tensor, 1 of a {0,1} tensor) and 0 elsewhere (-1, 0, NaN); the
// 64 * ceil(k / 64) - k high bits of the last word are 0. The GEMMs read rows of packed
// words and mask the combined last word to its k % 64 low bits, so padding bits never count,
// whatever they hold:
//   xnor_gemm: out[m, n] = k - 2 * popcount(a[m] ^ b[n])          (a, b: ±1 rows)
//   and_gemm:  out[m, n] = 2 * popcount(x[m] & w[n]) - popcount(x[m])  (x: {0,1}, w: ±1)
// Outputs are exact int32. CPU paths, chosen at run time per call:
//   - avx512-vpopcntdq: 4x4 register-blocked micro-kernel on 512-bit words (function-level
//     target attribute, used only when __builtin_cpu_supports says the CPU has it);
//   - portable: the same blocking on 64-bit words with __builtin_popcountll (compiled a second
//     time with target("popcnt") on x86-64, used when the CPU has the instruction); also taken
//     for short rows (k <= 192), where it is faster than the AVX-512 path.
// `portable=True` forces the portable path (tests, and machines where it is faster).
// Work is split into tiles of rows of A against tiles of rows of B (at::parallel_for over
// tiles); each output is computed by one thread, so results are identical for any threads.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define BNN_BITOPS_X86 1
#else
#define BNN_BITOPS_X86 0
#endif

namespace bnn_shared {
namespace {

constexpr int64_t kWordBits = 64;
constexpr int kMR = 4;  // rows of A per micro-kernel block
constexpr int kNR = 4;  // rows of B per micro-kernel block
// Less work than this (word pairs of a GEMM, elements of a packing) per thread runs inline: a
// parallel region costs microseconds, and a scheduler time slice when the cores are busy.
constexpr int64_t kMinParallelWords = int64_t{1} << 21;
constexpr int64_t kMinParallelElements = int64_t{1} << 20;

enum class Isa : int64_t { kGeneric = 0, kPopcnt = 1, kAvx512 = 2 };

int64_t words_for(int64_t k) { return (k + kWordBits - 1) / kWordBits; }

uint64_t tail_mask(int64_t k) {
  const int64_t rem = k % kWordBits;
  return rem == 0 ? ~uint64_t{0} : (uint64_t{1} << rem) - 1;
}

Isa best_isa() {
#if BNN_BITOPS_X86
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) {
      return Isa::kAvx512;
    }
    return __builtin_cpu_supports("popcnt") ? Isa::kPopcnt : Isa::kGeneric;
  }();
  return isa;
#else
  return Isa::kGeneric;
#endif
}

// Below kMinAvx512Words words per row the 512-bit path spends more on its horizontal sums and
// masked loads than it saves (measured: k = 100 runs 2x faster in scalar popcnt code).
constexpr int64_t kMinAvx512Words = 4;

// k < 0: the path of packing (no GEMM size to weigh).
Isa isa_for_call(bool portable, int64_t k = -1) {
  const Isa isa = best_isa();
  if (isa != Isa::kAvx512) return isa;
  if (portable || (k >= 0 && words_for(k) < kMinAvx512Words)) return Isa::kPopcnt;
  return isa;
}

// ---------------------------------------------------------------------------------------------
// Tiles: out[m0:m1, n0:n1] = scale * popcount(op(a[m], b[n])) + offset (+ row_offset[m]).

struct GemmArgs {
  const uint64_t* a;  // (M, words)
  const uint64_t* b;  // (N, words)
  int32_t* out;       // (M, N)
  int64_t m, n, words;
  uint64_t last_mask;
  int32_t scale;
  int32_t offset;
  const int32_t* row_offset;  // nullable, (M,)
};

inline void store(const GemmArgs& g, int64_t row, int64_t col, int64_t count) {
  int64_t value = g.scale * count + g.offset;
  if (g.row_offset != nullptr) value += g.row_offset[row];
  g.out[row * g.n + col] = static_cast<int32_t>(value);
}

template <bool kAnd>
inline uint64_t combine(uint64_t x, uint64_t y) {
  return kAnd ? (x & y) : (x ^ y);
}

// The portable block: kMR x kNR outputs over all words; rows past the edge repeat the last
// valid row (computed and discarded). always_inline: compiled inside each caller's target.
template <bool kAnd>
__attribute__((always_inline)) inline void portable_block(const GemmArgs& g, int64_t m0,
                                                          int64_t n0) {
  const uint64_t* arow[kMR];
  const uint64_t* brow[kNR];
  for (int i = 0; i < kMR; ++i) arow[i] = g.a + std::min<int64_t>(m0 + i, g.m - 1) * g.words;
  for (int j = 0; j < kNR; ++j) brow[j] = g.b + std::min<int64_t>(n0 + j, g.n - 1) * g.words;
  int64_t acc[kMR][kNR] = {};
  const int64_t full = g.words - 1;
  auto step = [&](int64_t w, uint64_t mask) __attribute__((always_inline)) {
    uint64_t av[kMR];
    for (int i = 0; i < kMR; ++i) av[i] = arow[i][w];
    for (int j = 0; j < kNR; ++j) {
      const uint64_t bv = brow[j][w];
      for (int i = 0; i < kMR; ++i) {
        acc[i][j] += __builtin_popcountll(combine<kAnd>(av[i], bv) & mask);
      }
    }
  };
  for (int64_t w = 0; w < full; ++w) step(w, ~uint64_t{0});
  step(full, g.last_mask);
  for (int i = 0; i < kMR && m0 + i < g.m; ++i) {
    for (int j = 0; j < kNR && n0 + j < g.n; ++j) store(g, m0 + i, n0 + j, acc[i][j]);
  }
}

template <bool kAnd>
__attribute__((always_inline)) inline void portable_tile_body(const GemmArgs& g, int64_t m0,
                                                              int64_t m1, int64_t n0,
                                                              int64_t n1) {
  for (int64_t i = m0; i < m1; i += kMR) {
    for (int64_t j = n0; j < n1; j += kNR) portable_block<kAnd>(g, i, j);
  }
}

template <bool kAnd>
void portable_tile(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  portable_tile_body<kAnd>(g, m0, m1, n0, n1);
}

#if BNN_BITOPS_X86
template <bool kAnd>
__attribute__((target("popcnt"))) void popcnt_tile(const GemmArgs& g, int64_t m0, int64_t m1,
                                                    int64_t n0, int64_t n1) {
  portable_tile_body<kAnd>(g, m0, m1, n0, n1);
}

template <bool kAnd>
__attribute__((target("avx512f,avx512vpopcntdq"))) inline __m512i combine512(__m512i x,
                                                                              __m512i y) {
  return kAnd ? _mm512_and_si512(x, y) : _mm512_xor_si512(x, y);
}

// All words but the last through 512-bit registers (the remainder of whole words with a
// masked load), the last word in scalar code with the padding mask.
template <bool kAnd>
__attribute__((target("avx512f,avx512vpopcntdq"))) void avx512_block(const GemmArgs& g,
                                                                     int64_t m0, int64_t n0) {
  const uint64_t* arow[kMR];
  const uint64_t* brow[kNR];
  for (int i = 0; i < kMR; ++i) arow[i] = g.a + std::min<int64_t>(m0 + i, g.m - 1) * g.words;
  for (int j = 0; j < kNR; ++j) brow[j] = g.b + std::min<int64_t>(n0 + j, g.n - 1) * g.words;
  __m512i acc[kMR][kNR];
  for (int i = 0; i < kMR; ++i) {
    for (int j = 0; j < kNR; ++j) acc[i][j] = _mm512_setzero_si512();
  }
  const int64_t full = g.words - 1;
  int64_t w = 0;
  for (; w + 8 <= full; w += 8) {
    __m512i av[kMR];
    for (int i = 0; i < kMR; ++i) av[i] = _mm512_loadu_si512(arow[i] + w);
    for (int j = 0; j < kNR; ++j) {
      const __m512i bv = _mm512_loadu_si512(brow[j] + w);
      for (int i = 0; i < kMR; ++i) {
        acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(combine512<kAnd>(av[i], bv)));
      }
    }
  }
  if (w < full) {
    const __mmask8 lanes = static_cast<__mmask8>((1u << (full - w)) - 1u);
    __m512i av[kMR];
    for (int i = 0; i < kMR; ++i) av[i] = _mm512_maskz_loadu_epi64(lanes, arow[i] + w);
    for (int j = 0; j < kNR; ++j) {
      const __m512i bv = _mm512_maskz_loadu_epi64(lanes, brow[j] + w);
      for (int i = 0; i < kMR; ++i) {
        acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(combine512<kAnd>(av[i], bv)));
      }
    }
  }
  for (int i = 0; i < kMR && m0 + i < g.m; ++i) {
    for (int j = 0; j < kNR && n0 + j < g.n; ++j) {
      const uint64_t last = combine<kAnd>(arow[i][full], brow[j][full]) & g.last_mask;
      const int64_t count = _mm512_reduce_add_epi64(acc[i][j]) + __builtin_popcountll(last);
      store(g, m0 + i, n0 + j, count);
    }
  }
}

template <bool kAnd>
__attribute__((target("avx512f,avx512vpopcntdq"))) void avx512_tile(const GemmArgs& g,
                                                                    int64_t m0, int64_t m1,
                                                                    int64_t n0, int64_t n1) {
  for (int64_t i = m0; i < m1; i += kMR) {
    for (int64_t j = n0; j < n1; j += kNR) avx512_block<kAnd>(g, i, j);
  }
}
#endif

// Tile sizes: a tile of B rows of about 128 KiB stays in L2 while the A rows of the tile
// stream past it; tiles shrink until every thread gets several.
template <bool kAnd>
void run_gemm(const GemmArgs& g, Isa isa) {
  if (g.m == 0 || g.n == 0) return;
  const int64_t row_bytes = std::max<int64_t>(1, g.words * 8);
  int64_t tile_n = std::clamp<int64_t>(128 * 1024 / row_bytes, kNR, 512) / kNR * kNR;
  int64_t tile_m = 64;
  const int64_t want = 4 * static_cast<int64_t>(at::get_num_threads());
  auto tiles = [&] { return ((g.m + tile_m - 1) / tile_m) * ((g.n + tile_n - 1) / tile_n); };
  while (tiles() < want && (tile_m > kMR || tile_n > kNR)) {
    if (tile_n >= tile_m && tile_n > kNR) {
      tile_n = std::max<int64_t>(kNR, tile_n / 2 / kNR * kNR);
    } else {
      tile_m = std::max<int64_t>(kMR, tile_m / 2 / kMR * kMR);
    }
  }
  const int64_t tiles_n = (g.n + tile_n - 1) / tile_n;
  const int64_t tile_work = tile_m * tile_n * std::max<int64_t>(1, g.words);
  const int64_t grain = std::max<int64_t>(1, kMinParallelWords / tile_work);
  at::parallel_for(0, tiles(), grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t m0 = (t / tiles_n) * tile_m;
      const int64_t n0 = (t % tiles_n) * tile_n;
      const int64_t m1 = std::min(g.m, m0 + tile_m);
      const int64_t n1 = std::min(g.n, n0 + tile_n);
#if BNN_BITOPS_X86
      if (isa == Isa::kAvx512) {
        avx512_tile<kAnd>(g, m0, m1, n0, n1);
        continue;
      }
      if (isa == Isa::kPopcnt) {
        popcnt_tile<kAnd>(g, m0, m1, n0, n1);
        continue;
      }
#endif
      portable_tile<kAnd>(g, m0, m1, n0, n1);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Checks and the ops.

void check_packed(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, " (CPU kernel): ", name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == at::kLong, op, ": ", name,
              " must hold packed int64 words, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 2, op, ": ", name, " must be 2-D (rows, words), got ", t.sizes());
}

void check_pair(const at::Tensor& a, const at::Tensor& b, int64_t k, const char* op,
                const char* a_name, const char* b_name) {
  check_packed(a, op, a_name);
  check_packed(b, op, b_name);
  TORCH_CHECK(k >= 0, op, ": k must be >= 0, got ", k);
  TORCH_CHECK(a.size(1) == words_for(k) && b.size(1) == words_for(k), op, ": k = ", k,
              " takes ", words_for(k), " words per row, got ", a_name, " ", a.sizes(), " and ",
              b_name, " ", b.sizes());
}

at::Tensor gemm_cpu(const at::Tensor& a_in, const at::Tensor& b_in, int64_t k, bool portable,
                    bool is_and) {
  const at::Tensor a = a_in.contiguous();
  const at::Tensor b = b_in.contiguous();
  const int64_t m = a.size(0);
  const int64_t n = b.size(0);
  at::Tensor out = at::empty({m, n}, a.options().dtype(at::kInt));
  if (m == 0 || n == 0) return out;
  if (k == 0) return out.zero_();
  const int64_t words = a.size(1);
  const auto* ap = reinterpret_cast<const uint64_t*>(a.const_data_ptr<int64_t>());
  const auto* bp = reinterpret_cast<const uint64_t*>(b.const_data_ptr<int64_t>());
  const uint64_t last_mask = tail_mask(k);
  GemmArgs g{ap, bp, out.mutable_data_ptr<int32_t>(), m, n, words, last_mask, 0, 0, nullptr};
  const Isa isa = isa_for_call(portable, k);
  if (!is_and) {
    g.scale = -2;
    g.offset = static_cast<int32_t>(k);
    run_gemm<false>(g, isa);
    return out;
  }
  // popcount(x[m]) once per row, padding masked.
  at::Tensor ones = at::empty({m}, out.options());
  int32_t* ones_p = ones.mutable_data_ptr<int32_t>();
  const int64_t row_grain = std::max<int64_t>(1, kMinParallelWords / words);
  at::parallel_for(0, m, row_grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t count = 0;
      for (int64_t w = 0; w < words; ++w) {
        const uint64_t v = ap[r * words + w] & (w == words - 1 ? last_mask : ~uint64_t{0});
        count += __builtin_popcountll(v);
      }
      ones_p[r] = static_cast<int32_t>(-count);
    }
  });
  g.scale = 2;
  g.row_offset = ones_p;
  run_gemm<true>(g, isa);
  return out;
}

at::Tensor xnor_gemm_cpu(const at::Tensor& a, const at::Tensor& b, int64_t k, bool portable) {
  check_pair(a, b, k, "xnor_gemm", "a_packed", "b_packed");
  TORCH_CHECK(k < (int64_t{1} << 31), "xnor_gemm: k must be < 2^31 (int32 output), got ", k);
  return gemm_cpu(a, b, k, portable, false);
}

at::Tensor and_gemm_cpu(const at::Tensor& x, const at::Tensor& w, int64_t k, bool portable) {
  check_pair(x, w, k, "and_gemm", "x_packed", "w_packed");
  TORCH_CHECK(k < (int64_t{1} << 31), "and_gemm: k must be < 2^31 (int32 output), got ", k);
  return gemm_cpu(x, w, k, portable, true);
}

// ---------------------------------------------------------------------------------------------
// Packing.

template <typename scalar_t>
inline bool positive(scalar_t v) {
  return static_cast<at::opmath_type<scalar_t>>(v) > 0;
}

template <typename scalar_t>
void pack_rows_generic(const scalar_t* x, uint64_t* out, int64_t rows, int64_t k,
                       int64_t words) {
  at::parallel_for(0, rows, std::max<int64_t>(1, kMinParallelElements / std::max<int64_t>(1, k)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t r = begin; r < end; ++r) {
                       const scalar_t* row = x + r * k;
                       for (int64_t w = 0; w < words; ++w) {
                         const int64_t first = w * kWordBits;
                         const int64_t count = std::min(kWordBits, k - first);
                         uint64_t bits = 0;
                         for (int64_t j = 0; j < count; ++j) {
                           bits |= static_cast<uint64_t>(positive(row[first + j])) << j;
                         }
                         out[r * words + w] = bits;
                       }
                     }
                   });
}

#if BNN_BITOPS_X86
// float32 with AVX-512: one compare gives 16 bits; NaN compares false (bit 0), as x > 0.
// A separate function: a lambda does not inherit its enclosing function's target.
__attribute__((target("avx512f"))) void pack_range_avx512(const float* x, uint64_t* out,
                                                          int64_t begin, int64_t end, int64_t k,
                                                          int64_t words) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = begin; r < end; ++r) {
    const float* row = x + r * k;
    for (int64_t w = 0; w < words; ++w) {
      uint64_t bits = 0;
      for (int64_t q = 0; q < 4; ++q) {
        const int64_t first = w * kWordBits + q * 16;
        const int64_t count = std::min<int64_t>(16, k - first);
        if (count <= 0) break;
        const auto lanes =
            static_cast<__mmask16>(count == 16 ? 0xFFFFu : (1u << count) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(lanes, row + first);
        const uint64_t positive = _mm512_mask_cmp_ps_mask(lanes, v, zero, _CMP_GT_OQ);
        bits |= positive << (q * 16);
      }
      out[r * words + w] = bits;
    }
  }
}

void pack_rows_avx512(const float* x, uint64_t* out, int64_t rows, int64_t k, int64_t words) {
  at::parallel_for(0, rows, std::max<int64_t>(1, kMinParallelElements / std::max<int64_t>(1, k)),
                   [&](int64_t begin, int64_t end) {
                     pack_range_avx512(x, out, begin, end, k, words);
                   });
}
#endif

at::Tensor bitops_pack_cpu(const at::Tensor& x_in, bool portable) {
  TORCH_CHECK(x_in.device().is_cpu(), "bitops_pack (CPU kernel): x must be on the CPU");
  TORCH_CHECK(x_in.dim() >= 1, "bitops_pack: x must have at least 1 dimension (k last)");
  const at::Tensor x = x_in.contiguous();
  const int64_t k = x.size(-1);
  const int64_t words = words_for(k);
  auto shape = x.sizes().vec();
  shape.back() = words;
  at::Tensor out = at::empty(shape, x.options().dtype(at::kLong));
  if (out.numel() == 0) return out;
  const int64_t rows = x.numel() / k;
  auto* op = reinterpret_cast<uint64_t*>(out.mutable_data_ptr<int64_t>());
#if BNN_BITOPS_X86
  if (x.scalar_type() == at::kFloat && isa_for_call(portable) == Isa::kAvx512) {
    pack_rows_avx512(x.const_data_ptr<float>(), op, rows, k, words);
    return out;
  }
#endif
  AT_DISPATCH_ALL_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, x.scalar_type(), "bitops_pack",
                             [&] {
                               pack_rows_generic<scalar_t>(x.const_data_ptr<scalar_t>(), op, rows,
                                                           k, words);
                             });
  return out;
}

// The path of a GEMM with k (k < 0: of packing): 2 avx512-vpopcntdq, 1 portable with the
// popcnt instruction, 0 portable generic code.
int64_t bitops_cpu_isa(bool portable, int64_t k) {
  return static_cast<int64_t>(isa_for_call(portable, k));
}

}  // namespace
}  // namespace bnn_shared

TORCH_LIBRARY_FRAGMENT(bnn_shared, m) {
  // The fake (meta) implementations live in Python, registered by the loader bnn_shared.ext.
  m.set_python_module("bnn_shared.ext");
  m.def("bitops_pack(Tensor x, bool portable=False) -> Tensor");
  m.def("xnor_gemm(Tensor a_packed, Tensor b_packed, int k, bool portable=False) -> Tensor");
  m.def("and_gemm(Tensor x_packed, Tensor w_packed, int k, bool portable=False) -> Tensor");
  m.def("bitops_cpu_isa(bool portable=False, int k=-1) -> int", &bnn_shared::bitops_cpu_isa);
}

TORCH_LIBRARY_IMPL(bnn_shared, CPU, m) {
  m.impl("bitops_pack", &bnn_shared::bitops_pack_cpu);
  m.impl("xnor_gemm", &bnn_shared::xnor_gemm_cpu);
  m.impl("and_gemm", &bnn_shared::and_gemm_cpu);
}
