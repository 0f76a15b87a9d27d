"""Settings: typed dataclasses, read from TOML in the user config dir, with
`ALBUMTAGGER_*` environment overrides (and command-line options on top, in the CLI)."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from albumtagger import safe_io
from albumtagger.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP_NAME = "albumtagger"
DEFAULT_MODEL = "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"
MAX_SETTINGS_BYTES = 2**20


# -- thresholds: how tags are decided (see tagging.thresholds) --------------------

PREFERENCE_BETA = {"precision": 0.5, "balanced": 1.0, "recall": 2.0}
PRIORS = ("fixed", "mean_std", "percentile", "robust", "mixture")
RANKINGS = ("margin", "score")


@dataclass
class ThresholdSettings:
    """Every number of the tagging policy (defaults from the source tutorial)."""

    base_threshold: float = 0.25
    """Starting base threshold; the controller moves it within [min_base, max_base]."""
    max_tags: int = 10
    """At most this many tags per photo (user-accepted tags included)."""
    min_tags: int = 3
    """Fewer passing tags than this triggers the fallback."""
    fallback_factor: float = 0.8
    """The fallback lowers every threshold by this factor."""
    fallback_tags: int = 5
    """The fallback fills the photo up to this many tags."""
    rank_by: str = "margin"
    """Order of "best first": "margin" (score minus the tag's threshold) or "score"."""
    controller_window: int = 100
    controller_min_events: int = 50
    max_false_positive_rate: float = 0.10
    max_false_negative_rate: float = 0.15
    controller_step: float = 0.01
    min_base: float = 0.10
    max_base: float = 0.50
    controller_shifts_priors: bool = False
    """Move every distribution prior by the controller's change of the base (the "fixed"
    prior is the base itself either way)."""
    preference: str = "balanced"
    """precision | balanced | recall: beta 0.5, 1 or 2 of the F-beta that thresholds maximise."""
    beta: float = 0.0
    """An explicit F-beta beta; 0 means take it from `preference`."""
    prior: str = "mixture"
    """fixed (the base) | mean_std | percentile | robust (median + k * scaled MAD) |
    mixture (a background fitted below the mode plus a positive tail; the threshold with
    the best expected F-beta under that fit; robust where the fit is not trusted)."""
    prior_std_factor: float = 0.5
    """mean_std prior: mean + this * std of the tag's library scores."""
    prior_percentile: float = 95.0
    """percentile prior: this percentile of the tag's library scores."""
    prior_mad_factor: float = 3.0
    """robust prior: median + this * 1.4826 * MAD of the tag's library scores."""
    mixture_min_photos: int = 200
    """mixture prior: fewer photos than this and the tag falls back to the robust prior."""
    mixture_min_positives: float = 5.0
    """mixture prior: a tag whose fit expects fewer photos with the tag than this, or sees
    fewer photos above its threshold than the background explains plus this (and plus
    3 standard errors), falls back to the robust prior."""
    prior_photos: float = 20.0
    """A library of n photos trusts its score distributions n / (n + this); the rest of
    the prior is the base threshold (an empty library starts at the base)."""
    shrinkage_events: float = 3.0
    """With n labels a tag's threshold moves n / (n + this) of the way from prior to fit."""
    calibration_slope: float = 3.0
    """Prior mean of the logistic slope per robust-std unit of the tag's scores."""
    calibration_slope_sd: float = 2.0
    calibration_offset_sd: float = 2.0
    """Prior sd of the logit at the prior threshold."""
    calibration_anchor_weight: float = 5.0
    """Weight of a pseudo-negative label at the tag's median score (most photos do not
    show a given tag), which keeps the fitted slope from flattening."""
    calibration_min_slope: float = 1.0
    """Least logistic slope per robust-std unit. A nearly flat fit says "every photo is
    equally likely to show the tag", and the expected F-beta would then take them all:
    one "no" must never spread a tag over the library."""
    confidence_high_margin: float = 1.0
    """High confidence: margin over the threshold of at least this many robust stds ..."""
    confidence_high_position: float = 3.0
    """... and a score at least this many robust stds above the tag's median."""
    confidence_medium_margin: float = 0.25
    """Medium confidence: margin of at least this many robust stds."""
    review_per_tag: int = 1
    """At most this many review-queue items per tag (0: no limit)."""
    learn_look: bool = False
    """Answers also teach a tag its look: a tag's score becomes a direction learned from
    the photos answered about (`tagging.look`), anchored to its text while they are few."""

    def validate(self) -> None:
        """Raise `UserError` for a value that makes no sense."""
        if self.preference not in PREFERENCE_BETA:
            raise UserError(
                f"Setting thresholds.preference is {self.preference!r}; "
                f"use one of {', '.join(PREFERENCE_BETA)}."
            )
        if self.prior not in PRIORS:
            raise UserError(
                f"Setting thresholds.prior is {self.prior!r}; use one of {', '.join(PRIORS)}."
            )
        if self.rank_by not in RANKINGS:
            raise UserError(
                f"Setting thresholds.rank_by is {self.rank_by!r}; use one of {', '.join(RANKINGS)}."
            )
        for name in ("max_tags", "controller_window"):
            if getattr(self, name) < 1:
                raise UserError(f"Setting thresholds.{name} must be at least 1.")
        for name in ("min_tags", "fallback_tags", "controller_min_events", "review_per_tag"):
            if getattr(self, name) < 0:
                raise UserError(f"Setting thresholds.{name} must not be negative.")
        if not self.min_base <= self.max_base:
            raise UserError("Settings thresholds.min_base must not exceed thresholds.max_base.")
        if not 0.0 < self.fallback_factor <= 1.0:
            raise UserError("Setting thresholds.fallback_factor must be in (0, 1].")
        if self.mixture_min_photos < 0 or self.mixture_min_positives < 0:
            raise UserError(
                "Settings thresholds.mixture_min_photos and mixture_min_positives must not be "
                "negative."
            )
        if self.beta < 0 or self.shrinkage_events < 0 or self.prior_photos < 0:
            raise UserError(
                "Settings thresholds.beta, shrinkage_events and prior_photos must not be negative."
            )
        if not 0.0 <= self.prior_percentile <= 100.0:
            raise UserError("Setting thresholds.prior_percentile must be in [0, 100].")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"Setting thresholds.{f.name} must be a finite number.")

    @property
    def effective_beta(self) -> float:
        """The F-beta beta in use: `beta` when set, else the one of `preference`."""
        return self.beta if self.beta > 0 else PREFERENCE_BETA[self.preference]


