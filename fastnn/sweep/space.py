"""The search space of a sweep: what each of the six searchable settings may be.

Each parameter is a `Param`: a range (``low``..``high``, log-scaled or not),
a list of choices, or one fixed value. A `SearchSpace` always holds all six
(`PARAMETERS`); those the user does not name keep `DEFAULT_SPACE`. Specs come
from the command line (``-p lr=0.001..1``, ``-p layers=128/256,128``) or a
TOML file (`read_space_file`), and are checked here, before any study is
touched: an unknown name or an empty range raises `SpaceError`.

The space is plain data: `SearchSpace.describe` is the JSON-able form stored
with the study (and compared when a study is continued), and
`SearchSpace.suggest` asks an Optuna trial for one point of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from kernels.common import HIDDEN_ACTIVATIONS

from ..extras import require
from ..network import INITS

#: The settings a sweep can search, in the order reports list them.
PARAMETERS = ("lr", "batch_size", "layers", "hidden", "init", "epochs")
#: Ranges of these parameters are searched on a log scale unless told otherwise.
LOG_BY_DEFAULT = ("lr", "batch_size")

#: What each parameter is unless a spec says otherwise (command-line syntax).
DEFAULT_SPACE = {
    "lr": "0.01..1",
    "batch_size": "32,64,128,256",
    "layers": "128/128,64/256/256,128",
    "hidden": "relu,sigmoid",
    "init": "auto",
    "epochs": "10",
}

SPEC_HELP = ("NAME=SPEC, NAME one of " + ", ".join(PARAMETERS) + "; SPEC a range LOW..HIGH "
             "(lr, batch_size, epochs; add :log or :linear), choices A,B,C, or one value; "
             "layers takes sizes like 128,64 and separates choices with / (128/256,128)")


class SpaceError(ValueError):
    """A search-space spec is not allowed; the message says which and why."""


@dataclass(frozen=True)
class Param:
    """One parameter of the space: a range (``low``, ``high``, ``log``) or ``choices``.

    A fixed value is a single choice. ``layers`` choices are tuples of ints;
    ``batch_size`` choices are ints or "full".
    """

    name: str
    choices: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False

    @property
    def is_range(self) -> bool:
        return self.low is not None

    @property
    def is_fixed(self) -> bool:
        return not self.is_range and len(self.choices) == 1

    def describe(self):
        """JSON-able: {"low", "high", "log"} for a range, a list for choices, else the value."""
        if self.is_range:
            return {"low": self.low, "high": self.high, "log": self.log}
        values = [list(c) if isinstance(c, tuple) else c for c in self.choices]
        return values[0] if self.is_fixed else values

    def text(self) -> str:
        """The spec as the command line writes it."""
        if self.is_range:
            default = self.name in LOG_BY_DEFAULT
            scale = "" if self.log == default else (":log" if self.log else ":linear")
            return f"{self.low}..{self.high}{scale}"
        sep = "/" if self.name == "layers" else ","
        return sep.join(value_text(choice) for choice in self.choices)


def value_text(value) -> str:
    """A value as `fastnn train` spells it: 128,64 for layers, repr for floats."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return repr(value) if isinstance(value, float) else str(value)


def _number(name: str, text, kind: str):
    """``text`` as a value of parameter ``name``; SpaceError when it is not one."""
    if name == "lr":
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise SpaceError(f"lr: {text!r} is not a number") from None
        if isinstance(text, bool) or not math.isfinite(value) or value <= 0:
            raise SpaceError(f"lr: {text!r} must be a positive, finite number")
        return value
    if name == "batch_size" and kind == "choice" and str(text).strip() == "full":
        return "full"
    try:
        if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
            raise ValueError
        value = int(text)
    except (TypeError, ValueError):
        full = " or 'full'" if name == "batch_size" and kind == "choice" else ""
        raise SpaceError(f"{name}: {text!r} is not a whole number{full}") from None
    if value < 1:
        raise SpaceError(f"{name}: {text!r} must be at least 1")
    return value


def _choice(name: str, value):
    """One checked choice of parameter ``name`` (from text or a TOML value)."""
    if name in ("lr", "batch_size", "epochs"):
        return _number(name, value.strip() if isinstance(value, str) else value, "choice")
    if name == "layers":
        parts = value.split(",") if isinstance(value, str) else value
        try:
            sizes = tuple(_number("layers", str(part).strip(), "size") for part in parts)
        except SpaceError:
            raise SpaceError(f"layers: {value!r} is not a list of sizes like 128,64") from None
        if not sizes:
            raise SpaceError("layers: a choice names no layer sizes; give sizes like 128,64")
        return sizes
    allowed = tuple(HIDDEN_ACTIVATIONS) if name == "hidden" else INITS
    if value not in allowed:
        raise SpaceError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def check_name(name: str) -> str:
    """``name`` as a parameter name (``batch-size`` is ``batch_size``), or SpaceError."""
    key = name.strip().replace("-", "_")
    if key not in PARAMETERS:
        raise SpaceError(f"unknown parameter {name!r}: a sweep searches "
                         f"{', '.join(PARAMETERS)}")
    return key


def _range(name: str, low, high, log) -> Param:
    if name not in ("lr", "batch_size", "epochs"):
        raise SpaceError(f"{name}: a range is only for lr, batch_size and epochs; "
                         f"give choices instead, like {DEFAULT_SPACE[name]}")
    low, high = _number(name, low, "range"), _number(name, high, "range")
    if low > high:
        raise SpaceError(f"{name}: the range {low}..{high} is empty (low is above high)")
    if low == high:
        return Param(name, (low,))
    return Param(name, low=low, high=high, log=bool(log))


