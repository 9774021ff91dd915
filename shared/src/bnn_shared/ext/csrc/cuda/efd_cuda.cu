// Extended Finite Difference (EFD) lookup-table layer: the CUDA kernels.
//
// Same maths as the CPU kernels (csrc/efd.cpp) and the reference (ext/efd.py). Unlike the
// original torch-dwn kernel there are no atomics: every output element is summed by one thread
// in a fixed order, so gradients are deterministic.
//   forward:     one thread per (b, j): address and lookup;
//   grad_luts:   one thread per (j, k): walks the batch in order;
//   G[j, a, l]:  one thread per (j, a): sum_k table[l, a, k] * luts[j, k] for every l;
//   grad_x:      one thread per (b, i): walks the LUT slots that read input i, in slot order
//                (a CSR of the mapping, built with a stable sort on the device).
// float32/float64/float16/bfloat16 tensors; half and bfloat16 are accumulated in float.
// Launches go to the current stream of the tensors' device; nothing synchronises the host.
// Only c10/cuda headers: the kernels need the CUDA runtime, not cuBLAS/cuSPARSE headers.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/macros/Macros.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>

namespace bnn_shared {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;
constexpr int kMaxInputs = 10;  // as MAX_INPUTS in efd.py

unsigned int blocks_for(int64_t work) {
  return static_cast<unsigned int>(std::max<int64_t>(
      1, std::min((work + kThreads - 1) / kThreads, kMaxBlocks)));
}

#define BNN_GRID_STRIDE(idx, total)                                                   \
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;     \
       idx < (total); idx += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename x_t, typename lut_t, typename index_t>
__global__ void forward_kernel(const x_t* __restrict__ x, const index_t* __restrict__ mapping,
                               const lut_t* __restrict__ luts, lut_t* __restrict__ out,
                               int64_t* __restrict__ addr, int64_t batch, int64_t inputs,
                               int64_t count, int n) {
  using x_acc = at::opmath_type<x_t>;
  BNN_GRID_STRIDE(idx, batch * count) {
    const int64_t b = idx / count;
    const int64_t j = idx - b * count;
    int64_t a = 0;
    for (int l = 0; l < n; ++l) {
      const int64_t i = static_cast<int64_t>(mapping[j * n + l]);
      CUDA_KERNEL_ASSERT(i >= 0 && i < inputs);
      a |= static_cast<int64_t>(static_cast<x_acc>(x[b * inputs + i]) > x_acc(0)) << l;
    }
    addr[idx] = a;
    out[idx] = luts[(j << n) + a];
  }
}

template <typename lut_t, typename acc_t>
__global__ void lut_grad_kernel(const lut_t* __restrict__ grad, const int64_t* __restrict__ addr,
                                lut_t* __restrict__ grad_luts, int64_t batch, int64_t count,
                                int n) {
  const int64_t size = int64_t{1} << n;
  BNN_GRID_STRIDE(idx, count * size) {
    const int64_t j = idx >> n;
    const int64_t k = idx - (j << n);
    acc_t acc = 0;
    for (int64_t b = 0; b < batch; ++b) {
      if (addr[b * count + j] == k) acc += static_cast<acc_t>(grad[b * count + j]);
    }
    grad_luts[idx] = static_cast<lut_t>(acc);
  }
}

template <typename lut_t, typename acc_t>
__global__ void address_table_kernel(const lut_t* __restrict__ luts,
                                     const acc_t* __restrict__ table,
                                     acc_t* __restrict__ g_table, int64_t count, int n) {
  const int64_t size = int64_t{1} << n;
  BNN_GRID_STRIDE(idx, count * size) {
    const int64_t j = idx >> n;
    const int64_t a = idx - (j << n);
    acc_t acc[kMaxInputs];
    for (int l = 0; l < n; ++l) acc[l] = 0;
    for (int64_t k = 0; k < size; ++k) {
      const acc_t lk = static_cast<acc_t>(luts[(j << n) + k]);
      for (int l = 0; l < n; ++l) acc[l] += table[((l * size) + a) * size + k] * lk;
    }
    for (int l = 0; l < n; ++l) g_table[idx * n + l] = acc[l];
  }
}

template <typename lut_t, typename acc_t>
__global__ void input_grad_kernel(const lut_t* __restrict__ grad,
                                  const int64_t* __restrict__ addr,
                                  const acc_t* __restrict__ g_table,
                                  const int64_t* __restrict__ starts,
                                  const int64_t* __restrict__ slots, lut_t* __restrict__ grad_x,
                                  int64_t batch, int64_t inputs, int64_t count, int n) {
  BNN_GRID_STRIDE(idx, batch * inputs) {
    const int64_t b = idx / inputs;
    const int64_t i = idx - b * inputs;
    acc_t acc = 0;
    for (int64_t s = starts[i]; s < starts[i + 1]; ++s) {
      const int64_t slot = slots[s];
      const int64_t j = slot / n;
      const int64_t l = slot - j * n;
      const int64_t bj = b * count + j;
      acc += static_cast<acc_t>(grad[bj]) * g_table[((j << n) + addr[bj]) * n + l];
    }
    grad_x[idx] = static_cast<lut_t>(acc);
  }
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

void check_device(const at::Tensor& t, const at::Tensor& ref, const char* name) {
  TORCH_CHECK(t.is_cuda() && t.device() == ref.device(), "efd (CUDA kernel): ", name,
              " must be a CUDA tensor on ", ref.device(), ", got ", t.device());
}

std::tuple<at::Tensor, at::Tensor> efd_forward_cuda(const at::Tensor& x,
                                                    const at::Tensor& mapping,
                                                    const at::Tensor& luts) {
  check_layer(mapping, luts);
  TORCH_CHECK(x.dim() == 2, "efd_forward: x must be 2-D (batch, inputs), got ", x.sizes());
  check_device(luts, luts, "luts");
  check_device(x, luts, "x");
  check_device(mapping, luts, "mapping");
  const c10::cuda::CUDAGuard guard(luts.device());
  const at::Tensor xc = x.contiguous(), mc = mapping.contiguous(), lc = luts.contiguous();
  const int64_t batch = x.size(0), count = mapping.size(0);
  const int n = static_cast<int>(mapping.size(1));
  at::Tensor out = at::empty({batch, count}, luts.options());
  at::Tensor addr = at::empty({batch, count}, luts.options().dtype(at::kLong));
  if (out.numel() == 0) return {out, addr};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "efd_forward", [&] {
    using x_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, luts.scalar_type(), "efd_forward",
                                    [&] {
      using lut_t = scalar_t;
      AT_DISPATCH_INDEX_TYPES(mapping.scalar_type(), "efd_forward", [&] {
        forward_kernel<x_t, lut_t, index_t><<<blocks_for(batch * count), kThreads, 0, stream>>>(
            xc.const_data_ptr<x_t>(), mc.const_data_ptr<index_t>(), lc.const_data_ptr<lut_t>(),
            out.mutable_data_ptr<lut_t>(), addr.mutable_data_ptr<int64_t>(), batch, x.size(1),
            count, n);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
  return {out, addr};
}

std::tuple<at::Tensor, at::Tensor> efd_backward_cuda(const at::Tensor& grad_out,
                                                     const at::Tensor& mapping,
                                                     const at::Tensor& luts,
                                                     const at::Tensor& addr,
                                                     const at::Tensor& table, int64_t input_size,
                                                     bool input_grad) {
  check_layer(mapping, luts);
  const int64_t count = mapping.size(0), size = luts.size(1);
  const int n = static_cast<int>(mapping.size(1));
  const auto acc_type = luts.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(addr.dim() == 2 && addr.size(1) == count && addr.scalar_type() == at::kLong,
              "efd_backward: addr must be int64 of shape (batch, ", count, "), got ",
              addr.scalar_type(), " ", addr.sizes());
  TORCH_CHECK(grad_out.sizes() == addr.sizes() && grad_out.scalar_type() == luts.scalar_type(),
              "efd_backward: grad_out must have the shape of addr and the dtype of luts");
  TORCH_CHECK(table.dim() == 3 && table.size(0) == n && table.size(1) == size &&
                  table.size(2) == size && table.scalar_type() == acc_type,
              "efd_backward: table must be ", acc_type, " of shape (", n, ", ", size, ", ", size,
              "), got ", table.scalar_type(), " ", table.sizes());
  TORCH_CHECK(input_size >= 0, "efd_backward: input_size must be >= 0, got ", input_size);
  check_device(luts, luts, "luts");
  check_device(grad_out, luts, "grad_out");
  check_device(mapping, luts, "mapping");
  check_device(addr, luts, "addr");
  check_device(table, luts, "table");
  const c10::cuda::CUDAGuard guard(luts.device());
  const at::Tensor gc = grad_out.contiguous(), lc = luts.contiguous(), ac = addr.contiguous();
  const int64_t batch = addr.size(0);
  at::Tensor grad_luts = at::empty({count, size}, luts.options());
  at::Tensor grad_x = input_grad ? at::empty({batch, input_size}, luts.options())
                                 : at::empty({0}, luts.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, luts.scalar_type(), "efd_backward",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (grad_luts.numel() > 0) {
      lut_grad_kernel<scalar_t, acc_t><<<blocks_for(count * size), kThreads, 0, stream>>>(
          gc.const_data_ptr<scalar_t>(), ac.const_data_ptr<int64_t>(),
          grad_luts.mutable_data_ptr<scalar_t>(), batch, count, n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (!input_grad || grad_x.numel() == 0) return;
    const at::Tensor tc = table.contiguous();
    at::Tensor g_table = at::empty({count, size, n}, luts.options().dtype(acc_type));
    if (g_table.numel() > 0) {
      address_table_kernel<scalar_t, acc_t><<<blocks_for(count * size), kThreads, 0, stream>>>(
          lc.const_data_ptr<scalar_t>(), tc.const_data_ptr<acc_t>(),
          g_table.mutable_data_ptr<acc_t>(), count, n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    // CSR of the mapping: slots (j * n + l) sorted by the input they read; starts[i] is the
    // first slot reading input i. Out-of-range entries fall outside [starts[0], starts[I]).
    const auto [wires, slots] = at::sort(mapping.reshape({-1}).to(at::kLong),
                                         /*stable=*/std::optional<bool>(true), /*dim=*/0);
    const at::Tensor starts =
        at::searchsorted(wires, at::arange(input_size + 1, wires.options()));
    input_grad_kernel<scalar_t, acc_t><<<blocks_for(batch * input_size), kThreads, 0, stream>>>(
        gc.const_data_ptr<scalar_t>(), ac.const_data_ptr<int64_t>(),
        g_table.const_data_ptr<acc_t>(), starts.const_data_ptr<int64_t>(),
        slots.const_data_ptr<int64_t>(), grad_x.mutable_data_ptr<scalar_t>(), batch, input_size,
        count, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_x, grad_luts};
}

}  // namespace
}  // namespace bnn_shared

TORCH_LIBRARY_IMPL(bnn_shared, CUDA, m) {
  m.impl("efd_forward", &bnn_shared::efd_forward_cuda);
  m.impl("efd_backward", &bnn_shared::efd_backward_cuda);
}
