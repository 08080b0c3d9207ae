"""persyn.core.hardware: the CPU's flags, the llama.cpp build line without AMX, and the warning
before a load that would go through llama.cpp's AMX buffer (ggml-org/llama.cpp#20824)."""

import subprocess
import sys

import pytest

from persyn.core import hardware

# /proc/cpuinfo flags of the three kinds of x86 CPU this project's machines have had.
SAPPHIRE_RAPIDS = frozenset(
    "fpu sse4_2 avx avx2 bmi2 fma f16c avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi "
    "avx512_vnni avx512_bf16 avx512_fp16 avx_vnni amx_bf16 amx_tile amx_int8".split()
)
EPYC_ZEN4 = frozenset(
    "fpu sse4_2 avx avx2 bmi2 fma f16c avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi "
    "avx512_vnni avx512_bf16".split()
)
AVX2_ONLY = frozenset("fpu sse4_2 avx avx2 bmi2 fma f16c".split())


def _args(flags) -> dict[str, str]:
    out = {}
    for a in hardware.llamacpp_cmake_args(flags, "x86_64"):
        name, _, value = a.removeprefix("-D").partition("=")
        out[name] = value
    return out


def test_cpu_flags_reads_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 amx_tile\n\nprocessor\t: 1\nflags\t: fpu\n"
    )
    assert hardware.cpu_flags(info) == {"fpu", "avx2", "amx_tile"}  # the first CPU's
    assert hardware.cpu_flags(tmp_path / "missing") == frozenset()
    assert hardware.has_amx(hardware.cpu_flags(info)) and not hardware.has_amx(AVX2_ONLY)


def test_the_build_line_never_enables_amx_nor_an_instruction_set_the_cpu_lacks():
    spr = _args(SAPPHIRE_RAPIDS)
    assert spr["GGML_NATIVE"] == "OFF"  # -march=native would compile the AMX path back in
    assert all(spr[o] == "OFF" for o in hardware.AMX_OPTIONS)
    assert spr["GGML_AVX512"] == spr["GGML_AVX512_BF16"] == spr["GGML_AVX_VNNI"] == "ON"
    old = _args(AVX2_ONLY)
    assert old["GGML_AVX2"] == old["GGML_FMA"] == "ON"
    # AVX-512 named on a CPU without it would be a SIGILL
    assert all(
        old[o] == "OFF" for o in ("GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI")
    )
    # GGML_AVX512 needs all five of its sub-sets: a CPU with avx512f alone does not get it
    assert _args(AVX2_ONLY | {"avx512f"})["GGML_AVX512"] == "OFF"
    assert _args(EPYC_ZEN4)["GGML_AVX512_BF16"] == "ON" and _args(EPYC_ZEN4)["GGML_AVX_VNNI"] == "OFF"
    # every option is set explicitly: with GGML_NATIVE=OFF ggml would turn AVX/AVX2/FMA/F16C on by default
    assert set(spr) == {"GGML_NATIVE", *hardware.X86_OPTIONS, *hardware.AMX_OPTIONS}
    arm = hardware.llamacpp_cmake_args(frozenset({"fp", "asimd"}), "aarch64")
    assert arm == [f"-D{o}=OFF" for o in hardware.AMX_OPTIONS]  # native there: no AMX on ARM


def test_the_command_prints_this_cpus_args():
    out = subprocess.run(
        [sys.executable, "-m", "persyn.core.hardware", "cmake-args"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == hardware.llamacpp_cmake_args()
    assert (
        "--no-cache-dir" in hardware.llamacpp_install_line()
        and "==0.3.36" in hardware.llamacpp_install_line()
    )


INFO_AMX = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 |"
INFO_SAFE = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | REPACK = 1 |"


def test_amx_is_used_only_when_compiled_in_and_the_cpu_has_it():
    assert hardware.llamacpp_uses_amx(INFO_AMX, SAPPHIRE_RAPIDS)
    assert not hardware.llamacpp_uses_amx(INFO_SAFE, SAPPHIRE_RAPIDS)  # the safe build
    assert not hardware.llamacpp_uses_amx(INFO_AMX, EPYC_ZEN4)  # no AMX buffer without AMX tiles


def test_the_warning_comes_once_and_names_the_bug_and_the_fix(monkeypatch):
    monkeypatch.setattr(hardware, "_warned", False)
    monkeypatch.setattr(hardware, "llamacpp_system_info", lambda: INFO_AMX)
    monkeypatch.setattr(hardware, "cpu_flags", lambda *a: SAPPHIRE_RAPIDS)
    said = []
    assert hardware.warn_if_llamacpp_uses_amx(said.append)
    assert hardware.warn_if_llamacpp_uses_amx(said.append)
    assert len(said) == 1
    assert "ggml-org/llama.cpp#20824" in said[0] and "-m persyn.core.hardware cmake-args" in said[0]
    with pytest.warns(RuntimeWarning, match="AMX"):
        monkeypatch.setattr(hardware, "_warned", False)
        hardware.warn_if_llamacpp_uses_amx()
    monkeypatch.setattr(hardware, "_warned", False)
    monkeypatch.setattr(hardware, "llamacpp_system_info", lambda: INFO_SAFE)
    assert not hardware.warn_if_llamacpp_uses_amx(said.append) and len(said) == 1
