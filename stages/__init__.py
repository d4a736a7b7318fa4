"""The pipeline's stages and the modules they share."""

import os
import platform

# Pin x86 CPUs to PyTorch's and oneDNN's AVX2 kernels, so that a CPU with AVX-512 trains the
# same weights as one without: wider vectors sum in another order and round differently.
# Set before torch runs its first kernel; export either variable to override.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
