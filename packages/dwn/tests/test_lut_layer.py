"""LUTLayer and its EFD kernels: every backend against a brute-force loop of the formulas."""

from __future__ import annotations

import pytest
import torch
from bnn_shared import ext
from bnn_shared.errors import BnnError, ConfigError, ShapeError
from bnn_shared.ext import efd
from dwn.lut_layer import EFDFunction, LUTLayer
from dwn.mapping import layer_mapping

# (device, backend); the compiled ones skip when the library cannot build here.
BACKENDS = [
    ("cpu", "torch"),
    ("cpu", "cpp"),
    pytest.param(("cuda", "torch"), marks=pytest.mark.cuda, id="gpu-torch"),
    pytest.param(("cuda", "cuda"), marks=pytest.mark.cuda, id="gpu-cuda"),
]
COMPILED = [("cpu", "cpp"), pytest.param(("cuda", "cuda"), marks=pytest.mark.cuda, id="gpu-cuda")]


@pytest.fixture(scope="session")
def compiled() -> dict:
    if not ext.load():
        pytest.skip(f"compiled bnn_shared kernels unavailable here: {ext.status()['error']}")
    return ext.status()


@pytest.fixture
def device_backend(request) -> tuple[str, str]:
    device, backend = request.param
    if backend != "torch":
        status = request.getfixturevalue("compiled")
        if backend == "cuda" and not status["cuda"]:
            pytest.skip(f"CUDA kernels were not built: {status['error']}")
    return device, backend


def hamming(a: int, k: int, l: int) -> int:
    return bin((a ^ k) & ~(1 << l)).count("1")


def code_weight(alpha: float, beta: float):
    return lambda h: alpha * beta**h


def paper_weight(h: int) -> float:
    return 1.0 / (h + 1)


def brute_force(x, mapping, luts, grad, weight):
    """Spec §3.2-§4.1 as plain loops (float64): y, addr, grad_x, grad_luts."""
    batch, inputs = x.shape
    count, n = mapping.shape
    y = torch.zeros(batch, count, dtype=torch.float64)
    addr = torch.zeros(batch, count, dtype=torch.int64)
    grad_x = torch.zeros(batch, inputs, dtype=torch.float64)
    grad_luts = torch.zeros(count, 1 << n, dtype=torch.float64)
    for b in range(batch):
        for j in range(count):
            a = sum(int(x[b, mapping[j, l]] > 0) << l for l in range(n))
            addr[b, j], y[b, j] = a, luts[j, a]
            grad_luts[j, a] += grad[b, j]
            for l in range(n):
                w = sum(
                    (1 if (k >> l) & 1 else -1) * float(luts[j, k]) * weight(hamming(a, k, l))
                    for k in range(1 << n)
                )
                grad_x[b, mapping[j, l]] += float(grad[b, j]) * w
    return y, addr, grad_x, grad_luts


