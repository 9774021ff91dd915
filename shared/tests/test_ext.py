"""Compiled-kernel loader and the bit-packing kernel: reference vs compiled, backend rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch
from bnn_shared import ext
from bnn_shared.errors import BnnError, ShapeError
from bnn_shared.ext.bitpack import (
    BITS,
    pack_bits,
    pack_bits_reference,
    packed_length,
    unpack_bits,
    unpack_bits_reference,
)
from bnn_shared.testing import CPU_AND_CUDA

LENGTHS = [0, 1, 7, 9, 1000]


def random_codes(n: int, bits: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1009 + n * 8 + bits)
    return torch.randint(0, 1 << bits, (n,), generator=generator, dtype=torch.uint8).to(device)


def pack_by_loop(codes: list[int], bits: int) -> list[int]:
    """The layout rule written out: code i in byte (i*bits)//8 at bit (i*bits)%8."""
    out = [0] * ((len(codes) * bits + 7) // 8)
    for i, code in enumerate(codes):
        out[(i * bits) // 8] |= code << ((i * bits) % 8)
    return out


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line, returned parsed."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


class TestReference:
    @pytest.mark.parametrize(
        ("codes", "bits", "expected"),
        [
            ([1, 0, 1, 1, 0, 0, 0, 0, 1], 1, [0b00001101, 0b1]),
            ([3, 0, 1, 2, 1], 2, [0b10010011, 0b01]),
            ([0xA, 0x5, 0xF], 4, [0x5A, 0x0F]),
            ([7, 255, 0], 8, [7, 255, 0]),
        ],
    )
    def test_known_bytes(self, codes, bits, expected):
        packed = pack_bits_reference(torch.tensor(codes, dtype=torch.uint8), bits)
        assert packed.tolist() == expected

    @pytest.mark.parametrize("bits", BITS)
    @pytest.mark.parametrize("n", LENGTHS)
    def test_matches_loop_and_round_trips(self, bits, n):
        codes = random_codes(n, bits)
        packed = pack_bits_reference(codes, bits)
        assert packed.dtype == torch.uint8
        assert packed.numel() == packed_length(n, bits) == -(-n * bits // 8)
        assert packed.tolist() == pack_by_loop(codes.tolist(), bits)
        assert torch.equal(unpack_bits_reference(packed, bits, n), codes)

    def test_unused_high_bits_are_zero(self):
        packed = pack_bits_reference(torch.ones(3, dtype=torch.uint8), 2)
        assert packed.tolist() == [0b010101]

    @pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.int64, torch.bool])
    def test_integer_dtypes_are_converted(self, dtype):
        codes = torch.tensor([[1, 0], [1, 1]]).to(dtype)
        assert pack_bits(codes, 1, backend="torch").tolist() == [0b1101]

    @pytest.mark.parametrize("bits", [0, 3, 16, 1.5, 4.0, True, "4"])
    def test_bad_bits(self, bits):
        with pytest.raises(BnnError, match="bits must be one of"):
            pack_bits(torch.zeros(4, dtype=torch.uint8), bits, backend="torch")
        with pytest.raises(BnnError, match="bits must be one of"):
            unpack_bits(torch.zeros(1, dtype=torch.uint8), bits, 1, backend="torch")

    @pytest.mark.parametrize(("values", "bits"), [([0, 2], 1), ([4], 2), ([16], 4), ([-1], 8)])
    def test_codes_out_of_range(self, values, bits):
        with pytest.raises(BnnError, match=r"codes must lie in \[0, "):
            pack_bits(torch.tensor(values), bits)

    def test_float_codes_rejected(self):
        with pytest.raises(BnnError, match="integer tensor"):
            pack_bits(torch.zeros(3), 1)

    def test_wrong_packed_length(self):
        with pytest.raises(ShapeError, match="9 codes of 1 bits take 2 bytes, but packed has 1"):
            unpack_bits(torch.zeros(1, dtype=torch.uint8), 1, 9)

    @pytest.mark.parametrize("numel", [-1, 2.0, None])
    def test_bad_numel(self, numel):
        with pytest.raises(BnnError, match="numel"):
            unpack_bits(torch.zeros(1, dtype=torch.uint8), 8, numel)

    def test_packed_must_be_uint8(self):
        with pytest.raises(BnnError, match="uint8"):
            unpack_bits(torch.zeros(1, dtype=torch.int32), 8, 1)


class TestCompiled:
    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    @pytest.mark.parametrize("bits", BITS)
    @pytest.mark.parametrize("n", LENGTHS)
    def test_matches_reference(self, device_backend, bits, n):
        device, backend = device_backend
        codes = random_codes(n, bits, seed=1, device=device)
        packed = pack_bits(codes, bits, backend=backend)
        assert packed.device == codes.device
        assert torch.equal(packed, pack_bits_reference(codes, bits))
        unpacked = unpack_bits(packed, bits, n, backend=backend)
        assert torch.equal(unpacked, unpack_bits_reference(packed, bits, n))
        assert torch.equal(unpacked, codes)

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    @pytest.mark.parametrize("bits", BITS)
    def test_large_and_strided_input(self, device_backend, bits):
        # Many parallel_for chunks / CUDA blocks, a ragged tail, a non-contiguous view.
        device, backend = device_backend
        codes = random_codes(200_003, bits, seed=2, device=device)[::2]
        packed = pack_bits(codes, bits, backend=backend)
        assert torch.equal(packed, pack_bits_reference(codes, bits))
        assert torch.equal(unpack_bits(packed, bits, codes.numel(), backend=backend), codes)

    @pytest.mark.parametrize("device_backend", CPU_AND_CUDA, indirect=True)
    @pytest.mark.parametrize("bits", BITS)
    def test_opcheck(self, device_backend, bits):
        device, _ = device_backend
        codes = random_codes(37, bits, seed=3, device=device)
        torch.library.opcheck(torch.ops.bnn_shared.pack_bits.default, (codes, bits))
        packed = torch.ops.bnn_shared.pack_bits(codes, bits)
        torch.library.opcheck(torch.ops.bnn_shared.unpack_bits.default, (packed, bits, 37))

    def test_op_checks_its_arguments(self, compiled):
        with pytest.raises(RuntimeError, match="bits must be 1, 2, 4 or 8"):
            torch.ops.bnn_shared.pack_bits(torch.zeros(4, dtype=torch.uint8), 3)
        with pytest.raises(RuntimeError, match="need 2 bytes"):
            torch.ops.bnn_shared.unpack_bits(torch.zeros(1, dtype=torch.uint8), 1, 9)

    def test_status(self, compiled):
        assert compiled["cpp"] is True
        assert set(compiled) == {"cpp", "cuda", "error", "build_dir"}
        assert os.path.isdir(compiled["build_dir"])


class TestResolveBackend:
    def test_unknown_backend(self):
        with pytest.raises(BnnError, match="unknown backend 'triton'"):
            ext.resolve_backend("triton", "cpu")

    # ids avoid the bare keyword "cuda", which the conftest turns into a skip without a GPU
    @pytest.mark.parametrize("device", ["cpu", "cuda", "meta"], ids=lambda d: f"on-{d}")
    def test_torch_always_works(self, device):
        assert ext.resolve_backend("torch", device) == "torch"

    def test_auto_on_cpu(self):
        expected = "cpp" if ext.status()["cpp"] else "torch"
        assert ext.resolve_backend("auto", torch.device("cpu")) == expected
        assert ext.resolve_backend("auto", "cpu", op="no_such_op") == "torch"

    def test_auto_on_cuda(self):
        expected = "cuda" if ext.status()["cuda"] else "torch"
        assert ext.resolve_backend("auto", "cuda") == expected

    @pytest.mark.parametrize(("backend", "device"), [("cpp", "cuda"), ("cuda", "cpu")])
    def test_device_mismatch(self, backend, device):
        with pytest.raises(BnnError, match="backend='torch' always works"):
            ext.resolve_backend(backend, device)

    def test_explicit_cpp(self, compiled):
        assert ext.resolve_backend("cpp", "cpu", op="pack_bits") == "cpp"
        with pytest.raises(BnnError, match="no CPU kernel for 'no_such_op'"):
            ext.resolve_backend("cpp", "cpu", op="no_such_op")

    def test_cuda_without_cuda_kernels(self, monkeypatch):
        monkeypatch.setattr(ext, "_state", ext._State(attempted=True, cpp=True, cuda=False))
        with pytest.raises(BnnError, match="CUDA kernels were not built"):
            ext.resolve_backend("cuda", "cuda")
        assert ext.resolve_backend("auto", "cuda") == "torch"

    def test_failed_build(self, monkeypatch):
        failed = ext._State(attempted=True, error="RuntimeError: no compiler")
        monkeypatch.setattr(ext, "_state", failed)
        assert ext.load() is False
        expected = {"cpp": False, "cuda": False, "error": failed.error, "build_dir": None}
        assert ext.status() == expected
        assert ext.resolve_backend("auto", "cpu") == "torch"
        with pytest.raises(BnnError, match=r"did not load \(RuntimeError: no compiler\)"):
            ext.resolve_backend("cpp", "cpu")
        codes = random_codes(9, 1)
        assert torch.equal(pack_bits(codes, 1), pack_bits_reference(codes, 1))


class TestLoader:
    def test_load_builds_once_across_threads(self, monkeypatch):
        calls = []

        def slow_attempt():
            calls.append(threading.get_ident())
            time.sleep(0.05)
            ext._state.attempted = True

        monkeypatch.setattr(ext, "_state", ext._State())
        monkeypatch.setattr(ext, "_attempt_load", slow_attempt)
        threads = [threading.Thread(target=ext.load) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(calls) == 1

    def test_register_fake_never_raises(self, compiled, monkeypatch, caplog):
        monkeypatch.setattr(ext, "_fakes", {})
        monkeypatch.setattr(ext, "_fakes_applied", set())

        @ext.register_fake("no_such_op")
        def fake(x):
            return x

        assert "no_such_op" in caplog.text

    def test_fakes_registered_by_load(self, compiled):
        assert {"bnn_shared::pack_bits", "bnn_shared::unpack_bits"} <= ext._fakes_applied


class TestLoaderProcess:
    def test_env_disables_compiled_kernels(self):
        report = run_python(
            """
            import json
            from bnn_shared import ext
            from bnn_shared.errors import BnnError
            try:
                ext.resolve_backend("cpp", "cpu")
                raised = ""
            except BnnError as exc:
                raised = str(exc)
            print(json.dumps({"status": ext.status(), "auto": ext.resolve_backend("auto", "cpu"),
                              "raised": raised}))
            """,
            BNN_SHARED_EXT="0",
        )
        assert report["status"]["cpp"] is False
        assert "BNN_SHARED_EXT=0" in report["status"]["error"]
        assert report["auto"] == "torch"
        assert "BNN_SHARED_EXT=0" in report["raised"]

    def test_module_main_prints_status(self):
        result = subprocess.run(
            [sys.executable, "-m", "bnn_shared.ext"],
            env={**os.environ, "BNN_SHARED_EXT": "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1
        assert "cpp: False" in result.stdout
        assert "BNN_SHARED_EXT=0" in result.stdout

    def test_import_without_toolchain(self, tmp_path):
        # No compiler, no ninja on PATH, an empty build folder: import, load and pack still work.
        report = run_python(
            """
            import json, sys
            import torch
            from bnn_shared import ext
            from bnn_shared.ext import bitpack
            imported_builder = "torch.utils.cpp_extension" in sys.modules
            attempted = ext._state.attempted
            packed = bitpack.pack_bits(torch.tensor([1, 0, 1]), 1)
            print(json.dumps({"imported_builder": imported_builder, "attempted": attempted,
                              "load": ext.load(), "status": ext.status(),
                              "packed": packed.tolist()}))
            """,
            PATH=str(tmp_path / "no-bin"),
            BNN_EXT_BUILD_DIR=str(tmp_path / "build"),
            BNN_SHARED_EXT="1",
        )
        assert report["imported_builder"] is False
        assert report["attempted"] is False
        assert report["load"] is False
        assert report["status"]["error"]
        assert report["packed"] == [0b101]


def test_the_ext_command_parses_its_arguments(capsys):
    from bnn_shared.ext.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "BNN_SHARED_EXT" in capsys.readouterr().out
