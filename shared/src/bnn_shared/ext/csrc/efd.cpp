// Extended Finite Difference (EFD) lookup-table layer: schemas and the CPU kernels.
//
// The specification is bnn_shared/ext/efd.py. With S = 2^n entries per LUT:
//   addr[b,j]   = sum_l [x[b, mapping[j,l]] > 0] << l          (first mapped input = LSB)
//   y[b,j]      = luts[j, addr[b,j]]
//   grad_luts   = sum_b g[b,j] at [j, addr[b,j]]
//   G[j,a,l]    = sum_k table[l,a,k] * luts[j,k]                (once per LUT and address)
//   grad_x[b,i] = sum_{(j,l): mapping[j,l] = i} g[b,j] * G[j, addr[b,j], l]
// Determinism: every output element is summed by one thread in a fixed order (grad_luts: one
// thread owns whole LUTs and walks the batch in order; G: each entry sums k in order; grad_x:
// one thread owns whole rows and walks (j, l) in order), so results are bitwise equal for any
// number of threads. dtypes: luts (and grad_out, table) float32/float64; x any float type.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace bnn_shared {
namespace {

constexpr int64_t kMaxInputs = 10;  // as MAX_INPUTS in efd.py: the table has n * 4^n entries
constexpr int64_t kGrainWork = 32768;

int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kGrainWork / std::max<int64_t>(1, work_per_item));
}

void check_layer(const at::Tensor& mapping, const at::Tensor& luts) {
  TORCH_CHECK(mapping.dim() == 2, "efd: mapping must be 2-D (luts, n), got ", mapping.sizes());
  TORCH_CHECK(mapping.scalar_type() == at::kInt || mapping.scalar_type() == at::kLong,
              "efd: mapping must be int32 or int64, got ", mapping.scalar_type());
  const int64_t n = mapping.size(1);
  TORCH_CHECK(n >= 1 && n <= kMaxInputs, "efd: LUT arity n must be in [1, ", kMaxInputs,
              "], got ", n);
  TORCH_CHECK(luts.dim() == 2 && luts.size(0) == mapping.size(0) && luts.size(1) == (1 << n),
              "efd: luts must have shape (", mapping.size(0), ", ", 1 << n, "), got ",
              luts.sizes());
}

void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "efd (CPU kernel): ", name, " must be on the CPU");
}

// Out-of-range indices would read or write outside x / grad_x: refuse them up front.
void check_range(const at::Tensor& index, int64_t limit, const char* name) {
  if (index.numel() == 0) return;
  const auto [low, high] = at::aminmax(index);
  const int64_t lo = low.item<int64_t>();
  const int64_t hi = high.item<int64_t>();
  TORCH_CHECK(lo >= 0 && hi < limit, "efd: ", name, " values must lie in [0, ", limit,
              "), got values in [", lo, ", ", hi, "]");
}

template <typename x_t>
bool positive(x_t value) {
  return static_cast<at::opmath_type<x_t>>(value) > 0;  // strict: 0, -0 and NaN are bit 0
}

