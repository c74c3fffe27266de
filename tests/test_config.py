"""Config loading and validation (`model_utils/config.py`)."""

import copy
import json
import math

import pytest

import echo_noise
from model_utils.config import ConfigError, load_config, parse_config, read_config
from model_utils.activations import get_activation, log_sigmoid
from support import PROJECT_CONFIGS, REFERENCE_CONFIGS, REPO, reference_config_params, require_file

REFERENCE_ECHO = [path for path in REFERENCE_CONFIGS if path.name.startswith("echo")]

EXPERIMENTS = {
    "echo.json", "echo_linear.json", "echo_tanh64.json", "vae.json", "info_vae.json", "vae_maf.json",
    "vae_vamp.json", "iaf_prior.json", "iaf_prior_mmd.json", "iaf_maf.json", "iaf_vamp.json",
}
# The project's own: Echo as the reference implementation trains it, and Echo trained to a rate.
EXTRAS = {"echo_reference.json", "echo_target20.json"}
# What each experiment compares: its noise channel and its rate terms.
EXPECTED = {
    "echo.json": ("echo", {"echo"}),
    "echo_linear.json": ("echo", {"echo"}),
    "echo_tanh64.json": ("echo", {"echo"}),
    "echo_reference.json": ("echo", {"echo"}),
    "echo_target20.json": ("echo", {"echo"}),
    "vae.json": ("gaussian", {"vae"}),
    "info_vae.json": ("gaussian", {"vae", "mmd"}),
    "vae_maf.json": ("gaussian", {"gaussian_ent", "maf"}),
    "vae_vamp.json": ("gaussian", {"gaussian_ent", "vamp"}),
    "iaf_prior.json": ("iaf", {"iaf", "gaussian_pdf"}),
    "iaf_prior_mmd.json": ("iaf", {"iaf", "gaussian_pdf", "mmd"}),
    "iaf_maf.json": ("iaf", {"iaf", "maf", "made_density"}),
    "iaf_vamp.json": ("iaf", {"iaf", "vamp"}),
}


def test_the_project_has_the_eleven_experiments_and_its_two_echo_variants():
    assert {path.name for path in PROJECT_CONFIGS} == EXPERIMENTS | EXTRAS


def test_the_project_echo_configs_train_with_the_remedy_and_the_reference_recipe_without():
    # The remedy (configs/README.md) is explicit in each JSON; the reference's configs and
    # echo_reference.json keep the reference implementation's recipe.
    for name in ("echo.json", "echo_tanh64.json", "echo_linear.json", "echo_target20.json"):
        options = load_config(name).channel.options
        assert (options["sx_activation"], options["fx_centring"]) == ("model_utils.activations.neg_square", "running"), name
    for path in [REPO / "configs" / "echo_reference.json", *REFERENCE_ECHO]:
        options = load_config(str(path)).channel.options
        assert get_activation(options["sx_activation"]) is log_sigmoid and options["fx_centring"] == "none", path
    target = load_config("echo_target20.json").constraints
    assert [(c.quantity, c.relation, c.value) for c in target] == [("rate", "eq", 20.0)]


@pytest.mark.parametrize("path", PROJECT_CONFIGS + reference_config_params(), ids=str)
def test_every_config_parses_to_its_experiment(path):
    config = load_config(str(require_file(path)))
    kind, loss_types = EXPECTED[path.name]
    assert config.channel.kind == kind
    assert {loss.type for loss in config.losses} <= loss_types
    assert config.batch == 100 and config.input_shape == (28, 28, 1)
    assert config.channel.options["units"] == 32


def test_echo_configs_get_the_clip_of_the_reference_implementation():
    # The reference configs wrote 0.8359 (tanh, M = 1) and 0.8175 (linear, fx_clip 10) by hand.
    assert round(load_config("echo.json").channel.options["clip"], 4) == 0.8359
    linear = load_config("echo_linear.json").channel.options
    assert linear["fx_clip"] == 10 and round(linear["clip"], 4) == 0.8175


def test_a_config_is_found_by_name_path_or_inline_json():
    by_name = read_config("vae")[0]
    by_path = read_config(str(REPO / "configs" / "vae.json"))[0]
    inline = read_config(json.dumps(by_name))
    assert by_name == by_path == inline[0]
    assert inline[1] == "inline JSON config"


# ---- beta -------------------------------------------------------------------------------


def test_beta_sets_every_rate_weight_but_not_penalties_or_zero_weights():
    raw = _raw("iaf_prior_mmd.json")
    raw["losses"][1]["weight"] = 0.0  # gaussian_pdf switched off on purpose
    config = parse_config(raw, "test").with_beta(0.25)
    weights = {loss.type: loss.weight for loss in config.losses}
    assert weights == {"iaf": 0.25, "gaussian_pdf": 0.0, "mmd": 999.0}


