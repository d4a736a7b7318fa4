"""emoji_ae: the library of the emoji autoencoder pipeline, and its installed parts.

The DVC stages (stages/, run from a clone) and the tools run by hand (emoji_ae.tools) share these
modules: params, paths and files, data, the model, its training, its metrics and the figures.
`emoji_ae.app` is the `emoji-ae` command and its local page. Nothing here imports a stage.
"""

import os
import platform

# Pin x86 CPUs to the AVX2 kernels of PyTorch, oneDNN and MKL, so that a CPU with AVX-512 gives
# the same data and weights as one without: wider vectors sum in another order and round
# differently. MKL matters on Intel CPUs only (it ignores the variable elsewhere): it runs the
# augment stage's affine grids and the classifier's linear layer. Set before torch runs its
# first kernel (every stage imports this package first); export any of the variables to override.
KERNEL_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
if platform.machine().lower() in ("x86_64", "amd64"):
    for name, value in KERNEL_PINS.items():
        os.environ.setdefault(name, value)
