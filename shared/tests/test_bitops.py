"""Bit-packed XNOR/AND-popcount GEMMs: packing, references, compiled paths, bad input."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.errors import BnnError, ShapeError
from bnn_shared.ext import bitops
from bnn_shared.ext.bitops import (
    and_gemm,
    and_gemm_reference,
    binary_matmul,
    pack_binary,
    pack_reference,
    pack_signs,
    packed_words,
    unpack_binary,
    unpack_signs,
    xnor_gemm,
    xnor_gemm_reference,
)
from bnn_shared.testing import CPU_AND_CUDA

# k <= 192 runs the portable path even where AVX-512 is chosen; 257 (4 words: masked vector
# load only), 576 (9 whole words: one vector, no padding) and 1000 (15 words) run AVX-512.
KS = [1, 63, 64, 65, 130, 257, 576, 1000]
# (M, N): odd sizes, sizes below and above the 4x4 blocks, one row or one column.
MN = [(1, 1), (3, 5), (7, 9), (13, 4)]
# CPU paths: the run-time choice (AVX-512 VPOPCNTDQ where the CPU has it) and the portable one.
PATHS = [pytest.param(False, id="best-path"), pytest.param(True, id="portable")]


def signs(shape, seed: int, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, shape, generator=g) * 2 - 1).float().to(device)


def zero_ones(shape, seed: int, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, shape, generator=g).float().to(device)


def with_dirty_padding(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Set every padding bit of the last word to 1 (they must not count)."""
    if k % 64 == 0:
        return packed.clone()
    dirty = packed.clone()
    dirty[..., -1] |= ~((1 << (k % 64)) - 1)
    return dirty


class TestPacking:
    def test_known_words(self):
        x = torch.tensor([[1.0, -1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, 1.0]])
        assert pack_reference(x).tolist() == [[0b1101], [0b1000]]
        ones = torch.zeros(64)
        ones[63] = 1  # bit 63: int64's sign bit
        assert pack_reference(ones).tolist() == [-(2**63)]

    @pytest.mark.parametrize("k", [*KS, 0])
    def test_round_trip_and_zero_padding(self, k):
        x = signs((3, 2, k), seed=k)
        packed = pack_reference(x)
        assert packed.shape == (3, 2, packed_words(k)) and packed.dtype == torch.int64
        assert torch.equal(unpack_signs(packed, k), x)
        z = zero_ones((5, k), seed=k + 1)
        assert torch.equal(unpack_binary(pack_reference(z), k), z)
        if k % 64:
            assert (pack_reference(torch.ones(k))[-1] >> (k % 64)).item() == 0

    def test_rule_is_positive(self):
        x = torch.tensor([0.5, 0.0, -0.0, -2.0, float("nan"), float("inf")])
        assert pack_reference(x).item() == 0b100001

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    @pytest.mark.parametrize("portable", PATHS)
    @pytest.mark.parametrize(
        "dtype",
        [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.bool],
    )
    @pytest.mark.parametrize("k", KS)
    def test_compiled_equals_reference(self, device_backend, portable, dtype, k):
        device, backend = device_backend
        x = torch.randn(5, k, generator=torch.Generator().manual_seed(k)).to(device)
        x[0, : min(k, 3)] = 0.0  # exact zeros pack as 0
        x = x.to(dtype)
        expected = pack_reference(x)
        for pack in (pack_signs, pack_binary):
            assert torch.equal(pack(x, backend=backend, portable=portable), expected)

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    def test_strided_and_batched_input(self, device_backend):
        device, backend = device_backend
        x = signs((4, 3, 200), seed=7, device=device)[:, :, ::2]
        assert torch.equal(pack_signs(x, backend=backend), pack_reference(x))


