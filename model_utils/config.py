"""Experiment configs: reading, validation, and the parsed form the model is built from.

The schema is the reference implementation's (documented key by key in
``configs/README.md``). Every problem is reported as one `ConfigError` naming the config,
the key path (e.g. ``layers[5].layer_kwargs.d_max``) and what was expected, before
anything is built or written. Keys the reference implementation carried but that have
no effect here are accepted only with their inert values and listed in
`ExperimentConfig.notes`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import keras

import echo_noise
from model_utils.activations import get_activation, log_sig64, log_sigmoid, neg_square, tanh16, tanh64
from model_utils.losses import DISTORTIONS, LOSS_TYPES, MARGINAL, PENALTY, POSTERIOR, RATE
from model_utils.noise import CHANNELS, EchoChannel
from model_utils.precision import PRECISIONS
from model_utils.schedules import ANNEAL_FUNCTIONS, SCHEDULES, RateSchedule

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"

KERAS_LAYERS: dict[str, Callable[..., keras.layers.Layer]] = {
    "Conv2D": keras.layers.Conv2D,
    "Conv2DTranspose": keras.layers.Conv2DTranspose,
    "Dense": keras.layers.Dense,
}
OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "Adam": keras.optimizers.Adam,
    "AdamW": keras.optimizers.AdamW,
    "Adamax": keras.optimizers.Adamax,
    "Nadam": keras.optimizers.Nadam,
    "RMSprop": keras.optimizers.RMSprop,
    "SGD": keras.optimizers.SGD,
}
# f(x) heads whose outputs are bounded by 1, the M = 1 that Echo's default clip assumes.
_UNIT_BOUNDED = {keras.activations.tanh, keras.activations.sigmoid, tanh16, tanh64}
# log s(x) heads whose outputs are <= 0, so that s(x) <= 1.
_LOG_SCALE = {log_sigmoid, log_sig64, neg_square}


# Bounds that keep every valid config buildable on one machine (the reference configs are
# far inside them): beyond them Keras or TensorFlow fail deep inside, or abort the process
# (a stride of 10^12), or the allocation alone exhausts memory.
MAX_BATCH = 10_000
MAX_IMAGE_SIDE = 1024
MAX_CHANNELS = 64
MAX_WIDTH = 4096  # filters or units of a layer, latent dimensions, flow hidden units
MAX_WINDOW = 64  # kernel size, strides, dilation
MAX_FLOW_STEPS = 64
MAX_PSEUDO_INPUTS = 10_000
MAX_EPOCHS = 1_000_000
MAX_PARAMETERS = 100_000_000
MAX_ACTIVATIONS = 2_000_000_000  # floats of one forward pass of a batch (8 GB in float32)


class ConfigError(ValueError):
    """An invalid config: `source` (file or "inline JSON"), key path, and the problem."""

    def __init__(self, source: str, path: str, problem: str):
        self.source, self.path, self.problem = source, path, problem
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem}")


class _Invalid(Exception):
    """Raised by a value parser; turned into a ConfigError with the key's path."""


_REQUIRED = object()


# ---- value parsers ----------------------------------------------------------------------


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {value!r}")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"expected a positive integer, got {value!r}")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {value!r}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(f"expected a finite number, got {value!r}")
    return float(value)


def _non_negative(value: Any) -> float:
    number = _number(value)
    if number < 0:
        raise _Invalid(f"expected a number >= 0, got {value!r}")
    return number


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise _Invalid(f"expected a number > 0, got {value!r}")
    return number


def _unit_interval(value: Any) -> float:
    number = _number(value)
    if not 0 < number < 1:
        raise _Invalid(f"expected a number in (0, 1), got {value!r}")
    return number


def _mapping(value: Any) -> dict:
    if not isinstance(value, dict):
        raise _Invalid(f"expected an object {{...}}, got {value!r}")
    return value


def _positive_ints(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f"expected a non-empty list of positive integers, got {value!r}")
    try:
        return tuple(_positive_int(item) for item in value)
    except _Invalid:
        raise _Invalid(f"expected a non-empty list of positive integers, got {value!r}") from None


def _at_most(parse: Callable[[Any], Any], high: int) -> Callable[[Any], Any]:
    """`parse`, then refuse values (or list items) above `high`."""
    def bounded(value: Any) -> Any:
        parsed = parse(value)
        if any(item > high for item in (parsed if isinstance(parsed, tuple) else (parsed,))):
            raise _Invalid(f"expected at most {high:,}, got {value!r}")
        return parsed

    return bounded


