"""The composition judge: what a person would say of an image meant to be an analogy's answer,
in figures that a blurred average cannot win (MSE can: a grey mean is near every emoji).

For each image, three questions:

- **recognised**: the target's rank among every drawing of the pool by pixel distance to the
  image, the analogy's third input left out (it is the base, which copying would return): top-1
  and top-5. A blur is near everything at once, so it is the nearest of nothing in particular.
- **similar**: SSIM to the target, which compares local structure and contrast, not mean error.
- **attribute carried**: whether a small classifier of the judge's own reads from the image the
  words the analogy changes (a skin tone, a gender, "cat", the emoji set). It is trained on real
  drawings of the train split only, never on a model's output, so it has no taste for any model's
  artefacts; its rate on composites is read beside its rate on the real targets.

The attribute of an analogy is its family's deleted words (name and variant families) or the
target's set (style families); a drawing carries words when its name holds them as whole words.
"""

import sys
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from tqdm import tqdm

from emoji_ae.analogies import KINDS, carries
from emoji_ae.model import AttributeNet

IMAGES = ("composite", "pixel", "reconstruction")

# The attribute classifier's training. Fixed here, not in params.yaml: the judge is the yardstick
# that experiments are compared by, so an experiment must not be able to move it.
CLASSIFIER = SimpleNamespace(epochs=8, batch_size=64, lr=0.002, max_weight=50.0, seed=42)
LEAST = 5  # an attribute is learned where at least this many training drawings have it, and as many lack it


def attribute_of(item: dict) -> str:
    """The words an analogy changes: 'cat', 'dark skin tone', or 'set twemoji' for a style family."""
    if item["kind"] == "style":
        return f"set {item['target'][0]}"
    return item["family"].split(": ", 1)[1]


def attributes_to_learn(items: list[dict], train_keys: list, variants: list[str], least: int) -> list[str]:
    """The analogies' attributes that at least `least` training drawings have, and as many lack."""
    wanted = sorted({attribute_of(i) for i in items})
    counts = {a: sum(carries(k, a, variants) for k in train_keys) for a in wanted}
    return [a for a in wanted if least <= counts[a] <= len(train_keys) - least]


def labels_of(keys: list, attributes: list[str], variants: list[str]) -> torch.Tensor:
    return torch.tensor([[carries(k, a, variants) for a in attributes] for k in keys], dtype=torch.float32)