class TestReference:
    @pytest.mark.parametrize("k", KS)
    def test_equals_integer_matmul(self, k):
        # The reference against an independent formula: integer matmul of the values.
        a, b = signs((7, k), seed=1), signs((5, k), seed=2)
        x = zero_ones((7, k), seed=3)
        xnor = xnor_gemm_reference(pack_reference(a), pack_reference(b), k)
        assert xnor.dtype == torch.int32
        assert torch.equal(xnor.long(), a.long() @ b.long().T)
        anded = and_gemm_reference(pack_reference(x), pack_reference(b), k)
        assert torch.equal(anded.long(), x.long() @ b.long().T)

    @pytest.mark.parametrize("k", [1, 63, 65])
    def test_popcount_identities(self, k):
        a, b = pack_reference(signs((3, k), seed=4)), pack_reference(signs((2, k), seed=5))
        ua, ub = unpack_binary(a, k), unpack_binary(b, k)
        differ = (ua[:, None, :] != ub[None, :, :]).sum(-1)
        assert torch.equal(xnor_gemm_reference(a, b, k), (k - 2 * differ).int())
        both = (ua[:, None, :] * ub[None, :, :]).sum(-1)
        expected = (2 * both - ua.sum(-1, keepdim=True)).int()
        assert torch.equal(and_gemm_reference(a, b, k), expected)

    def test_padding_never_counts(self):
        k = 65
        a, b = pack_reference(signs((3, k), seed=6)), pack_reference(signs((4, k), seed=7))
        clean = xnor_gemm_reference(a, b, k)
        assert torch.equal(xnor_gemm_reference(with_dirty_padding(a, k), b, k), clean)
        assert torch.equal(
            and_gemm_reference(with_dirty_padding(a, k), b, k), and_gemm_reference(a, b, k)
        )


class TestCompiled:
    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    @pytest.mark.parametrize("portable", PATHS)
    @pytest.mark.parametrize("k", KS)
    @pytest.mark.parametrize(("m", "n"), MN)
    def test_equals_reference(self, device_backend, portable, k, m, n):
        device, backend = device_backend
        a = pack_reference(signs((m, k), seed=10 * k + m, device=device))
        b = pack_reference(signs((n, k), seed=10 * k + n + 1, device=device))
        x = pack_reference(zero_ones((m, k), seed=10 * k + 2, device=device))
        out = xnor_gemm(a, b, k, backend=backend, portable=portable)
        assert out.device == a.device and out.dtype == torch.int32
        assert torch.equal(out, xnor_gemm_reference(a, b, k))
        assert torch.equal(
            and_gemm(x, b, k, backend=backend, portable=portable), and_gemm_reference(x, b, k)
        )

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    @pytest.mark.parametrize("portable", PATHS)
    @pytest.mark.parametrize("k", [63, 65, 1000])
    def test_padding_never_counts(self, device_backend, portable, k):
        device, backend = device_backend
        a = pack_reference(signs((5, k), seed=20, device=device))
        b = pack_reference(signs((6, k), seed=21, device=device))
        expected_xnor = xnor_gemm_reference(a, b, k)
        expected_and = and_gemm_reference(a, b, k)
        for da, db in (
            (with_dirty_padding(a, k), b),
            (a, with_dirty_padding(b, k)),
            (with_dirty_padding(a, k), with_dirty_padding(b, k)),
        ):
            assert torch.equal(
                xnor_gemm(da, db, k, backend=backend, portable=portable), expected_xnor
            )
            assert torch.equal(
                and_gemm(da, db, k, backend=backend, portable=portable), expected_and
            )

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    @pytest.mark.parametrize("portable", PATHS)
    def test_large_many_tiles(self, device_backend, portable):
        # Several tiles per thread, ragged 4x4 blocks, a masked vector tail (k = 1000: 15 words).
        device, backend = device_backend
        k = 1000
        a = pack_reference(signs((67, k), seed=30, device=device))
        b = pack_reference(signs((301, k), seed=31, device=device))
        assert torch.equal(
            xnor_gemm(a, b, k, backend=backend, portable=portable), xnor_gemm_reference(a, b, k)
        )
        assert torch.equal(
            and_gemm(a, b, k, backend=backend, portable=portable), and_gemm_reference(a, b, k)
        )

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    def test_empty_and_k_zero(self, device_backend):
        device, backend = device_backend
        empty = torch.zeros(0, 2, dtype=torch.int64, device=device)
        full = torch.zeros(3, 2, dtype=torch.int64, device=device)
        assert xnor_gemm(empty, full, 100, backend=backend).shape == (0, 3)
        no_words = torch.zeros(3, 0, dtype=torch.int64, device=device)
        assert torch.equal(
            and_gemm(no_words, no_words, 0, backend=backend),
            torch.zeros(3, 3, dtype=torch.int32, device=device),
        )

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    def test_opcheck(self, device_backend):
        device, _ = device_backend
        k = 70
        a = pack_reference(signs((3, k), seed=40, device=device))
        b = pack_reference(signs((5, k), seed=41, device=device))
        torch.library.opcheck(torch.ops.bnn_shared.xnor_gemm.default, (a, b, k))
        torch.library.opcheck(torch.ops.bnn_shared.and_gemm.default, (a, b, k))
        torch.library.opcheck(
            torch.ops.bnn_shared.bitops_pack.default, (signs((2, k), seed=42, device=device),)
        )

    def test_op_checks_its_arguments(self, compiled):
        a = torch.zeros(2, 2, dtype=torch.int64)
        with pytest.raises(RuntimeError, match="takes 2 words per row"):
            torch.ops.bnn_shared.xnor_gemm(a, torch.zeros(2, 1, dtype=torch.int64), 100)
        with pytest.raises(RuntimeError, match="packed int64 words"):
            torch.ops.bnn_shared.and_gemm(a.int(), a.int(), 100)

    def test_cpu_path(self, compiled, monkeypatch):
        best = bitops.cpu_path()
        assert best.startswith(("avx512-vpopcntdq", "portable"))
        assert bitops.cpu_path(portable=True).startswith("portable")
        assert bitops.cpu_path(k=1000) == best
        assert bitops.cpu_path(k=100).startswith("portable")
        monkeypatch.setenv("BNN_BITOPS_PORTABLE", "1")
        assert bitops.cpu_path().startswith("portable")
        monkeypatch.setenv("BNN_BITOPS_PORTABLE", "0")
        assert bitops.cpu_path() == best

    def test_env_forces_portable_at_call_time(self, compiled, monkeypatch):
        k = 300
        a = pack_reference(signs((9, k), seed=50))
        b = pack_reference(signs((11, k), seed=51))
        monkeypatch.setenv("BNN_BITOPS_PORTABLE", "1")
        assert torch.equal(xnor_gemm(a, b, k, backend="cpp"), xnor_gemm_reference(a, b, k))