@dataclass
class ModelSettings:
    """Which GME checkpoint to run, where, and with what image token budget."""

    model: str = DEFAULT_MODEL
    """Hub id or local folder."""
    revision: str = ""
    """Hub commit hash; empty means the pinned revision of the default model."""
    device: str = "auto"
    """auto, cuda, mps or cpu."""
    dtype: str = "auto"
    """auto, float32, bfloat16, float16, or int8 (CPU only: dynamic int8 weights). auto:
    on a CUDA GPU bfloat16 where it has it, else float32; on a CPU int8 where it measured
    faster (x86 without AMX), else bfloat16 with native bf16, else float32. A library
    keeps the precision auto gave it at its first index; one set here wins and becomes
    the library's."""
    min_image_tokens: int = 0
    max_image_tokens: int = 0
    """The image token budget: speed against detail. One token is a 28 x 28 pixel patch
    of the resized photo; a photo is resized to at most `max_image_tokens` (and scaled up
    to at least `min_image_tokens`). More tokens see smaller things (text, faces in a
    crowd) and cost about proportionally more time. 0 is automatic: 256..1280 on a GPU
    (the published recipe; a 12 MP photo gets about 1,230 tokens), 64..256 on a CPU
    (5x less work). A library keeps the budget it was first tagged with."""
    coarse_first: str = "auto"
    """auto, on or off. On: new photos are first tagged at `first_pass_tokens`, so the
    whole library has tags soon; while the app is open or a folder is watched and
    nothing else waits, they are refined at the full budget, newest first. auto is on
    where the model runs on a CPU."""
    first_pass_tokens: int = 64
    """Image token budget of the coarse first pass (at most this many tokens)."""
    batch_size: int = 0
    """Photos per forward pass; 0 picks one for the device."""


@dataclass
class WatchSettings:
    """How the folder watcher treats filesystem events."""

    enabled: bool = True
    """Watch an open library's folder and tag what arrives (off: only "Tag again" looks)."""
    quiet_seconds: float = 1.0
    """A file must be unchanged (size and mtime) this long before it is read."""
    reconcile_seconds: float = 600.0
    """Full rescans that catch anything the events missed."""
    force_polling: bool = False
    poll_seconds: float = 5.0


@dataclass
class XmpSettings:
    """XMP sidecars for other photo tools (digiKam, darktable, Lightroom)."""

    write_on_change: bool = False
    """Keep each photo's XMP sidecar in line with its tags as they change."""
    include_suggested: bool = False
    """Also write the machine's confident suggestions (marked as such), not only the
    tags the user accepted or added."""


@dataclass
class LibrarySettings:
    """How a photo folder is read."""

    follow_links_outside: bool = False
    """Follow symbolic links that lead out of the photo folder (off: such links are
    reported and passed over). Never into /proc, /sys or /dev."""


@dataclass
class CorrectionSettings:
    """Correcting tags with the keyboard in the window."""

    advance_after_last: bool = True
    """Once A, R or Delete answered a photo's last suggestion, go on to the next photo."""


