"""What the CPU can do natively, so precision defaults follow the hardware instead of a guess.

bf16 autocast pays on the CPU only where the instructions exist: AVX512-BF16 or AMX-BF16 on x86 (measured on the
project's AMD EPYC, 2 threads: resnet18 @112 123 → 338 img/s, vit_s @112 64 → 122), the BF16 extension on Arm.
Elsewhere oneDNN emulates bf16 with fp32 instructions and autocast only adds conversions, so ``annotate.precision=auto``
stays fp32 there.
"""

from __future__ import annotations

import functools
import logging
import platform
from pathlib import Path

log = logging.getLogger(__name__)

# /proc/cpuinfo flags (x86 "flags", Arm "Features") that mean bf16 arithmetic in hardware
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return set()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> tuple[bool, str]:
    """(True, why) when this CPU computes bf16 natively and torch's oneDNN can use it; (False, why) otherwise."""
    found = sorted(set(NATIVE_BF16_FLAGS) & cpu_flags())
    if platform.system() == "Darwin" and platform.machine() == "arm64":  # no /proc/cpuinfo; M2 and later have BF16
        found = ["arm64-darwin"] if _sysctl_bf16() else []
    if not found:
        return False, "no native bf16 (no avx512_bf16 / amx_bf16 / bf16 CPU flag)"
    try:
        import torch  # here, not at the top: cpu_flags alone needs no torch

        usable = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        usable = False
    if not usable:
        return False, f"CPU has {'/'.join(found)} but this torch build's oneDNN cannot use bf16"
    return True, f"native bf16 ({'/'.join(found)})"


def _sysctl_bf16() -> bool:
    import subprocess

    try:
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() == "1"
    except (OSError, subprocess.SubprocessError):
        return False


__all__ = ["cpu_flags", "cpu_native_bf16", "NATIVE_BF16_FLAGS"]