def test_the_configs_own_beta_applies_and_the_command_line_overrides_it():
    raw = _raw("vae.json")
    raw["beta"] = 3.0
    config = parse_config(raw, "test")
    assert [loss.weight for loss in config.losses] == [3.0]
    assert [loss.weight for loss in config.with_beta(0.5).losses] == [0.5]


@pytest.mark.parametrize("beta", [-1.0, math.nan, math.inf])
def test_an_invalid_beta_is_refused(beta):
    with pytest.raises(ConfigError, match="beta"):
        load_config("vae.json").with_beta(beta)
    raw = _raw("vae.json")
    raw["beta"] = beta
    with pytest.raises(ConfigError, match="beta"):
        parse_config(raw, "test.json")


# ---- invalid configs: one clear message with the key path --------------------------------


def _raw(name):
    return copy.deepcopy(read_config(name)[0])


def _channel(raw):
    return next(layer for layer in raw["layers"] if layer["type"] in {"echo", "vae", "iaf"})


def _expect(raw, path, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "broken.json")
    message = str(caught.value)
    assert message.startswith(f"broken.json: {path}"), message
    assert fragment in message, message


def test_unknown_layer_type():
    raw = _raw("echo.json")
    raw["layers"][2]["type"] = "Conv3D"
    _expect(raw, "layers[2].type", "unknown layer type 'Conv3D'")


def test_unknown_loss_type():
    raw = _raw("vae.json")
    raw["losses"][0]["type"] = "kl"
    _expect(raw, "losses[0].type", "expected one of")


def test_a_loss_for_a_channel_the_config_does_not_have():
    raw = _raw("vae.json")
    raw["losses"] = [{"type": "echo", "weight": 1.0}]
    _expect(raw, "losses[0].type", "needs a echo noise layer")


def test_a_maf_loss_without_a_density_estimator():
    raw = _raw("vae_maf.json")
    del _channel(raw)["density_estimator"]
    _expect(raw, "losses[1].type", "density_estimator")


def test_a_missing_key():
    raw = _raw("echo.json")
    del raw["batch"]
    _expect(raw, "batch", "is missing")


def test_a_misspelled_key():
    raw = _raw("echo.json")
    raw["epoch"] = raw.pop("epochs")
    _expect(raw, "epoch", "unknown key")


def test_d_max_larger_than_the_batch():
    raw = _raw("echo.json")
    _channel(raw)["layer_kwargs"]["d_max"] = 101
    _expect(raw, "layers[5].layer_kwargs.d_max", "larger than the batch")


def test_a_clip_too_large_for_the_terms_a_batch_provides():
    raw = _raw("echo.json")
    raw["batch"] = 50
    _channel(raw)["layer_kwargs"].update(d_max=50, clip=0.8359)
    _expect(raw, "layers[5].layer_kwargs.clip", f"at most {echo_noise.echo_clip(49):.4f}")


def test_an_echo_loss_clip_that_differs_from_the_layer_clip():
    raw = _raw("echo.json")
    raw["losses"][0]["loss_kwargs"] = {"clip": 0.8}
    _expect(raw, "losses[0].loss_kwargs.clip", "differs from the clip of the echo layer")


def test_an_unbounded_echo_mean_without_fx_clip():
    raw = _raw("echo_linear.json")
    del _channel(raw)["layer_kwargs"]["fx_clip"]
    _expect(raw, "layers[5].layer_kwargs.fx_act", "not bounded by 1")


def test_echo_centring_and_scale_heads_are_validated():
    raw = _raw("echo.json")
    _channel(raw)["layer_kwargs"].update(echomc=True, fx_centring="none")
    _expect(raw, "layers[5].layer_kwargs.fx_centring", "contradicts echomc: true")
    _channel(raw)["layer_kwargs"].update(echomc=False, fx_centring="median")
    _expect(raw, "layers[5].layer_kwargs.fx_centring", "expected one of 'none', 'batch', 'running'")
    _channel(raw)["layer_kwargs"].update(fx_centring="running", sx_act="relu")
    _expect(raw, "layers[5].layer_kwargs.sx_act", "use log_sigmoid, log_sig64 or neg_square")


@pytest.mark.parametrize("kwargs, centring", [({"echomc": True}, "batch"), ({"echo_mc": True, "fx_centring": "batch"}, "batch"),
                                              ({"fx_centring": "running"}, "running"), ({"echomc": False}, "none")])
def test_echomc_is_the_batch_centring(kwargs, centring):
    raw = _raw("echo.json")
    layer_kwargs = _channel(raw)["layer_kwargs"]
    layer_kwargs.pop("fx_centring", None)
    layer_kwargs.update(kwargs, sx_act="neg_square")
    options = parse_config(raw, "echo.json").channel.options
    assert options["fx_centring"] == centring and options["sx_activation"] == "neg_square"


