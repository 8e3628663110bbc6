"""The training fast path of one device, decided in one place.

``resolve_fast_path`` turns ``training.precision``, ``training.channels_last`` and
``training.compile`` into what the step actually runs with. ``auto`` and ``null`` pick the
per-device default; an explicit value always wins, with a warning where the hardware makes it
slow. The CPU defaults come from side-by-side measurements (README, "The fast path, per
device"), not from what should help:

- CUDA: fp32 (bf16 on request), channels-last convolutions, fused AdamW.
- CPU: bf16 autocast only where the CPU computes bf16 natively (AVX512-BF16 or AMX); without
  it every bf16 op converts to and from fp32 and the step got 2-3x slower, not faster.
  Channels-last stays off: it was no faster for the paper's model and slower for the small one
  with one thread per core.
- compile: off everywhere; on a 2-core CPU the compiled step of the small model was no faster
  than eager (0.81x-1.06x), after up to 19 minutes of compilation.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from act_hydra.config import Precision, TrainingConfig

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic instructions (x86: AVX512-BF16 or AMX; Arm: the
    BF16 extension). Without them oneDNN emulates bf16 through fp32, which is slower than fp32."""
    cpu = torch.cpu
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        if check is not None and check():
            return True
    if platform.machine().lower() in ("aarch64", "arm64"):
        return _cpuinfo_has_flag("bf16")
    return False


def _cpuinfo_has_flag(flag: str) -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(
        flag in line.split(":", 1)[1].split()
        for line in text.splitlines()
        if line.lower().startswith(("flags", "features")) and ":" in line
    )


@dataclass(frozen=True)
class FastPath:
    """What the training step runs with on its device (all settings resolved)."""

    device: str
    precision: Precision  # never auto
    channels_last: bool  # the backbone's convolutions (and their inputs) in NHWC
    compile: bool
    fused_adamw: bool
    native_bf16: bool  # the device computes bf16 natively (CUDA: torch.cuda.is_bf16_supported)
    cpu_threads: int  # torch intra-op threads of this process

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "precision": str(self.precision)}

    def describe(self) -> str:
        return (
            f"fast path on {self.device}: precision {self.precision}, "
            f"channels_last {self.channels_last}, compile {self.compile}, "
            f"fused AdamW {self.fused_adamw}, {self.cpu_threads} CPU threads "
            f"(native bf16: {self.native_bf16})"
        )


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_fast_path(t: TrainingConfig, device: torch.device, warn: bool = True) -> FastPath:
    """The per-device defaults for ``auto``/``null``, explicit settings as given, and a
    warning where an explicit setting is known to be slow on this device."""
    bf16_native = native_bf16(device)
    precision = Precision(t.precision)
    if precision == Precision.auto:
        # bf16 only where it is both native and measured faster: CPUs with bf16 instructions.
        # CUDA keeps fp32 until bf16 training quality is measured there (pass bf16 to opt in).
        precision = Precision.bf16 if device.type == "cpu" and bf16_native else Precision.fp32
    elif warn:
        for message in slow_precision_warnings(precision, device, bf16_native):
            log.warning(message)
    channels_last = device.type == "cuda" if t.channels_last is None else bool(t.channels_last)
    return FastPath(
        device=str(device),
        precision=precision,
        channels_last=channels_last,
        compile=bool(t.compile),
        # One fused kernel for the whole update instead of several per parameter (CUDA only).
        fused_adamw=device.type == "cuda",
        native_bf16=bf16_native,
        cpu_threads=torch.get_num_threads(),
    )


def slow_precision_warnings(
    precision: Precision, device: torch.device, bf16_native: bool
) -> list[str]:
    """Messages for a precision the user asked for that this device runs slowly or not at all."""
    if device.type != "cpu":
        return []
    if precision == Precision.bf16 and not bf16_native:
        return [
            "training.precision=bf16 on a CPU without bf16 instructions (no AVX512-BF16 or "
            "AMX): bf16 is emulated through fp32 and the step is slower than fp32, with "
            "bf16's rounding. Fix: pass training.precision=auto (or fp32) on this machine."
        ]
    if precision == Precision.fp16 and not getattr(torch.cpu, "_is_amx_fp16_supported", bool)():
        return [
            "training.precision=fp16 on a CPU without AMX-FP16: fp16 is emulated and slow. "
            "Fix: pass training.precision=auto (or fp32) on this machine."
        ]
    if precision == Precision.tf32:
        return ["training.precision=tf32 changes nothing on a CPU: the step runs in fp32."]
    return []
