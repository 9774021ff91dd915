// Bit-packed binary GEMM (XNOR- and AND-popcount): the CUDA kernels.
//
// Same layout and results as the CPU kernels (csrc/bitops.cpp) and the reference
// (ext/bitops.py): element j of a row is bit j % 64 of int64 word j / 64, bit = (x > 0); the
// GEMMs mask the last word to its k % 64 low bits, so padding bits never count. Kept simple:
// packing runs one thread per output word; each GEMM output is one thread looping over the
// words with __popcll (no shared-memory tiling yet). `portable` is accepted and ignored.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

namespace bnn_shared {
namespace {

constexpr int64_t kWordBits = 64;
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;
constexpr int kTile = 16;

int64_t words_for(int64_t k) { return (k + kWordBits - 1) / kWordBits; }

unsigned long long tail_mask(int64_t k) {
  const int64_t rem = k % kWordBits;
  return rem == 0 ? ~0ull : (1ull << rem) - 1ull;
}

template <typename scalar_t>
__global__ void pack_kernel(const scalar_t* __restrict__ x, int64_t* __restrict__ out,
                            int64_t rows, int64_t k, int64_t words) {
  const int64_t total = rows * words;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t r = i / words;
    const int64_t first = (i % words) * kWordBits;
    const int count = static_cast<int>(min(kWordBits, k - first));
    const scalar_t* row = x + r * k + first;
    unsigned long long bits = 0;
    for (int j = 0; j < count; ++j) {
      const bool positive = static_cast<at::opmath_type<scalar_t>>(row[j]) > 0;
      bits |= static_cast<unsigned long long>(positive) << j;
    }
    out[i] = static_cast<int64_t>(bits);
  }
}

// out[m, n] = scale * popcount(op(a[m], b[n])) + offset + row_offset[m] (row_offset nullable).
template <bool kAnd>
__global__ void gemm_kernel(const unsigned long long* __restrict__ a,
                            const unsigned long long* __restrict__ b, int32_t* __restrict__ out,
                            int64_t m, int64_t n, int64_t words, unsigned long long last_mask,
                            int scale, int offset, const int32_t* __restrict__ row_offset) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.y;
  const int64_t col = static_cast<int64_t>(blockIdx.y) * kTile + threadIdx.x;
  if (row >= m || col >= n) return;
  const unsigned long long* ar = a + row * words;
  const unsigned long long* br = b + col * words;
  long long count = 0;
  for (int64_t w = 0; w < words; ++w) {
    const unsigned long long mask = w == words - 1 ? last_mask : ~0ull;
    const unsigned long long v = kAnd ? (ar[w] & br[w]) : (ar[w] ^ br[w]);
    count += __popcll(v & mask);
  }
  long long value = static_cast<long long>(scale) * count + offset;
  if (row_offset != nullptr) value += row_offset[row];
  out[row * n + col] = static_cast<int32_t>(value);
}

__global__ void row_popcount_kernel(const unsigned long long* __restrict__ x,
                                    int32_t* __restrict__ out, int64_t m, int64_t words,
                                    unsigned long long last_mask) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < m;
       r += stride) {
    long long count = 0;
    for (int64_t w = 0; w < words; ++w) {
      const unsigned long long mask = w == words - 1 ? last_mask : ~0ull;
      count += __popcll(x[r * words + w] & mask);
    }
    out[r] = static_cast<int32_t>(-count);
  }
}

unsigned int blocks_for(int64_t work) {
  return static_cast<unsigned int>(
      std::max<int64_t>(1, std::min((work + kThreads - 1) / kThreads, kMaxBlocks)));
}

at::Tensor bitops_pack_cuda(const at::Tensor& x_in, bool /*portable*/) {
  TORCH_CHECK(x_in.is_cuda(), "bitops_pack (CUDA kernel): x must be a CUDA tensor");
  TORCH_CHECK(x_in.dim() >= 1, "bitops_pack: x must have at least 1 dimension (k last)");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t k = x.size(-1);
  const int64_t words = words_for(k);
  auto shape = x.sizes().vec();
  shape.back() = words;
  at::Tensor out = at::empty(shape, x.options().dtype(at::kLong));
  if (out.numel() == 0) return out;
  const int64_t rows = x.numel() / k;
  AT_DISPATCH_ALL_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, x.scalar_type(), "bitops_pack",
                             [&] {
                               pack_kernel<scalar_t><<<blocks_for(out.numel()), kThreads, 0,
                                                       c10::cuda::getCurrentCUDAStream()>>>(
                                   x.const_data_ptr<scalar_t>(),
                                   out.mutable_data_ptr<int64_t>(), rows, k, words);
                             });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

