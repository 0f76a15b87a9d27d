"""The core runs without Qt, and listing commands start without torch."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

CORE = [
    "albumtagger.cli",
    "albumtagger.config",
    "albumtagger.library.db.store",
    "albumtagger.library.scanner",
    "albumtagger.library.images",
    "albumtagger.library.watcher",
    "albumtagger.library.xmp",
    "albumtagger.tagging.encoder",
    "albumtagger.tagging.vocabulary",
    "albumtagger.tagging.thresholds",
    "albumtagger.tagging.tagger",
    "albumtagger.tagging.pipeline",
    "albumtagger.tagging.watching",
    "albumtagger.tagging.model_files",
    "albumtagger.tagging.similarity",
    "albumtagger.library.db.queries",
    "albumtagger.library.thumbnails",
    "albumtagger.library.keywords",
    "albumtagger.events",
    "albumtagger.session",
]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_core_imports_without_qt() -> None:
    code = (
        "import sys\n"
        "sys.modules['PySide6'] = None  # any import of Qt now fails\n"
        f"for name in {CORE!r}:\n"
        "    __import__(name)\n"
        "print('ok')\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_listing_commands_do_not_load_torch() -> None:
    code = (
        "import sys\n"
        "import albumtagger.cli, albumtagger.tagging.tagger, albumtagger.tagging.pipeline\n"
        "import albumtagger.session, albumtagger.tagging.model_files\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"
