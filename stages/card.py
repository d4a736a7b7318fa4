"""card: each trained model as a package that works without the pipeline, with its model card.

Writes models/release/<name>/ for ae and aux: model.pt and latents.pt (copies of the train
stage's, byte for byte), emoji.parquet (every drawing the model learned from or was scored on:
the subset, the other emoji of data/extra and the held-out ones, each with its latent and the name
a recipe uses), settings.json (the run's concepts, recipes and latent refinement) and README.md,
the model card: what it was trained on, the licences of that artwork, this run's metrics and how
to use it. dvc.yaml registers these
folders as the artifacts emoji-ae and emoji-aux; `emoji-ae` (emoji_ae/app) uses them.
"""

import shutil

import pandas as pd
import torch

from emoji_ae.config import load_params, run_stage
from emoji_ae.data import SPLITS, split_images
from emoji_ae.files import atomic_path, read_json, read_split, write_json, write_text
from emoji_ae.markdown import judge_table, render
from emoji_ae.model import encode_all, load_model
from emoji_ae.paths import (
    EXTRA,
    EXTRA_SUMMARY,
    FIGURES,
    MODEL_NAMES,
    PREPARED,
    SUMMARY,
    latents_file,
    model_file,
    release,
    split_file,
)

LICENCES = {
    "openmoji": "[OpenMoji](https://openmoji.org), [CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/)",
    "twemoji": "[Twemoji](https://github.com/twitter/twemoji) by Twitter, Inc and other contributors, "
               "[CC-BY 4.0](https://creativecommons.org/licenses/by/4.0/)",
}
DESCRIPTION = {
    "ae": "the convolutional autoencoder",
    "aux": "the convolutional autoencoder trained with an auxiliary classifier on its latent",
}


def emoji_table(sources: list[str]) -> pd.DataFrame:
    """Every drawing of the run once, with its split: the prepared subset, pretraining's other emoji
    (their mirror images left out), the subset as other sets draw it and the held-out emoji. A name
    that several sets draw is plain for the first set in `sources` and 'set: name' for the others."""
    frames = [read_split(split_file(PREPARED, split)).assign(split=split) for split in SPLITS]
    pretrain = read_split(EXTRA / "pretrain.parquet", empty_ok=True)
    frames += [
        pretrain[~pretrain["augmented"]].assign(split="train"),
        read_split(EXTRA / "styles.parquet", empty_ok=True),
        read_split(EXTRA / "held_out.parquet", empty_ok=True),
    ]
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True).drop_duplicates(["source", "text"])
    rank = {source: i for i, source in enumerate(sources)}
    frame = frame.assign(rank=frame["source"].map(lambda s: rank.get(s, len(rank)))).sort_values(
        ["rank", "split", "text"], kind="stable"
    )
    second = frame["text"].duplicated()
    frame["text"] = frame["text"].where(~second, frame["source"] + ": " + frame["text"])
    return frame[["image", "text", "source", "split", "class_name"]].reset_index(drop=True)


def with_latents(emoji: pd.DataFrame, model) -> pd.DataFrame:
    """The table with each drawing's latent under this model (column z), so the page starts at once."""
    images = split_images(emoji)
    z = torch.cat([encode_all(model, chunk.float().div(255)) for chunk in images.split(1024)])
    return emoji.assign(z=list(z.numpy()))


def artwork(params, extra: dict) -> list[str]:
    """Every set of artwork the model saw: the subset's sources and, when it pretrained, the extra sets."""
    seen = list(params.data.sources)
    if params.pretrain.epochs and extra.get("pretrain_images"):
        seen += [s for s in params.extra.sources if s not in seen]
    return seen


def licence(seen: list[str]) -> str:
    """The card's licence tag: share-alike wins, as the derived images must follow it."""
    if "openmoji" in seen:
        return "cc-by-sa-4.0"
    return "cc-by-4.0" if set(seen) == {"twemoji"} else "other"


