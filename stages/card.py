"""card: each trained model as a package that works without the pipeline, with its model card.

Writes models/release/<name>/ for ae and aux: model.pt and latents.pt (copies of the train
stage's, byte for byte), emoji.parquet (one drawing of each of the subset's emoji, the source
listed first in data.source standing for a name that several share), settings.json (the run's
concepts, recipes and latent refinement) and README.md, the model card: what it was trained
on, the licences of that artwork, this run's metrics and how to use it. dvc.yaml registers these
folders as the artifacts emoji-ae and emoji-aux; `emoji-ae` (stages/app) uses them.
"""

import shutil

import pandas as pd

from stages.lib.config import load_params, run_stage
from stages.lib.data import SPLITS
from stages.lib.files import atomic_path, read_json, read_split, write_json, write_text
from stages.lib.model import load_model
from stages.lib.paths import EXTRA_SUMMARY, METRICS, MODEL_NAMES, PREPARED, SUMMARY, latents_file, model_file, release, split_file

LICENCES = {
    "openmoji": "[OpenMoji](https://openmoji.org), [CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/)",
    "twemoji": "[Twemoji](https://github.com/twitter/twemoji) by Twitter, Inc and other contributors, "
               "[CC-BY 4.0](https://creativecommons.org/licenses/by/4.0/)",
}
DESCRIPTION = {"ae": "the convolutional autoencoder", "aux": "the convolutional autoencoder trained with an auxiliary classifier on its latent"}


def emoji_table(sources: list[str]) -> pd.DataFrame:
    """One original drawing per name from the prepared splits, with its split."""
    frames = [read_split(split_file(PREPARED, split)).assign(split=split) for split in SPLITS]
    frame = pd.concat(frames, ignore_index=True)
    rank = {source: i for i, source in enumerate(sources)}
    frame = frame.assign(rank=frame["source"].map(lambda s: rank.get(s, len(rank)))).sort_values(["rank", "split", "text"], kind="stable")
    return frame.drop_duplicates("text")[["image", "text", "source", "split", "class_name"]].reset_index(drop=True)


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
    """What a package keeps of the run's params: concepts, example recipes and latent refinement."""
    compose = params.compose
    return {"concepts": {k: list(v) for k, v in compose.concepts.items()}, "recipes": list(compose.recipes),
            "slerp": list(compose.slerp), "refine": {"steps": params.refine.steps, "lr": params.refine.lr}}


def card(name: str, params, metrics: dict, summary: dict, extra: dict, n_params: int) -> str:
    m, ref = metrics[name], metrics["reference"]
    held_out = metrics["compose"][name]["test"]["family_mean"]
    accuracy = f"\n| test accuracy of the classifier | {m['test_accuracy']:.1%} |" if "test_accuracy" in m else ""
    data, seen = params.data, artwork(params, extra)
    share_alike = ("Images derived from CC BY-SA artwork, the composites and reconstructions this model makes among them, "
                   "are shared under CC BY-SA 4.0.") if "openmoji" in seen else ""
    return f"""---
license: {licence(seen)}
library_name: pytorch
tags: [autoencoder, emoji, dvc]
---

# emoji-{name}: {DESCRIPTION[name]}

A DCGAN-style convolutional autoencoder for {data.size}x{data.size} emoji with a latent of {params.latent} values
({n_params:,} parameters), written by `dvc repro` (stage `card`) from this run's outputs.

## Training data

- Emoji whose names have every word of {list(data.include)} and none of {list(data.exclude)}: {summary['images']} images of
  {summary['emoji']} emoji from {', '.join(f'`{s}`' for s in data.sources)}, split {data.split.train:.0%}/{data.split.val:.0%}/{data.split.test:.0%} by emoji
  ({summary['emoji_per_split']['train']} train, {summary['emoji_per_split']['val']} validation, {summary['emoji_per_split']['test']} test), seed {params.seed}.
- Augmented to {params.augment.targets.train} training images; pretrained for {params.pretrain.epochs} epochs on {extra.get('pretrain_images', 0)} images of other emoji
  (never a validation or test emoji), then trained for {params.train.epochs} epochs.

Artwork it learned from: {'; '.join(LICENCES.get(s, f"`{s}`, a source of your own: its licence is yours to state") for s in seen)}.
{share_alike}

## Metrics of this run (test split, pixels in [0, 1])

| metric | value |
|---|---|
| MSE, one encoder pass | {m['test_mse_one_pass']:.4f} ({m['one_pass_vs_reference']:.2f} x the reference architecture's {ref['test_mse_one_pass']:.4f}) |
| MSE, refined latent | {m['test_mse']:.4f} |
| SSIM, one pass / refined | {m['test_ssim_one_pass']:.3f} / {m['test_ssim']:.3f} |{accuracy}
| held-out analogies (name, skin tone and gender, style): composite beats pixel arithmetic | {held_out['beats_pixel']:.0%} of {held_out['n']} |
| held-out analogies: composite MSE / pixel arithmetic's | {held_out['vs_pixel']:.2f} |
| held-out analogies: true emoji in the top 5 | {held_out['top5']:.0%} |

## How to use it

```bash
pip install -e .    # in a clone of the project: installs the `emoji-ae` command
emoji-ae compose "{params.compose.recipes[0] if params.compose.recipes else 'grinning face'}" --model <this folder> -o out.png
emoji-ae reconstruct my_drawing.png --model <this folder> -o recon.png
emoji-ae interpolate "{params.compose.slerp[0]}" "{params.compose.slerp[1]}" --steps 7 --model <this folder> -o path.png
emoji-ae app --model <this folder>          # the same on a local web page
```

In Python: `stages.lib.model.load_model("model.pt")` rebuilds the model (`encode`, `decode`);
`stages.app.workbench.Workbench("<this folder>")` composes, reconstructs and interpolates.

## Files

- `model.pt`: weights and the config that rebuilds the model (loaded with `weights_only=True`).
- `latents.pt`: the latent of every image of every augmented split, with its text and label.
- `emoji.parquet`: one drawing of each of the {summary['emoji']} emoji, whose names a recipe may use.
- `settings.json`: the run's concepts ({', '.join(params.compose.concepts) or 'none'}), recipes and latent refinement.

## Limitations

Trained on {summary['emoji']} emoji of one kind ({', '.join(data.include) or 'all'}): other images are reconstructed less
well, and latent arithmetic on a fine spatial grid mixes pixels more than it moves attributes
(the held-out analogy figures above).
"""


def main():
    params = load_params()
    metrics, summary, extra = read_json(METRICS), read_json(SUMMARY), read_json(EXTRA_SUMMARY)
    models = {name: load_model(model_file(name)) for name in MODEL_NAMES}  # every input read before anything is written
    emoji = emoji_table(params.data.sources)
    for name, model in models.items():
        folder = release(name)
        for source, target in ((model_file(name), folder / "model.pt"), (latents_file(name), folder / "latents.pt")):
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        with atomic_path(folder / "emoji.parquet") as tmp:
            emoji.to_parquet(tmp, index=False)
        write_json(folder / "settings.json", settings_of(params))
        n_params = sum(p.numel() for p in model.parameters())
        write_text(folder / "README.md", card(name, params, metrics, summary, extra, n_params))
    print(f"card: models/release/{{{','.join(MODEL_NAMES)}}} with {len(emoji)} emoji and their model cards")


if __name__ == "__main__":
    run_stage(main)
