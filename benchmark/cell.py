"""One cell of the benchmark: a model at a latent budget, trained and scored on the test split.

    python -m benchmark.cell reference 128    # the assignment's reference, trained as published from each seed
    python -m benchmark.cell ours 128         # this project's autoencoder, pretrained and trained as params.yaml says

Both train on the pipeline's splits (ours also pretrains on data/extra, as the default pipeline
does); both are scored with one encoder pass and with the refined latent (params' refine), by
MSE and SSIM; ours also by the composition judge on the held-out analogies of every glyph, as the
compose stage scores them (top-1 and top-5 by kind). The reference is trained from each of
`reference.seeds` seeds through stage train_reference's own function, so the cell at the default
latent holds the pipeline's references; its scores are the seeds' medians, each seed's beside them.
Writes benchmark/cells/<model>-<latent>/model.pt (the reference's first seed) and scores.json.
"""

import sys
import time

import torch

from emoji_ae import judge as J
from emoji_ae.analogies import training_analogies
from emoji_ae.attributes import slot_names
from emoji_ae.config import PipelineError, load_params, run_stage
from emoji_ae.data import images_and_labels
from emoji_ae.files import read_split, write_json
from emoji_ae.metrics import evaluate, reconstruction_scores
from emoji_ae.model import build_autoencoder, device, save_model, seed_everything
from emoji_ae.paths import AUGMENTED, BENCHMARK_CELLS, BENCHMARK_MODELS, EXTRA, split_file
from emoji_ae.pool import AnalogySet, encode_drawings, every_glyph_pool, subset_originals, subset_pool
from emoji_ae.reference import median_and_range, train_references
from emoji_ae.training import fit, pretrain

SCORED = ("test_mse", "test_mse_one_pass", "test_ssim", "test_ssim_one_pass", "test_psnr", "val_mse_one_pass")


def train_ours(params, data: dict):
    """Our model, pretrained and trained as the pipeline trains train_ae; and the seconds it took."""
    x = data["train"][0]
    start = time.perf_counter()
    model = build_autoencoder(params, x.shape[-1], x.shape[1], classifier=False,
                              slots=slot_names(params.attribute, params.shape.attribute, data["analogies"]))
    pretrain(model, data["extra"], data["train"], data["val"], params, analogies=data["analogies"])
    fit(model, data["train"], data["val"], params, analogies=data["analogies"])
    return model, time.perf_counter() - start


def score(model, data: dict, params, seconds: float) -> dict:
    scores, _, _ = reconstruction_scores(model, data["test"][0], params.refine)
    scores.update(val_mse_one_pass=evaluate(model, data["val"][0])["mse"],
                  parameters=sum(p.numel() for p in model.parameters()), train_seconds=seconds,
                  train_threads=torch.get_num_threads(), device=device().type)
    return scores


def reference_cell(params, data: dict):
    """The reference from each seed: the first seed's model, and the seeds' median scores with each seed's."""
    start = time.perf_counter()
    models = train_references(params, data["train"][0])
    seconds = time.perf_counter() - start
    per_seed = {seed: score(model.to(device()), data, params, seconds) for seed, model in models.items()}
    spreads = {key: median_and_range([s[key] for s in per_seed.values()]) for key in SCORED}
    scores = {key: spread["median"] for key, spread in spreads.items()}
    scores.update(train_seconds=seconds,
                  seeds={str(seed): s for seed, s in per_seed.items()},
                  **{f"{key}_range": [spread["low"], spread["high"]] for key, spread in spreads.items()})
    return next(iter(models.values())), scores


def held_out_judge(model, params) -> dict:
    """The judge's recognition figures (top-1, top-5 by kind) for `model` on the held-out analogies
    of every glyph (family mean, test targets), scored as the compose stage scores them. No
    attribute classifier: the benchmark compares recognition across latent sizes."""
    everything = every_glyph_pool(subset_pool(subset_originals(params.data.sources)))
    test = {key for key in everything.targets if everything.split_of[key] == "test"}
    analogy_set = AnalogySet(everything, params.data.variants, 0, test)
    latents, recon_mse, reconstructions = encode_drawings(model, everything)
    _, rows = analogy_set.score(model, latents, recon_mse, J.Judge(analogy_set.pixels, None), reconstructions)
    judged = J.by_split(rows)["test"]
    return {
        kind: {"top1": judged[kind]["composite"]["top1"], "top5": judged[kind]["composite"]["top5"]} for kind in judged
    }


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in BENCHMARK_MODELS or not sys.argv[2].isdigit():
        raise PipelineError("usage: python -m benchmark.cell reference|ours LATENT")
    model_name, latent = sys.argv[1], int(sys.argv[2])
    params = load_params(overrides=[f"latent={latent}"])
    frames = {split: read_split(split_file(AUGMENTED, split)) for split in ("train", "val", "test")}
    data = {split: images_and_labels(frame) for split, frame in frames.items()}
    if model_name == "reference":
        model, scores = reference_cell(params, data)
    else:
        extra = read_split(EXTRA / "pretrain.parquet")
        data["extra"] = images_and_labels(extra)
        data["analogies"] = training_analogies([extra, frames["train"]], params.data.variants)
        seed_everything(params.seed, params.train.threads)  # the model starts as the pretrain stage's does
        model, seconds = train_ours(params, data)
        scores = score(model, data, params, seconds)
        scores["shape"] = str(params.shape)
        scores["judge"] = held_out_judge(model.eval(), params)
    out = BENCHMARK_CELLS / f"{model_name}-{latent}"
    save_model(model, out / "model.pt")
    write_json(out / "scores.json", scores)
    judged = f", judge top-1 {scores['judge']['all']['top1']:.1%}" if "judge" in scores else ""
    print(
        f"benchmark {model_name} at {latent}: test MSE one pass {scores['test_mse_one_pass']:.5f}, refined "
        f"{scores['test_mse']:.5f}, "
        f"SSIM {scores['test_ssim_one_pass']:.3f} / {scores['test_ssim']:.3f}{judged}, {scores['train_seconds']:.0f} s"
    )


if __name__ == "__main__":
    run_stage(main)
