import sys

import pandas as pd
import pytest

from emoji_ae.config import PipelineError
from emoji_ae.tools import aux_cv
from stages import augment, prepare
from tests.conftest import synthetic_params, write_params


def test_folds_keep_each_emoji_whole_and_deal_each_class_round_them():
    emoji = [(f"animal {i}", 0) for i in range(4)] + [(f"face {i}", 1) for i in range(8)]
    frame = pd.DataFrame([{"text": text, "base": text, "label": label} for text, label in emoji for _ in range(3)])
    fold = aux_cv.emoji_folds(frame, folds=2, seed=0)
    frame["fold"] = fold
    assert (frame.groupby("base")["fold"].nunique() == 1).all()
    per_fold = frame.drop_duplicates("base").groupby(["fold", "label"]).size()
    assert per_fold.to_dict() == {(0, 0): 2, (0, 1): 4, (1, 0): 2, (1, 1): 4}
    assert (aux_cv.emoji_folds(frame, folds=2, seed=0) == fold).all()
    assert not (aux_cv.emoji_folds(frame, folds=2, seed=1) == fold).all()
    with pytest.raises(PipelineError, match="--folds is 5; it must be from 2 to 4"):
        aux_cv.emoji_folds(frame, folds=5, seed=0)
    with pytest.raises(PipelineError, match="--fold-seed is -1; it must be a non-negative integer"):
        aux_cv.emoji_folds(frame, folds=2, seed=-1)


def test_aux_cv_prints_each_fold_and_the_means_the_same_on_a_second_run(workdir, valhalla_parquet, monkeypatch, capsys):
    params = synthetic_params(valhalla_parquet)
    write_params(workdir, params)
    prepare.main()
    augment.main()
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["aux_cv", "--folds", "2", "aux.lambda=0.5"])
    aux_cv.main()
    lines = capsys.readouterr().out.strip().splitlines()
    folds, wrong = lines[0:-1:2], lines[1:-1:2]
    assert [line.split(":")[0] for line in folds + lines[-1:]] == [
        "fold 1/2",
        "fold 2/2",
        f"aux_cv aux.lambda=0.5, fold seed {params['seed']}",
    ]
    assert "accuracy" in lines[-1] and "MSE aux/ae" in lines[-1]
    pooled = pd.concat([pd.read_parquet(workdir / f"data/augmented/{split}.parquet") for split in ("train", "val")])
    assert sum(int(line.split()[2]) for line in folds) == pooled["base"].nunique()  # "fold k/2: N emoji, ..."
    # Under each fold, the emoji it got wrong: none exactly when its accuracy is 100%.
    assert all(line.startswith("  wrong: ") for line in wrong)
    assert [line == "  wrong: none" for line in wrong] == ["accuracy 100.0%" in line for line in folds]
    monkeypatch.setattr(sys, "argv", ["aux_cv", "--folds", "2", "--fold-seed", str(params["seed"]), "aux.lambda=0.5"])
    aux_cv.main()
    assert (
        capsys.readouterr().out.strip().splitlines() == lines
    )  # seeded, by default with `seed`: the same figures again
    monkeypatch.setattr(
        sys, "argv", ["aux_cv", "--folds", "2", "--fold-seed", str(params["seed"] + 1), "aux.lambda=0.5"]
    )
    aux_cv.main()
    other_deal = capsys.readouterr().out.strip().splitlines()
    assert other_deal[-1].startswith(f"aux_cv aux.lambda=0.5, fold seed {params['seed'] + 1}: ")
    assert other_deal[:-1] != lines[:-1]  # other emoji held out, other figures