def _window(value: Any) -> int | list[int]:
    """A kernel size, stride or dilation: an integer from 1 to MAX_WINDOW, or a list of two."""
    items = value if isinstance(value, list) else [value]
    if len(items) not in (1, 2) or any(isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= MAX_WINDOW for i in items):
        raise _Invalid(f"expected an integer from 1 to {MAX_WINDOW} or a list of two, got {value!r}")
    return value


def _non_empty_list(value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise _Invalid(f"expected a non-empty list, got {value!r}")
    return value


def _activation(value: Any) -> str:
    try:
        get_activation(value)
    except KeyError as error:
        raise _Invalid(error.args[0]) from None
    return value


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else parse(value)


def _one_of(*choices: Any) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if value not in choices:
            raise _Invalid(f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    return parse


def _inert(expected: Any) -> Callable[[Any], Any]:
    """A legacy key: accepted only with the value that means 'off'."""

    def parse(value: Any) -> Any:
        if value != expected or isinstance(value, bool) != isinstance(expected, bool):
            raise _Invalid(f"is not supported; only {json.dumps(expected)} (off) is accepted, got {value!r}")
        return value

    return parse


# ---- sections ---------------------------------------------------------------------------


@dataclass
class _Section:
    """One JSON object of the config, with its key path for messages."""

    data: dict
    path: str
    source: str
    notes: list[str]

    def error(self, key: str | None, problem: str) -> ConfigError:
        path = self.path if key is None else (f"{self.path}.{key}" if self.path else key)
        return ConfigError(self.source, path, problem)

    def get(self, key: str, parse: Callable[[Any], Any], default: Any = _REQUIRED) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise self.error(key, "is missing")
            return default
        try:
            return parse(self.data[key])
        except _Invalid as invalid:
            raise self.error(key, str(invalid)) from None

    def child(self, key: str, value: Any) -> _Section:
        try:
            data = _mapping(value)
        except _Invalid as invalid:
            raise self.error(key, str(invalid)) from None
        path = f"{self.path}.{key}" if self.path and not key.startswith("[") else f"{self.path}{key}"
        return _Section(data, path, self.source, self.notes)

    def check_keys(self, allowed: set[str], legacy: dict[str, Callable[[Any], Any]] | None = None) -> None:
        """Refuse unknown keys (typos); accept legacy keys only with their inert values."""
        legacy = legacy or {}
        for key in self.data:
            if key in legacy:
                self.get(key, legacy[key])
                self.notes.append(f"{self.path + '.' if self.path else ''}{key}: ignored (reference-implementation key)")
            elif key not in allowed:
                known = ", ".join(sorted(allowed | set(legacy)))
                raise self.error(key, f"unknown key; expected one of: {known}")


# ---- parsed form ------------------------------------------------------------------------


@dataclass(frozen=True)
class KerasLayerSpec:
    """An encoder or decoder layer: a Keras layer type with `size` filters or units."""

    path: str
    type: str
    size: int
    activation: str | None
    kwargs: dict

    def build(self, activation: str | None = None, **extra) -> keras.layers.Layer:
        """A new Keras layer; `activation` overrides the configured one."""
        chosen = self.activation if activation is None else activation
        return KERAS_LAYERS[self.type](self.size, activation=get_activation(chosen), **{**extra, **self.kwargs})


@dataclass(frozen=True)
class ChannelSpec:
    """The noise layer: its position in ``layers``, its config type, its kind ("echo",
    "gaussian", "iaf"), the constructor options of its class in
    `model_utils.noise.CHANNELS`, and the flow of the MAF marginal its
    ``density_estimator`` describes, if any."""

    position: int
    type: str
    kind: str
    options: dict
    density: dict | None  # the MAF's flow options, see model_utils.flows.flow_from_options

    @property
    def path(self) -> str:
        return f"layers[{self.position}]"


@dataclass(frozen=True)
class LossSpec:
    type: str
    weight: float
    options: dict  # keyword arguments of the loss type's compute function
    role: str


@dataclass(frozen=True)
class ConstraintSpec:
    """One constraint of ``lagrangian_fit``: the per-example mean of `quantity` ("rate" or
    "distortion", nats per example) equal to (``eq``), at most (``leq``) or at least
    (``geq``) `value`, enforced by a Lagrange multiplier that rises by `lr` per nat of
    violation per training step, with the augmented Lagrangian's `penalty` ρ (see
    `model.RateDistortionModel`)."""

    quantity: str
    relation: str
    value: float
    lr: float
    penalty: float = 0.0  # ρ of the augmented Lagrangian (ρ/2)·g², a damping of the multiplier

    @property
    def name(self) -> str:
        """Its multiplier's name in the history, e.g. ``lagrange_rate_eq``."""
        return f"lagrange_{self.quantity}_{self.relation}"


@dataclass(frozen=True)
class ExperimentConfig:
    source: str
    raw: dict
    epochs: int
    batch: int
    optimizer: str
    optimizer_params: dict
    lr: float | str
    lr_density: float | None
    input_shape: tuple[int, int, int]
    initializer: str
    encoder: tuple[KerasLayerSpec, ...]
    channel: ChannelSpec
    decoder: tuple[KerasLayerSpec, ...]
    recon: str
    losses: tuple[LossSpec, ...]
    beta: float | None
    vamp_pseudo_inputs: int | None
    precision: str = "float32"  # one of model_utils.precision.PRECISIONS
    anneal: RateSchedule | None = None  # the rate weights' per-epoch multiplier, if scheduled
    constraints: tuple[ConstraintSpec, ...] = ()  # lagrangian_fit's constraints, if any
    notes: tuple[str, ...] = field(default=())

    def with_beta(self, beta: float | None, source: str = "--beta") -> ExperimentConfig:
        """Set the weight of every rate term (every loss with a non-zero weight that is
        not a penalty) to `beta`; None leaves the weights as they are."""
        if beta is None:
            return self
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
            raise ConfigError(source, "", f"beta must be a finite number >= 0, got {beta!r}")
        losses = tuple(
            replace(loss, weight=float(beta)) if loss.weight != 0 and loss.role != PENALTY else loss
            for loss in self.losses
        )
        return replace(self, losses=losses, beta=float(beta))

    def with_noise(self, noise: str | None) -> ExperimentConfig:
        """Make Echo noise "additive" or "multiplicative"; None leaves it as configured."""
        if noise is None:
            return self
        if noise not in ("additive", "multiplicative"):
            raise ConfigError("--noise", "", f"expected additive or multiplicative, got {noise!r}")
        if self.channel.kind != "echo":
            raise ConfigError("--noise", "", f"applies to Echo noise only; this config's noise layer is {self.channel.type!r}")
        options = {**self.channel.options, "multiplicative": noise == "multiplicative"}
        return replace(self, channel=replace(self.channel, options=options))

    def with_precision(self, precision: str | None, source: str = "--precision") -> ExperimentConfig:
        """Compute in `precision` (see `model_utils.precision`); None leaves it as configured."""
        if precision is None:
            return self
        if precision not in PRECISIONS:
            raise ConfigError(source, "", f"expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        return replace(self, precision=precision)

    def with_epochs(self, epochs: int | None) -> ExperimentConfig:
        if epochs is None:
            return self
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError("--epochs", "", f"expected a positive integer, got {epochs!r}")
        return replace(self, epochs=epochs)


# ---- reading ----------------------------------------------------------------------------


def read_config(spec: str, configs_dir: Path = CONFIGS_DIR) -> tuple[dict, str]:
    """The JSON object of a config given as inline JSON, a path, or a name in `configs_dir`
    (with or without ".json"), and a name for it in messages."""
    if spec.lstrip().startswith("{"):
        return _parse_json(spec, "inline JSON config"), "inline JSON config"
    candidates = [Path(spec), configs_dir / spec, configs_dir / f"{spec}.json"]
    for candidate in candidates:
        if candidate.is_file():
            try:
                text = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigError(str(candidate), "", f"cannot be read: {error}") from None
            return _parse_json(text, str(candidate)), str(candidate)
    available = ", ".join(sorted(p.name for p in configs_dir.glob("*.json"))) or "none"
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(spec, "", f"no such config file (looked for {looked}); configs in {configs_dir}: {available}")


def _parse_json(text: str, source: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(source, f"line {error.lineno} column {error.colno}", f"invalid JSON: {error.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(source, "", "a config must be a JSON object {...}")
    return data


def load_config(spec: str, configs_dir: Path = CONFIGS_DIR) -> ExperimentConfig:
    raw, source = read_config(spec, configs_dir)
    return parse_config(raw, source)


# ---- validation -------------------------------------------------------------------------

_TOP_LEVEL = {
    "epochs", "batch", "optimizer", "optimizer_params", "lr", "lr_density", "input_shape",
    "latent_dims", "decoder_dims", "layers", "initializer", "recon", "losses", "beta", "precision",
    "anneal_schedule", "anneal_function", "lagrangian_fit", "constraints",
}
_TOP_LEVEL_LEGACY = {
    "activation": _mapping,  # per-layer activations are what count
    "output_activation": _activation,  # checked against the last decoder layer below
    "extra_maf": _inert(0),
}


def parse_config(raw: dict, source: str) -> ExperimentConfig:
    """Validate a config's JSON object; raise ConfigError on the first problem."""
    notes: list[str] = []
    top = _Section(raw, "", source, notes)
    top.check_keys(_TOP_LEVEL, _TOP_LEVEL_LEGACY)

    batch = top.get("batch", _at_most(_positive_int, MAX_BATCH))
    if batch < 2:
        raise top.error("batch", "echo noise and MMD need at least 2 examples per batch")
    input_shape = top.get("input_shape", _positive_ints)
    if len(input_shape) != 3:
        raise top.error("input_shape", f"expected [height, width, channels], got {list(input_shape)}")
    if max(input_shape[:2]) > MAX_IMAGE_SIDE or input_shape[2] > MAX_CHANNELS:
        raise top.error("input_shape", f"at most {MAX_IMAGE_SIDE} pixels a side and {MAX_CHANNELS} channels, got {list(input_shape)}")
    initializer = top.get("initializer", str, "glorot_uniform")
    try:
        keras.initializers.get(initializer)
    except ValueError:
        raise top.error("initializer", f"unknown Keras initializer {initializer!r}") from None
    optimizer = top.get("optimizer", _one_of(*OPTIMIZERS), "Adam")
    optimizer_params = top.get("optimizer_params", _mapping, {})
    if "learning_rate" in optimizer_params:
        raise top.error("optimizer_params", "learning_rate is set by \"lr\" (and \"lr_density\"), not here")
    _check_optimizer(top, optimizer, optimizer_params)

    latent_dims = top.get("latent_dims", _at_most(_positive_ints, MAX_WIDTH))
    decoder_dims = top.get("decoder_dims", _at_most(_positive_ints, MAX_WIDTH))
    encoder, channel, decoder = _parse_layers(top, batch, initializer, latent_dims, decoder_dims)
    recon = top.get("recon", _one_of(*DISTORTIONS), "bce")
    _check_output_activation(top, decoder[-1], recon)
    losses, vamp_inputs = _parse_losses(top, channel, encoder, latent_dims)
    _check_model_size(top, batch + (vamp_inputs or 0), tuple(input_shape), encoder, channel, decoder)

    config = ExperimentConfig(
        source=source,
        raw=raw,
        epochs=top.get("epochs", _at_most(_positive_int, MAX_EPOCHS)),
        batch=batch,
        optimizer=optimizer,
        optimizer_params=optimizer_params,
        lr=top.get("lr", _learning_rate),
        lr_density=top.get("lr_density", _optional(_positive), None),
        input_shape=tuple(input_shape),
        initializer=initializer,
        encoder=encoder,
        channel=channel,
        decoder=decoder,
        recon=recon,
        losses=losses,
        beta=None,
        vamp_pseudo_inputs=vamp_inputs,
        precision=top.get("precision", _one_of(*PRECISIONS), "float32"),
        anneal=_anneal(top),
        constraints=_constraints(top),
        notes=tuple(notes),
    )
    return config.with_beta(top.get("beta", _non_negative, None), source=f"{source}: beta")


def _anneal(top: _Section) -> RateSchedule | None:
    """``anneal_schedule`` (null, or breakpoints [[epoch, multiplier], ...]) and
    ``anneal_function`` (null or one of ANNEAL_FUNCTIONS, default "linear")."""
    points = top.get("anneal_schedule", _optional(_non_empty_list), None)
    function = top.get("anneal_function", _optional(_one_of(*ANNEAL_FUNCTIONS)), None)
    if points is None:
        if function is not None:
            raise top.error("anneal_function", "is given without an anneal_schedule")
        return None
    parsed = []
    for index, point in enumerate(points):
        if (not isinstance(point, list) or len(point) != 2 or isinstance(point[0], bool) or not isinstance(point[0], int)
                or point[0] < 0 or isinstance(point[1], bool) or not isinstance(point[1], (int, float))
                or not math.isfinite(point[1]) or point[1] < 0):
            raise top.error(f"anneal_schedule[{index}]", f"expected [epoch >= 0, multiplier >= 0], got {point!r}")
        if parsed and point[0] <= parsed[-1][0]:
            raise top.error(f"anneal_schedule[{index}]", f"epoch {point[0]} does not come after epoch {parsed[-1][0]}")
        parsed.append((point[0], float(point[1])))
    return RateSchedule(tuple(parsed), function or "linear")


_QUANTITIES = ("rate", "distortion")
_RELATIONS = ("eq", "leq", "geq")


def _constraints(top: _Section) -> tuple[ConstraintSpec, ...]:
    """``lagrangian_fit`` (0 or 1) and its ``constraints`` [{loss, relation, value, lr, penalty}, ...]."""
    fit = top.get("lagrangian_fit", _one_of(0, 1, False, True), 0)
    entries = top.get("constraints", _non_empty_list, None)
    if not fit:
        if entries is not None:
            raise top.error("constraints", "are given, but lagrangian_fit is 0; set it to 1 to enforce them")
        return ()
    if entries is None:
        raise top.error("constraints", "are missing: lagrangian_fit 1 needs a list of constraints to enforce")
    constraints = []
    for index, value in enumerate(entries):
        section = top.child(f"constraints[{index}]", value)
        section.check_keys({"loss", "relation", "value", "lr", "penalty"})
        constraint = ConstraintSpec(
            quantity=section.get("loss", _one_of(*_QUANTITIES)),
            relation=section.get("relation", _one_of(*_RELATIONS)),
            value=section.get("value", _non_negative),
            lr=section.get("lr", _positive, 1e-3),
            penalty=section.get("penalty", _non_negative, 0.0),
        )
        if any(other.name == constraint.name for other in constraints):
            raise section.error(None, f"a second {constraint.relation} constraint on the {constraint.quantity}")
        constraints.append(constraint)
    return tuple(constraints)


def _learning_rate(value: Any) -> float | str:
    if isinstance(value, str):
        if value not in SCHEDULES:
            raise _Invalid(f"unknown schedule {value!r}; expected a number or one of: {', '.join(SCHEDULES)}")
        return value
    return _positive(value)


def _parse_layers(top: _Section, batch: int, initializer: str, latent_dims, decoder_dims):
    layers = top.get("layers", _non_empty_list)
    encoder: list[KerasLayerSpec] = []
    decoder: list[KerasLayerSpec] = []
    channel: ChannelSpec | None = None
    for position, value in enumerate(layers):
        section = top.child(f"layers[{position}]", value)
        is_encoder = section.get("encoder", _boolean)
        layer_type = section.get("type", str)
        if layer_type in CHANNELS:
            if not is_encoder:
                raise section.error("encoder", f"a {layer_type!r} noise layer belongs to the encoder")
            if channel is not None:
                raise section.error("type", f"a second noise layer; the first is {channel.path}")
            size = _size(section, latent_dims, "latent_dims")
            channel = _parse_channel(section, position, layer_type, size, batch, initializer)
        elif layer_type in KERAS_LAYERS:
            if is_encoder and channel is not None:
                raise section.error("type", f"encoder layers must come before the noise layer {channel.path}")
            dims = latent_dims if is_encoder else decoder_dims
            spec = _parse_keras_layer(section, layer_type, _size(section, dims, "latent_dims" if is_encoder else "decoder_dims"))
            (encoder if is_encoder else decoder).append(spec)
        else:
            known = ", ".join(list(KERAS_LAYERS) + list(CHANNELS))
            raise section.error("type", f"unknown layer type {layer_type!r}; expected one of: {known}")
    if channel is None:
        raise top.error("layers", f"no noise layer; one encoder layer must have a type among {', '.join(CHANNELS)}")
    if not decoder:
        raise top.error("layers", "no decoder layers (entries with \"encoder\": false)")
    return tuple(encoder), channel, tuple(decoder)


def _size(section: _Section, dims: tuple[int, ...], dims_key: str) -> int:
    index = section.get("layer", _integer)
    if not -len(dims) <= index < len(dims):
        raise section.error("layer", f"{index} is out of range for {dims_key}, which has {len(dims)} entries")
    return dims[index]


_CONV_KWARGS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "kernel_size": (_window, True),
    "strides": (_window, False),
    "dilation_rate": (_window, False),
    "padding": (_one_of("same", "valid"), False),
    "use_bias": (_boolean, False),
}
# The keyword arguments a config may give each Keras layer type: (parser, required). Every
# value that reaches Keras has been checked.
LAYER_KWARGS: dict[str, dict[str, tuple[Callable[[Any], Any], bool]]] = {
    "Conv2D": _CONV_KWARGS,
    "Conv2DTranspose": _CONV_KWARGS,
    "Dense": {"use_bias": (_boolean, False)},
}


def _parse_keras_layer(section: _Section, layer_type: str, size: int) -> KerasLayerSpec:
    section.check_keys({"layer", "encoder", "type", "activation", "layer_kwargs"}, {"k": _inert(1)})
    kwargs = section.child("layer_kwargs", section.data.get("layer_kwargs", {}))
    schema = LAYER_KWARGS[layer_type]
    kwargs.check_keys(set(schema))
    spec = KerasLayerSpec(
        path=section.path,
        type=layer_type,
        size=size,
        activation=section.get("activation", _optional(_activation), None),
        kwargs={key: kwargs.get(key, parse) for key, (parse, required) in schema.items() if required or key in kwargs.data},
    )
    try:
        spec.build()
    except (TypeError, ValueError) as error:
        raise section.error("layer_kwargs", f"not accepted by keras.layers.{layer_type}: {error}") from None
    return spec


def _parse_channel(section: _Section, position: int, layer_type: str, units: int, batch: int, initializer: str) -> ChannelSpec:
    section.check_keys({"layer", "encoder", "type", "layer_kwargs", "density_estimator", "activation"}, {"k": _inert(1)})
    if section.data.get("activation") is not None:
        raise section.error("activation", "a noise layer has no activation; use layer_kwargs (fx_act, sx_act for echo)")
    kwargs = section.child("layer_kwargs", section.data.get("layer_kwargs", {}))
    kind = CHANNELS[layer_type].kind
    options = {"units": units, "kernel_initializer": initializer}
    if kind == "echo":
        options.update(_echo_options(kwargs, batch))
    elif kind == "iaf":
        options["flow"] = _flow(kwargs)
    else:
        kwargs.check_keys(set())
    density = None
    if "density_estimator" in section.data:
        if kind == "echo":
            raise section.error("density_estimator", "Echo's rate is exact and needs no marginal density")
        estimator = section.child("density_estimator", section.data["density_estimator"])
        estimator.check_keys({"type", "layer_kwargs"})
        estimator.get("type", _one_of("maf"))
        density = _flow(estimator.child("layer_kwargs", estimator.data.get("layer_kwargs", {})))
    return ChannelSpec(position, layer_type, kind, options, density)


def _flow(kwargs: _Section) -> dict:
    """The options of `model_utils.flows.flow_from_options`."""
    kwargs.check_keys({"steps", "mean_only", "layers", "activation"})
    return {
        "steps": kwargs.get("steps", _at_most(_positive_int, MAX_FLOW_STEPS), 1),
        "hidden_units": list(kwargs.get("layers", _at_most(_positive_ints, MAX_WIDTH), (640, 640, 640))),
        "activation": kwargs.get("activation", _activation, "relu"),
        "mean_only": kwargs.get("mean_only", _boolean, True),
    }


def _echo_options(kwargs: _Section, batch: int) -> dict:
    kwargs.check_keys(
        {"d_max", "noise", "clip", "fx_clip", "replace", "echomc", "echo_mc", "fx_centring", "fx_act", "sx_act", "sx_bias"},
        {
            "nomc": _boolean,
            "calc_log": _inert(True),
            "mean_shift": _inert(False),
            "init": _number,
            "bias": _number,
        },
    )
    d_max = kwargs.get("d_max", _positive_int, 100)
    if d_max > batch:
        raise kwargs.error("d_max", f"{d_max} is larger than the batch ({batch}): a batch has only {batch - 1} other examples")
    echo_mc = kwargs.get("echo_mc", _boolean, kwargs.get("echomc", _boolean, False))
    if echo_mc and kwargs.get("nomc", _boolean, False):
        raise kwargs.error("nomc", "contradicts echomc: true")
    fx_centring = kwargs.get("fx_centring", _one_of(*EchoChannel.FX_CENTRINGS), "batch" if echo_mc else "none")
    if echo_mc and fx_centring != "batch":
        raise kwargs.error("fx_centring", f"{fx_centring!r} contradicts echomc: true (the batch mean)")
    fx_clip = kwargs.get("fx_clip", _optional(_positive), None)
    fx_act = kwargs.get("fx_act", _activation, "model_utils.activations.tanh16")
    if fx_clip is None and get_activation(fx_act) not in _UNIT_BOUNDED:
        raise kwargs.error("fx_act", f"{fx_act!r} is not bounded by 1; set fx_clip so that the clip can bound |f(x)|")
    sx_act = kwargs.get("sx_act", _activation, "tensorflow.math.log_sigmoid")
    if get_activation(sx_act) not in _LOG_SCALE:
        raise kwargs.error("sx_act", f"{sx_act!r} does not give log s(x) <= 0; use log_sigmoid, log_sig64 or neg_square")
    replace_ = kwargs.get("replace", _boolean, False)
    terms = echo_noise.echo_terms(batch, d_max, replace_)
    bound = fx_clip if fx_clip is not None else 1.0
    clip = kwargs.get("clip", _optional(_unit_interval), None)
    if clip is None:
        clip = echo_noise.echo_clip(terms, bound)
    elif echo_noise.echo_tail_bound(clip, terms, bound) > echo_noise.TAIL_TOLERANCE:
        raise kwargs.error(
            "clip",
            f"{clip} is too large for the {terms} echo terms a batch of {batch} gives (d_max={d_max}): "
            f"the truncated noise would be inexact; use at most {echo_noise.echo_clip(terms, bound):.4f} "
            "or omit clip to compute it",
        )
    return {
        "batch": batch,
        "d_max": d_max,
        "clip": clip,
        "fx_clip": fx_clip,
        "replace": replace_,
        "fx_centring": fx_centring,
        "multiplicative": kwargs.get("noise", _one_of("additive", "multiplicative"), "additive") == "multiplicative",
        "fx_activation": fx_act,
        "sx_activation": sx_act,
        "sx_bias": kwargs.get("sx_bias", _number, 0.0),
    }


def _check_output_activation(top: _Section, last: KerasLayerSpec, recon: str) -> None:
    declared = top.data.get("output_activation")
    if declared is not None and get_activation(declared) is not get_activation(last.activation):
        raise top.error("output_activation", f"{declared!r} differs from the last decoder layer's activation {last.activation!r} ({last.path})")
    if DISTORTIONS[recon].from_logits and get_activation(last.activation) is not keras.activations.sigmoid:
        raise ConfigError(top.source, f"{last.path}.activation", f"recon {recon!r} needs a sigmoid output, got {last.activation!r}")


def _parse_losses(top: _Section, channel: ChannelSpec, encoder, latent_dims) -> tuple[tuple[LossSpec, ...], int | None]:
    entries = top.get("losses", _non_empty_list)
    losses: list[LossSpec] = []
    vamp_inputs = None
    for position, value in enumerate(entries):
        section = top.child(f"losses[{position}]", value)
        section.check_keys(
            {"type", "weight", "loss_kwargs"},
            {"layer": _integer, "encoder": _inert(True), "output": _integer, "layer_kwargs": _mapping},
        )
        loss_type = section.get("type", _one_of(*LOSS_TYPES))
        kind = LOSS_TYPES[loss_type]
        if any(loss.type == loss_type for loss in losses):
            raise section.error("type", f"loss {loss_type!r} is listed twice")
        if channel.kind not in kind.channels:
            raise section.error("type", f"loss {loss_type!r} needs a {' or '.join(sorted(kind.channels))} noise layer, but {channel.path} is {channel.type!r}")
        if kind.marginal == "maf" and channel.density is None:
            raise section.error("type", f"loss {loss_type!r} needs a \"density_estimator\" of type \"maf\" on the noise layer {channel.path}")
        kwargs = section.child("loss_kwargs", section.data.get("loss_kwargs", {}))
        options = {}
        if loss_type == "echo":
            _check_echo_loss(kwargs, channel)
        elif loss_type == "mmd":
            kwargs.check_keys({"kernel", "bw"})
            kwargs.get("kernel", _one_of("gaussian"), "gaussian")
            options["bw"] = kwargs.get("bw", _optional(_positive), None)
        elif loss_type == "vamp":
            vamp_inputs = _vamp_inputs(kwargs, encoder)
        else:
            kwargs.check_keys(set())
        losses.append(LossSpec(loss_type, section.get("weight", _non_negative, 1.0), options, kind.role))
    _check_roles(top, losses)
    if channel.density is not None and not any(LOSS_TYPES[loss.type].marginal == "maf" for loss in losses):
        top.notes.append(f"{channel.path}.density_estimator: unused (no maf or made_density loss)")
    return tuple(losses), vamp_inputs


def _check_echo_loss(kwargs: _Section, channel: ChannelSpec) -> None:
    kwargs.check_keys({"clip"}, {"calc_log": _inert(True)})
    clip = kwargs.get("clip", _optional(_unit_interval), None)
    layer_clip = channel.options["clip"]
    if clip is not None and abs(clip - layer_clip) > 1e-12:
        raise kwargs.error("clip", f"{clip} differs from the clip of the echo layer {channel.path} ({layer_clip}); the rate is exact only for the clip used for sampling")


def _vamp_inputs(kwargs: _Section, encoder: tuple[KerasLayerSpec, ...]) -> int:
    kwargs.check_keys({"inputs", "layers"})
    layers = kwargs.get("layers", _positive_ints, None)
    sizes = tuple(layer.size for layer in encoder)
    if layers is not None and tuple(layers) != sizes:
        raise kwargs.error("layers", f"the VampPrior encodes its pseudo-inputs with the model's encoder, whose sizes are {list(sizes)}, not {list(layers)}")
    return kwargs.get("inputs", _at_most(_positive_int, MAX_PSEUDO_INPUTS), 750)


def _check_roles(top: _Section, losses: list[LossSpec]) -> None:
    roles = [loss.role for loss in losses]
    complete = roles.count(RATE)
    posterior, marginal = roles.count(POSTERIOR), roles.count(MARGINAL)
    if (complete, posterior, marginal) not in {(1, 0, 0), (0, 1, 1)}:
        names = ", ".join(loss.type for loss in losses)
        raise top.error(
            "losses",
            f"the rate terms ({names}) do not form one rate: give either one of "
            f"{', '.join(t for t, k in LOSS_TYPES.items() if k.role == RATE)}, or one posterior term "
            f"({', '.join(t for t, k in LOSS_TYPES.items() if k.role == POSTERIOR)}) with one marginal term "
            f"({', '.join(t for t, k in LOSS_TYPES.items() if k.role == MARGINAL)}); penalties (mmd) may be added",
        )



def _check_optimizer(top: _Section, name: str, params: dict) -> None:
    """The optimizer must accept its parameters and take a step with them."""
    if any(isinstance(value, (dict, list)) for value in params.values()):
        raise top.error("optimizer_params", f"expected numbers or booleans, got {params!r}")
    try:
        optimizer = OPTIMIZERS[name](**params)
        variable = keras.Variable([0.0])
        optimizer.apply_gradients([(keras.ops.ones((1,)), variable)])
    except Exception as error:  # any failure means the parameters are unusable
        raise top.error("optimizer_params", f"not accepted by keras.optimizers.{name}: {error}") from None


def _layer_parameters(spec: KerasLayerSpec, inputs: int) -> int:
    """Weights of one Keras layer with `inputs` input channels (or features)."""
    if spec.type == "Dense":
        return (inputs + 1) * spec.size
    kernel = spec.kwargs["kernel_size"]
    height, width = (kernel, kernel) if isinstance(kernel, int) else kernel
    return (height * width * inputs + 1) * spec.size


def _flow_parameters(flow: dict | None, dim: int) -> int:
    if flow is None:
        return 0
    widths = [dim, *flow["hidden_units"], 2 * dim]
    return flow["steps"] * sum((a + 1) * b for a, b in zip(widths, widths[1:]))


def _through(top: _Section, spec: KerasLayerSpec, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """The output shape of one layer for inputs of `shape` (Keras's own shape arithmetic,
    no weights built) and the layer's number of weights."""
    if spec.type == "Dense" and len(shape) > 2:
        shape = (1, math.prod(shape[1:]))  # as Flatten would
    elif spec.type != "Dense" and len(shape) != 4:
        raise ConfigError(top.source, spec.path, f"a {spec.type} layer needs images, but its input is flat")
    try:
        output = tuple(spec.build().compute_output_shape(shape))
    except (TypeError, ValueError) as error:
        raise ConfigError(top.source, spec.path, f"cannot be applied to inputs of shape {list(shape[1:])}: {error}") from None
    if any(dim is None or dim < 1 for dim in output[1:]):
        raise ConfigError(top.source, spec.path, f"turns inputs of shape {list(shape[1:])} into an empty output {list(output[1:])}")
    return output, _layer_parameters(spec, shape[-1])


def _check_model_size(top: _Section, examples: int, input_shape: tuple[int, ...], encoder, channel: ChannelSpec, decoder) -> None:
    """Refuse a network that cannot be built: a layer whose output would be empty, more
    than MAX_PARAMETERS weights, or more than MAX_ACTIVATIONS floats in one forward pass of
    `examples` images (the batch, plus the VampPrior's pseudo-inputs)."""
    units = channel.options["units"]
    parameters = activations = 0
    shape: tuple[int, ...] = (1, *input_shape)
    for spec in encoder:
        shape, weights = _through(top, spec, shape)
        parameters, activations = parameters + weights, activations + math.prod(shape[1:])
    # The channel's two dense heads on the flattened features, and its flows.
    parameters += 2 * (math.prod(shape[1:]) + 1) * units
    parameters += _flow_parameters(channel.options.get("flow"), units) + _flow_parameters(channel.density, units)
    shape = (1, 1, 1, units) if decoder[0].type in ("Conv2D", "Conv2DTranspose") else (1, units)
    for spec in decoder:
        shape, weights = _through(top, spec, shape)
        parameters, activations = parameters + weights, activations + math.prod(shape[1:])
    if parameters > MAX_PARAMETERS:
        raise top.error("layers", f"the network would have about {parameters:,} weights; at most {MAX_PARAMETERS:,}")
    if activations * examples > MAX_ACTIVATIONS:
        raise top.error("layers", f"one forward pass would hold about {activations * examples:,} floats; at most {MAX_ACTIVATIONS:,}")
