"""A photo folder and its sidecar: where the sidecar lives, and whether the folder is
there at all (a drive can be unplugged at any time)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from albumtagger.errors import LibraryOfflineError, UsageError, UserError
from albumtagger.library.store import SIDECAR_DIR, Store, fallback_sidecar_path, sidecar_path

log = logging.getLogger(__name__)


@dataclass
class Library:
    """An open library: the photo folder (`root`) and its `store`."""

    root: Path
    store: Store
    sidecar_in_folder: bool

    def is_online(self) -> bool:
        """The root is there and readable, and (for an in-folder sidecar) still holds it.

        A mount point left empty by an unplugged drive has no `.albumtagger` folder, so
        it reads as offline rather than as a folder whose photos all vanished.
        """
        try:
            if not self.root.is_dir() or not os.access(self.root, os.R_OK | os.X_OK):
                return False
            if self.sidecar_in_folder and not (self.root / SIDECAR_DIR).is_dir():
                return False
            os.listdir(self.root)
        except OSError:
            return False
        return True

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def open_library(root: Path, data_dir: Path, *, create: bool = True) -> Library:
    """Open the library of `root`, creating its sidecar if `create`.

    The sidecar goes in `root/.albumtagger/`; if the folder is read-only it goes in
    the user data dir instead (see `Library.sidecar_in_folder`, which the UI reports).
    Raises `LibraryOfflineError` when the folder is missing and has no sidecar we can
    reach, and `UserError` when there is no library and `create` is false.
    """
    root = Path(root).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder; give the folder that holds the photos.")
    inside = sidecar_path(root)
    outside = fallback_sidecar_path(root, data_dir)
    if inside.is_file():
        return Library(root, Store(inside), True)
    if outside.is_file():
        return Library(root, Store(outside), False)
    if not root.is_dir():
        raise LibraryOfflineError(
            f"The folder {root} is not there (a drive unplugged or a folder renamed?). "
            "Connect it, or check the path."
        )
    if not create:
        raise UserError(f"{root} has no albumtagger library yet: index the folder first.")
    if (root / SIDECAR_DIR).is_dir() or _writable(root):
        try:
            return Library(root, Store(inside), True)
        except PermissionError:
            pass
    log.warning("%s is read-only; keeping its library in %s", root, outside.parent)
    return Library(root, Store(outside), False)