void check_pair(const at::Tensor& a, const at::Tensor& b, int64_t k, const char* op) {
  for (const at::Tensor* t : {&a, &b}) {
    TORCH_CHECK(t->is_cuda(), op, " (CUDA kernel): inputs must be CUDA tensors");
    TORCH_CHECK(t->scalar_type() == at::kLong, op, ": inputs must hold packed int64 words, got ",
                t->scalar_type());
    TORCH_CHECK(t->dim() == 2 && t->size(1) == words_for(k), op, ": k = ", k, " takes ",
                words_for(k), " words per row, got ", t->sizes());
  }
  TORCH_CHECK(k >= 0 && k < (int64_t{1} << 31), op, ": k must be in [0, 2^31), got ", k);
}

at::Tensor gemm_cuda(const at::Tensor& a_in, const at::Tensor& b_in, int64_t k, bool is_and) {
  const c10::cuda::CUDAGuard guard(a_in.device());
  const at::Tensor a = a_in.contiguous();
  const at::Tensor b = b_in.contiguous();
  const int64_t m = a.size(0);
  const int64_t n = b.size(0);
  at::Tensor out = at::empty({m, n}, a.options().dtype(at::kInt));
  if (m == 0 || n == 0) return out;
  if (k == 0) return out.zero_();
  const int64_t words = a.size(1);
  const auto* ap = reinterpret_cast<const unsigned long long*>(a.const_data_ptr<int64_t>());
  const auto* bp = reinterpret_cast<const unsigned long long*>(b.const_data_ptr<int64_t>());
  const unsigned long long last = tail_mask(k);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const dim3 threads(kTile, kTile);
  // Rows of A on grid x (up to 2^31 - 1 blocks), rows of B on grid y (up to 65535).
  TORCH_CHECK((n + kTile - 1) / kTile <= kMaxBlocks, "bitops gemm (CUDA): at most ",
              kMaxBlocks * kTile, " rows of B, got ", n);
  const dim3 blocks(static_cast<unsigned int>((m + kTile - 1) / kTile),
                    static_cast<unsigned int>((n + kTile - 1) / kTile));
  if (!is_and) {
    gemm_kernel<false><<<blocks, threads, 0, stream>>>(ap, bp, out.mutable_data_ptr<int32_t>(),
                                                       m, n, words, last, -2,
                                                       static_cast<int>(k), nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
  }
  at::Tensor ones = at::empty({m}, out.options());
  row_popcount_kernel<<<blocks_for(m), kThreads, 0, stream>>>(
      ap, ones.mutable_data_ptr<int32_t>(), m, words, last);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  gemm_kernel<true><<<blocks, threads, 0, stream>>>(ap, bp, out.mutable_data_ptr<int32_t>(), m,
                                                    n, words, last, 2, 0,
                                                    ones.const_data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor xnor_gemm_cuda(const at::Tensor& a, const at::Tensor& b, int64_t k,
                          bool /*portable*/) {
  check_pair(a, b, k, "xnor_gemm");
  return gemm_cuda(a, b, k, false);
}

at::Tensor and_gemm_cuda(const at::Tensor& x, const at::Tensor& w, int64_t k,
                         bool /*portable*/) {
  check_pair(x, w, k, "and_gemm");
  return gemm_cuda(x, w, k, true);
}

}  // namespace
}  // namespace bnn_shared

TORCH_LIBRARY_IMPL(bnn_shared, CUDA, m) {
  m.impl("bitops_pack", &bnn_shared::bitops_pack_cuda);
  m.impl("xnor_gemm", &bnn_shared::xnor_gemm_cuda);
  m.impl("and_gemm", &bnn_shared::and_gemm_cuda);
}
