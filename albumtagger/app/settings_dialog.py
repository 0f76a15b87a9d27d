"""The settings dialog: the model, the tagging policy, watching and XMP, saved to the
settings file (`config.save_settings`).

What applies when is said on each page: thresholds, watching and XMP reach the open
library at once (its photos are decided again); device and precision when a library is
next opened; the model and the image token budget with folders tagged from now on (a
library keeps the model and budget it was first tagged with).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStyle,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from albumtagger.config import (
    DEFAULT_MODEL,
    Settings,
    config_path,
    load_settings,
    replace_section,
    save_settings,
)
from albumtagger.errors import UserError

if TYPE_CHECKING:
    from albumtagger.app.libraries import Libraries
    from albumtagger.model.encoder_process import ModelCheck

DEVICES = {
    "auto": ("Automatic", "The GPU if there is one (NVIDIA or Apple), else the processor."),
    "cpu": ("Processor (CPU)", "Works everywhere; the slowest."),
    "cuda": ("NVIDIA GPU (CUDA)", "Much faster than the processor."),
    "mps": ("Apple GPU (MPS)", "The GPU of an Apple-silicon Mac."),
}
PRECISIONS = {
    "auto": (
        "Automatic",
        "bfloat16 on a GPU; int8 weights on most processors (x86 without AMX), else "
        "bfloat16 or float32. A library keeps the precision it was first tagged with.",
    ),
    "float32": ("float32", "Full precision: the reference tags, but the slowest and most memory."),
    "bfloat16": (
        "bfloat16",
        "Half the memory and much faster where supported; tags nearly the same as float32.",
    ),
    "float16": (
        "float16",
        "Half the memory, for GPUs without bfloat16; can be numerically unstable with GME.",
    ),
    "int8": (
        "int8 (processor only)",
        "8-bit weights on the processor: about 2x to 4x float32 and 1.5x bfloat16 in "
        "speed, nearly the same tags.",
    ),
}
COARSE = {"auto": "Automatic (on for the processor)", "on": "On", "off": "Off"}
PREFERENCES = {
    "precision": (
        "Precision",
        "Fewer tags, more of them right: fewer wrong tags to reject, more missed.",
    ),
    "balanced": ("Balanced", "Between the two (the default)."),
    "recall": ("Recall", "More tags, fewer missed: more wrong ones to reject."),
}

LIVE_NOTE = "Applies at once to the open library."
CHECK_POLL_MS = 100
"""How often the dialog looks whether the model check has answered."""
_SETTING_RE = re.compile(r"\b(model|thresholds|watch|xmp)\.(\w+)")


def hint(text: str) -> QLabel:
    """A wrapped line of explanation under a field, in the palette's quieter colour."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class ErrorLine(QWidget):
    """A warning icon and message shown next to a field whose value is refused."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        icon = QLabel()
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(size)
        )
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(icon)
        row.addWidget(self.label, 1)
        self.setAccessibleName("Error")
        self.hide()

    def show_text(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def clear(self) -> None:
        self.label.clear()
        self.hide()

    def text(self) -> str:
        return self.label.text() if not self.isHidden() else ""


# -- the dialog ----------------------------------------------------------------------------


def overridden_by_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings ("section.field") that an `ALBUMTAGGER_*` variable sets, with its name:
    those win over the settings file while they are set."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for section_field in fields(Settings):
        for f in fields(section_field.default_factory()):  # type: ignore[misc]
            names = [f"ALBUMTAGGER_{section_field.name}_{f.name}".upper()]
            if section_field.name == "model":
                names.insert(0, f"ALBUMTAGGER_{f.name}".upper())
            for name in names:
                if name in env:
                    out[f"{section_field.name}.{f.name}"] = name
                    break
    return out


class SettingsDialog(QDialog):
    """Edits `settings` (as the settings file has them); OK saves them to `path` and emits
    `saved`, Cancel changes nothing. A value the settings refuse is shown next to its
    field, and nothing is saved."""

    saved = Signal(object)  # the Settings written
    check_finished = Signal(bool, str)

    def __init__(
        self,
        settings: Settings,
        path: Path,
        *,
        library_open: bool = False,
        environ: Mapping[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.original = settings
        self.path = Path(path)
        self.result_settings: Settings | None = None
        self.model_check: ModelCheck | None = None  # while the model is checked
        self._check_timer = QTimer(self)
        self._check_timer.setInterval(CHECK_POLL_MS)
        self._check_timer.timeout.connect(self._check_progress)
        self.finished.connect(self.stop_check)
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, ErrorLine] = {}
        self._overrides = overridden_by_environment(environ)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._model_page(library_open), "&Model")
        self.tabs.addTab(self._tagging_page(), "&Tagging")
        self.tabs.addTab(self._folder_page(), "&Watching && XMP")
        self.general_error = ErrorLine()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        defaults = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        defaults.setToolTip("Put every field back to its default (saved only with OK)")
        defaults.clicked.connect(lambda: self.set_values(Settings()))

        box = QVBoxLayout(self)
        box.addWidget(self.tabs, 1)
        shown = {k: v for k, v in self._overrides.items() if k in self.fields}
        if shown:
            note = hint(
                "Set in the environment, these win over this dialog while they are set: "
                + ", ".join(sorted(set(shown.values())))
                + "."
            )
            note.setObjectName("environment_note")
            box.addWidget(note)
        box.addWidget(self.general_error)
        location = hint(f"Saved in {self.path}")
        location.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(location)
        box.addWidget(self.buttons)
        self.set_values(settings)
        self.resize(640, 600)

    # -- building --------------------------------------------------------------------------

    def _field(self, key: str, widget: QWidget, name: str) -> QWidget:
        widget.setAccessibleName(name)
        if key in self._overrides:
            widget.setToolTip(f"{self._overrides[key]} is set in the environment and wins")
        self.fields[key] = widget
        return widget

    def _error(self, *keys: str) -> ErrorLine:
        line = ErrorLine()
        for key in keys:
            self.errors[key] = line
        return line

    @staticmethod
    def _page(note: str) -> tuple[QWidget, QFormLayout]:
        page = QWidget()
        box = QVBoxLayout(page)
        header = QLabel(note)
        header.setTextFormat(Qt.TextFormat.PlainText)
        header.setWordWrap(True)
        font = header.font()
        font.setBold(True)
        header.setFont(font)
        header.setObjectName("applies")
        box.addWidget(header)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        box.addLayout(form)
        box.addStretch(1)
        return page, form

    @staticmethod
    def _combo(choices: Mapping[str, Any]) -> QComboBox:
        combo = QComboBox()
        for value, label in choices.items():
            combo.addItem(label[0] if isinstance(label, tuple) else label, value)
        return combo

    def _model_page(self, library_open: bool) -> QWidget:
        page, form = self._page(
            "Device and precision apply when a library is next opened. The model and the "
            "image token budget apply to folders tagged from now on: a library keeps the "
            "model and budget it was first tagged with."
        )
        self.model_edit = self._field("model.model", QLineEdit(), "Model")
        self.model_edit.setPlaceholderText(DEFAULT_MODEL)
        self.model_edit.setClearButtonEnabled(True)
        browse = QPushButton("&Browse\u2026")
        browse.setToolTip("Choose a folder that holds a GME checkpoint")
        browse.clicked.connect(self._browse)
        self.check_button = QPushButton("C&heck")
        self.check_button.setToolTip(
            "Load the model once with this device and precision to see that it works"
        )
        self.check_button.clicked.connect(self.check_model)
        row = QHBoxLayout()
        row.addWidget(self.model_edit, 1)
        row.addWidget(browse)
        row.addWidget(self.check_button)
        form.addRow(self._buddy("Mo&del:", self.model_edit), row)
        form.addRow("", hint("A hub id (downloaded once) or a folder holding a GME checkpoint."))
        self.check_result = QLabel()
        self.check_result.setTextFormat(Qt.TextFormat.PlainText)
        self.check_result.setWordWrap(True)
        self.check_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.check_result.setAccessibleName("Model check result")
        self.check_result.hide()
        form.addRow("", self.check_result)
        form.addRow("", self._error("model.model", "model.revision"))

        self.device = self._field("model.device", self._combo(DEVICES), "Device")
        self.device_hint = hint("")
        self.device.currentIndexChanged.connect(
            lambda: self._describe(self.device, DEVICES, self.device_hint)
        )
        form.addRow("D&evice:", self.device)
        form.addRow("", self.device_hint)
        form.addRow("", self._error("model.device"))

        self.dtype = self._field("model.dtype", self._combo(PRECISIONS), "Precision")
        self.dtype_hint = hint("")
        self.dtype.currentIndexChanged.connect(
            lambda: self._describe(self.dtype, PRECISIONS, self.dtype_hint)
        )
        form.addRow("&Precision:", self.dtype)
        form.addRow("", self.dtype_hint)
        form.addRow("", self._error("model.dtype"))

        self.min_tokens = self._tokens_spin("model.min_image_tokens", "Fewest image tokens")
        self.max_tokens = self._tokens_spin("model.max_image_tokens", "Most image tokens")
        row = QHBoxLayout()
        row.addWidget(QLabel("from"))
        row.addWidget(self.min_tokens)
        row.addWidget(QLabel("to"))
        row.addWidget(self.max_tokens)
        row.addStretch(1)
        form.addRow(self._buddy("Image to&kens:", self.min_tokens), row)
        form.addRow(
            "",
            hint(
                "Speed against detail. A token is a 28 \u00d7 28 pixel patch of the resized "
                "photo: more tokens see smaller things (text, faces in a crowd), and tagging "
                "time grows about in proportion (twice the tokens, about twice the time). "
                "Automatic (0) is 256\u20131280 on a GPU, 64\u2013256 on the processor."
            ),
        )
        form.addRow("", self._error("model.min_image_tokens", "model.max_image_tokens"))

        self.coarse = self._field("model.coarse_first", self._combo(COARSE), "Coarse first")
        self.first_pass = self._tokens_spin("model.first_pass_tokens", "First-pass tokens", 4)
        self.first_pass.setSpecialValueText("")
        row = QHBoxLayout()
        row.addWidget(self.coarse)
        row.addWidget(QLabel("first pass at most"))
        row.addWidget(self.first_pass)
        row.addStretch(1)
        form.addRow(self._buddy("&Coarse first:", self.coarse), row)
        form.addRow(
            "",
            hint(
                "Tag new photos quickly at the first-pass budget, so the whole library has "
                "tags soon, then refine them at the full budget while nothing else waits."
            ),
        )
        form.addRow("", self._error("model.coarse_first", "model.first_pass_tokens"))

        self.reopen = QCheckBox("Reopen the open library when I press OK, to use these now")
        self.reopen.setVisible(library_open)
        form.addRow("", self.reopen)
        return page

    @staticmethod
    def _buddy(text: str, widget: QWidget) -> QLabel:
        """A row label whose mnemonic focuses `widget` (a row of several fields)."""
        label = QLabel(text)
        label.setBuddy(widget)
        return label

    def _tokens_spin(self, key: str, name: str, least: int = 0) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(least, 16384)
        spin.setSingleStep(16)
        spin.setSpecialValueText("automatic")
        spin.setMinimumWidth(100)
        return self._field(key, spin, name)  # type: ignore[return-value]

    def _tagging_page(self) -> QWidget:
        page, form = self._page(
            LIVE_NOTE + " When you press OK the open library's photos are decided again with "
            "these settings; the tags you accepted, added or rejected never change."
        )
        self.preference = self._field(
            "thresholds.preference", self._combo(PREFERENCES), "Preference"
        )
        self.preference_hint = hint("")
        self.preference.currentIndexChanged.connect(
            lambda: self._describe(self.preference, PREFERENCES, self.preference_hint)
        )
        form.addRow("&Prefer:", self.preference)
        form.addRow("", self.preference_hint)
        form.addRow("", self._error("thresholds.preference", "thresholds.beta"))

        self.base = QDoubleSpinBox()
        self.base.setRange(0.0, 1.0)
        self.base.setDecimals(3)
        self.base.setSingleStep(0.01)
        self._field("thresholds.base_threshold", self.base, "Base threshold")
        form.addRow("&Base threshold:", self.base)
        form.addRow(
            "",
            hint(
                "Where every tag's threshold starts, on the similarity score (0.25 by "
                "default). Each tag then finds its own from how its scores spread over the "
                "library and from your corrections."
            ),
        )
        form.addRow("", self._error("thresholds.base_threshold", "thresholds.min_base"))

        self.max_tags = QSpinBox()
        self.max_tags.setRange(1, 100)
        self._field("thresholds.max_tags", self.max_tags, "Most tags per photo")
        form.addRow("Most ta&gs per photo:", self.max_tags)
        form.addRow("", hint("At most this many tags on a photo, yours included."))
        form.addRow("", self._error("thresholds.max_tags"))

        self.min_tags = QSpinBox()
        self.min_tags.setRange(0, 100)
        self._field("thresholds.min_tags", self.min_tags, "Fallback below")
        self.fallback_factor = QDoubleSpinBox()
        self.fallback_factor.setRange(0.05, 1.0)
        self.fallback_factor.setDecimals(2)
        self.fallback_factor.setSingleStep(0.05)
        self._field("thresholds.fallback_factor", self.fallback_factor, "Fallback factor")
        self.fallback_tags = QSpinBox()
        self.fallback_tags.setRange(0, 100)
        self._field("thresholds.fallback_tags", self.fallback_tags, "Fallback fills up to")
        row = QHBoxLayout()
        row.addWidget(QLabel("fewer than"))
        row.addWidget(self.min_tags)
        row.addWidget(QLabel("tags: thresholds \u00d7"))
        row.addWidget(self.fallback_factor)
        row.addWidget(QLabel("up to"))
        row.addWidget(self.fallback_tags)
        row.addWidget(QLabel("tags"))
        row.addStretch(1)
        form.addRow(self._buddy("&Fallback:", self.min_tags), row)
        form.addRow(
            "",
            hint(
                "A photo with fewer tags than that gets the best remaining ones above the "
                "lowered thresholds, marked as low confidence (0 tags: no fallback)."
            ),
        )
        form.addRow(
            "",
            self._error(
                "thresholds.min_tags", "thresholds.fallback_factor", "thresholds.fallback_tags"
            ),
        )
        self.advance = QCheckBox("After a photo's last suggestion, go on to the &next photo")
        self._field("corrections.advance_after_last", self.advance, "Go on to the next photo")
        form.addRow(self.advance)
        form.addRow(
            hint(
                "When A, R or Delete answered the last suggestion of the photo shown, the "
                "grid selects the next photo and its best suggestion is marked."
            )
        )
        return page

    def _folder_page(self) -> QWidget:
        page, form = self._page(LIVE_NOTE)
        self.watch = QCheckBox("Watch the f&older while the app is open")
        self._field("watch.enabled", self.watch, "Watch the folder")
        form.addRow(self.watch)
        form.addRow(
            hint(
                "Photos added, changed, moved or removed are noticed and tagged as they "
                "come. Off: the folder is looked at only when it is opened and on "
                "File \u203a Tag again (F5)."
            )
        )
        form.addRow(self._error("watch.enabled", "watch.quiet_seconds", "watch.poll_seconds"))
        self.xmp = QCheckBox("Write &XMP sidecars as tags change")
        self._field("xmp.write_on_change", self.xmp, "Write XMP sidecars")
        self.xmp_suggested = QCheckBox("Include confident &suggestions, not only your tags")
        self._field("xmp.include_suggested", self.xmp_suggested, "XMP includes suggestions")
        form.addRow(self.xmp)
        form.addRow(self.xmp_suggested)
        form.addRow(
            hint(
                "Keeps a PHOTO.xmp file beside each photo in line with its tags, for digiKam, "
                "darktable or Lightroom."
            )
        )
        form.addRow(self._error("xmp.write_on_change", "xmp.include_suggested"))
        self.xmp.toggled.connect(self.xmp_suggested.setEnabled)
        self.follow_links = QCheckBox("Follow &links that lead out of the folder")
        self._field("library.follow_links_outside", self.follow_links, "Follow links out")
        form.addRow(self.follow_links)
        form.addRow(
            hint(
                "Off: a symbolic link to a place outside the photo folder is passed over and "
                "listed among the scan's problems. /proc, /sys and /dev are never walked. "
                "Takes effect at the next look over the whole folder (Tag again, F5)."
            )
        )
        return page

    @staticmethod
    def _describe(combo: QComboBox, choices: Mapping[str, Any], label: QLabel) -> None:
        entry = choices.get(combo.currentData())
        label.setText(entry[1] if isinstance(entry, tuple) else "")

    # -- values ----------------------------------------------------------------------------

    @staticmethod
    def _select(combo: QComboBox, value: str) -> None:
        at = combo.findData(value)
        if at < 0:  # a value the list does not name (cuda:1): keep it selectable
            combo.addItem(value, value)
            at = combo.count() - 1
        combo.setCurrentIndex(at)

    def set_values(self, settings: Settings) -> None:
        """Show these settings in the fields."""
        m, t = settings.model, settings.thresholds
        self.model_edit.setText("" if m.model == DEFAULT_MODEL else m.model)
        self._select(self.device, m.device)
        self._select(self.dtype, m.dtype)
        self.min_tokens.setValue(m.min_image_tokens)
        self.max_tokens.setValue(m.max_image_tokens)
        self._select(self.coarse, m.coarse_first)
        self.first_pass.setValue(m.first_pass_tokens)
        self._select(self.preference, t.preference)
        self.base.setValue(t.base_threshold)
        self.max_tags.setValue(t.max_tags)
        self.min_tags.setValue(t.min_tags)
        self.fallback_factor.setValue(t.fallback_factor)
        self.fallback_tags.setValue(t.fallback_tags)
        self.watch.setChecked(settings.watch.enabled)
        self.xmp.setChecked(settings.xmp.write_on_change)
        self.xmp_suggested.setChecked(settings.xmp.include_suggested)
        self.xmp_suggested.setEnabled(settings.xmp.write_on_change)
        self.follow_links.setChecked(settings.library.follow_links_outside)
        self.advance.setChecked(settings.corrections.advance_after_last)
        for combo, choices, label in (
            (self.device, DEVICES, self.device_hint),
            (self.dtype, PRECISIONS, self.dtype_hint),
            (self.preference, PREFERENCES, self.preference_hint),
        ):
            self._describe(combo, choices, label)

    def values(self) -> Settings:
        """The settings the fields show (fields the dialog has not are kept as they were)."""
        s = replace_section(
            self.original,
            "model",
            model=self.model_edit.text().strip() or DEFAULT_MODEL,
            device=self.device.currentData(),
            dtype=self.dtype.currentData(),
            min_image_tokens=self.min_tokens.value(),
            max_image_tokens=self.max_tokens.value(),
            coarse_first=self.coarse.currentData(),
            first_pass_tokens=self.first_pass.value(),
        )
        s = replace_section(
            s,
            "thresholds",
            preference=self.preference.currentData(),
            base_threshold=round(self.base.value(), self.base.decimals()),
            max_tags=self.max_tags.value(),
            min_tags=self.min_tags.value(),
            fallback_factor=round(self.fallback_factor.value(), self.fallback_factor.decimals()),
            fallback_tags=self.fallback_tags.value(),
        )
        s = replace_section(s, "watch", enabled=self.watch.isChecked())
        s = replace_section(s, "library", follow_links_outside=self.follow_links.isChecked())
        s = replace_section(s, "corrections", advance_after_last=self.advance.isChecked())
        return replace_section(
            s,
            "xmp",
            write_on_change=self.xmp.isChecked(),
            include_suggested=self.xmp_suggested.isChecked(),
        )

    def _keep_unchanged(self, new: Settings) -> Settings:
        """Values the spin boxes rounded are kept as the file had them when untouched."""
        o = self.original.thresholds
        for name, decimals in (
            ("base_threshold", self.base.decimals()),
            ("fallback_factor", self.fallback_factor.decimals()),
        ):
            if getattr(new.thresholds, name) == round(getattr(o, name), decimals):
                new = replace_section(new, "thresholds", **{name: getattr(o, name)})
        return new

    def error_text(self, key: str) -> str:
        """The message shown next to the field of setting `key` ("" when none)."""
        line = self.errors.get(key)
        return line.text() if line is not None else ""

    def _clear_errors(self) -> None:
        for line in {*self.errors.values(), self.general_error}:
            line.clear()

    def _show_error(self, message: str) -> None:
        for section, name in _SETTING_RE.findall(message):
            key = f"{section}.{name}"
            line = self.errors.get(key)
            if line is None:
                continue
            line.show_text(message)
            widget = self.fields.get(key) or line
            for i in range(self.tabs.count()):
                if self.tabs.widget(i).isAncestorOf(line):
                    self.tabs.setCurrentIndex(i)
            widget.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self.general_error.show_text(message)

    def accept(self) -> None:
        """Save (validated) and close; a refused value stays open with its message."""
        self._clear_errors()
        new = self._keep_unchanged(self.values())
        try:
            save_settings(new, self.path)
        except UserError as exc:
            self._show_error(str(exc))
            return
        except OSError as exc:
            self.general_error.show_text(
                f"Cannot write the settings file {self.path}: {exc.strerror or exc}. "
                "Check that its folder can be written."
            )
            return
        self.result_settings = new
        self.saved.emit(new)
        super().accept()

    # -- the model check -------------------------------------------------------------------

    def _browse(self) -> None:
        start = self.model_edit.text().strip()
        folder = QFileDialog.getExistingDirectory(
            self, "Choose the GME model folder", start if Path(start).is_dir() else ""
        )
        if folder:
            self.model_edit.setText(folder)

    def check_model(self) -> None:
        """Load the model these fields name in a process of its own (this one never holds
        it), which ends after; the result shows below."""
        from albumtagger.model.encoder_process import ModelCheck

        self.stop_check()
        self.check_button.setEnabled(False)
        self.check_result.setText("Checking: loading the model\u2026")
        self.check_result.show()
        try:
            self.model_check = ModelCheck(self.values())
        except OSError as exc:
            self._check_done(False, f"The model cannot be checked: {exc.strerror or exc}")
            return
        self._check_timer.start()

    def _check_progress(self) -> None:
        result = self.model_check.result() if self.model_check is not None else None
        if result is not None:
            self._check_done(*result)

    def _check_done(self, ok: bool, message: str) -> None:
        self._check_timer.stop()
        self.model_check = None
        self.check_button.setEnabled(True)
        self.check_result.setText(("\u2714 " if ok else "\u2716 ") + message)
        self.check_finished.emit(ok, message)

    def stop_check(self) -> None:
        """Give up the check under way, if any (its process ends)."""
        self._check_timer.stop()
        check, self.model_check = self.model_check, None
        if check is not None:
            check.cancel()
            self.check_button.setEnabled(True)
            self.check_result.hide()


def open_settings(libraries: Libraries, parent: QWidget) -> SettingsDialog:
    """Show the settings dialog over `parent` (the settings file's values); OK saves them
    and gives the libraries the settings they run with from now on (file and
    environment)."""
    path = config_path()
    problem = ""
    try:
        current = load_settings(path, environ={})
    except UserError as exc:
        current, problem = Settings(), f"{exc} OK writes the values shown here instead."
    folder = libraries.qsettings.value("model/folder")
    if folder and current.model.model == DEFAULT_MODEL:  # chosen by File > model folder
        current = replace_section(current, "model", model=str(folder))
    library_open = libraries.handle is not None
    dialog = SettingsDialog(current, path, library_open=library_open, parent=parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if problem:
        dialog.general_error.show_text(problem)
    dialog.saved.connect(lambda _settings: _hand_over(libraries, dialog))
    dialog.open()
    return dialog


def _hand_over(libraries: Libraries, dialog: SettingsDialog) -> None:
    libraries.qsettings.remove("model/folder")  # the settings file names the model now
    try:
        effective = load_settings(dialog.path)
    except UserError as exc:  # an ALBUMTAGGER_* variable the file now contradicts
        libraries.show_notice(str(exc), "error")
        return
    libraries.apply_settings(
        effective, reopen=not dialog.reopen.isHidden() and dialog.reopen.isChecked()
    )
