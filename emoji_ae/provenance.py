"""Where and when a measurement was made, for the artefacts that tools commit (the benchmark,
the noise measurements): date, commit, and the machine in words."""

import datetime
import os
import platform
import subprocess

import torch


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    accelerator = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu_name()}, {os.cpu_count()} CPU threads, {accelerator}, torch {torch.__version__}"


def commit(writes: tuple[str, ...] = ()) -> str:
    """The checked-out commit, marked when the working tree has uncommitted changes other than
    `writes`: what the caller is writing, which DVC deletes before it runs a stage."""
    excluded = [f":(exclude){path}" for path in writes]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+uncommitted" if dirty else sha


def provenance(writes: tuple[str, ...] = ()) -> dict:
    return {"date": datetime.date.today().isoformat(), "commit": commit(writes), "machine": machine()}
