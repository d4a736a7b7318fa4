"""prepare: the sources -> the filtered, labelled, resized subset, split 60/20/20 by emoji.

Reads every source of `data.source` (one or a list), keeps the emoji whose text passes
`data.include`/`data.exclude`, labels them by the ordered `data.classes` rules, and splits them
by base emoji (`data.variants`): the same emoji from two sources, duplicate names and variants
of one emoji always land in one split. Writes data/prepared/{train,val,test}.parquet (image,
text, base, source, label, class_name, augmented), reports/prepare/summary.json (every row of
every source used or accounted for, counts per source, class and split) and samples.png.
"""

import numpy as np
import pandas as pd

from emoji_ae.config import PipelineError, load_params, run_stage
from emoji_ae.data import SPLITS, assign_class, base_emoji, decode_png, grouped_split, png_bytes, to_square
from emoji_ae.figures import save_grid
from emoji_ae.files import write_json, write_split
from emoji_ae.paths import PREPARE_SAMPLES, PREPARED, SUMMARY, split_file
from emoji_ae.sources import load_sources


def records_table(records: list[dict], data) -> pd.DataFrame:
    """One row per record: text, base emoji, source, label and class; fails on an unlabelled text."""
    frame = pd.DataFrame({"text": [r["text"] for r in records], "source": [r["source"] for r in records]})
    frame.insert(1, "base", [base_emoji(t, data.variants) for t in frame["text"]])
    labels = [assign_class(t, data.classes) for t in frame["text"]]
    if None in labels:
        unmatched = frame["text"][labels.index(None)]
        raise PipelineError(f"'{unmatched}' matches no class rule: end data.classes with a rule that has no words")
    frame["label"] = labels
    frame["class_name"] = [data.classes[k].name for k in labels]
    frame["augmented"] = False
    return frame


def check_every_class_in_every_split(frame: pd.DataFrame, parts: dict, names: list[str]) -> None:
    for split, index in parts.items():
        missing = sorted(set(range(len(names))) - set(frame["label"].iloc[index]))
        if missing:
            per_class = frame.groupby("class_name")["base"].nunique().to_dict()
            raise PipelineError(
                f"class {', '.join(names[k] for k in missing)} has no emoji in the {split} split (emoji per class: "
                f"{per_class}): "
                "change data.classes or the subset so that every class has at least 5 emoji"
            )


def summarise(intakes, frame: pd.DataFrame, parts: dict, names: list[str]) -> dict:
    count = lambda rows: {name: int((rows["class_name"] == name).sum()) for name in names}  # noqa: E731
    return {
        "sources": {intake.source: intake.summary() for intake in intakes},
        "images": len(frame),
        "emoji": int(frame["base"].nunique()),
        "classes": names,
        "per_source": {source: count(rows) for source, rows in frame.groupby("source", sort=False)},
        "per_split": {split: count(frame.iloc[parts[split]]) for split in SPLITS},
        "emoji_per_split": {split: int(frame["base"].iloc[parts[split]].nunique()) for split in SPLITS},
    }


def draw_samples(frame: pd.DataFrame, images: list[bytes], names: list[str], sources: list[str]) -> None:
    """One row per class, so the grid shows what each rule caught."""
    rows, titles = [], []
    for k, name in enumerate(names):
        members = np.flatnonzero(frame["label"].to_numpy() == k)[:8]
        rows.append([decode_png(images[i]) for i in members])
        titles.append(f"{name} ({len(np.flatnonzero(frame['label'].to_numpy() == k))})")
    save_grid(
        PREPARE_SAMPLES, rows, row_titles=titles, title=f"Samples of {len(frame)} emoji from {', '.join(sources)}"
    )


def main():
    params = load_params()
    data = params.data
    intakes = load_sources(data)
    records = [record for intake in intakes for record in intake.records]
    accounts = "; ".join(f"{i.source}: {i.summary()}" for i in intakes)
    if not records:
        raise PipelineError(
            f"no usable image in {', '.join(data.sources)} has all of the words {data.include} and none of "
            f"{data.exclude} ({accounts}): widen data.include / data.exclude or check the source"
        )

    frame = records_table(records, data)
    names = [rule.name for rule in data.classes]
    groups = pd.factorize(frame["base"])[0]
    parts = grouped_split(groups, frame["label"].to_numpy(), data.split.model_dump(), params.seed)
    check_every_class_in_every_split(frame, parts, names)

    images = [png_bytes(to_square(r["image"], data.size, data.rgba)) for r in records]
    for split in SPLITS:
        index = parts[split]
        write_split(split_file(PREPARED, split), [images[i] for i in index], frame.iloc[index])
    summary = summarise(intakes, frame, parts, names)
    write_json(SUMMARY, summary)
    draw_samples(frame, images, names, data.sources)
    print(f"prepare: {len(frame)} images of {summary['emoji']} emoji; splits "
          + ", ".join(f"{s}={len(parts[s])}" for s in SPLITS))
    for intake in intakes:
        account = intake.summary()
        skipped = ", ".join(f"{n} {reason}" for reason, n in account["skipped"].items()) or "none"
        print(f"  {intake.source}: {account['rows']} rows, {account['used']} used "
              f"({', '.join(f'{n} {c}' for c, n in summary['per_source'].get(intake.source, {}).items())}), "
              f"{account['filtered_out']} filtered out by text, skipped: {skipped}")


if __name__ == "__main__":
    run_stage(main)