def random_problem(n, batch, inputs=7, count=5, seed=0, dtype=torch.float64, device="cpu"):
    """Inputs shared by several LUTs (count * n > inputs), zeros and negatives included."""
    g = torch.Generator().manual_seed(seed * 100 + n * 10 + batch)
    x = torch.randint(-1, 2, (batch, inputs), generator=g).to(dtype)
    mapping = torch.randint(0, inputs, (count, n), generator=g, dtype=torch.int32)
    luts = (torch.rand(count, 1 << n, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    grad = torch.randn(batch, count, generator=g, dtype=torch.float64).to(dtype)
    return [t.to(device) for t in (x, mapping, luts, grad)]


def run_ops(x, mapping, luts, grad, table, backend, input_grad=True):
    y, addr = efd.efd_forward(x, mapping, luts, backend=backend)
    grad_x, grad_luts = efd.efd_backward(
        grad, mapping, luts, addr, table, x.shape[1], input_grad=input_grad, backend=backend
    )
    return y, addr, grad_x, grad_luts


class TestTable:
    @pytest.mark.parametrize("n", range(1, efd.MAX_INPUTS + 1))
    def test_default_mass_is_one_half(self, n):
        assert efd.default_alpha(n) * (1 + efd.DEFAULT_BETA) ** (n - 1) == pytest.approx(0.5)

    def test_default_alpha_values(self):
        expected = {1: 0.5, 2: 0.375, 3: 0.28125, 6: 0.11865234375}
        assert {n: efd.default_alpha(n) for n in expected} == expected

    @pytest.mark.parametrize("variant", efd.VARIANTS)
    @pytest.mark.parametrize("n", [1, 2, 3, 4])
    def test_entries(self, variant, n):
        alpha, beta = (0.3, 0.2) if variant == "code" else (None, None)
        table = efd.efd_table(n, alpha, beta, variant, dtype=torch.float64)
        weight = code_weight(alpha, beta) if variant == "code" else paper_weight
        for l in range(n):
            for a in range(1 << n):
                for k in range(1 << n):
                    sign = 1 if (k >> l) & 1 else -1
                    assert table[l, a, k] == pytest.approx(sign * weight(hamming(a, k, l)))

    @pytest.mark.parametrize("a", [0, 1])
    def test_n1_is_scaled_difference(self, a):
        luts = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
        x = torch.tensor([[float(a)]], dtype=torch.float64)
        mapping = torch.zeros(1, 1, dtype=torch.int32)
        table = efd.efd_table(1, dtype=torch.float64)
        _, _, grad_x, _ = run_ops(
            x, mapping, luts, torch.ones(1, 1, dtype=torch.float64), table, "torch"
        )
        assert grad_x.item() == pytest.approx(efd.default_alpha(1) * (-0.7 - 0.3))

    def test_tensor_parameters_match_floats(self):
        floats = efd.efd_table(5, 0.2, 0.4)
        tensors = efd.efd_table(5, torch.tensor(0.2), torch.tensor(0.4))
        torch.testing.assert_close(tensors, floats)

    def test_beta_zero_is_plain_finite_difference(self):
        table = efd.efd_table(3, 1.0, 0.0, dtype=torch.float64)
        assert int((table != 0).sum()) == 3 * 8 * 2  # per (l, a): only k = a and a ^ (1 << l)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"n": 0}, "arity n"),
            ({"n": efd.MAX_INPUTS + 1}, "arity n"),
            ({"n": 2, "variant": "linear"}, "variant"),
            ({"n": 2, "variant": "paper", "alpha": 0.5}, "takes no alpha"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ConfigError, match=match):
            efd.efd_table(**kwargs)


class TestKernels:
    @pytest.mark.parametrize("device_backend", BACKENDS, indirect=True)
    @pytest.mark.parametrize("batch", [1, 6, 19])
    @pytest.mark.parametrize("n", range(1, 7))
    def test_matches_brute_force(self, device_backend, n, batch):
        device, backend = device_backend
        x, mapping, luts, grad = random_problem(n, batch)
        alpha, beta = efd.default_alpha(n), efd.DEFAULT_BETA
        expected = brute_force(x, mapping, luts, grad, code_weight(alpha, beta))
        table = efd.efd_table(n, device=device, dtype=torch.float64)
        args = [t.to(device) for t in (x, mapping, luts, grad)]
        got = run_ops(*args, table, backend)
        for value, reference in zip(got, expected, strict=True):
            torch.testing.assert_close(value.cpu(), reference, rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize("device_backend", BACKENDS, indirect=True)
    @pytest.mark.parametrize("n", [1, 3, 6])
    def test_paper_variant_matches_brute_force(self, device_backend, n):
        device, backend = device_backend
        x, mapping, luts, grad = random_problem(n, 9, seed=1)
        expected = brute_force(x, mapping, luts, grad, paper_weight)
        table = efd.efd_table(n, variant="paper", device=device, dtype=torch.float64)
        got = run_ops(*[t.to(device) for t in (x, mapping, luts, grad)], table, backend)
        torch.testing.assert_close(got[2].cpu(), expected[2], rtol=1e-12, atol=1e-12)

    @pytest.mark.parametrize("device_backend", BACKENDS, indirect=True)
    def test_lut_gradient_is_one_hot_at_the_address(self, device_backend):
        device, backend = device_backend
        x, mapping, luts, _ = random_problem(4, 3, device=device)
        grad = torch.zeros(3, 5, dtype=torch.float64, device=device)
        grad[1, 2] = 1.5
        table = efd.efd_table(4, device=device, dtype=torch.float64)
        _, addr, _, grad_luts = run_ops(x, mapping, luts, grad, table, backend)
        expected = torch.zeros_like(grad_luts)
        expected[2, addr[1, 2]] = 1.5
        assert torch.equal(grad_luts, expected)

    @pytest.mark.parametrize("device_backend", BACKENDS, indirect=True)
    def test_without_input_gradient(self, device_backend):
        device, backend = device_backend
        x, mapping, luts, grad = random_problem(3, 4, device=device)
        table = efd.efd_table(3, device=device, dtype=torch.float64)
        full = run_ops(x, mapping, luts, grad, table, backend)
        y, addr, grad_x, grad_luts = run_ops(x, mapping, luts, grad, table, backend, False)
        assert grad_x is None
        assert torch.equal(grad_luts, full[3])

    @pytest.mark.parametrize("device_backend", COMPILED, indirect=True)
    def test_float32_matches_reference(self, device_backend):
        device, backend = device_backend
        x, mapping, luts, grad = random_problem(6, 37, 300, 200, dtype=torch.float32, device=device)
        table = efd.efd_table(6, device=device)
        got = run_ops(x, mapping, luts, grad, table, backend)
        expected = run_ops(x, mapping, luts, grad, table, "torch")
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        torch.testing.assert_close(got[2], expected[2], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got[3], expected[3], rtol=1e-5, atol=1e-5)

    def test_cpp_is_bitwise_equal_across_thread_counts(self, compiled):
        x, mapping, luts, grad = random_problem(6, 256, 2000, 1200, dtype=torch.float32)
        table = efd.efd_table(6)
        threads = torch.get_num_threads()
        try:
            results = []
            for count in (1, 2, 3):
                torch.set_num_threads(count)
                results.append(run_ops(x, mapping, luts, grad, table, "cpp"))
        finally:
            torch.set_num_threads(threads)
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                assert torch.equal(a, b)

    @pytest.mark.parametrize("device_backend", COMPILED, indirect=True)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("input_grad", [True, False])
    def test_opcheck(self, device_backend, dtype, input_grad):
        device, _ = device_backend
        x, mapping, luts, grad = random_problem(3, 5, dtype=dtype, device=device)
        torch.library.opcheck(torch.ops.bnn_shared.efd_forward.default, (x, mapping, luts))
        _, addr = torch.ops.bnn_shared.efd_forward(x, mapping, luts)
        table = efd.efd_table(3, device=device, dtype=dtype)
        args = (grad, mapping, luts, addr, table, x.shape[1], input_grad)
        torch.library.opcheck(torch.ops.bnn_shared.efd_backward.default, args)

    @pytest.mark.cuda
    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_cuda_half_precision(self, compiled, dtype):
        if not compiled["cuda"]:
            pytest.skip(f"CUDA kernels were not built: {compiled['error']}")
        x, mapping, luts, grad = random_problem(6, 33, 50, 40, dtype=torch.float32, device="cuda")
        table = efd.efd_table(6, device="cuda")
        half = [t.to(dtype) if t.is_floating_point() else t for t in (x, mapping, luts, grad)]
        got = run_ops(*half, table, "cuda")
        expected = run_ops(*half[:2], half[2].float(), half[3].float(), table, "torch")
        assert got[0].dtype == dtype and torch.equal(got[1], expected[1])
        for value, reference in zip(got[2:], expected[2:], strict=True):
            torch.testing.assert_close(value.float(), reference, rtol=2e-2, atol=2e-2)

    def test_fakes_are_registered_by_the_loader(self, compiled):
        assert {"bnn_shared::efd_forward", "bnn_shared::efd_backward"} <= ext._fakes_applied

    def test_cpp_refuses_out_of_range_mapping(self, compiled):
        x, mapping, luts, _ = random_problem(2, 3, dtype=torch.float32)
        mapping[0, 0] = 7
        with pytest.raises(RuntimeError, match=r"mapping values must lie in \[0, 7\)"):
            torch.ops.bnn_shared.efd_forward(x, mapping, luts)

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            (lambda x, m, L: (x[0], m, L), "x must be a 2-D float tensor"),
            (lambda x, m, L: (x, m.float(), L), "mapping must be an int32/int64"),
            (lambda x, m, L: (x, m, L[:, :3]), r"luts must be a float tensor of shape \(5, 4\)"),
        ],
    )
    def test_wrapper_checks_shapes(self, change, match):
        x, mapping, luts, _ = random_problem(2, 3)
        with pytest.raises(ShapeError, match=match):
            efd.efd_forward(*change(x, mapping, luts), backend="torch")

    def test_backward_checks_the_table(self):
        x, mapping, luts, grad = random_problem(2, 3)
        _, addr = efd.efd_forward(x, mapping, luts, backend="torch")
        with pytest.raises(ShapeError, match="table must be torch.float64 of shape"):
            efd.efd_backward(grad, mapping, luts, addr, efd.efd_table(2), 7, backend="torch")


class TestBackendChoice:
    def test_auto_measures_once_and_caches(self, compiled):
        efd.clear_tuning()
        x, mapping, luts, grad = random_problem(6, 8, 40, 30, dtype=torch.float32)
        choice = efd.select_backend("auto", x, mapping, luts)
        assert choice in ("torch", "cpp")
        assert list(efd.tuned_backends().values()) == [choice]
        assert efd.select_backend("auto", x, mapping, luts) == choice
        assert len(efd.tuned_backends()) == 1

    def test_env_forces_auto(self, compiled, monkeypatch):
        x, mapping, luts, _ = random_problem(3, 2, dtype=torch.float32)
        for forced in ("torch", "cpp"):
            monkeypatch.setenv("BNN_EFD_BACKEND", forced)
            assert efd.select_backend("auto", x, mapping, luts) == forced
        assert efd.select_backend("torch", x, mapping, luts) == "torch"  # explicit wins
        monkeypatch.setenv("BNN_EFD_BACKEND", "cuda")
        with pytest.raises(BnnError, match="BNN_EFD_BACKEND='cuda'"):
            efd.select_backend("auto", x, mapping, luts)

    def test_tuning_can_be_disabled(self, compiled, monkeypatch):
        monkeypatch.setenv("BNN_EFD_TUNE", "0")
        efd.clear_tuning()
        x, mapping, luts, _ = random_problem(3, 2, dtype=torch.float32)
        assert efd.select_backend("auto", x, mapping, luts) == "cpp"
        assert efd.tuned_backends() == {}

    def test_unsupported_dtype(self, compiled):
        x, mapping, luts, _ = random_problem(3, 2, dtype=torch.float16)
        assert efd.select_backend("auto", x, mapping, luts) == "torch"
        with pytest.raises(BnnError, match="does not support luts of dtype torch.float16"):
            efd.select_backend("cpp", x, mapping, luts)

    def test_unknown_backend(self):
        x, mapping, luts, _ = random_problem(3, 2)
        with pytest.raises(BnnError, match="unknown backend 'fast'"):
            efd.efd_forward(x, mapping, luts, backend="fast")


def layer_outputs_by_tables(layer: LUTLayer, x: torch.Tensor) -> torch.Tensor:
    """What the exporter sees: address from effective_mapping(), bit from truth_tables()."""
    wiring, tables = layer.effective_mapping(), layer.truth_tables()
    bits = (x[:, wiring] > 0).long()  # (B, J, n)
    addr = (bits << torch.arange(layer.n)).sum(-1)
    return tables[torch.arange(layer.output_size), addr].float()


class TestLUTLayer:
    def test_parameters(self):
        torch.manual_seed(0)
        layer = LUTLayer(20, 8, 3)
        assert layer.luts.shape == (8, 8) and layer.luts.dtype == torch.float32
        assert layer.luts.requires_grad and layer.luts.min() >= -1 and layer.luts.max() <= 1
        assert layer.mapping.dtype == torch.int32 and not layer.mapping.requires_grad
        assert layer.alpha.dim() == 0 and layer.alpha.item() == pytest.approx(0.28125)
        assert layer.beta.item() == pytest.approx(1 / 3)
        assert set(layer.state_dict()) == {"luts", "mapping", "alpha", "beta"}
        assert "alpha" in dict(layer.named_buffers())

    @pytest.mark.parametrize("kind", ["random", "arange"])
    def test_fixed_mapping_uses_layer_mapping(self, kind):
        torch.manual_seed(3)
        layer = LUTLayer(10, 7, 3, mapping=kind)
        torch.manual_seed(3)
        torch.rand(7, 8)  # the luts are drawn first
        expected = layer_mapping(10, 3, 7, random=kind == "random")
        assert torch.equal(layer.mapping, expected)
        assert torch.equal(layer.effective_mapping(), expected.long())

    def test_user_mapping(self):
        wiring = torch.tensor([[0, 1], [4, 4], [3, 2]])
        layer = LUTLayer(5, 3, 2, mapping=wiring)
        assert layer.mapping.dtype == torch.int32 and torch.equal(layer.mapping.long(), wiring)

    @pytest.mark.parametrize(
        ("mapping", "error", "match"),
        [
            (
                torch.zeros(3, 3, dtype=torch.long),
                ShapeError,
                r"shape \(output_size, n\) = \(3, 2\)",
            ),
            (torch.tensor([[0, 1], [2, 5], [0, 0]]), ShapeError, r"lie in \[0, 5\).*\[0, 5\]"),
            (torch.tensor([[0, -1], [2, 3], [0, 0]]), ShapeError, r"\[-1, 3\]"),
            (torch.zeros(3, 2), ConfigError, "integer dtype"),
            ("spiral", ConfigError, "mapping must be one of"),
            ([[0, 1], [2, 3], [4, 0]], ConfigError, "got list"),
        ],
    )
    def test_bad_mapping(self, mapping, error, match):
        with pytest.raises(error, match=match):
            LUTLayer(5, 3, 2, mapping=mapping)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"n": 0}, "n must be a positive int"),
            ({"n": 11}, "n must be at most 10"),
            ({"output_size": 2.5}, "output_size must be a positive int"),
            ({"efd": "linear"}, "efd must be one of"),
            ({"efd": "paper", "beta": 0.5}, "takes no alpha or beta"),
            ({"backend": "fast"}, "backend must be one of"),
            ({"alpha": "big"}, "alpha must be a real number"),
        ],
    )
    def test_bad_arguments(self, kwargs, match):
        arguments = {"input_size": 6, "output_size": 4, "n": 2, **kwargs}
        with pytest.raises(ConfigError, match=match):
            LUTLayer(**arguments)

    def test_wrong_input_shape(self):
        layer = LUTLayer(6, 4, 2)
        with pytest.raises(ShapeError, match=r"expects input of shape \(batch, 6\), got \(3, 5\)"):
            layer(torch.zeros(3, 5))
        with pytest.raises(ShapeError, match=r"\(batch, 6\)"):
            layer(torch.zeros(6))

    @pytest.mark.parametrize("backend", ["torch", "auto"])
    @pytest.mark.parametrize("kind", ["random", "learnable"])
    def test_forward_is_the_truth_table_network(self, kind, backend):
        torch.manual_seed(1)
        layer = LUTLayer(30, 12, 4, mapping=kind, backend=backend)
        x = (torch.rand(9, 30) > 0.5).float()
        out = layer(x)
        assert torch.equal(out, layer_outputs_by_tables(layer, x))
        assert set(out.unique().tolist()) <= {0.0, 1.0}

    def test_learnable_mapping(self):
        layer = LUTLayer(16, 5, 3, mapping="learnable", lm_tau=0.01)
        assert layer.learnable_mapping.tau == 0.01
        assert layer.learnable_mapping.weight.shape == (16, 15)
        assert torch.equal(layer.mapping, torch.arange(15, dtype=torch.int32).view(5, 3))
        expected = layer.learnable_mapping.weight.argmax(0).view(5, 3)
        assert torch.equal(layer.effective_mapping(), expected)
        x = (torch.rand(4, 16) > 0.5).float().requires_grad_()
        layer(x).sum().backward()
        assert layer.learnable_mapping.weight.grad is not None and x.grad is not None

    def test_bool_input_accepted(self):
        layer = LUTLayer(6, 4, 2)
        x = torch.rand(3, 6) > 0.5
        assert torch.equal(layer(x), layer(x.float()))

    @pytest.mark.parametrize("backend", ["torch", "cpp"])
    @pytest.mark.parametrize("efd_variant", efd.VARIANTS)
    def test_gradients_are_efd(self, backend, efd_variant):
        if backend == "cpp" and not ext.load():
            pytest.skip("compiled kernels unavailable")
        torch.manual_seed(2)
        layer = LUTLayer(7, 5, 3, efd=efd_variant, backend=backend).double()
        x = torch.randint(0, 2, (6, 7)).double().requires_grad_()
        grad = torch.randn(6, 5, dtype=torch.float64)
        layer(x).backward(grad)
        if efd_variant == "code":
            weight = code_weight(layer.alpha.item(), layer.beta.item())
        else:
            weight = paper_weight
        _, _, grad_x, grad_luts = brute_force(
            x.detach(), layer.mapping, layer.luts.detach(), grad, weight
        )
        torch.testing.assert_close(x.grad, grad_x)
        torch.testing.assert_close(layer.luts.grad, grad_luts)

    def test_ste_switch(self):
        torch.manual_seed(4)
        x = (torch.rand(5, 10) > 0.5).float()
        with_ste = LUTLayer(10, 6, 2, backend="torch")
        raw = LUTLayer(10, 6, 2, ste=False, backend="torch")
        raw.load_state_dict(with_ste.state_dict())
        y = raw(x)
        assert torch.equal(with_ste(x), (y > 0).float())
        assert not set(y.unique().tolist()) <= {0.0, 1.0}
        grad = torch.randn(5, 6)
        with_ste(x).backward(grad)
        raw(x).backward(grad)
        torch.testing.assert_close(with_ste.luts.grad, raw.luts.grad)

    def test_clamp_in_training_forward_only(self):
        layer = LUTLayer(6, 4, 2)
        with torch.no_grad():
            layer.luts.mul_(5)
        layer.eval()
        layer(torch.ones(1, 6))
        assert layer.luts.abs().max() > 1
        layer.train()
        layer(torch.ones(1, 6))
        assert layer.luts.abs().max() == 1
        unclamped = LUTLayer(6, 4, 2, clamp_luts=False)
        with torch.no_grad():
            unclamped.luts.mul_(5)
        unclamped(torch.ones(1, 6))
        assert unclamped.luts.abs().max() > 1

    def test_two_training_forwards_share_one_backward(self):
        layer = LUTLayer(6, 4, 2)
        x = (torch.rand(3, 6) > 0.5).float()
        (layer(x).sum() + layer(1 - x).sum()).backward()
        assert layer.luts.grad is not None

    def test_eval_equals_train(self):
        torch.manual_seed(5)
        model = torch.nn.Sequential(LUTLayer(40, 20, 6, mapping="learnable"), LUTLayer(20, 10, 6))
        x = (torch.rand(16, 40) > 0.5).float()
        trained = model.train()(x)
        assert torch.equal(model.eval()(x), trained)

    def test_efd_function_directly(self):
        x, mapping, luts, grad = random_problem(3, 4)
        x.requires_grad_()
        luts.requires_grad_()
        alpha, beta = torch.tensor(0.4), torch.tensor(0.5)
        y = EFDFunction.apply(x, mapping, luts, alpha, beta)
        y.backward(grad)
        expected = brute_force(x.detach(), mapping, luts.detach(), grad, code_weight(0.4, 0.5))
        torch.testing.assert_close(y, expected[0])
        torch.testing.assert_close(x.grad, expected[2])

    def test_lut_gradcheck(self):
        # y is linear in the tables, so their gradient is exact (unlike the EFD input gradient).
        x, mapping, luts, _ = random_problem(3, 4)
        luts.requires_grad_()
        alpha, beta = torch.tensor(0.4), torch.tensor(0.5)
        assert torch.autograd.gradcheck(
            lambda t: EFDFunction.apply(x, mapping, t, alpha, beta), (luts,)
        )

    @pytest.mark.cuda
    def test_cuda_layer_matches_cpu(self):
        torch.manual_seed(6)
        layer = LUTLayer(50, 30, 6, mapping="learnable")
        x = (torch.rand(8, 50) > 0.5).float()
        gpu = LUTLayer(50, 30, 6, mapping="learnable").cuda()
        gpu.load_state_dict(layer.state_dict())
        assert torch.equal(gpu(x.cuda()).cpu(), layer(x))
        layer(x).sum().backward()
        gpu(x.cuda()).sum().backward()
        torch.testing.assert_close(gpu.luts.grad.cpu(), layer.luts.grad)