def settings_of(params) -> dict:
    """What a package keeps of the run's params: concepts, example recipes, latent refinement and
    the variant patterns."""
    compose = params.compose
    return {"concepts": {k: list(v) for k, v in compose.concepts.items()}, "recipes": list(compose.recipes),
            "slerp": list(compose.slerp), "refine": {"steps": params.refine.steps, "lr": params.refine.lr},
            "variants": list(params.data.variants)}  # the skin tone and gender patterns: the attributes the page sets


def card(name: str, params, metrics: dict, summary: dict, extra: dict, emoji: pd.DataFrame, n_params: int) -> str:
    """The model card: emoji_ae/templates/card.md.j2 with this run's figures."""
    seen, data, compose = artwork(params, extra), params.data, params.compose
    per_split = summary["emoji_per_split"]
    context = {
        "name": name,
        "description": DESCRIPTION[name],
        "license": licence(seen),
        "size": data.size,
        "latent": params.latent,
        "shape": metrics["shape"],
        "n_params": n_params,
        "include": list(data.include),
        "exclude": list(data.exclude),
        "images": summary["images"],
        "emoji": summary["emoji"],
        "sources": ", ".join(f"`{s}`" for s in data.sources),
        "seed": params.seed,
        "split": f"{data.split.train:.0%}/{data.split.val:.0%}/{data.split.test:.0%}",
        "per_split": f"{per_split['train']} train, {per_split['val']} validation, {per_split['test']} test",
        "train_images": params.augment.targets.train,
        "pretrain_epochs": params.pretrain.epochs,
        "pretrain_images": extra.get("pretrain_images", 0),
        "epochs": params.train.epochs,
        "artwork": "; ".join(
            LICENCES.get(s, f"`{s}`, a source of your own: its licence is yours to state") for s in seen
        ),
        "share_alike": (
            "Images derived from CC BY-SA artwork, the composites and reconstructions this model makes among them, "
            "are shared under CC BY-SA 4.0."
        )
        if "openmoji" in seen
        else "",
        "m": metrics[name],
        "reference_mse": metrics["reference"]["test_mse_one_pass"],
        "reference_range": metrics["reference"]["test_mse_one_pass_range"],
        "reference_seeds": len(metrics["reference"]["seeds"]),
        "accuracy": metrics[name].get("test_accuracy"),
        "judge": judge_table(metrics, name),
        "recipe": compose.recipes[0] if compose.recipes else "grinning face",
        "slerp": list(compose.slerp),
        "attribute_example": "dark skin tone",
        "n_drawings": len(emoji),
        "drawings_by_source": ", ".join(f"{n} {s}" for s, n in emoji["source"].value_counts().items()),
        "concepts": ", ".join(compose.concepts) or "none",
        "kind": ", ".join(data.include) or "all",
    }
    return render("card.md.j2", context)


def main():
    params = load_params()
    metrics, summary, extra = read_json(FIGURES), read_json(SUMMARY), read_json(EXTRA_SUMMARY)
    models = {name: load_model(model_file(name)) for name in MODEL_NAMES}  # every input read before anything is written
    emoji = emoji_table(params.data.sources)
    for name, model in models.items():
        folder = release(name)
        for source, target in ((model_file(name), folder / "model.pt"), (latents_file(name), folder / "latents.pt")):
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        with atomic_path(folder / "emoji.parquet") as tmp:
            with_latents(emoji, model).to_parquet(tmp, index=False)
        write_json(folder / "settings.json", settings_of(params))
        n_params = sum(p.numel() for p in model.parameters())
        write_text(folder / "README.md", card(name, params, metrics, summary, extra, emoji, n_params))
    print(
        f"card: models/release/{{{','.join(MODEL_NAMES)}}} with {len(emoji)} drawings of "
        f"{emoji['text'].str.split(': ').str[-1].nunique()} "
        "emoji and their model cards"
    )


if __name__ == "__main__":
    run_stage(main)
