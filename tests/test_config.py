import pytest
from pydantic import BaseModel

from emoji_ae.config import CODE_FROM, Params, PipelineError, latent_shape, load_params, parse_params
from tests.conftest import REPO, default_params


def error_of(params: dict) -> str:
    with pytest.raises(PipelineError) as caught:
        parse_params(params)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_committed_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.latent > 0 and params.data.source == "openmoji"


@pytest.mark.parametrize("latent", [0, -4, 2.5, "big"])
def test_latent_must_be_a_positive_integer(latent):
    params = default_params()
    params["latent"] = latent
    assert "latent" in error_of(params)


@pytest.mark.parametrize("grid,latent,attribute,expected", [
    (8, 80, 64, "latent 80 less model.attribute 64 does not fill the 8x8 content grid (model.grid) "
                "with whole channels: "
                "use a latent of 128, 192, 256, 320, ..., or model.grid and model.attribute: auto"),
    # never a coarser grid in silence:
    (8, 32, 0, "latent 32 less model.attribute 0 does not fill the 8x8 content grid"),
    (3, 48, 0, "model.grid must be a power of two of at most data.size / 2 = 32, got 3"),
    (64, 1024, 0, "model.grid must be a power of two of at most data.size / 2 = 32, got 64"),
    (2, 72, 64, "latent 72 does not fill the reference's 4x4 grid at 64 px (train_reference): use a multiple of 16"),
])
def test_the_content_grid_must_fit_the_image_and_the_latent_in_whole_channels(grid, latent, attribute, expected):
    params = default_params()
    params["model"]["grid"], params["model"]["attribute"], params["latent"] = grid, attribute, latent
    error = error_of(params)
    assert expected in error and "\n" not in error


# Every size a user may try with `dvc exp run -S latent=N` alone, on the real defaults, and the shape
# the rule gives it (docs/design.md#the-latents-shape).
RULE = {16: (0, 2, 4), 32: (0, 4, 2), 64: (0, 4, 4), 128: (0, 8, 2), 256: (0, 8, 4), 320: (64, 8, 4),
        384: (64, 8, 5), 512: (0, 16, 2), 1024: (0, 16, 4), 2048: (256, 16, 7), 4096: (256, 16, 15)}


@pytest.mark.parametrize("latent", sorted(RULE))
def test_the_real_defaults_take_every_latent_size_alone_by_one_rule(latent):
    params = load_params(REPO / "params.yaml", [f"latent={latent}"])
    shape = params.shape
    assert (shape.attribute, shape.grid, shape.channels) == RULE[latent]
    assert shape.attribute + shape.grid**2 * shape.channels == latent