def parse_spec(name: str, text: str) -> Param:
    """The `Param` that command-line ``text`` describes for ``name`` (see `SPEC_HELP`)."""
    name = check_name(name)
    text = text.strip()
    if not text:
        raise SpaceError(f"{name}: the spec is empty; give a range, choices or a value")
    if ".." in text:
        bounds, _, scale = text.partition(":")
        if scale not in ("", "log", "linear"):
            raise SpaceError(f"{name}: unknown scale {scale!r} after the range; use :log or "
                             ":linear")
        low, _, high = bounds.partition("..")
        log = name in LOG_BY_DEFAULT if not scale else scale == "log"
        return _range(name, low.strip(), high.strip(), log)
    parts = text.split("/") if name == "layers" else text.split(",")
    if any(not part.strip() for part in parts):
        raise SpaceError(f"{name}: {text!r} has an empty choice")
    return _choices(name, [_choice(name, part.strip()) for part in parts])


def _choices(name: str, values: list) -> Param:
    unique = tuple(dict.fromkeys(values))
    if not unique:
        raise SpaceError(f"{name}: the list of choices is empty")
    return Param(name, unique)


def parse_value(name: str, value) -> Param:
    """The `Param` a TOML value describes: a spec string, a list of choices, a table
    ``{low, high, log}``, or one number."""
    name = check_name(name)
    if isinstance(value, str):
        return parse_spec(name, value)
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"low", "high", "log"})
        if unknown or "low" not in value or "high" not in value:
            raise SpaceError(f"{name}: a range table needs low and high (and optionally log), "
                             f"not {', '.join(sorted(value))}")
        log = value.get("log", name in LOG_BY_DEFAULT)
        if not isinstance(log, bool):
            raise SpaceError(f"{name}: log must be true or false")
        return _range(name, value["low"], value["high"], log)
    if isinstance(value, list):
        if name == "layers" and value and all(isinstance(v, int) for v in value):
            return _choices(name, [_choice(name, value)])  # one layer list, [128, 64]
        return _choices(name, [_choice(name, v) for v in value])
    return _choices(name, [_choice(name, value)])


class SearchSpace:
    """All six parameters: the defaults with the user's specs on top."""

    def __init__(self, params: dict | None = None):
        merged = {name: parse_spec(name, spec) for name, spec in DEFAULT_SPACE.items()}
        merged.update(params or {})
        self.params = {name: merged[name] for name in PARAMETERS}

    @classmethod
    def from_specs(cls, file=None, specs=()) -> "SearchSpace":
        """The space of a TOML ``file`` (optional), then ``NAME=SPEC`` strings over it."""
        params = dict(read_space_file(file)) if file else {}
        for spec in specs:
            name, sep, text = spec.partition("=")
            if not sep:
                raise SpaceError(f"{spec!r} is not NAME=SPEC (like lr=0.001..1)")
            param = parse_spec(name, text)
            params[param.name] = param
        return cls(params)

    @property
    def searched(self) -> list:
        """The parameters that vary (ranges, or two or more choices)."""
        return [p for p in self.params.values() if not p.is_fixed]

    def fixed(self) -> dict:
        """{name: value} of the parameters that do not vary."""
        return {p.name: p.choices[0] for p in self.params.values() if p.is_fixed}

    def describe(self) -> dict:
        """The JSON-able form stored with the study."""
        return {name: param.describe() for name, param in self.params.items()}

    def text(self) -> str:
        """One line: ``lr=0.01..1 batch_size=32,64 ...``."""
        return " ".join(f"{name}={param.text()}" for name, param in self.params.items())

    def grid(self) -> dict:
        """{name: [choices]} of the searched parameters, for Optuna's grid sampler."""
        ranges = [p.name for p in self.searched if p.is_range]
        if ranges:
            raise SpaceError(f"--sampler grid needs choices, not ranges, for {', '.join(ranges)} "
                             "(like lr=0.01,0.1,1)")
        return {p.name: [value_text(c) if p.name == "layers" else c for c in p.choices]
                for p in self.searched}

    def grid_size(self) -> int:
        return math.prod(len(choices) for choices in self.grid().values())

    def suggest(self, trial) -> dict:
        """One point of the space from an Optuna ``trial``: {name: value} for `RunConfig`."""
        point = {}
        for param in self.params.values():
            if param.is_fixed:
                point[param.name] = param.choices[0]
            elif param.is_range and isinstance(param.low, float):
                point[param.name] = trial.suggest_float(param.name, param.low, param.high,
                                                        log=param.log)
            elif param.is_range:
                point[param.name] = trial.suggest_int(param.name, param.low, param.high,
                                                      log=param.log)
            elif param.name == "layers":
                text = trial.suggest_categorical("layers", [value_text(c) for c in param.choices])
                point["layers"] = tuple(int(size) for size in text.split(","))
            else:
                point[param.name] = trial.suggest_categorical(param.name, list(param.choices))
        return point


def read_space_file(path) -> dict:
    """{name: Param} from a TOML file of ``name = spec`` lines (see the README)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = require("tomli", "sweep", "reading a --space file")
    try:
        table = tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise SpaceError(f"--space {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise SpaceError(f"--space {path} is not valid TOML: {err}") from None
    if set(table) == {"space"} and isinstance(table["space"], dict):
        table = table["space"]
    params = {}
    for name, value in table.items():
        try:
            param = parse_value(name, value)
        except SpaceError as err:
            raise SpaceError(f"--space {path}: {err}") from None
        params[param.name] = param
    return params
