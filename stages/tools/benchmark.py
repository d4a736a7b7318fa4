"""benchmark: the project's autoencoder against the assignment's reference architecture.

    dvc repro augment && python -m stages.tools.benchmark      # hours on 2 CPU cores: docs/benchmark.md
    python -m stages.tools.benchmark --aux-only                # the aux comparison alone

At each latent budget (values the decoder receives), both models train on the pipeline's
augmented train split, are compared on validation, and touch the test split once at the
end. The reference is the public solutions' plain strided autoencoder (Adam, lr 1e-2,
batch 16, 200 epochs, latent 4x4xC); ours is stages/lib/model.py with the finest latent grid at
each budget, trained as params.yaml says and in two stronger settings (SETTINGS), keeping the
one with the lowest validation MSE. Both are scored with one encoder pass and with the refined
latent (params' refine); the headline ratio is ours refined over the reference as published.
Also trains the aux model at the default latent, in the setting kept there, for the
auxiliary-task cost. Writes reports/benchmark.json and reports/benchmark/rate_distortion.png;
commit both, then `dvc repro` refreshes the report.
"""

import argparse
import copy
import os
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stages import KERNEL_PINS
from stages.lib.config import PipelineError, load_params, run_stage
from stages.lib.data import SPLITS, split_tensors
from stages.lib.figures import save_curves
from stages.lib.files import read_json, read_split, write_json
from stages.lib.metrics import evaluate
from stages.lib.model import batches, bf16_is_native, build_autoencoder, device
from stages.lib.paths import AUGMENTED, BENCHMARK, BENCHMARK_FIGURE, split_file
from stages.lib.provenance import provenance
from stages.lib.training import fit, seed_everything

BUDGETS = (32, 128, 512, 2048)
# Ours trains at each budget as params.yaml says and in the two settings below, and the benchmark
# keeps the one with the lowest refined validation MSE. Regularising pays where a model overfits
# its few training emoji; views that never repeat (warping) keep paying for more epochs and a
# higher peak lr; residual blocks add decoder depth where it is cheap. docs/findings.md has the
# measurements behind each, and docs/design.md why the pipeline keeps them off.
SETTINGS = {"params.yaml": {},
            "regularised": {"model": {"decoder_dropout": 0.1}, "train": {"paste": 0.5, "flip": 0.5}, "epoch_factor": 2},
            "warped": {"model": {"residual_levels": 2},
                       "train": {"paste": 0.5, "flip": 0.5, "rotate": 8, "shift": 0.04, "zoom": 0.08, "lr": 0.006, "precision": "bf16"},
                       "epoch_factor": 8}}


