"""Render the README's pictures from the real app (offscreen): the main window with
tagged photos (docs/main-window.png), review mode (docs/review-mode.png) and the tag
inspector (docs/tag-inspector.png).

    python scripts/screenshot.py [--docs docs] [--photos 40]

Makes a library of small generated photos in a temporary folder, lets the real window
tag them (with the model of ALBUMTAGGER_MODEL, else the golden test checkpoint), accepts
one suggestion and rejects another on a photo so every kind of tag chip shows, answers a
few review questions, and saves `QWidget.grab()` of each window. Look at the pictures
before committing them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOLDEN_MODEL = REPO / "tests" / "data" / "gme-golden" / "model"


def make_photos(folder: Path, count: int, seed: int = 3) -> None:
    """Scenes of a sky-to-ground gradient with a few shapes, in a few album folders."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    albums = ["2023 Summer at the lake", "2024 Winter", "Family", ""]
    for i in range(count):
        w, h = (480, 320) if i % 5 else (320, 480)
        top, bottom = rng.integers(60, 255, 3), rng.integers(0, 200, 3)
        t = np.linspace(0, 1, h)[:, None, None]
        pixels = (top * (1 - t) + bottom * t) * np.ones((1, w, 1))
        pixels = np.clip(pixels + rng.integers(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y = int(rng.integers(0, w - 80)), int(rng.integers(0, h - 80))
            s = int(rng.integers(30, 120))
            color = tuple(int(v) for v in rng.integers(0, 255, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape([x, y, x + s, y + s], fill=color)
        path = folder / albums[i % len(albums)] / f"IMG_{2040 + i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=88)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="where to write")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--size", default="1400x860", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="albumtagger-screenshot-"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["ALBUMTAGGER_CONFIG"] = str(work / "config.toml")
    os.environ["ALBUMTAGGER_DATA_DIR"] = str(work / "data")
    os.environ["ALBUMTAGGER_CACHE_DIR"] = str(work / "cache")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if "ALBUMTAGGER_MODEL" not in os.environ:
        os.environ.update(
            {
                "ALBUMTAGGER_MODEL": str(GOLDEN_MODEL),
                "ALBUMTAGGER_DEVICE": "cpu",
                "ALBUMTAGGER_DTYPE": "float32",
                "ALBUMTAGGER_MIN_IMAGE_TOKENS": "16",
                "ALBUMTAGGER_MAX_IMAGE_TOKENS": "64",
            }
        )
    folder = work / "Holidays"
    make_photos(folder, args.photos)

    sys.path.insert(0, str(REPO))
    from PySide6.QtCore import QCoreApplication, QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from albumtagger.app.qtcompat import tune_app_process
    from albumtagger.app.window import MainWindow
    from albumtagger.config import load_settings

    tune_app_process()
    _app = QApplication.instance() or QApplication([])  # kept alive until the end
    qsettings = QSettings(str(work / "qt.ini"), QSettings.Format.IniFormat)
    window = MainWindow(load_settings(), qsettings)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()

    def spin(pred, timeout: float = 300.0) -> None:
        end = time.monotonic() + timeout
        waker = QTimer()
        waker.start(20)
        while not pred():
            if time.monotonic() > end:
                raise TimeoutError("the window did not get there in time")
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
        waker.stop()

    def settle(seconds: float = 0.6) -> None:
        end = time.monotonic() + seconds
        spin(lambda: time.monotonic() > end)

    try:
        window.open_folder(folder)

        def tagged() -> bool:
            p = window.libraries.last_progress
            return p is not None and p.finished and p.job == "index"

        spin(tagged)
        spin(
            lambda: window.model.rowCount() == args.photos and not window.browsing.counts_pending()
        )
        # a photo with several suggestions: accept one, reject another
        window.grid.setCurrentIndex(window.model.index(5))
        settle()
        chips = [c for c in window.detail.chip_widgets() if c.info.state == "suggested"]
        for chip, action in zip(chips[:2], ("accept", "reject"), strict=False):
            done: list[object] = []
            window.libraries.correction_done.connect(done.append)
            window.libraries.correct(window.detail.photo_ids, chip.info.name, action)
            spin(lambda done=done: bool(done))
            window.libraries.correction_done.disconnect(done.append)
        window.grid.setFocus()
        spin(lambda: not window.browsing.counts_pending() and not window.loader.busy())
        settle(1.0)
        window.statusBar().clearMessage()
        args.docs.mkdir(parents=True, exist_ok=True)
        shots = [(window, args.docs / "main-window.png")]
        save(shots[-1])

        # Review mode: a few answers, then the next question with its preview.
        window.open_review()
        review = window.review
        for key in ("yes", "no"):
            spin(lambda: review.current is not None and review.current.photo_id in review._images)
            answered: list[object] = []
            review.answered.connect(answered.append)
            review.answer(key == "yes")
            spin(lambda answered=answered: bool(answered))
        spin(lambda: review.current is not None and review.current.photo_id in review._images)
        settle(1.0)
        save((review, args.docs / "review-mode.png"))
        review.close()

        # The inspector of the tag most photos carry.
        busiest = max(window.libraries.queries.tag_counts().items(), key=lambda kv: kv[1])[0]
        name = next(t.name for t in window.libraries.queries.tags() if t.id == busiest)
        inspector = window.inspect_tag(name)
        assert inspector is not None
        spin(lambda: inspector.report is not None)
        spin(lambda: not inspector.loader.busy())
        settle(1.0)
        save((inspector, args.docs / "tag-inspector.png"))
        inspector.close()
    finally:
        window.close()
    return 0


def save(shot) -> None:
    widget, path = shot
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(path)


if __name__ == "__main__":
    sys.exit(main())