def test_an_activation_is_never_imported_from_a_config():
    raw = _raw("vae.json")
    raw["layers"][0]["activation"] = "os.system"
    _expect(raw, "layers[0].activation", "unknown activation 'os.system'")


def test_terms_that_do_not_form_a_rate():
    raw = _raw("vae_maf.json")
    raw["losses"] = [raw["losses"][0]]  # a posterior term without a marginal
    _expect(raw, "losses", "do not form one rate")


def test_a_layer_index_outside_latent_dims():
    raw = _raw("vae.json")
    raw["layers"][1]["layer"] = 9
    _expect(raw, "layers[1].layer", "out of range for latent_dims")


def test_keras_arguments_are_checked():
    raw = _raw("vae.json")
    raw["layers"][0]["layer_kwargs"]["kernal_size"] = 3
    _expect(raw, "layers[0].layer_kwargs.kernal_size", "unknown key; expected one of: dilation_rate, kernel_size")


def _set(path, value):
    """An edit of a raw config: set the value at a path of keys and indices."""
    def edit(raw):
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


# Values that reached Keras or TensorFlow unchecked and crashed or aborted the process.
UNBUILDABLE = {
    "padding not a string": (_set(("layers", 0, "layer_kwargs", "padding"), 5), "layers[0].layer_kwargs.padding", "expected one of 'same', 'valid'"),
    "stride of 10^12": (_set(("layers", 0, "layer_kwargs", "strides"), 10**12), "layers[0].layer_kwargs.strides", "from 1 to 64"),
    "zero kernel": (_set(("layers", 1, "layer_kwargs", "kernel_size"), 0), "layers[1].layer_kwargs.kernel_size", "from 1 to 64"),
    "three kernel sides": (_set(("layers", 1, "layer_kwargs", "kernel_size"), [3, 3, 3]), "layers[1].layer_kwargs.kernel_size", "a list of two"),
    "kernel as a string": (_set(("layers", 1, "layer_kwargs", "kernel_size"), "os.system"), "layers[1].layer_kwargs.kernel_size", "from 1 to 64"),
    "a million filters": (_set(("latent_dims", 0), 10**6), "latent_dims", "at most 4,096"),
    "kernel larger than the image": (_set(("layers", 4, "layer_kwargs"), {"kernel_size": 40, "strides": 1, "padding": "valid"}), "layers[4]", "cannot be applied to inputs of shape [7, 7, 64]"),
    "too many weights": (_set(("latent_dims",), [4096, 4096, 4096, 4096, 4096, 32]), "layers", "weights; at most 100,000,000"),
    "huge batch": (_set(("batch",), 10**9), "batch", "at most 10,000"),
    "huge image": (_set(("input_shape",), [10**6, 28, 1]), "input_shape", "at most 1024 pixels a side"),
    "optimizer parameter of the wrong type": (_set(("optimizer_params",), {"beta_1": "os.system"}), "optimizer_params", "not accepted by keras.optimizers.Adam"),
    "a million flow steps": (_set(("layers", 5, "layer_kwargs", "steps"), 10**6), "layers[5].layer_kwargs.steps", "at most 64"),
}


@pytest.mark.parametrize("case", UNBUILDABLE, ids=list(UNBUILDABLE))
def test_values_that_would_crash_keras_are_refused_first(case):
    edit, path, fragment = UNBUILDABLE[case]
    raw = _raw("iaf_prior.json")
    edit(raw)
    _expect(raw, path, fragment)


def test_a_legacy_key_is_accepted_only_when_inert():
    raw = _raw("vae.json")
    raw["extra_maf"] = 0
    assert any("extra_maf" in note for note in parse_config(raw, "ok.json").notes)
    raw["extra_maf"] = 1
    _expect(raw, "extra_maf", "is not supported")


def test_bce_needs_a_sigmoid_output():
    raw = _raw("vae.json")
    raw["layers"][-1]["activation"] = "keras.activations.relu"
    _expect(raw, "layers[12].activation", "needs a sigmoid output")


def test_vamp_layers_must_be_the_encoders():
    raw = _raw("iaf_vamp.json")
    raw["losses"][1]["loss_kwargs"]["layers"] = [32, 32]
    _expect(raw, "losses[1].loss_kwargs.layers", "encodes its pseudo-inputs with the model's encoder")


def test_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "batch": 100,\n  "epochs": \n}\n')
    with pytest.raises(ConfigError, match=r"bad.json: line 4 column 1: invalid JSON"):
        load_config(str(path))


def test_a_missing_config_file_lists_the_available_ones():
    with pytest.raises(ConfigError, match="no such config file.*echo.json"):
        load_config("does_not_exist.json")
