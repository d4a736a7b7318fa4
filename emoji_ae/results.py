"""One way to read a run's figures: typed views of the metrics tree that evaluate writes
(reports/evaluate/metrics.json, copied to Git as reports/metrics.json), so that the report, the
model card, the benchmark summary, the frontier tool and the pull-request comment never spell out
its nesting themselves."""

from dataclasses import dataclass

IMAGES = ("composite", "pixel", "reconstruction")  # what the judge looks at, emoji_ae/judge.py
KINDS = ("all", "name", "variant", "style")


@dataclass(frozen=True)
class Judged:
    """The judge's figures for one image of the analogies: the true emoji is the nearest drawing
    (top1) or among the 5 nearest (top5), SSIM to it, and the share whose attribute its classifier reads."""

    top1: float
    top5: float
    ssim: float
    attribute: float | None


@dataclass(frozen=True)
class Composition:
    """One model's family-mean analogies of one split and kind: the judge's figures for the
    composite, pixel arithmetic and the model's own reconstruction of the target, and the latent
    arithmetic's own figures (the target's latent is the nearest, `latent_top1`; MSE beside pixel
    arithmetic's)."""

    n: int
    composite: Judged | None
    pixel: Judged | None
    reconstruction: Judged | None
    target_attribute: float | None  # the judge's classifier on the real targets
    latent_top1: float
    latent_top5: float
    beats_pixel: float  # share of composites with a lower MSE than pixel arithmetic's
    vs_pixel: float  # composite MSE / pixel arithmetic's
    gap: float  # composite MSE / the model's reconstruction MSE of the target


def judged(tree: dict, image: str) -> Judged | None:
    if image not in tree:
        return None
    return Judged(*(tree[image][key] for key in ("top1", "top5", "ssim", "attribute")))


def composition(
    metrics: dict, model: str = "ae", split: str = "test", kind: str = "all", pool: str = "all"
) -> Composition:
    """The figures of `model`'s family-mean analogies of `split` (test: the held-out ones) and
    `kind`, in the pool of every glyph ("all") or of the subset ("subset")."""
    scores = (metrics["compose"] if pool == "all" else metrics["compose"]["subset"])[model][split]
    mse = scores["family_mean"] if kind == "all" else scores["family_mean_by_kind"][kind]
    judge = scores.get("judge", {}).get(kind, {})
    target = judge.get("target", {}).get("attribute")
    return Composition(
        mse["n"],
        *(judged(judge, image) for image in IMAGES),
        target,
        mse.get("top1", 0.0),
        mse.get("top5", 0.0),
        mse.get("beats_pixel", 0.0),
        mse.get("vs_pixel", 0.0),
        mse.get("gap", 0.0),
    )


def analogy_counts(metrics: dict, pool: str = "all") -> dict:
    """{split: {kind: number of family-mean analogies}}."""
    return (metrics["compose"] if pool == "all" else metrics["compose"]["subset"])["n_analogies"]


def recipe_scores(metrics: dict, model: str) -> dict:
    """{recipe: its scores} for the recipes of params' compose whose answer is an emoji of the data."""
    return {row["recipe"]: row for row in metrics["compose"]["recipes"][model]}


def reconstruction(metrics: dict, model: str) -> dict:
    """A trained model's reconstruction figures (test MSE one pass and refined, SSIM, PSNR, per class,
    its ratio to the reference; the aux model's accuracy)."""
    return metrics[model]


def headline(metrics: dict) -> dict:
    """The figures a user compares across experiments (`dvc exp show`, `dvc metrics diff`), most
    important first: reconstruction of both models and the reference, the aux accuracy, and how
    held-out composites look to the judge, beside pixel arithmetic and the reconstruction, with the
    latent arithmetic's rank. The breakdowns stay in reports/metrics.json."""
    pick = lambda tree, *keys: {k: tree[k] for k in keys if k in tree}  # noqa: E731
    shape = metrics.get("shape", {})  # the latent's size and slots are params already
    out = {"ae": pick(metrics["ae"], "test_mse", "test_mse_one_pass", "one_pass_vs_reference", "test_ssim",
                      "test_ssim_one_pass"),
           "aux": pick(metrics["aux"], "test_mse", "test_mse_one_pass", "test_accuracy", "mse_vs_ae"),
           "reference": {**pick(metrics["reference"], "test_mse", "test_mse_one_pass"),
                         **dict(zip(("test_mse_one_pass_low", "test_mse_one_pass_high"),
                                    metrics["reference"].get("test_mse_one_pass_range", [])))},
           "shape": pick(shape, "attribute", "grid", "channels")}
    for name in ("ae", "aux"):
        every = composition(metrics, name)
        out[f"judge_{name}"] = {"latent_top1": every.latent_top1, "beats_pixel_mse": every.beats_pixel}
        if every.composite is None:
            continue
        out[f"judge_{name}"].update(top1=every.composite.top1)
        if name == "ae":
            kinds = {kind: composition(metrics, name, "test", kind) for kind in KINDS[1:]}
            ratio = every.composite.attribute / every.target_attribute if every.target_attribute else None
            out[f"judge_{name}"].update(
                ssim=every.composite.ssim, attribute_vs_target=ratio, pixel_top1=every.pixel.top1,
                reconstruction_top1=every.reconstruction.top1,
                **{f"{kind}_top1": s.composite.top1 for kind, s in kinds.items() if s.n},
                **{f"{kind}_pixel_top1": s.pixel.top1 for kind, s in kinds.items() if s.n})
    return out
