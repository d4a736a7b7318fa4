"""The composition judge (emoji_ae/judge.py) on small synthetic drawings: a blur that MSE prefers
is not recognised, the third input never counts, attributes are read as whole words and variants,
and the attribute classifier learns what it is shown."""

import io
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from emoji_ae import judge as J
from tests.conftest import default_params, emoji_png

VARIANTS = default_params()["data"]["variants"]
CFG = SimpleNamespace(epochs=30, batch_size=16, lr=3e-3, max_weight=50)


def drawing(index: int, size: int = 32) -> torch.Tensor:
    array = np.asarray(Image.open(io.BytesIO(emoji_png(index))).convert("RGB").resize((size, size)))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255


def item(target: str, third: str, family: str = "s: cat", kind: str = "name") -> dict:
    return {"target": ("s", target), "c": ("s", third), "family": family, "kind": kind}


def test_a_blur_that_mse_prefers_is_not_recognised_and_a_sharp_near_copy_is():
    pool = {("s", f"e{i}"): drawing(i) for i in range(12)}
    target = pool[("s", "e3")]
    shifted, blur = torch.roll(target, 2, dims=2), torch.stack(list(pool.values())).mean(0)
    assert ((blur - target) ** 2).mean() < ((shifted - target) ** 2).mean()  # MSE would choose the blur
    judge = J.Judge(pool, None)
    rows = judge.score(
        {"composite": torch.stack([shifted, blur, target])}, target.expand(3, -1, -1, -1), [item("e3", "e5")] * 3
    )
    assert [r["composite_rank"] for r in rows[::2]] == [1, 1] and rows[1]["composite_rank"] > 1
    assert rows[2]["composite_ssim"] > 0.999 > rows[1]["composite_ssim"]
    assert rows[0]["composite_attribute"] is None  # no classifier: nothing read


def test_the_third_input_is_left_out_of_the_pool():
    pool = {("s", f"e{i}"): drawing(i) for i in range(6)}
    copy = pool[("s", "e2")]  # returning the base unchanged: its own drawing never counts as recognised
    ranks = J.Judge(pool, None).ranks(copy[None], [item("e4", "e2")])
    distances = {k: float(((v - copy) ** 2).sum()) for k, v in pool.items() if k != ("s", "e2")}
    assert int(ranks[0]) == 1 + sum(d < distances[("s", "e4")] for d in distances.values())


def test_attributes_are_whole_words_whole_variants_or_the_set():
    assert J.carries(("openmoji", "crying cat face"), "cat", VARIANTS)
    assert not J.carries(("openmoji", "catalogue"), "cat", VARIANTS)
    assert J.carries(("openmoji", "thumbs up dark skin tone"), "dark skin tone", VARIANTS)
    assert not J.carries(("openmoji", "thumbs up medium dark skin tone"), "dark skin tone", VARIANTS)
    assert J.carries(("twemoji", "nerd face"), "set twemoji", VARIANTS) and not J.carries(
        ("openmoji", "nerd face"), "set twemoji", VARIANTS
    )
    assert (
        J.attribute_of({"kind": "style", "family": "openmoji -> twemoji", "target": ("twemoji", "x")}) == "set twemoji"
    )
    assert (
        J.attribute_of({"kind": "variant", "family": "openmoji: dark skin tone", "target": ("openmoji", "x")})
        == "dark skin tone"
    )


def test_the_attribute_classifier_reads_what_it_was_trained_on_and_the_summary_holds_every_figure():
    keys = [("s", f"{'cat ' if i % 2 else ''}face {i}") for i in range(40)]
    x = torch.stack([drawing(i) for i in range(40)])
    x[1::2, 0] = 1.0  # the "cat" drawings are the ones with a full red channel
    attributes = J.attributes_to_learn([item("cat face 1", "face 0")], keys, VARIANTS, least=5)
    assert attributes == ["cat"]
    net = J.train_attributes(x, J.labels_of(keys, attributes, VARIANTS), attributes, CFG, seed=0)
    assert J.read_attributes(net, x, ["cat"] * 40).tolist() == [bool(i % 2) for i in range(40)]
    pool = dict(zip(keys, x))
    items = [item(keys[i][1], keys[0][1]) | {"split": "val"} for i in (1, 3, 5)]
    rows = J.Judge(pool, net).score({name: x[[1, 3, 5]] for name in J.IMAGES}, x[[1, 3, 5]], items)
    summary = J.by_split([r | {"split": "val", "kind": "name"} for r in rows])
    assert summary["val"]["all"]["composite"] == {
        "top1": 1.0,
        "top5": 1.0,
        "ssim": summary["val"]["all"]["composite"]["ssim"],
        "attribute": 1.0,
        "n_attribute": 3,
    }
    assert summary["val"]["all"]["target"] == {"attribute": 1.0, "n_attribute": 3} and summary["val"]["style"] == {
        "n": 0
    }