@dataclass
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    thresholds: ThresholdSettings = field(default_factory=ThresholdSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    xmp: XmpSettings = field(default_factory=XmpSettings)
    library: LibrarySettings = field(default_factory=LibrarySettings)
    corrections: CorrectionSettings = field(default_factory=CorrectionSettings)


def config_path() -> Path:
    """The settings file: `ALBUMTAGGER_CONFIG`, else config.toml in the user config dir."""
    env = os.environ.get("ALBUMTAGGER_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def data_dir() -> Path:
    """Where sidecars of read-only folders and downloaded models go."""
    env = os.environ.get("ALBUMTAGGER_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir(APP_NAME))


def _coerce(value: Any, default: Any, name: str) -> Any:
    """Convert a TOML or environment value to the type of the field's default."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise UserError(
            f"Setting {name} has the invalid value {value!r}; expected a {type(default).__name__}."
        ) from None


def _apply(section: Any, values: dict[str, Any], prefix: str) -> None:
    known = {f.name for f in fields(section)}
    for key, value in values.items():
        if key not in known:
            raise UserError(f"Unknown setting {prefix}{key} in {config_path()}; remove it.")
        setattr(section, key, _coerce(value, getattr(section, key), prefix + key))


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Defaults, then the TOML file (if any), then environment overrides.

    Environment: `ALBUMTAGGER_<FIELD>` for model settings (ALBUMTAGGER_MODEL,
    ALBUMTAGGER_DEVICE, ALBUMTAGGER_BATCH_SIZE, ...) and
    `ALBUMTAGGER_<SECTION>_<FIELD>` for the others (ALBUMTAGGER_THRESHOLDS_BETA).
    """
    settings = Settings()
    path = path or config_path()
    if path.is_file():
        try:
            text = safe_io.read_regular(path, MAX_SETTINGS_BYTES).decode("utf-8")
            data = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"Cannot read settings file {path}: {exc}. Fix or remove it.") from None
        for section_name, values in data.items():
            section = getattr(settings, section_name, None)
            if section is None or not isinstance(values, dict):
                raise UserError(f"Unknown settings section [{section_name}] in {path}; remove it.")
            _apply(section, values, f"{section_name}.")
    env = os.environ if environ is None else environ
    for section_field in fields(settings):
        section = getattr(settings, section_field.name)
        for f in fields(section):
            names = [f"ALBUMTAGGER_{section_field.name}_{f.name}".upper()]
            if section_field.name == "model":
                names.insert(0, f"ALBUMTAGGER_{f.name}".upper())
            for name in names:
                if name in env:
                    setattr(section, f.name, _coerce(env[name], getattr(section, f.name), name))
    return validate(settings)


def validate(settings: Settings) -> Settings:
    """Raise `UserError` for a setting that makes no sense; returns `settings`."""
    m = settings.model
    if m.device not in ("auto", "cuda", "mps", "cpu") and not m.device.startswith("cuda:"):
        raise UserError(f"Setting model.device is {m.device!r}; use auto, cuda, mps or cpu.")
    if m.dtype not in ("auto", "float32", "bfloat16", "float16", "int8"):
        raise UserError(
            f"Setting model.dtype is {m.dtype!r}; use auto, float32, bfloat16, float16 or int8."
        )
    low, high = m.min_image_tokens, m.max_image_tokens
    if not (
        (low == 0 or low >= 4) and (high == 0 or high >= 4) and (not (low and high) or low <= high)
    ):
        raise UserError(
            "Settings model.min_image_tokens and max_image_tokens need "
            "4 <= min_image_tokens <= max_image_tokens (0 for either: automatic)."
        )
    if m.coarse_first not in ("auto", "on", "off"):
        raise UserError(f"Setting model.coarse_first is {m.coarse_first!r}; use auto, on or off.")
    if m.first_pass_tokens < 4:
        raise UserError("Setting model.first_pass_tokens must be at least 4.")
    if m.batch_size < 0:
        raise UserError("Setting model.batch_size must not be negative (0 picks one).")
    w = settings.watch
    for name in ("quiet_seconds", "reconcile_seconds", "poll_seconds"):
        if not getattr(w, name) > 0:
            raise UserError(f"Setting watch.{name} must be more than 0.")
    settings.thresholds.validate()
    return settings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings that differ from the defaults as TOML (atomically: a link at
    its name is replaced, never written through)."""
    validate(settings)
    path = path or config_path()
    defaults = Settings()
    lines: list[str] = []
    for section_field in fields(settings):
        section = getattr(settings, section_field.name)
        default = getattr(defaults, section_field.name)
        changed = [
            (f.name, getattr(section, f.name))
            for f in fields(section)
            if getattr(section, f.name) != getattr(default, f.name)
        ]
        if changed:
            lines.append(f"[{section_field.name}]")
            lines.extend(f"{name} = {_toml_value(value)}" for name, value in changed)
            lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    safe_io.write_atomic(path, "\n".join(lines).encode("utf-8"))
    return path


def keep_section(settings: Settings, section: str, source: Settings) -> Settings:
    """A copy of `settings` whose `section` is the one of `source`."""
    return dataclasses.replace(settings, **{section: getattr(source, section)})


def replace_section(settings: Settings, section: str, **changes: Any) -> Settings:
    """A copy of `settings` with some fields of one section changed (None means keep)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    current = getattr(settings, section)
    return dataclasses.replace(settings, **{section: dataclasses.replace(current, **changes)})
