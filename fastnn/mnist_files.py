"""Where MNIST's four files are: the folders a user names, and what a folder holds."""

from __future__ import annotations

import os
from pathlib import Path

from .idx import DataError

DATA_DIR_ENV = "FASTNN_DATA_DIR"
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataDirError(DataError):
    """A folder named for MNIST (``data_dir`` or ``$FASTNN_DATA_DIR``) does not hold it.

    ``place`` is ``"data_dir"`` or ``"$FASTNN_DATA_DIR"``; ``bad_path`` is True when
    the path itself is wrong (it does not exist or is not a folder), False when
    the folder's contents are. `message` words the error for another name of
    the place, such as the ``--data-dir`` flag.
    """

    def __init__(self, place: str, given, path: Path, finding: str, bad_path: bool):
        self.place, self.given, self.path = place, str(given), path
        self.finding, self.bad_path = finding, bad_path
        super().__init__(self.message(place), finding)

    def message(self, name: str) -> str:
        shown = self.given if self.given == str(self.path) else f"{self.given} ({self.path})"
        where = f"{name} {shown}"
        undo = f"unset {name}" if name.startswith("$") else f"leave {name} out"
        files = ", ".join(FILES[:-1]) + f" and {FILES[-1]}, each .gz or unzipped"
        fix = ("point it at the folder that holds the MNIST files" if self.bad_path
               else "put the missing files there")
        return f"{where} {self.finding}; {fix} ({files}), or {undo} to let fastnn find or " \
               "download MNIST"


def user_places(data_dir) -> list:
    """(place, as given, absolute path or None) of each folder the user may have named."""
    # An explicit directory is final: a typo in --data-dir must not quietly
    # pick up MNIST from somewhere else.
    if data_dir is not None:
        return [("data_dir", data_dir, Path(data_dir).expanduser().absolute())]
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    return [(f"${DATA_DIR_ENV}", env, Path(env).expanduser().absolute() if env else None)]


def locate(directory: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``directory`` or its torchvision-style ``MNIST/raw``."""
    for folder in (directory, directory / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def scan(directory: Path) -> tuple:
    """({name: path} if all four files are there else None, what was found, the path is wrong).

    What was found is a phrase such as "does not exist" or "holds ... but not ...".
    """
    if not directory.exists():
        return None, "does not exist", True
    if not directory.is_dir():
        return None, ("is a file, not a folder" if directory.is_file() else "is not a folder"), True
    found = {name: locate(directory, name) for name in FILES}
    present = [str(path.relative_to(directory)) for path in found.values() if path is not None]
    missing = [f"{name}[.gz]" for name, path in found.items() if path is None]
    if not missing:
        return found, "", False
    if present:
        return None, f"holds {listing(present)} but not {listing(missing)}", False
    return None, f"holds no MNIST files ({contents(directory)})", False


def listing(names: list, most: int = len(FILES)) -> str:
    """``a, b and c``; beyond ``most`` names, ``a, b and 3 more``."""
    if len(names) > most:
        names = [*names[:most], f"{len(names) - most} more"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def contents(directory: Path) -> str:
    """What a folder holds, in a few words: "it is empty", "it holds a.txt, b/ and 3 more"."""
    try:
        entries = sorted(path.name + ("/" if path.is_dir() else "") for path in directory.iterdir())
    except OSError as err:
        return f"it cannot be listed: {err.strerror or err}"
    return f"it holds {listing(entries, most=5)}" if entries else "it is empty"