def train_attributes(
    x: torch.Tensor, y: torch.Tensor, attributes: list[str], cfg, seed: int, progress=None
) -> AttributeNet:
    """Binary cross-entropy per attribute, each weighted up to balance its few positives; seeded."""
    torch.manual_seed(seed)
    net = AttributeNet(x.shape[1], attributes)
    positives = y.sum(0).clamp(min=1)
    weight = ((len(y) - positives) / positives).clamp(max=cfg.max_weight)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(cfg.epochs):
        net.train()
        for index in torch.randperm(len(x), generator=generator).split(cfg.batch_size):
            loss = F.binary_cross_entropy_with_logits(net(x[index]), y[index], pos_weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(epoch, loss.item())
    return net.eval()


def read_attributes(
    net: AttributeNet, images: torch.Tensor, attributes: list[str], batch_size: int = 512
) -> torch.Tensor:
    """Whether the net reads each image's own attribute (one attribute per image)."""
    column = torch.tensor([net.attributes.index(a) for a in attributes])
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = net(images[start : start + batch_size])
            out.append(logits.gather(1, column[start : start + batch_size, None])[:, 0] > 0)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


class Judge:
    """The pool every image is recognised against, and the attribute classifier."""

    def __init__(self, pixels: dict, net: AttributeNet | None):
        self.keys = list(pixels)
        self.position = {key: i for i, key in enumerate(self.keys)}
        self.flat = torch.stack([pixels[k] for k in self.keys]).flatten(1)
        self.norms = self.flat.pow(2).sum(1)
        self.net = net
        self.pixel_rows = {}  # pixel arithmetic is the same for every model: judged once per analogy
        self.targets = {}  # a model's reconstruction depends on the target alone: judged once per target

    def ranks(self, images: torch.Tensor, items: list[dict]) -> torch.Tensor:
        """The target's rank (1 = nearest) among the pool by pixel distance, the third input left out."""
        flat = images.flatten(1)
        distances = self.norms[None] - 2 * flat @ self.flat.T  # + |image|^2, the same for every drawing
        rows = torch.arange(len(items))
        distances[rows, torch.tensor([self.position[i["c"]] for i in items])] = float("inf")
        target = distances[rows, torch.tensor([self.position[i["target"]] for i in items])]
        return (distances < target[:, None]).sum(1) + 1

    def score(self, images: dict, targets: torch.Tensor, items: list[dict]) -> list[dict]:
        """Per item, for each image kind: rank, SSIM to the target, and the attribute read (None
        where the classifier does not know the analogy's attribute)."""
        from torchmetrics.functional.image import structural_similarity_index_measure as ssim

        asked = [
            n for n, item in enumerate(items) if self.net is not None and attribute_of(item) in self.net.attributes
        ]
        rows = [{} for _ in items]
        if "pixel" in images and all(key(i) in self.pixel_rows for i in items):
            rows = [dict(self.pixel_rows[key(i)]) for i in items]
            images = {kind: image for kind, image in images.items() if kind != "pixel"}
        if "reconstruction" in images:
            self.judge_reconstructions(rows, images.pop("reconstruction").clamp(0, 1), targets, items, set(asked))
        for kind, image in images.items():
            image = image.clamp(0, 1)
            ranks = self.ranks(image, items).tolist()
            similar = ssim(image, targets, data_range=1.0, reduction="none").tolist()
            read = (
                read_attributes(self.net, image[asked], [attribute_of(items[i]) for i in asked]).tolist()
                if asked
                else []
            )
            carried = dict(zip(asked, read))
            for n, row in enumerate(rows):
                row.update({f"{kind}_rank": ranks[n], f"{kind}_ssim": similar[n], f"{kind}_attribute": carried.get(n)})
            if kind == "pixel":
                self.pixel_rows.update(
                    {key(i): {k: v for k, v in row.items() if k.startswith("pixel_")} for i, row in zip(items, rows)}
                )
        read = (
            read_attributes(self.net, targets[asked], [attribute_of(items[i]) for i in asked]).tolist() if asked else []
        )
        for n, value in zip(asked, read):
            rows[n]["target_attribute"] = value
        return rows

    def forget_reconstructions(self) -> None:
        """Before another model's reconstructions are judged."""
        self.targets = {}

    def judge_reconstructions(self, rows: list[dict], images, targets, items: list[dict], asked: set) -> None:
        """The reconstruction's figures per item, each new target measured once: its distance to every
        drawing, its SSIM and the classifier's logits; an item leaves its own third input out."""
        from torchmetrics.functional.image import structural_similarity_index_measure as ssim

        first = {}
        for n, item in enumerate(items):
            if item["target"] not in self.targets:
                first.setdefault(item["target"], n)
        if first:
            index = list(first.values())
            new = images[index]
            distances = self.norms[None] - 2 * new.flatten(1) @ self.flat.T
            similar = ssim(new, targets[index], data_range=1.0, reduction="none").tolist()
            with torch.no_grad():
                logits = self.net(new) if self.net is not None else [None] * len(index)
            self.targets.update(zip(first, zip(distances, similar, logits)))
        for n, (row, item) in enumerate(zip(rows, items)):
            distances, similar, logits = self.targets[item["target"]]
            bound = distances[self.position[item["target"]]]
            rank = int((distances < bound).sum()) - int(distances[self.position[item["c"]]] < bound) + 1
            read = bool(logits[self.net.attributes.index(attribute_of(item))] > 0) if n in asked else None
            row.update(reconstruction_rank=rank, reconstruction_ssim=similar, reconstruction_attribute=read)


def key(item: dict) -> tuple:
    return item["family"], tuple(item["target"])


def summarise(rows: list[dict]) -> dict:
    """{image kind: top1, top5, ssim, attribute (the share read, over analogies it knows), n_attribute},
    and the attribute read from the real targets themselves."""
    if not rows:
        return {"n": 0}
    read = [r["target_attribute"] for r in rows if r.get("target_attribute") is not None]
    out = {
        "n": len(rows),
        "target": {"attribute": float(sum(read) / len(read)) if read else None, "n_attribute": len(read)},
    }
    for kind in IMAGES:
        ranks = torch.tensor([r[f"{kind}_rank"] for r in rows], dtype=torch.float32)
        read = [r[f"{kind}_attribute"] for r in rows if r[f"{kind}_attribute"] is not None]
        out[kind] = {"top1": float((ranks <= 1).float().mean()), "top5": float((ranks <= 5).float().mean()),
                     "ssim": float(torch.tensor([r[f"{kind}_ssim"] for r in rows]).mean()),
                     "attribute": float(sum(read) / len(read)) if read else None, "n_attribute": len(read)}
    return out


def by_split(rows: list[dict]) -> dict:
    """{split: {kind ("all", name, variant, style): summarise}} over the judged rows."""
    out = {}
    for split in ("train", "val", "test"):
        judged = [r for r in rows if r["split"] == split and "composite_rank" in r]
        if judged:
            out[split] = {
                kind: summarise([r for r in judged if kind in ("all", r["kind"])]) for kind in ("all", *KINDS)
            }
    return out


def train_judge(analogy_set, split_of: dict, variants: list[str]) -> AttributeNet | None:
    """The attribute classifier, trained on an AnalogySet's real train-split drawings only (never a
    model's output); None, with a warning, where no attribute has enough drawings to learn from."""
    keys = [key for key in analogy_set.pixels if split_of[key] == "train"]
    attributes = attributes_to_learn(analogy_set.family_items, keys, variants, LEAST)
    if not attributes:
        print(
            "warning: no analogy attribute has enough training drawings, so the judge reads no attributes",
            file=sys.stderr,
        )
        return None
    x, y = torch.stack([analogy_set.pixels[k] for k in keys]), labels_of(keys, attributes, variants)
    with tqdm(total=CLASSIFIER.epochs, desc="judge", unit="epoch") as bar:
        return train_attributes(x, y, attributes, CLASSIFIER, CLASSIFIER.seed,
                                progress=lambda epoch, loss: bar.update(1) or bar.set_postfix(loss=f"{loss:.3f}"))