class Reference(nn.Module):
    """Conv 3-16-32-64-C (k3, s2, ReLU) and its transpose; the latent is 4x4xC at 64 px."""

    def __init__(self, latent_channels: int, in_channels: int = 3):
        super().__init__()
        widths = [in_channels, 16, 32, 64, latent_channels]
        self.encoder = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Conv2d(a, b, 3, 2, 1), nn.ReLU())])
        rev = widths[::-1]
        layers = [m for a, b in zip(rev[:-1], rev[1:]) for m in (nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1), nn.ReLU())]
        self.decoder = nn.Sequential(*layers[:-1], nn.Sigmoid())
        self.classifier = None
        self.latent_channels = latent_channels

    def encode(self, x):
        return self.encoder(x).flatten(1)

    def decode(self, z):
        side = int((z.shape[1] // self.latent_channels) ** 0.5)
        return self.decoder(z.view(len(z), self.latent_channels, side, side))

    def forward(self, x):
        return self.decode(self.encode(x)), None


def train_reference(model, x, epochs: int, seed: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-5)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc="reference", unit="epoch", leave=False):
        model.train()
        for index in batches(len(x), 16, generator):
            xb = x[index].to(device())
            loss = F.mse_loss(model(xb)[0], xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def scores(prefix: str, model, x: dict, refine, val_mse: float) -> dict:
    """Test MSE with the encoder's single pass and with the refined latent (params' refine),
    beside the refined validation MSE already measured. Both models are scored both ways, so
    the table separates what refinement adds from what the architecture adds."""
    return {f"{prefix}_one_pass_test_mse": evaluate(model, x["test"])["mse"],
            f"{prefix}_refined_test_mse": evaluate(model, x["test"], refine=refine)["mse"],
            f"{prefix}_refined_val_mse": val_mse}


def with_settings(params, model: dict | None = None, train: dict | None = None):
    """params with some model and train keys replaced."""
    return params.model_copy(update={"model": params.model.model_copy(update=model or {}),
                                     "train": params.train.model_copy(update=train or {})})


def benchmarked_params():
    """params.yaml as the benchmark trains ours: reconstruction is what is benchmarked, so with the
    layout that reconstructs best at every budget (the finest grid), whatever model.grid the
    pipeline composes with."""
    return with_settings(load_params(), model={"grid": None})


def settings_here() -> dict:
    """SETTINGS as this machine trains them: a bfloat16 forward pass only where bfloat16 runs in
    hardware (bf16_is_native); elsewhere fp32, since emulated bfloat16 trains many times slower.
    reports/benchmark.json records these, as measured."""
    here = copy.deepcopy(SETTINGS)
    if not bf16_is_native():
        for setting in here.values():
            if setting.get("train", {}).get("precision") == "bf16":
                setting["train"]["precision"] = "fp32"
    return here


def setting_params(params, setting: str):
    """params as one of SETTINGS trains here: its overrides, and its multiple of the epochs."""
    overrides = settings_here()[setting]
    epochs = params.train.epochs * overrides.get("epoch_factor", 1)
    return with_settings(params, overrides.get("model"), {**overrides.get("train", {}), "epochs": epochs})


def measured_with(params) -> dict:
    """What the autoencoders' figures depend on: every param except the aux head's and compose's."""
    return params.model_dump(mode="json", exclude={"aux", "compose"})


def aux_comparison(params, ae_row: dict, x: dict, y: dict) -> dict:
    """The auxiliary task's cost: at the default latent, the aux model trains in the setting and
    for the epochs kept there on validation, and is compared with that kept autoencoder."""
    variant = setting_params(params, ae_row["project_setting"])
    size, channels = x["train"].shape[-1], x["train"].shape[1]
    torch.manual_seed(params.seed)
    model = build_autoencoder(variant, size, channels, classifier=True)
    fit(model, (x["train"], y["train"]), (x["val"], y["val"]), variant)
    result = evaluate(model, x["test"], y["test"], params.refine)
    ae_mse = ae_row["project_refined_test_mse"]
    aux = {"latent": params.latent, "setting": ae_row["project_setting"], "epochs": variant.train.epochs, "ae_test_mse": ae_mse,
           "aux_test_mse": result["mse"], "aux_test_accuracy": result["acc"], "mse_ratio": result["mse"] / ae_mse}
    print(f"aux at latent {params.latent}: accuracy {aux['aux_test_accuracy']:.3f}, MSE ratio aux/ae {aux['mse_ratio']:.3f}")
    return aux


def rerun_aux_only(params, x: dict, y: dict) -> None:
    """Replace the aux comparison in reports/benchmark.json, keeping its autoencoder figures,
    which are valid only if nothing they depend on changed since they were measured."""
    if not BENCHMARK.exists():
        raise PipelineError(f"--aux-only updates {BENCHMARK}, which does not exist: run `python -m stages.tools.benchmark` first")
    result = read_json(BENCHMARK)
    recorded, now = result.get("params", {}), measured_with(params)
    changed = [key for key in now if recorded.get(key) != now[key]] + ["SETTINGS (or bfloat16 hardware)"] * (result["settings"] != settings_here())
    if changed:
        raise PipelineError(f"{BENCHMARK} was measured with other {', '.join(changed)}; its autoencoder figures are stale: "
                            "run the full benchmark, without --aux-only")
    ae_row = next(row for row in result["budgets"] if row["latent"] == params.latent)
    result["aux"] = aux_comparison(params, ae_row, x, y)
    write_json(BENCHMARK, result)


def reference_cells(size: int) -> int:
    """Cells of the reference's latent grid: it halves the image four times, 4x4 at 64 px."""
    return (size // 16) ** 2


def check_arguments(args, size: int) -> None:
    """Refuse, before any training, budgets the reference cannot hold exactly."""
    if size < 16:
        raise PipelineError(f"data.size is {size}; the reference halves the image four times, so benchmark at 16 px or more")
    cells, side = reference_cells(size), size // 16
    unfit = [budget for budget in args.budgets if budget <= 0 or budget % cells]
    if unfit:
        raise PipelineError(f"--budgets {' '.join(map(str, unfit))}: the reference's latent is a {side}x{side}xC grid at {size} px, "
                            f"so each budget must be a positive multiple of {cells}")
    if len(set(args.budgets)) < len(args.budgets):
        raise PipelineError(f"--budgets {' '.join(map(str, args.budgets))} lists a budget twice: give each once")
    if args.reference_epochs < 1:
        raise PipelineError(f"--reference-epochs is {args.reference_epochs}; train the reference for at least 1 epoch")


def measure_at_full_speed() -> None:
    """Both models run as fast as this CPU allows: without the kernel pins that keep the pipeline's
    numbers equal across CPUs (stages/__init__.py), so with AVX-512 and AMX where the CPU has them
    (the warped setting's bfloat16 runs on AMX), and with denormal floats flushed to zero (the
    reference's weights decay into them, which some CPUs multiply many times slower: docs/benchmark.md).
    Before torch's first kernel, which reads the pins."""
    for name in KERNEL_PINS:
        os.environ.pop(name, None)
    torch.set_flush_denormal(True)


def denormals_flushed() -> bool:
    """Whether this process treats denormal floats as zero (torch has no getter for the flag)."""
    return (torch.tensor(1e-40) * 2).item() == 0.0


def timed(train) -> float:
    start = time.perf_counter()
    train()
    return time.perf_counter() - start


def budget_row(budget: int, params, x: dict, y: dict, reference_epochs: int) -> dict:
    """Train and score the reference and ours (each setting, the best on validation kept) at one budget."""
    size, channels, n_train = x["train"].shape[-1], x["train"].shape[1], len(x["train"])
    torch.manual_seed(params.seed)
    reference = Reference(budget // reference_cells(size), channels).to(device())
    seconds = timed(lambda: train_reference(reference, x["train"], reference_epochs, params.seed))
    row = {"latent": budget, **scores("reference", reference, x, params.refine, evaluate(reference, x["val"], refine=params.refine)["mse"]),
           "reference_params": sum(p.numel() for p in reference.parameters()),
           "reference_images_per_s": reference_epochs * n_train / seconds, "reference_seconds": seconds}
    candidates = []
    for setting in SETTINGS:
        variant = setting_params(params, setting)
        torch.manual_seed(params.seed)
        model = build_autoencoder(variant, size, channels, classifier=False, latent=budget)
        seconds = timed(lambda: fit(model, (x["train"], y["train"]), (x["val"], y["val"]), variant))
        candidates.append((evaluate(model, x["val"], refine=params.refine)["mse"], setting, variant, model, seconds))
    val_mse, setting, variant, ours, seconds = min(candidates, key=lambda candidate: candidate[0])
    row.update(scores("project", ours, x, params.refine, val_mse), project_setting=setting,
               project_refined_val_mse_by_setting={name: mse for mse, name, *_ in candidates},
               project_params=sum(p.numel() for p in ours.parameters()),
               project_epochs=variant.train.epochs, project_images_per_s=variant.train.epochs * n_train / seconds, project_seconds=seconds)
    # The headline ratio: ours as the pipeline encodes (refined), the reference as published (one pass).
    row["ratio"] = row["project_refined_test_mse"] / row["reference_one_pass_test_mse"]
    row["ratio_both_one_pass"] = row["project_one_pass_test_mse"] / row["reference_one_pass_test_mse"]
    row["ratio_both_refined"] = row["project_refined_test_mse"] / row["reference_refined_test_mse"]
    print(f"latent {budget}: reference {row['reference_one_pass_test_mse']:.5f} (refined {row['reference_refined_test_mse']:.5f}), "
          f"ours {row['project_refined_test_mse']:.5f} (one pass {row['project_one_pass_test_mse']:.5f}, {setting}), ratio {row['ratio']:.3f}")
    return row


def draw_rate_distortion(rows: list[dict]) -> None:
    budgets = [r["latent"] for r in rows]
    series = {f"{label}, {how.replace('_', ' ')}": (budgets, [r[f"{key}_{how}_test_mse"] for r in rows])
              for label, key in (("reference", "reference"), ("this project", "project")) for how in ("one_pass", "refined")}
    save_curves(BENCHMARK_FIGURE, [{"title": "test MSE against latent size", "ylabel": "test MSE", "xlabel": "latent values",
                                    "log": True, "logx": True, "series": series}], "Rate-distortion on the test split")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--reference-epochs", type=int, default=200)
    parser.add_argument("--aux-only", action="store_true", help="re-run only the aux comparison, after a change to the aux head or params.aux")
    return parser.parse_args()


def main():
    args = parse_arguments()
    params = benchmarked_params()
    check_arguments(args, params.data.size)
    if params.latent not in args.budgets and not args.aux_only:
        raise PipelineError(f"--budgets must include latent {params.latent} (params.yaml), where the aux model is compared")
    if settings_here() != SETTINGS:
        print("bfloat16 is emulated on this CPU (no AMX or AVX512_BF16), so the warped setting trains in fp32")
    seed_everything(params.seed, params.train.threads)
    data = {s: read_split(split_file(AUGMENTED, s)) for s in SPLITS}
    x = {s: split_tensors(f) for s, f in data.items()}
    y = {s: torch.tensor(f["label"].to_numpy()) for s, f in data.items()}
    if args.aux_only:
        rerun_aux_only(params, x, y)
        return
    rows = [budget_row(budget, params, x, y, args.reference_epochs) for budget in args.budgets]
    aux = aux_comparison(params, next(row for row in rows if row["latent"] == params.latent), x, y)
    write_json(BENCHMARK, {**provenance(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                           "denormals_flushed": denormals_flushed(), "threads": torch.get_num_threads(),
                           "reference_epochs": args.reference_epochs, "params": measured_with(params), "settings": settings_here(),
                           "budgets": rows, "aux": aux})
    draw_rate_distortion(rows)


if __name__ == "__main__":
    measure_at_full_speed()
    run_stage(main)
