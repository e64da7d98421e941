"""doc/benchmarks.md as one part per CPU family, each part a set of sections that
``python -m tools.bench --out`` replaces one by one.

A speed claim holds for the CPU it was measured on: the same models run at other ratios on
an Intel Xeon and an AMD EPYC, and on an EPYC with AVX-512 (Zen 4, Zen 5) and one without (Zen
3), as oneDNN and ONNX Runtime pick other kernels per ISA. So a family is the vendor and its
widest vector ISA ("AMD AVX-512", "AMD AVX2"), each family keeps its own tables, and a run on one
family (or of one section) leaves the others as they were. Every section carries the command and the machine (CPU model, ISA flags, PyTorch's
CPU capability) it came from.
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ptocr.cpu_features import cpuinfo_fields

# The instruction-set flags that decide which kernels oneDNN, MKL and ONNX Runtime run.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}
TITLE = "# CPU benchmarks"


@dataclass(frozen=True)
class CpuInfo:
    family: str  # vendor and vector ISA ("Intel AVX-512 AMX", "AMD AVX2"), "GPU", or the architecture
    model: str
    isa: tuple[str, ...]
    capability: str  # PyTorch's dispatch level (e.g. AVX512), what its own kernels use
    cores: int

    @property
    def key(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.family.lower().replace("-", ""))  # "amd_avx512"

    def describe(self) -> str:
        if self.family == "GPU":
            return (f"{self.model}, {self.capability}, PyTorch {torch.__version__}, {platform.system()} "
                    f"{platform.release()}, Python {platform.python_version()}")
        return (f"{self.model} ({self.family}), {self.cores} logical cores, ISA {' '.join(self.isa) or 'none listed'}, "
                f"PyTorch CPU capability {self.capability}, {platform.system()} {platform.release()}, "
                f"Python {platform.python_version()}")


def parse_cpuinfo(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``/proc/cpuinfo`` -> (family: vendor and widest vector ISA, model name, the ISA flags of
    ``ISA_FLAGS`` it has)."""
    fields = cpuinfo_fields(text)
    flags = set(fields.get("flags", "").split())
    family = VENDORS.get(fields.get("vendor_id", ""), platform.machine() or "unknown")
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    if vector == "AVX-512" and "amx_tile" in flags:
        # A Xeon with AMX (Sapphire Rapids on) runs oneDNN's bfloat16 and int8 kernels on its tile
        # unit; one without (Ice Lake) emulates bfloat16: other ratios, so a family of its own.
        vector = "AVX-512 AMX"
    family = f"{family} {vector}" if vector else family
    model = fields.get("model name", platform.processor() or "unknown CPU")
    if "cpu family" in fields and "model" in fields:
        # Cloud VMs often name the CPU generically ("Intel(R) Xeon(R) Processor", "AMD EPYC"): the
        # numbers say which generation it is (AMD family 25 model 1 is a Zen 3, model 17 a Zen 4,
        # family 26 a Zen 5).
        model = f"{model}, family {fields['cpu family']} model {fields['model']}"
    return family, model, tuple(f for f in ISA_FLAGS if f in flags)


def cpu_info() -> CpuInfo:
    try:
        family, model, isa = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: no flags to read
        family, model, isa = platform.machine() or "unknown", platform.processor() or "unknown CPU", ()
    return CpuInfo(family, model, isa, torch.backends.cpu.get_cpu_capability(), os.cpu_count() or 0)


def gpu_info(device: str, host: CpuInfo) -> CpuInfo:
    """The CUDA device ``device`` as a machine of family "GPU" (its own part of the file), the
    host CPU named in its model."""
    name = torch.cuda.get_device_name(torch.device(device))
    return CpuInfo("GPU", f"{name} (host {host.model}, {host.cores} logical cores)", (),
                   f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}", host.cores)


def _markers(family_key: str, section: str) -> tuple[str, str]:
    return f"<!-- bench:{family_key}:{section} -->", f"<!-- /bench:{family_key}:{section} -->"


def update(doc: str, cpu: CpuInfo, section: str, content: str, notes: str) -> str:
    """``doc`` with the section ``section`` of ``cpu``'s family replaced by ``content`` (added at
    the end of that family's part, or a new part, when absent). Other families and sections stay."""
    if not doc.strip():
        doc = f"{TITLE}\n\n{notes}\n"
    start, end = _markers(cpu.key, section)
    block = f"{start}\n{content.strip()}\n{end}"
    found = re.search(re.escape(start) + r".*?" + re.escape(end), doc, flags=re.S)
    if found:
        return doc[:found.start()] + block + doc[found.end():]
    heading = f"## {cpu.family}"
    # the heading is "## FAMILY: model": "## AMD" must not take "## AMD AVX2: ..." for its own
    family_at = re.search(rf"^{re.escape(heading)}(?::.*)?$", doc, flags=re.M)
    if family_at is None:
        return doc.rstrip("\n") + f"\n\n{heading}: {cpu.model}\n\n{block}\n"
    next_family = re.search(r"^## ", doc[family_at.end():], flags=re.M)
    at = family_at.end() + (next_family.start() if next_family else len(doc) - family_at.end())
    head, tail = doc[:at].rstrip("\n"), doc[at:]
    return f"{head}\n\n{block}\n" + (f"\n{tail}" if tail else "")


def write_section(path: Path, cpu: CpuInfo, section: str, content: str, notes: str) -> None:
    """Replace one section of ``path`` (created if absent), written whole through a temporary
    file so an interrupted run leaves the previous file."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(update(old, cpu, section, content, notes), encoding="utf-8")
    tmp.replace(path)