def test_the_rule_gives_the_finest_grid_that_holds_two_channels_and_a_code_from_five():
    for latent in range(16, 4097, 16):
        shape = latent_shape(64, latent)
        finer = shape.grid * 2
        assert shape.grid <= 16 and (finer > 16 or latent < 2 * finer**2)
        assert shape.channels >= (2 if latent >= 2 * shape.grid**2 else 1)
        assert (shape.attribute >= shape.grid**2) == (latent // shape.grid**2 >= CODE_FROM)


@pytest.mark.parametrize("grid,attribute,latent,expected", [
    (8, "auto", 320, (64, 8, 4)),  # the code takes what the grid leaves, a channel once it holds five
    (8, "auto", 208, (16, 8, 3)),
    ("auto", 16, 80, (16, 4, 4)),  # the finest grid the rest fills in whole channels
    ("auto", 0, 512, (0, 16, 2)),
    (4, 16, 80, (16, 4, 4)),
])
def test_a_shape_key_set_by_hand_is_kept_and_the_rule_fills_in_the_other(grid, attribute, latent, expected):
    shape = load_params(REPO / "params.yaml", [f"latent={latent}", f"model.grid={grid}",
                                               f"model.attribute={attribute}"]).shape
    assert (shape.attribute, shape.grid, shape.channels) == expected


@pytest.mark.parametrize("overrides,expected", [
    (["latent=32", "model.grid=8", "model.attribute=0"], "latent 32 less model.attribute 0 does not fill the 8x8"),
    (["latent=32", "model.grid=8"], "latent 32 is less than one channel of the 8x8 content grid"),
    (["latent=48", "model.attribute=48"], "latent 48 less model.attribute 48 fills no content grid"),
    (["model.grid=12"], "model.grid must be a power of two"),
    (["model.attribute=big"], "model.attribute"),
])
def test_a_shape_set_by_hand_that_does_not_fit_stops_in_one_line(overrides, expected):
    with pytest.raises(PipelineError) as caught:
        load_params(REPO / "params.yaml", overrides)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_attribute_code_and_the_grid_share_the_latent():
    shape = parse_params(default_params()).shape
    assert parse_params(default_params()).latent == shape.attribute + shape.grid**2 * shape.channels


def test_every_bad_key_is_reported_at_once_with_suggestions():
    params = default_params()
    params["latnet"] = 32
    params["train"]["lrr"] = params["train"].pop("lr")
    params["data"]["size"] = 0
    params["train"]["epochs"] = -1
    message = error_of(params)
    assert "latnet: unknown key (did you mean 'latent'?)" in message
    assert "train.lrr: unknown key (did you mean 'lr'?)" in message
    assert "train.lr: missing (params.yaml sets every key" in message
    assert "data.size" in message and "train.epochs" in message


def test_split_ratios_must_sum_to_one():
    params = default_params()
    params["data"]["split"] = {"train": 0.7, "val": 0.2, "test": 0.2}
    assert "split ratios must sum to 1, got 1.1" in error_of(params)


def test_negative_learning_rate_is_rejected():
    params = default_params()
    params["train"]["lr"] = -0.001
    assert "train.lr" in error_of(params)


@pytest.mark.parametrize("dropout", [1, -0.1, 1.5])
def test_decoder_dropout_must_be_a_probability_below_one(dropout):
    params = default_params()
    params["model"]["decoder_dropout"] = dropout
    assert "model.decoder_dropout" in error_of(params)


@pytest.mark.parametrize("levels", [-1, 1.5, "two"])
def test_residual_levels_must_be_a_whole_number_of_levels(levels):
    params = default_params()
    params["model"]["residual_levels"] = levels
    assert "model.residual_levels" in error_of(params)


@pytest.mark.parametrize("precision", ["fp16", "bfloat16", 16])
def test_precision_is_fp32_or_bf16(precision):
    params = default_params()
    params["train"]["precision"] = precision
    assert "train.precision" in error_of(params)


@pytest.mark.parametrize(
    "key,value", [("paste", 1.5), ("flip", -0.1), ("flip", 2), ("rotate", -5), ("shift", 0.6), ("zoom", 1)]
)
def test_online_augmentation_takes_probabilities_and_bounded_ranges(key, value):
    params = default_params()
    params["train"][key] = value
    assert f"train.{key}" in error_of(params)


@pytest.mark.parametrize("size", [60, 4, 0])
def test_size_must_be_a_power_of_two(size):
    params = default_params()
    params["data"]["size"] = size
    assert "data.size" in error_of(params)


def test_missing_params_file_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load_params(tmp_path / "params.yaml")


def test_overrides_replace_values_as_dvc_exp_run_s_does():
    params = load_params(REPO / "params.yaml", ["aux.lambda=0.03", "latent=512", "data.split.val=0.2"])
    assert (params.aux.lambda_, params.latent, params.aux.hidden) == (0.03, 512, 64)


@pytest.mark.parametrize("assignment, message", [
    ("aux.lambda", "'aux.lambda' is not KEY=VALUE: write e.g. aux.lambda=0.03"),
    ("auxx.lambda=0.1", "'auxx.lambda': params.yaml has no section 'auxx'"),
    ("aux.lamda=0.1", "aux.lamda: unknown key (did you mean 'lambda'?)"),
    ("aux.lambda=high", "aux.lambda: Input should be a valid number"),
])
def test_a_bad_override_is_a_one_line_error_naming_it(assignment, message):
    with pytest.raises(PipelineError) as caught:
        load_params(REPO / "params.yaml", [assignment])
    assert message in str(caught.value) and "\n" not in str(caught.value)


def required_everywhere(model, prefix=""):
    """Every field of the schema and of its sections, with whether it has a default."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        yield key, field.is_required()
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from required_everywhere(annotation, f"{key}.")


def test_the_schema_has_no_defaults_so_params_yaml_is_the_one_source_of_truth():
    keys = dict(required_everywhere(Params))
    assert {"seed", "data.rgba", "train.precision", "aux.ramp", "model.grid"} <= set(keys)
    assert [key for key, required in keys.items() if not required] == []
    params = default_params()
    del params["model"]["residual_levels"]
    assert "model.residual_levels: missing" in error_of(params)
