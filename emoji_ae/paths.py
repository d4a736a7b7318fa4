"""Where every file of the pipeline lives, named once. dvc.yaml lists the same paths as the
stages' dependencies and outputs; `producer` says which stage writes each, for error messages."""

from pathlib import Path

PARAMS = Path("params.yaml")
PREPARED = Path("data/prepared")
AUGMENTED = Path("data/augmented")
EXTRA = Path("data/extra")
MODELS = Path("models")
RELEASE = MODELS / "release"  # the models as packages with their cards (stage card), registered as artifacts
REPORTS = Path("reports")

SUMMARY = REPORTS / "prepare" / "summary.json"
EXTRA_SUMMARY = REPORTS / "extra" / "summary.json"
PREPARE_SAMPLES = REPORTS / "prepare" / "samples.png"
AUGMENT_SAMPLES = REPORTS / "augment" / "samples.png"
PRETRAIN = REPORTS / "pretrain"
COMPOSE = REPORTS / "compose"
EVALUATE = REPORTS / "evaluate"
FIGURES = EVALUATE / "metrics.json"  # every figure of the run (DVC cache): what the report and the card read
METRICS = REPORTS / "metrics.json"  # the same figures in Git, written by the report stage: reviews, reproduction
HEADLINE = REPORTS / "headline.json"  # the few that DVC shows as metrics (`dvc exp show`, `dvc metrics diff`)
REPORT = REPORTS / "report.md"
BENCHMARK = REPORTS / "benchmark.json"  # written by the benchmark pipeline, benchmark/dvc.yaml
BENCHMARK_SPEC, BENCHMARK_LOCK = Path("benchmark/dvc.yaml"), Path("benchmark/dvc.lock")
BENCHMARK_HEADLINE = REPORTS / "benchmark" / "headline.json"  # its DVC metrics: one ratio per latent size
BENCHMARK_FIGURE = REPORTS / "benchmark" / "rate_distortion.png"
BENCHMARK_TABLE = REPORTS / "benchmark.md"
BENCHMARK_MODELS = ("reference", "ours")  # each cell is a model at a latent size: benchmark/cells/<model>-<latent>/
BENCHMARK_CELLS = Path("benchmark/cells")
FRONTIER = REPORTS / "frontier.json"  # written by `python -m emoji_ae.tools.frontier`, committed
FRONTIER_FIGURE = REPORTS / "frontier.png"
NOISE = REPORTS / "noise.json"  # written by `python -m emoji_ae.tools.noise`, committed

MODEL_NAMES = ("ae", "aux")
# Reports kept in the DVC cache, not in Git: the breakdowns behind the headline (a stage with an
# uncached output that is neither a metric nor a plot leaves DVC's run-cache; docs/design.md).
CACHED_REPORTS = ("architecture.txt", "analogies.json", "summary.json", "metrics.json")


def split_file(directory: Path, split: str) -> Path:
    return directory / f"{split}.parquet"


def model_file(name: str) -> Path:
    return MODELS / name / "model.pt"


def reference_file(seed: int) -> Path:
    """The reference trained from `seed` (stage train_reference trains one per seed of the run)."""
    return MODELS / "reference" / f"seed_{seed}.pt"


def latents_file(name: str) -> Path:
    return MODELS / name / "latents.pt"


def release(name: str) -> Path:
    return RELEASE / name


def train_reports(name: str) -> Path:
    """DVCLive's directory of a training stage: metrics.json and plots/metrics/{train,val}/*.tsv."""
    return REPORTS / f"train_{name}"


def producer(path) -> str:
    """The dvc.yaml stage that writes `path`."""
    parts = Path(path).parts
    if parts[:2] == PREPARED.parts or Path(path) == SUMMARY:
        return "prepare"
    if parts[:2] == AUGMENTED.parts:
        return "augment"
    if parts[:2] == EXTRA.parts or Path(path) == EXTRA_SUMMARY:
        return "extra"
    if parts[:2] == RELEASE.parts:
        return "card"
    if parts[:1] == MODELS.parts and len(parts) > 1:
        return "pretrain" if parts[1] == "pretrained" else f"train_{parts[1]}"
    if parts[:2] == PRETRAIN.parts:
        return "pretrain"
    if len(parts) > 1 and parts[0] == REPORTS.name and parts[1].startswith("train_"):
        return parts[1]
    if parts[:2] == COMPOSE.parts:
        return "compose"
    return "report" if Path(path) in (METRICS, REPORT) else "evaluate"
