"""extra: emoji beyond the subset to learn from, and the subset as other sets draw it.

Reads every glyph of the sources in `extra.sources` (default OpenMoji and Twemoji, offline; with
`extra.share` below 1, the subset's base emoji and that seeded share of the others) and the
prepared splits, and writes:

- data/extra/pretrain.parquet: every glyph that is not, and is not a variant of, an emoji of the
  validation or test split (base emoji compared, as prepare splits them), nor one of the prepared
  records themselves, nor of a held-out base; with its mirror image too when `extra.mirror`.
  Unlabelled (label -1).
- data/extra/held_out.parquet: the glyphs of the other emoji's held-out base emoji (a seeded share,
  `extra.held_out`, each base with all its skin tones and genders), in their split (val or test):
  the targets of held-out analogies beyond the subset, never trained on.
- data/extra/styles.parquet: the subset's emoji (same name) as the other sources draw them, each in
  the split of its base emoji: the inputs and targets of cross-style analogies. Those of the validation and
  test splits are never trained on.
- reports/extra/summary.json: what each source gave and why the rest was left out.
"""

import hashlib

import numpy as np
import pandas as pd
from PIL import ImageOps

from emoji_ae.config import load_params, run_stage
from emoji_ae.data import SPLITS, base_emoji, png_bytes, to_square
from emoji_ae.files import read_split, write_json, write_split
from emoji_ae.paths import EXTRA, EXTRA_SUMMARY, PREPARED, split_file
from emoji_ae.sources import load_sources


def subset_bases(frames: dict) -> dict[str, str]:
    """Each base emoji of the subset and the split it is in."""
    return {base: split for split, frame in frames.items() for base in frame["base"]}


def seeded_draw(key: str) -> float:
    """A number in [0, 1) fixed by a key: a base emoji's draw never moves when other glyphs come or go."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def held_out_split(base: str, seed: int, shares) -> str:
    """A base emoji beyond the subset: "val", "test" or "train", by a seeded hash of its name."""
    draw = seeded_draw(f"{seed}:{base}")
    return "val" if draw < shares.val else "test" if draw < shares.val + shares.test else "train"


def drawn(bases: dict, variants, seed: int, share: float):
    """Which glyphs to read: every one of the subset's base emoji, and a seeded share (`extra.share`)
    of the other base emoji, each with all its variants. Decided by name, before any is rendered;
    None when the share is all of them."""
    if share >= 1:
        return None
    return lambda text: (base := base_emoji(text, variants)) in bases or seeded_draw(f"{seed}:share:{base}") < share


def sort_glyphs(
    records: list[dict], data, splits: dict, prepared: set, seed: int, shares
) -> tuple[list, list, list, dict]:
    """Each glyph goes to pretraining, to the style set (an emoji of the subset, by name), to the
    held-out set (a held-out base beyond the subset), or is left out, with the reason counted."""
    names = {text for _, text in prepared}
    pretrain, styles, held_out, counts = [], [], [], {}
    for record in records:
        base = base_emoji(record["text"], data.variants)
        split = splits.get(base)
        account = counts.setdefault(
            record["source"],
            {"glyphs": 0, "pretrain": 0, "styles": 0, "validation or test emoji": 0, "subset record": 0, "held out": 0},
        )
        account["glyphs"] += 1
        if (record["source"], record["text"]) in prepared:
            account["subset record"] += 1  # the subset's own drawing: already in its split
            continue
        if split is not None and record["text"] in names:
            styles.append({**record, "base": base, "split": split})
            account["styles"] += 1
        if split in ("val", "test"):
            account["validation or test emoji"] += 1
            continue
        if split is None and (other := held_out_split(base, seed, shares)) != "train":
            held_out.append({**record, "base": base, "split": other})
            account["held out"] += 1
            continue
        pretrain.append({**record, "base": base})
        account["pretrain"] += 1
    return pretrain, styles, held_out, counts


def table(
    records: list[dict], size: int, rgba: bool, mirror: bool, split: bool = False
) -> tuple[list[bytes], pd.DataFrame]:
    """PNG bytes and metadata in the split layout, each record's mirror image after it when asked;
    with `split`, the split each record is in. Every column even with no records."""
    images, rows = [], []
    for record in records:
        square = to_square(record["image"], size, rgba)
        for flipped in (False, True) if mirror else (False,):
            images.append(png_bytes(ImageOps.mirror(square) if flipped else square))
            rows.append(
                {
                    "text": record["text"],
                    "base": record["base"],
                    "source": record["source"],
                    "label": -1,
                    "class_name": "",
                    "augmented": flipped,
                    **({"split": record["split"]} if split else {}),
                }
            )
    columns = ["text", "base", "source", "label", "class_name", "augmented"] + (["split"] if split else [])
    return images, pd.DataFrame(rows, columns=columns)


def main():
    params = load_params()
    data, cfg = params.data, params.extra
    frames = {split: read_split(split_file(PREPARED, split)) for split in SPLITS}
    prepared = {(s, t) for frame in frames.values() for s, t in zip(frame["source"], frame["text"])}
    bases = subset_bases(frames)
    everything = data.model_copy(update={"source": list(cfg.sources), "include": [], "exclude": []})
    intakes = load_sources(everything, keep=drawn(bases, data.variants, params.seed, cfg.share))
    records = [record for intake in intakes for record in intake.records]
    pretrain, styles, held_out, counts = sort_glyphs(records, data, bases, prepared, params.seed, cfg.held_out)

    images, learn = table(pretrain, data.size, data.rgba, cfg.mirror)
    write_split(EXTRA / "pretrain.parquet", images, learn)
    images, frame = table(styles, data.size, data.rgba, mirror=False, split=True)
    write_split(EXTRA / "styles.parquet", images, frame)
    images, frame = table(held_out, data.size, data.rgba, mirror=False, split=True)
    write_split(EXTRA / "held_out.parquet", images, frame)
    write_json(
        EXTRA_SUMMARY,
        {
            "sources": {intake.source: intake.summary() for intake in intakes},
            "glyphs": counts,
            "pretrain_images": len(learn),
            "style_images": {split: int(np.sum([r["split"] == split for r in styles])) for split in SPLITS},
            "held_out_images": {
                split: int(np.sum([r["split"] == split for r in held_out])) for split in ("val", "test")
            },
        },
    )
    print(f"extra: {len(pretrain)} glyphs to learn from ({'with' if cfg.mirror else 'without'} mirror images), "
          f"{len(styles)} drawings of the subset's emoji in other styles, {len(held_out)} held out; "
          + "; ".join(f"{source}: {c}" for source, c in counts.items()))


if __name__ == "__main__":
    run_stage(main)