class TestBinaryMatmul:
    @pytest.mark.parametrize("backend", ["torch", "auto"])
    @pytest.mark.parametrize("k", [1, 64, 65])
    def test_equals_float_matmul(self, backend, k):
        x, w = signs((2, 3, k), seed=60), signs((5, k), seed=61)
        out = binary_matmul(x, w, "xnor", backend=backend)
        assert out.shape == (2, 3, 5) and out.dtype == torch.int32
        assert torch.equal(out.float(), x @ w.T)
        z = zero_ones((4, k), seed=62)
        assert torch.equal(binary_matmul(z, w, kind="and", backend=backend).float(), z @ w.T)

    def test_bad_shapes(self):
        w = signs((5, 10), seed=0)
        with pytest.raises(ShapeError, match="x has k=9 on its last axis"):
            binary_matmul(signs((3, 9), seed=1), w)
        with pytest.raises(ShapeError, match="w must be 2-D"):
            binary_matmul(signs((3, 10), seed=1), w[None])
        with pytest.raises(ShapeError, match="at least one axis"):
            binary_matmul(torch.tensor(1.0), w)
        with pytest.raises(BnnError, match="kind must be one of"):
            binary_matmul(signs((3, 10), seed=1), w, kind="or")


class TestBadInput:
    @pytest.mark.parametrize("backend", ["torch", "auto"])
    def test_word_count_mismatch(self, backend):
        a = torch.zeros(3, 2, dtype=torch.int64)
        with pytest.raises(ShapeError, match=r"b_packed must have shape \(rows, 2\) for k=100"):
            xnor_gemm(a, torch.zeros(3, 1, dtype=torch.int64), 100, backend=backend)
        with pytest.raises(ShapeError, match=r"x_packed must have shape \(rows, 1\) for k=64"):
            and_gemm(a, torch.zeros(3, 1, dtype=torch.int64), 64, backend=backend)
        with pytest.raises(ShapeError, match="must have shape"):
            xnor_gemm(a[0], a, 100, backend=backend)

    @pytest.mark.parametrize("k", [-1, 1.5, None, True, 2**31])
    def test_bad_k(self, k):
        a = torch.zeros(1, 1, dtype=torch.int64)
        with pytest.raises(BnnError, match="k must be"):
            xnor_gemm(a, a, k)

    def test_bad_dtype(self):
        with pytest.raises(BnnError, match="int64 tensor of packed words"):
            and_gemm(torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.int64), 3)
        with pytest.raises(ShapeError, match="takes 1 words per row"):
            unpack_signs(torch.zeros(2, 2, dtype=torch.int64), 3)


def test_ext_command_reports_the_bitops_path(compiled, capsys):
    from bnn_shared.ext.__main__ import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert f"bitops: {bitops.cpu_path()}" in out
