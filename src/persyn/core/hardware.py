"""What this machine's CPU can run, read from ``/proc/cpuinfo``, and what follows: the dtype
``auto`` picks for a model (bf16 only where the hardware runs it natively), the llama.cpp build
line without the AMX path, and whether a loaded llama.cpp uses AMX.

Why the llama.cpp build is spelled out: with its default ``GGML_NATIVE=ON`` llama.cpp compiles
with ``-march=native``, which on a CPU with AMX (Sapphire Rapids and later Xeons) compiles its
AMX path in; at load it repacks every weight into an AMX buffer and then segfaults in
``ggml_backend_amx_mul_mat`` on some machines (upstream ggml-org/llama.cpp#20824, closed without
a fix). Turning the three ``GGML_AMX_*`` options off is not enough while ``-march=native``
still defines ``__AMX_INT8__``; ``GGML_NATIVE=OFF`` with every instruction set named
explicitly is. Naming one the CPU lacks (AVX-512 on an older CPU) would be a SIGILL instead, so
each is switched on only where ``/proc/cpuinfo`` lists it.

``python -m persyn.core.hardware cmake-args`` prints the ``CMAKE_ARGS`` for this CPU;
``python -m persyn.core.hardware check-llamacpp`` loads nothing and says whether the installed
llama-cpp-python was built with the AMX path.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

LLAMACPP_VERSION = "0.3.36"
AMX_BUG = "ggml-org/llama.cpp#20824 (segfault in ggml_backend_amx_mul_mat)"

# ggml's x86 instruction-set options (ggml/CMakeLists.txt) and the /proc/cpuinfo flags each
# needs: GGML_AVX512 compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
X86_OPTIONS: dict[str, tuple[str, ...]] = {
    "GGML_SSE42": ("sse4_2",),
    "GGML_AVX": ("avx",),
    "GGML_AVX2": ("avx2",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_BMI2": ("bmi2",),
    "GGML_FMA": ("fma",),
    "GGML_F16C": ("f16c",),
    "GGML_AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "GGML_AVX512_VBMI": ("avx512f", "avx512vbmi"),
    "GGML_AVX512_VNNI": ("avx512f", "avx512_vnni"),
    "GGML_AVX512_BF16": ("avx512f", "avx512_bf16"),
}
AMX_OPTIONS = ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU listed in ``cpuinfo`` (its ``flags`` line on x86,
    ``Features`` on ARM); empty where the file is missing (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def has_amx(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has AMX tiles (``amx_tile`` in ``/proc/cpuinfo``)."""
    return "amx_tile" in (cpu_flags() if flags is None else flags)


#: The dtype settings of a model slot: ``auto`` resolves by ``resolve_dtype``.
DTYPE_SETTINGS = ("auto", "float32", "bfloat16")


def bf16_is_fast(
    device: str = "cpu", flags: frozenset[str] | None = None, cuda_bf16: bool = False
) -> tuple[bool, str]:
    """Whether bf16 matmuls run natively on ``device`` (``cpu`` or ``cuda``), and why: on a CPU
    when ``/proc/cpuinfo`` lists ``amx_bf16`` or ``avx512_bf16`` (oneDNN's bf16 kernels; without
    them bf16 is emulated and slower than fp32), on CUDA when the caller found bf16 support
    (``torch.cuda.is_bf16_supported()``, passed as ``cuda_bf16``)."""
    if device == "cuda":
        if cuda_bf16:
            return True, "the CUDA device supports bf16"
        return False, "the CUDA device has no bf16 support"
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return True, "the CPU has AMX-BF16 (amx_bf16 in /proc/cpuinfo)"
    if "avx512_bf16" in flags:
        return True, "the CPU has AVX512-BF16 (avx512_bf16 in /proc/cpuinfo)"
    return False, "the CPU has neither amx_bf16 nor avx512_bf16: bf16 would be emulated, slower than fp32"


def resolve_dtype(
    setting: str, device: str = "cpu", flags: frozenset[str] | None = None, cuda_bf16: bool = False
) -> tuple[str, str]:
    """``(dtype, reason)``: ``float32`` or ``bfloat16`` for a slot's ``dtype`` setting. An
    explicit dtype is kept; ``auto`` is bf16 where ``bf16_is_fast`` says so, else fp32.

    Raises:
        ValueError: ``setting`` is not one of ``DTYPE_SETTINGS`` (the value is named).
    """
    if setting not in DTYPE_SETTINGS:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_SETTINGS)}, got {setting!r}")
    if setting != "auto":
        return setting, "set in the config"
    fast, why = bf16_is_fast(device, flags, cuda_bf16)
    return ("bfloat16" if fast else "float32"), f"auto: {why}"