template <typename x_t, typename lut_t, typename index_t>
void forward_rows(const x_t* x, const index_t* mapping, const lut_t* luts, lut_t* out,
                  int64_t* addr, int64_t batch, int64_t inputs, int64_t count, int64_t n) {
  const int64_t size = int64_t{1} << n;
  at::parallel_for(0, batch, grain_for(count * n), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const x_t* row = x + b * inputs;
      for (int64_t j = 0; j < count; ++j) {
        const index_t* wires = mapping + j * n;
        int64_t a = 0;
        for (int64_t l = 0; l < n; ++l) {
          a |= static_cast<int64_t>(positive(row[wires[l]])) << l;
        }
        addr[b * count + j] = a;
        out[b * count + j] = luts[j * size + a];
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> efd_forward_cpu(const at::Tensor& x, const at::Tensor& mapping,
                                                   const at::Tensor& luts) {
  check_layer(mapping, luts);
  TORCH_CHECK(x.dim() == 2, "efd_forward: x must be 2-D (batch, inputs), got ", x.sizes());
  check_cpu(x, "x");
  check_cpu(mapping, "mapping");
  check_cpu(luts, "luts");
  const at::Tensor xc = x.contiguous();
  const at::Tensor mc = mapping.contiguous();
  const at::Tensor lc = luts.contiguous();
  check_range(mc, x.size(1), "mapping");
  const int64_t batch = x.size(0), count = mapping.size(0), n = mapping.size(1);
  at::Tensor out = at::empty({batch, count}, luts.options());
  at::Tensor addr = at::empty({batch, count}, luts.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "efd_forward", [&] {
    using x_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES(luts.scalar_type(), "efd_forward", [&] {
      using lut_t = scalar_t;
      AT_DISPATCH_INDEX_TYPES(mapping.scalar_type(), "efd_forward", [&] {
        forward_rows<x_t, lut_t, index_t>(
            xc.const_data_ptr<x_t>(), mc.const_data_ptr<index_t>(), lc.const_data_ptr<lut_t>(),
            out.mutable_data_ptr<lut_t>(), addr.mutable_data_ptr<int64_t>(), batch, x.size(1),
            count, n);
      });
    });
  });
  return {out, addr};
}

// grad_luts: threads own LUT ranges; within a range the batch is walked in order, so each
// entry's sum has the same order whatever the ranges are.
template <typename scalar_t>
void lut_grad(const scalar_t* grad, const int64_t* addr, scalar_t* grad_luts, int64_t batch,
              int64_t count, int64_t size) {
  at::parallel_for(0, count, grain_for(batch), [&](int64_t begin, int64_t end) {
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t* a = addr + b * count;
      const scalar_t* g = grad + b * count;
      for (int64_t j = begin; j < end; ++j) grad_luts[j * size + a[j]] += g[j];
    }
  });
}

// G[j, a, l] = sum_k table[l, a, k] * luts[j, k], for blocks of kLanes LUTs at a time: the
// LUTs of a block are the lanes of a vector, so each sum is one accumulator walking k in order
// (no horizontal reduction, no reordering) and the blocks are fixed whatever the thread count.
// GCC/clang vector extensions make the lanes explicit. With GCC >= 12 on x86-64 Linux an
// x86-64-v3 (AVX2+FMA) clone is picked at load time when the CPU supports it (5x faster than
// the SSE2 baseline here; the clones need glibc's ifunc), so the build stays portable.
constexpr int64_t kLanes = 8;

#if defined(__GNUC__)
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(__clang__) && __GNUC__ >= 12
#define BNN_EFD_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define BNN_EFD_MULTIVERSION
#endif
#define BNN_EFD_INLINE inline __attribute__((always_inline))
typedef float float_lanes __attribute__((vector_size(kLanes * sizeof(float))));
typedef double double_lanes __attribute__((vector_size(kLanes * sizeof(double))));
#else  // other compilers: a plain array with the same interface, left to the auto-vectoriser
#define BNN_EFD_MULTIVERSION
#define BNN_EFD_INLINE inline
template <typename scalar>
struct Lanes {
  scalar v[kLanes] = {};
  scalar operator[](int64_t i) const { return v[i]; }
  scalar& operator[](int64_t i) { return v[i]; }
  Lanes& operator+=(const Lanes& o) {
    for (int64_t i = 0; i < kLanes; ++i) v[i] += o.v[i];
    return *this;
  }
  friend Lanes operator*(scalar s, const Lanes& o) {
    Lanes r;
    for (int64_t i = 0; i < kLanes; ++i) r.v[i] = s * o.v[i];
    return r;
  }
};
typedef Lanes<float> float_lanes;
typedef Lanes<double> double_lanes;
#endif

// lanes[k * kLanes + i] = luts[first + i, k] (zero-padded); table_akl: (size, size, N);
// g_table: (count, size, N), rows [first, first + valid) written. Vectors are loaded with
// memcpy (an unaligned load): plain buffers need not have a vector type's alignment.
template <typename scalar, typename vec, int N>
BNN_EFD_INLINE void table_block(const scalar* lanes, const scalar* table_akl, scalar* g_table,
                                int64_t first, int64_t valid, int64_t size) {
  for (int64_t a = 0; a < size; ++a) {
    vec acc[N];
    for (int l = 0; l < N; ++l) acc[l] = vec{};
    const scalar* d = table_akl + a * size * N;
    for (int64_t k = 0; k < size; ++k) {
      vec lk;
      std::memcpy(&lk, lanes + k * kLanes, sizeof(vec));
      for (int l = 0; l < N; ++l) acc[l] += d[k * N + l] * lk;
    }
    for (int64_t i = 0; i < valid; ++i) {
      scalar* out = g_table + ((first + i) * size + a) * N;
      for (int l = 0; l < N; ++l) out[l] = acc[l][i];
    }
  }
}

#define BNN_EFD_CASE(scalar, N)                                                         \
  case N:                                                                               \
    table_block<scalar, scalar##_lanes, N>(lanes, table_akl, g_table, first, valid, size); \
    break;
#define BNN_EFD_TABLE_BLOCK(scalar)                                                           \
  BNN_EFD_MULTIVERSION void address_table_block(const scalar* lanes,                           \
                                                const scalar* table_akl, scalar* g_table,      \
                                                int64_t first, int64_t valid, int64_t size,    \
                                                int64_t n) {                                   \
    switch (n) {                                                                              \
      BNN_EFD_CASE(scalar, 1) BNN_EFD_CASE(scalar, 2) BNN_EFD_CASE(scalar, 3)                 \
      BNN_EFD_CASE(scalar, 4) BNN_EFD_CASE(scalar, 5) BNN_EFD_CASE(scalar, 6)                 \
      BNN_EFD_CASE(scalar, 7) BNN_EFD_CASE(scalar, 8) BNN_EFD_CASE(scalar, 9)                 \
      BNN_EFD_CASE(scalar, 10)                                                                \
      default:                                                                                \
        TORCH_CHECK(false, "efd: LUT arity n must be in [1, ", kMaxInputs, "], got ", n);     \
    }                                                                                         \
  }
BNN_EFD_TABLE_BLOCK(float)
BNN_EFD_TABLE_BLOCK(double)
#undef BNN_EFD_TABLE_BLOCK
#undef BNN_EFD_CASE

template <typename scalar_t>
void address_table(const scalar_t* luts, const scalar_t* table_akl, scalar_t* g_table,
                   int64_t count, int64_t size, int64_t n) {
  const int64_t blocks = (count + kLanes - 1) / kLanes;
  at::parallel_for(0, blocks, grain_for(kLanes * size * size * n), [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> lanes(size * kLanes);
    for (int64_t block = begin; block < end; ++block) {
      const int64_t first = block * kLanes;
      const int64_t valid = std::min(kLanes, count - first);
      std::fill(lanes.begin(), lanes.end(), scalar_t(0));
      for (int64_t i = 0; i < valid; ++i) {
        for (int64_t k = 0; k < size; ++k) lanes[k * kLanes + i] = luts[(first + i) * size + k];
      }
      address_table_block(lanes.data(), table_akl, g_table, first, valid, size, n);
    }
  });
}

// grad_x: threads own whole rows; every element sums its (j, l) terms in increasing j. Rows go
// in blocks of kRowBlock with the LUT loop outside, so that G[j] stays in L1 for the block.
constexpr int64_t kRowBlock = 4;

template <typename scalar_t, typename index_t>
void accumulate_input_grad(const scalar_t* grad, const int64_t* addr, const index_t* mapping,
                           const scalar_t* g_table, scalar_t* grad_x, int64_t batch,
                           int64_t inputs, int64_t count, int64_t size, int64_t n) {
  const int64_t blocks = (batch + kRowBlock - 1) / kRowBlock;
  at::parallel_for(0, blocks, grain_for(kRowBlock * count * n), [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const int64_t first = block * kRowBlock, last = std::min(first + kRowBlock, batch);
      std::fill(grad_x + first * inputs, grad_x + last * inputs, scalar_t(0));
      for (int64_t j = 0; j < count; ++j) {
        const index_t* wires = mapping + j * n;
        const scalar_t* gj = g_table + j * size * n;
        for (int64_t b = first; b < last; ++b) {
          const scalar_t g = grad[b * count + j];
          const scalar_t* w = gj + addr[b * count + j] * n;
          scalar_t* row = grad_x + b * inputs;
          for (int64_t l = 0; l < n; ++l) row[wires[l]] += g * w[l];
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> efd_backward_cpu(const at::Tensor& grad_out,
                                                    const at::Tensor& mapping,
                                                    const at::Tensor& luts, const at::Tensor& addr,
                                                    const at::Tensor& table, int64_t input_size,
                                                    bool input_grad) {
  check_layer(mapping, luts);
  const int64_t count = mapping.size(0), n = mapping.size(1), size = int64_t{1} << n;
  TORCH_CHECK(addr.dim() == 2 && addr.size(1) == count && addr.scalar_type() == at::kLong,
              "efd_backward: addr must be int64 of shape (batch, ", count, "), got ",
              addr.scalar_type(), " ", addr.sizes());
  TORCH_CHECK(grad_out.sizes() == addr.sizes() && grad_out.scalar_type() == luts.scalar_type(),
              "efd_backward: grad_out must have the shape of addr and the dtype of luts");
  TORCH_CHECK(table.dim() == 3 && table.size(0) == n && table.size(1) == size &&
                  table.size(2) == size && table.scalar_type() == luts.scalar_type(),
              "efd_backward: table must have shape (", n, ", ", size, ", ", size,
              ") and the dtype of luts, got ", table.scalar_type(), " ", table.sizes());
  TORCH_CHECK(input_size >= 0, "efd_backward: input_size must be >= 0, got ", input_size);
  check_cpu(grad_out, "grad_out");
  check_cpu(mapping, "mapping");
  check_cpu(luts, "luts");
  check_cpu(addr, "addr");
  check_cpu(table, "table");
  const at::Tensor gc = grad_out.contiguous(), mc = mapping.contiguous();
  const at::Tensor lc = luts.contiguous(), ac = addr.contiguous();
  check_range(ac, size, "addr");
  if (input_grad) check_range(mc, input_size, "mapping");
  const int64_t batch = addr.size(0);
  at::Tensor grad_luts = at::zeros({count, size}, luts.options());
  at::Tensor grad_x = at::empty({input_grad ? batch : 0, input_grad ? input_size : 0},
                                luts.options());  // zeroed block by block by the kernel
  if (!input_grad) grad_x = grad_x.view({0});
  AT_DISPATCH_FLOATING_TYPES(luts.scalar_type(), "efd_backward", [&] {
    lut_grad<scalar_t>(gc.const_data_ptr<scalar_t>(), ac.const_data_ptr<int64_t>(),
                       grad_luts.mutable_data_ptr<scalar_t>(), batch, count, size);
    if (!input_grad) return;
    const at::Tensor table_akl = table.permute({1, 2, 0}).contiguous();
    at::Tensor g_table = at::empty({count, size, n}, luts.options());
    address_table<scalar_t>(lc.const_data_ptr<scalar_t>(), table_akl.const_data_ptr<scalar_t>(),
                            g_table.mutable_data_ptr<scalar_t>(), count, size, n);
    AT_DISPATCH_INDEX_TYPES(mapping.scalar_type(), "efd_backward", [&] {
      accumulate_input_grad<scalar_t, index_t>(
          gc.const_data_ptr<scalar_t>(), ac.const_data_ptr<int64_t>(),
          mc.const_data_ptr<index_t>(), g_table.const_data_ptr<scalar_t>(),
          grad_x.mutable_data_ptr<scalar_t>(), batch, input_size, count, size, n);
    });
  });
  return {grad_x, grad_luts};
}

}  // namespace
}  // namespace bnn_shared

TORCH_LIBRARY_FRAGMENT(bnn_shared, m) {
  // The fake (meta) implementations live in Python (bnn_shared/ext/efd.py).
  m.set_python_module("bnn_shared.ext");
  m.def("efd_forward(Tensor x, Tensor mapping, Tensor luts) -> (Tensor, Tensor)");
  m.def(
      "efd_backward(Tensor grad_out, Tensor mapping, Tensor luts, Tensor addr, Tensor table, "
      "int input_size, bool input_grad) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(bnn_shared, CPU, m) {
  m.impl("efd_forward", &bnn_shared::efd_forward_cpu);
  m.impl("efd_backward", &bnn_shared::efd_backward_cpu);
}
