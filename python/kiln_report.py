"""kiln's report protocol for Python components (docs/command-components.md).

A component file's command reports metrics, progress, output parameters and
log lines by writing lines to the file named by $KILN_REPORT. This module
writes those lines for you; it needs nothing but the standard library, and
kiln puts its directory on PYTHONPATH for every command, so

    import kiln_report as kiln

    kiln.metric("loss", 0.42, step=3)
    kiln.progress(0.5, "half way")          # or kiln.progress(5, "epoch 5", total=10)
    kiln.output("accuracy", 0.97)           # a declared output parameter
    kiln.log("warning", "few rows left")    # or kiln.warning("few rows left")
    lr = kiln.param("lr", float)            # $KILN_PARAM_lr, as its type
    data = kiln.input_dir("data")           # $KILN_INPUT_data

works in any Python script kiln runs. Outside kiln (no $KILN_REPORT) the
lines go to stderr, so the same script still runs by hand.

Each call writes one whole line and flushes it, so kiln sees it at once.
Calls are thread-safe. A value the protocol cannot carry (a name with a
blank, a metric that is not a finite number, a string output holding a line
break) raises ValueError rather than sending a line kiln would refuse.
"""

import json
import math
import os
import sys
import threading

__all__ = [
    "metric", "progress", "output", "log", "debug", "info", "warning", "error",
    "param", "input_dir", "output_dir", "temp_dir", "checkpoint_dir", "component_dir",
]

_LEVELS = ("debug", "info", "warning", "error")
_lock = threading.Lock()
_stream = None


def _report():
    """The report stream: $KILN_REPORT (line-buffered), else stderr."""
    global _stream
    if _stream is None:
        path = os.environ.get("KILN_REPORT")
        _stream = open(path, "a", buffering=1, encoding="utf-8") if path else sys.stderr
    return _stream


def _send(line):
    with _lock:
        stream = _report()
        stream.write(line + "\n")
        stream.flush()


def _word(kind, name):
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"a {kind} name must be one word without blanks, not {name!r}")
    return name


def _one_line(text):
    """A message on one line: line breaks become blanks."""
    return " ".join(str(text).splitlines())


def metric(name, value, step=None):
    """Reports metric NAME = VALUE at STEP (a whole number >= 0; default: the previous step + 1)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"metric {name!r} must be a finite number, not {value}")
    line = f"metric {_word('metric', name)} {value!r}"
    if step is not None:
        if isinstance(step, bool) or int(step) != step or step < 0:
            raise ValueError(f"metric {name!r}: step must be a whole number >= 0, not {step!r}")
        line += f" {int(step)}"
    _send(line)


def progress(done, message="", total=None):
    """Reports progress: a fraction from 0 to 1, or DONE of TOTAL."""
    fraction = float(done) / float(total) if total is not None else float(done)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"progress must be from 0 to 1, not {fraction}")
    message = _one_line(message)
    _send(f"progress {fraction!r}" + (f" {message}" if message else ""))


def output(name, value):
    """Reports the output parameter NAME: a str as it is, anything else as JSON."""
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise ValueError(f"output {name!r}: a string output cannot hold a line break")
        text = value
    else:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    _send(f"output {_word('output parameter', name)} {text}")


def log(level, message):
    """A line in the step's log at LEVEL (debug, info, warning or error)."""
    if level not in _LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}, not {level!r}")
    _send(f"log {level} {_one_line(message)}")


def debug(message):
    log("debug", message)


def info(message):
    log("info", message)


def warning(message):
    log("warning", message)


def error(message):
    log("error", message)


def param(name, kind=str, default=None):
    """The parameter NAME ($KILN_PARAM_NAME): a str as kiln sent it, else parsed as KIND
    (int, float, bool, or json for lists and objects). DEFAULT when it is not set."""
    text = os.environ.get("KILN_PARAM_" + name)
    if text is None:
        if default is None:
            raise KeyError(f"no parameter {name!r} (KILN_PARAM_{name} is not set)")
        return default
    if kind is str:
        return text
    value = json.loads(text)
    if kind is json:
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"parameter {name!r} is not a bool: {text}")
        return value
    return kind(value)


def _directory(variable, what):
    value = os.environ.get(variable)
    if value is None:
        raise KeyError(f"no {what} ({variable} is not set: is this running under kiln?)")
    return value


def input_dir(name):
    """The directory of input artifact NAME ("" for an optional input not wired)."""
    return _directory("KILN_INPUT_" + name, f"input {name!r}")


def output_dir(name):
    """The (empty) directory to fill for output artifact NAME."""
    return _directory("KILN_OUTPUT_" + name, f"output {name!r}")


def temp_dir():
    return _directory("KILN_TEMP_DIR", "temporary directory")


def checkpoint_dir():
    """A directory kept across retries of the step."""
    return _directory("KILN_CHECKPOINT_DIR", "checkpoint directory")


def component_dir():
    """The component file's directory (where its scripts are)."""
    return _directory("KILN_COMPONENT_DIR", "component directory")