def llamacpp_cmake_args(flags: frozenset[str] | None = None, machine: str | None = None) -> list[str]:
    """The ``CMAKE_ARGS`` that build llama.cpp without its AMX path for this CPU: on x86-64
    ``-DGGML_NATIVE=OFF``, each instruction set of ``X86_OPTIONS`` ON exactly where ``flags``
    has all it needs, the AMX options OFF; on other machines (no AMX there) the native build
    with the AMX options OFF. ``flags``/``machine`` default to this machine's."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    amx_off = [f"-D{o}=OFF" for o in AMX_OPTIONS]
    if machine not in ("x86_64", "amd64", "i686", "i386"):
        return amx_off
    isa = [f"-D{o}={'ON' if all(f in flags for f in need) else 'OFF'}" for o, need in X86_OPTIONS.items()]
    return ["-DGGML_NATIVE=OFF", *isa, *amx_off]


def llamacpp_install_line(python: str = "python") -> str:
    """The shell line that installs the pinned llama-cpp-python built for this CPU without AMX:
    ``--no-cache-dir`` because pip caches the wheel it built keyed by the sdist, not by
    ``CMAKE_ARGS``, and would silently reinstall a build made with other flags."""
    return (
        f'CMAKE_ARGS="$({python} -m persyn.core.hardware cmake-args)" {python} -m pip install '
        f'--no-cache-dir --force-reinstall --no-deps "llama-cpp-python=={LLAMACPP_VERSION}"'
    )


def amx_in_system_info(system_info: str) -> bool:
    """Whether llama.cpp's ``llama_print_system_info()`` text says its CPU backend was compiled
    with AMX (``AMX_INT8 = 1``; the feature is listed only when compiled in)."""
    compact = system_info.replace(" ", "")
    return "AMX_INT8=1" in compact or "AMX=1" in compact


def llamacpp_system_info() -> str:
    """``llama_cpp.llama_print_system_info()`` as text (llama-cpp-python must be installed)."""
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def llamacpp_uses_amx(system_info: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether a model loaded by the installed llama.cpp goes through the AMX buffer: the
    library was compiled with AMX and the CPU has AMX (llama.cpp registers its AMX buffer type
    only then). Both default to this machine's readings."""
    info = llamacpp_system_info() if system_info is None else system_info
    return amx_in_system_info(info) and has_amx(flags)


_warned = False


def warn_if_llamacpp_uses_amx(warn=None) -> bool:
    """Warn once per process when the installed llama.cpp will use its AMX path here (a
    warning, not a refusal: AMX works on some machines). Returns whether it does.
    ``warn`` (default: ``warnings.warn`` with a ``RuntimeWarning``) receives the message."""
    global _warned
    if not llamacpp_uses_amx():
        return False
    if not _warned:
        _warned = True
        msg = (
            "llama.cpp was built with its AMX path and this CPU has AMX: loading a model repacks "
            f"its weights into the AMX buffer, which segfaults on some machines ({AMX_BUG}). "
            "Whatever is already stored is kept. To avoid it, rebuild without AMX: "
            + llamacpp_install_line(sys.executable)
        )
        if warn is None:
            import warnings

            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        else:
            warn(msg)
    return True


def _main(argv: list[str]) -> int:
    if argv[:1] == ["cmake-args"]:
        print(" ".join(llamacpp_cmake_args()))
        return 0
    if argv[:1] == ["check-llamacpp"]:
        info = llamacpp_system_info()
        print(f"llama.cpp system info: {info.strip()}")
        print(f"CPU has AMX: {has_amx()}; library compiled with AMX: {amx_in_system_info(info)}")
        if llamacpp_uses_amx(info):
            print(f"UNSAFE: models will use the AMX buffer ({AMX_BUG}). Rebuild with:")
            print("  " + llamacpp_install_line(sys.executable))
            return 1
        print("safe: no AMX buffer will be used")
        return 0
    print("usage: python -m persyn.core.hardware {cmake-args|check-llamacpp}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
