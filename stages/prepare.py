"""prepare: source -> filtered, labelled, resized subset, split 60/20/20 by class.

Writes data/prepared/{train,val,test}.parquet, reports/prepare/summary.json (counts per
split and class) and reports/prepare/samples.png.
"""

import numpy as np
import pandas as pd

from stages.lib.config import PipelineError, load_params, run_stage
from stages.lib.data import SPLITS, assign_class, decode_png, png_bytes, stratified_split, to_square
from stages.lib.figures import save_grid
from stages.lib.files import write_json, write_split
from stages.lib.paths import PREPARE_SAMPLES, PREPARED, SUMMARY, split_file
from stages.lib.sources import load_source


def main():
    params = load_params()
    data = params.data
    records, corrupt = load_source(data)
    if not records:
        raise PipelineError(
            f"no usable image in {data.source} has all of the words {data.include} and none of "
            f"{data.exclude}" + (f" ({corrupt} corrupt images skipped)" if corrupt else "")
            + ": widen data.include / data.exclude"
        )

    names = [rule.name for rule in data.classes]
    labels = np.array([assign_class(r["text"], data.classes) for r in records], dtype=object)
    if any(label is None for label in labels):
        unmatched = next(r["text"] for r, label in zip(records, labels) if label is None)
        raise PipelineError(
            f"'{unmatched}' matches no class rule: end data.classes with a rule that has no words"
        )
    labels = labels.astype(int)

    parts = stratified_split(labels, data.split.model_dump(), params.seed)
    for split, index in parts.items():
        missing = sorted(set(range(len(names))) - set(labels[index]))
        if missing:
            counts = {names[k]: int((labels == k).sum()) for k in range(len(names))}
            raise PipelineError(
                f"class {', '.join(names[k] for k in missing)} has no image in the {split} split "
                f"(images per class: {counts}): change data.classes or the subset so that every "
                "class has at least 5 images"
            )

    images = [png_bytes(to_square(r["image"], data.size, data.rgba)) for r in records]
    frame = pd.DataFrame({
        "text": [r["text"] for r in records],
        "label": labels,
        "class_name": [names[k] for k in labels],
        "augmented": False,
    })
    for split in SPLITS:
        index = parts[split]
        write_split(split_file(PREPARED, split), [images[i] for i in index], frame.iloc[index])

    summary = {
        "source": data.source,
        "images": len(records),
        "corrupt_skipped": corrupt,
        "classes": names,
        "per_split": {
            split: {name: int((labels[parts[split]] == k).sum()) for k, name in enumerate(names)}
            for split in SPLITS
        },
    }
    write_json(SUMMARY, summary)

    # One row per class, so the sample grid shows what each rule caught.
    rows, titles = [], []
    for k, name in enumerate(names):
        members = np.flatnonzero(labels == k)[:8]
        rows.append([decode_png(images[i]) for i in members])
        titles.append(f"{name} ({int((labels == k).sum())})")
    save_grid(PREPARE_SAMPLES, rows, row_titles=titles, title=f"Samples of {len(records)} emoji from {data.source}")
    print(f"prepare: {len(records)} images, {corrupt} corrupt skipped, splits "
          + ", ".join(f"{s}={len(parts[s])}" for s in SPLITS))


if __name__ == "__main__":
    run_stage(main)
