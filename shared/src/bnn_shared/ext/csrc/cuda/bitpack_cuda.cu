// Bit packing of small integer codes into bytes: the CUDA kernels.
//
// Same layout as the CPU kernel (csrc/bitpack.cpp) and the reference (ext/bitpack.py):
// LSB-first, code i in byte (i * bits) / 8 at bit offset (i * bits) % 8. One thread per
// output byte (grid-stride), on the current stream of the input's device.
// Only c10/cuda headers: the kernels need the CUDA runtime, not cuBLAS/cuSPARSE headers.

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

namespace bnn_shared {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

void check_bits(int64_t bits) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8,
              "bnn_shared bit packing: bits must be 1, 2, 4 or 8, got ", bits);
}

int64_t packed_length(int64_t numel, int64_t bits) { return (numel * bits + 7) / 8; }

unsigned int blocks_for(int64_t work) {
  return static_cast<unsigned int>(std::min((work + kThreads - 1) / kThreads, kMaxBlocks));
}

__global__ void pack_bits_kernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst,
                                 int64_t numel, int64_t nbytes, int bits) {
  const int per_byte = 8 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < nbytes;
       b += stride) {
    const int64_t first = b * per_byte;
    const int count = static_cast<int>(min(static_cast<int64_t>(per_byte), numel - first));
    uint32_t byte = 0;
    for (int j = 0; j < count; ++j) {
      byte |= (static_cast<uint32_t>(src[first + j]) & mask) << (j * bits);
    }
    dst[b] = static_cast<uint8_t>(byte);
  }
}

__global__ void unpack_bits_kernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst,
                                   int64_t numel, int64_t nbytes, int bits) {
  const int per_byte = 8 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < nbytes;
       b += stride) {
    const int64_t first = b * per_byte;
    const int count = static_cast<int>(min(static_cast<int64_t>(per_byte), numel - first));
    const uint32_t byte = src[b];
    for (int j = 0; j < count; ++j) {
      dst[first + j] = static_cast<uint8_t>((byte >> (j * bits)) & mask);
    }
  }
}

at::Tensor pack_bits_cuda(const at::Tensor& codes, int64_t bits) {
  check_bits(bits);
  TORCH_CHECK(codes.scalar_type() == at::kByte, "pack_bits: codes must be uint8, got ",
              codes.scalar_type());
  TORCH_CHECK(codes.is_cuda(), "pack_bits (CUDA kernel): codes must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(codes.device());
  const at::Tensor flat = codes.contiguous().view(-1);
  const int64_t numel = flat.numel();
  const int64_t nbytes = packed_length(numel, bits);
  at::Tensor out = at::empty({nbytes}, flat.options());
  if (nbytes == 0) return out;
  pack_bits_kernel<<<blocks_for(nbytes), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      flat.const_data_ptr<uint8_t>(), out.mutable_data_ptr<uint8_t>(), numel, nbytes,
      static_cast<int>(bits));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor unpack_bits_cuda(const at::Tensor& packed, int64_t bits, int64_t numel) {
  check_bits(bits);
  TORCH_CHECK(packed.scalar_type() == at::kByte, "unpack_bits: packed must be uint8, got ",
              packed.scalar_type());
  TORCH_CHECK(packed.is_cuda(), "unpack_bits (CUDA kernel): packed must be a CUDA tensor");
  TORCH_CHECK(numel >= 0, "unpack_bits: numel must be >= 0, got ", numel);
  const int64_t nbytes = packed_length(numel, bits);
  TORCH_CHECK(packed.numel() == nbytes, "unpack_bits: ", numel, " codes of ", bits,
              " bits need ", nbytes, " bytes, got ", packed.numel());
  const c10::cuda::CUDAGuard guard(packed.device());
  const at::Tensor flat = packed.contiguous().view(-1);
  at::Tensor out = at::empty({numel}, flat.options());
  if (nbytes == 0) return out;
  unpack_bits_kernel<<<blocks_for(nbytes), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      flat.const_data_ptr<uint8_t>(), out.mutable_data_ptr<uint8_t>(), numel, nbytes,
      static_cast<int>(bits));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace
}  // namespace bnn_shared

TORCH_LIBRARY_IMPL(bnn_shared, CUDA, m) {
  m.impl("pack_bits", &bnn_shared::pack_bits_cuda);
  m.impl("unpack_bits", &bnn_shared::unpack_bits_cuda);
}
