"""The one loader of the project's compiled kernels (namespace ``torch.ops.bnn_shared``).

Every kernel has a pure-PyTorch reference (its specification); the compiled path is an
optional speed-up chosen with ``backend="auto" | "torch" | "cpp" | "cuda"``.

Sources: every ``csrc/*.cpp`` (schemas with ``TORCH_LIBRARY_FRAGMENT(bnn_shared, m)``, CPU
kernels with ``TORCH_LIBRARY_IMPL(bnn_shared, CPU, m)``) and, when a GPU and the CUDA toolkit
are present, every ``csrc/cuda/*.cu`` (``TORCH_LIBRARY_IMPL(bnn_shared, CUDA, m)``) are
compiled into ONE library by :func:`torch.utils.cpp_extension.load` (JIT, ninja). A package
adds a kernel by dropping its sources there; the next :func:`load` rebuilds.

Importing this module never builds and never raises. :func:`load` builds once per process
(thread-safe) and records a failure instead of raising; ``backend="auto"`` then falls back to
the reference silently. Environment:

- ``BNN_SHARED_EXT=0``: never build or load; every op runs its reference.
- ``BNN_EXT_BUILD_DIR``: build root (default: torch's extensions root, which honours
  ``TORCH_EXTENSIONS_DIR``); one sub-folder per Python/torch version and library.
- ``BNN_EXT_VERBOSE=1``: print the compiler's output.

``python -m bnn_shared.ext`` builds (if needed) and prints :func:`status`.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import BnnError

__all__ = [
    "BACKENDS",
    "NAMESPACE",
    "load",
    "register_fake",
    "resolve_backend",
    "status",
]

#: ``torch.library`` namespace of every compiled op: ``torch.ops.bnn_shared.<op>``.
NAMESPACE = "bnn_shared"
#: Accepted values of every ``backend=`` argument.
BACKENDS = ("auto", "torch", "cpp", "cuda")

_CSRC = Path(__file__).parent / "csrc"
_FALSE = {"0", "false", "no", "off"}
_DISPATCH_KEY = {"cpp": "CPU", "cuda": "CUDA"}
_log = logging.getLogger(__name__)


@dataclass
class _State:
    attempted: bool = False
    cpp: bool = False
    cuda: bool = False
    error: str | None = None
    build_dir: str | None = None


_state = _State()
_load_lock = threading.Lock()
# Taken after _load_lock, never before it: fakes are registered from inside load().
_fake_lock = threading.RLock()
_fakes: dict[str, Callable] = {}
_fakes_applied: set[str] = set()
_kernel_modules_imported = False


def load() -> bool:
    """Build (first call only) and load the compiled library; True when its ops are usable.

    Never raises: a failure (no compiler, no ninja, a compile error, ``BNN_SHARED_EXT=0``) is
    recorded and reported by :func:`status`. The result is cached for the process.
    """
    if not _state.attempted:
        with _load_lock:
            if not _state.attempted:
                _attempt_load()
    if _state.cpp:
        _import_kernel_modules()
    return _state.cpp


def status() -> dict:
    """What the compiled library offers: ``{"cpp", "cuda", "error", "build_dir"}``.

    ``cpp``: the library is loaded (CPU kernels usable); ``cuda``: its CUDA kernels are too;
    ``error``: why it is not loaded, or why only the CPU kernels are (None when all is well);
    ``build_dir``: the folder of the build. Calls :func:`load` (so the first call may build).
    """
    load()
    report = asdict(_state)
    del report["attempted"]
    return report


def resolve_backend(backend: str, device: torch.device | str, *, op: str | None = None) -> str:
    """Turn a user's ``backend`` into the one that will run on ``device``.

    Args:
        backend: ``"auto"`` (compiled when available, else the reference, silently),
            ``"torch"`` (the pure-PyTorch reference, always works), ``"cpp"`` (compiled CPU
            kernel, CPU tensors) or ``"cuda"`` (compiled CUDA kernel, CUDA tensors).
        device: the device of the op's input tensors.
        op: optional op name (``"pack_bits"``); when given, also check that the compiled
            library has a kernel of that op for the device.

    Returns:
        ``"torch"``, ``"cpp"`` or ``"cuda"``.

    Raises:
        BnnError: an unknown backend, or an explicit ``"cpp"``/``"cuda"`` that does not match
            the device or is not available (the message says why).
    """
    if backend not in BACKENDS:
        raise BnnError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    device = torch.device(device)
    native = {"cpu": "cpp", "cuda": "cuda"}.get(device.type)
    if backend == "auto":
        return native if native is not None and _unavailable(native, op) is None else "torch"
    if backend != native:
        raise BnnError(
            f"backend={backend!r} cannot run on a tensor on {device}: 'cpp' runs CPU tensors "
            "and 'cuda' runs CUDA tensors; backend='torch' always works"
        )
    reason = _unavailable(backend, op)
    if reason is not None:
        raise BnnError(
            f"backend={backend!r} is not available: {reason}; backend='torch' (the pure-PyTorch "
            "reference) always works, and backend='auto' picks it by itself"
        )
    return backend


def register_fake(op: str) -> Callable[[Callable], Callable]:
    """Decorator: ``fn`` is the fake (meta) implementation of ``bnn_shared::<op>``.

    ``fn`` takes the op's arguments and returns empty tensors of the output's shape, dtype and
    device (``torch.empty(..., device=x.device)``); :func:`torch.library.opcheck` and
    ``torch.compile`` need it. The registration happens once the library is loaded (now, if it
    already is), so calling this at import time never builds.

    Every ``csrc/*.cpp`` calls ``m.set_python_module("bnn_shared.ext")`` before its ``m.def``,
    since torch requires it of C++ ops with Python fakes registered from this module.
    """

    def decorator(fn: Callable) -> Callable:
        with _fake_lock:
            _fakes[f"{NAMESPACE}::{op}"] = fn
            if _state.cpp:
                _apply_fakes()
        return fn

    return decorator


def _attempt_load() -> None:
    if os.environ.get("BNN_SHARED_EXT", "1").strip().lower() in _FALSE:
        _state.error = "compiled kernels disabled by BNN_SHARED_EXT=0"
    else:
        try:
            _build_and_load()
        except Exception as exc:  # any failure means "use the reference"
            _state.cpp = _state.cuda = False
            _state.error = f"{type(exc).__name__}: {exc}".strip()
            _log.info("bnn_shared compiled kernels unavailable: %s", _state.error)
    _state.attempted = True


def _build_and_load() -> None:
    # Imported here: importing cpp_extension probes the toolchain and logs a warning when it
    # has to guess CUDA_HOME (e.g. nvcc on PATH but no GPU), which is noise for CPU users.
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        cpp_logger.setLevel(level)

    sources = sorted(_CSRC.glob("*.cpp"))
    if not sources:
        raise RuntimeError(f"no C++ sources in {_CSRC}")
    cuda_sources = sorted((_CSRC / "cuda").glob("*.cu"))
    cuda_error = None
    if cuda_sources and _cuda_toolchain(cpp_extension):
        try:
            _compile(cpp_extension, "bnn_shared_ext_cuda", sources + cuda_sources)
            _state.cuda = True
        except Exception as exc:  # keep the CPU kernels when only the CUDA build fails
            cuda_error = f"CUDA kernels failed to build ({type(exc).__name__}: {exc})"
            _log.warning("bnn_shared: %s; building the CPU kernels only", cuda_error)
    if not _state.cuda:
        _compile(cpp_extension, "bnn_shared_ext", sources)
    _state.cpp = True
    _state.error = cuda_error
    with _fake_lock:
        _apply_fakes()


# Without -fopenmp, ATen's header-only at::parallel_for silently runs on one thread.
_OPENMP = ("-fopenmp",) if sys.platform.startswith("linux") else ()


def _compile(cpp_extension, name: str, sources: list[Path]) -> None:
    build_dir = _build_dir(cpp_extension, name)
    _state.build_dir = str(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(
        name=name,
        sources=[str(path) for path in sources],
        extra_cflags=["-O3", *_OPENMP],
        extra_ldflags=list(_OPENMP),
        extra_cuda_cflags=["-O3"],
        build_directory=str(build_dir),
        verbose=os.environ.get("BNN_EXT_VERBOSE", "0").strip().lower() not in _FALSE,
        with_cuda=any(path.suffix == ".cu" for path in sources),
        is_python_module=False,
    )


def _cuda_toolchain(cpp_extension) -> bool:
    return (
        torch.cuda.is_available()
        and torch.version.hip is None
        and cpp_extension.CUDA_HOME is not None
    )


def _build_dir(cpp_extension, name: str) -> Path:
    root = os.environ.get("BNN_EXT_BUILD_DIR") or cpp_extension.get_default_build_root()
    # torch's version is in the path: a library built against another torch must not load.
    version = torch.__version__.replace("+", "_")
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_torch{version}"
    return Path(root).expanduser() / tag / name


def _unavailable(backend: str, op: str | None) -> str | None:
    """Why ``backend`` cannot run (``op``), or None when it can."""
    if not load():
        return f"the compiled library did not load ({_state.error})"
    if backend == "cuda" and not _state.cuda:
        return _state.error or (
            "the CUDA kernels were not built (they need torch.cuda.is_available() and the CUDA "
            "toolkit, CUDA_HOME, when the library is first loaded)"
        )
    if op is not None and not _has_kernel(op, _DISPATCH_KEY[backend]):
        return f"the compiled library has no {_DISPATCH_KEY[backend]} kernel for {op!r}"
    return None


def _has_kernel(op: str, dispatch_key: str) -> bool:
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(f"{NAMESPACE}::{op}", dispatch_key)
    except RuntimeError:  # the op is not defined at all
        return False


def _apply_fakes() -> None:
    for qualname, fn in _fakes.items():
        if qualname in _fakes_applied:
            continue
        _fakes_applied.add(qualname)
        try:
            torch.library.register_fake(qualname, fn)
        except Exception as exc:  # the op still runs eagerly without it
            _log.warning("could not register the fake implementation of %s: %s", qualname, exc)


def _import_kernel_modules() -> None:
    """Import this package's kernel modules so that their fakes are registered."""
    global _kernel_modules_imported
    if _kernel_modules_imported:
        return
    _kernel_modules_imported = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