class TestQuantizedWeights:
    """What the summary and the bit-packed export read: 0/1 tables, index bit-widths."""

    def test_quantized_weight_is_the_truth_table(self):
        torch.manual_seed(7)
        layer = LUTLayer(20, 12, 3)
        layer.luts.data[0, 0] = 0.0  # 1[0 > 0] = 0
        q = layer.quantized_weight()
        assert q.dtype == torch.float32 and set(q.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(q.bool(), layer.truth_tables()) and q[0, 0] == 0
        assert layer.weight_precision == 1

    @pytest.mark.parametrize("mapping", ["random", "learnable"])
    def test_forward_with_the_quantized_tables_is_identical(self, mapping):
        torch.manual_seed(8)
        layer = LUTLayer(20, 12, 3, mapping=mapping).eval()
        x = (torch.rand(16, 20) > 0.5).float()
        before = layer(x)
        layer.luts.data.copy_(layer.quantized_weight())
        assert torch.equal(layer(x), before)

    def test_precisions(self):
        assert LUTLayer(2000, 10, 6).param_precisions() == {"luts": 1, "mapping": 11}
        assert LUTLayer(2048, 10, 6).param_precisions() == {"luts": 1, "mapping": 11}
        assert LUTLayer(2049, 10, 6, mapping="learnable").param_precisions()["mapping"] == 12
        raw = LUTLayer(5, 4, 2, ste=False)
        assert raw.weight_precision == 32 and torch.equal(raw.quantized_weight(), raw.luts)

    def test_lookups_counted_as_macs(self):
        layer = LUTLayer(20, 12, 3)
        x = torch.zeros(4, 20)
        assert layer.summary_macs((x,), layer(x)) == [(1, 12)]

    def test_packed_state(self):
        from bnn_shared.export import Indices, Packed, Rebuilt

        fixed = LUTLayer(20, 12, 3)
        state = fixed.packed_state()
        assert sorted(state) == ["luts", "mapping"]
        assert isinstance(state["luts"], Packed) and state["luts"].precision == 1
        assert isinstance(state["mapping"], Indices) and state["mapping"].size == 20
        learnable = LUTLayer(20, 12, 3, mapping="learnable").packed_state()
        assert learnable["mapping"] == Rebuilt((12, 3))  # the slot wiring arange(J*n)
        assert "luts" not in LUTLayer(5, 4, 2, ste=False).packed_state()  # raw float tables
