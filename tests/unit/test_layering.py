"""Listing commands start without torch (the layers, and the core without Qt, are
import-linter contracts in pyproject.toml, checked by `lint-imports` in CI)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_listing_commands_do_not_load_torch() -> None:
    code = (
        "import sys\n"
        "import albumtagger.cli, albumtagger.tagging.tagger, albumtagger.service.indexing\n"
        "import albumtagger.service.session, albumtagger.model.files\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"


def test_every_package_is_installed() -> None:
    """A new folder of the package is listed in pyproject.toml (else a wheel or a
    non-editable install leaves it out, and only the installed app breaks)."""
    from albumtagger.config import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "albumtagger").rglob("__init__.py")
    }
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"
