// Bit packing of small integer codes into bytes: schemas and the CPU kernel.
//
// Layout (LSB-first, the specification is bnn_shared/ext/bitpack.py):
//   code i of `bits` bits sits in byte (i * bits) / 8 at bit offset (i * bits) % 8;
//   the output has ceil(numel * bits / 8) bytes and the unused high bits of the last byte are 0.
// `bits` divides 8, so no code straddles two bytes and each output byte is computed
// independently: one parallel_for over output bytes, deterministic for any thread count.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

namespace bnn_shared {
namespace {

constexpr int64_t kGrainBytes = 4096;

void check_bits(int64_t bits) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8,
              "bnn_shared bit packing: bits must be 1, 2, 4 or 8, got ", bits);
}

int64_t packed_length(int64_t numel, int64_t bits) { return (numel * bits + 7) / 8; }

at::Tensor pack_bits_cpu(const at::Tensor& codes, int64_t bits) {
  check_bits(bits);
  TORCH_CHECK(codes.scalar_type() == at::kByte, "pack_bits: codes must be uint8, got ",
              codes.scalar_type());
  TORCH_CHECK(codes.device().is_cpu(), "pack_bits (CPU kernel): codes must be on the CPU");
  const at::Tensor flat = codes.contiguous().view(-1);
  const int64_t numel = flat.numel();
  const int64_t nbytes = packed_length(numel, bits);
  at::Tensor out = at::empty({nbytes}, flat.options());
  const uint8_t* src = flat.const_data_ptr<uint8_t>();
  uint8_t* dst = out.mutable_data_ptr<uint8_t>();
  const int64_t per_byte = 8 / bits;
  const uint8_t mask = static_cast<uint8_t>((1u << bits) - 1u);
  at::parallel_for(0, nbytes, kGrainBytes, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * per_byte;
      const int64_t last = std::min(first + per_byte, numel);
      uint32_t byte = 0;
      for (int64_t i = first; i < last; ++i) {
        byte |= static_cast<uint32_t>(src[i] & mask) << ((i - first) * bits);
      }
      dst[b] = static_cast<uint8_t>(byte);
    }
  });
  return out;
}

at::Tensor unpack_bits_cpu(const at::Tensor& packed, int64_t bits, int64_t numel) {
  check_bits(bits);
  TORCH_CHECK(packed.scalar_type() == at::kByte, "unpack_bits: packed must be uint8, got ",
              packed.scalar_type());
  TORCH_CHECK(packed.device().is_cpu(), "unpack_bits (CPU kernel): packed must be on the CPU");
  TORCH_CHECK(numel >= 0, "unpack_bits: numel must be >= 0, got ", numel);
  const int64_t nbytes = packed_length(numel, bits);
  TORCH_CHECK(packed.numel() == nbytes, "unpack_bits: ", numel, " codes of ", bits,
              " bits need ", nbytes, " bytes, got ", packed.numel());
  const at::Tensor flat = packed.contiguous().view(-1);
  at::Tensor out = at::empty({numel}, flat.options());
  const uint8_t* src = flat.const_data_ptr<uint8_t>();
  uint8_t* dst = out.mutable_data_ptr<uint8_t>();
  const int64_t per_byte = 8 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  at::parallel_for(0, nbytes, kGrainBytes, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * per_byte;
      const int64_t last = std::min(first + per_byte, numel);
      const uint32_t byte = src[b];
      for (int64_t i = first; i < last; ++i) {
        dst[i] = static_cast<uint8_t>((byte >> ((i - first) * bits)) & mask);
      }
    }
  });
  return out;
}

}  // namespace
}  // namespace bnn_shared

TORCH_LIBRARY_FRAGMENT(bnn_shared, m) {
  // The fake (meta) implementations live in Python, registered by the loader bnn_shared.ext.
  m.set_python_module("bnn_shared.ext");
  m.def("pack_bits(Tensor codes, int bits) -> Tensor");
  m.def("unpack_bits(Tensor packed, int bits, int numel) -> Tensor");
}

TORCH_LIBRARY_IMPL(bnn_shared, CPU, m) {
  m.impl("pack_bits", &bnn_shared::pack_bits_cpu);
  m.impl("unpack_bits", &bnn_shared::unpack_bits_cpu);
}
