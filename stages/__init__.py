"""The pipeline's DVC stages, one script each, run from a clone as `python -m stages.<name>`
(dvc.yaml). They are not installed: the library they share is the emoji_ae package."""

import emoji_ae  # noqa: F401  (pins the CPU kernels before torch runs, emoji_ae/__init__.py)
