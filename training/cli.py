"""What the training commands share on the command line: help that shows each default once, one-line errors,
a quiet TensorFlow, and Ctrl-C as one line. Standard library only: it runs before anything heavy is imported."""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.util
import os
import signal
import sys
import tempfile


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help once: not when the help already names its default, not for
    flags (store_true/false), and not for options whose default is None (their help says what happens)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or action.default in (None, "", argparse.SUPPRESS)
            or isinstance(action.default, bool)
            or action.nargs == 0
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (the usage is one `--help` away)."""

    def error(self, message):  # noqa: D401 - argparse's name
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def ranged(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `kind(text)` within [low, high] (or open ends); the error says the range."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            if low is not None and high is not None:
                rng = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
                raise argparse.ArgumentTypeError(f"{text} is out of range: it must be in {rng}")
            if low is not None:
                raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {'above' if low_open else 'at least'} {low}")
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {'below' if high_open else 'at most'} {high}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value" messages
    return parse


def quiet_tensorflow() -> None:
    """No TensorFlow/absl start-up lines (CPU feature notes, absl's pre-init warning) on a normal run.

    Call before TensorFlow is imported; TF_CPP_MIN_LOG_LEVEL=0 in the environment brings them back. Why more
    than the variable: TensorFlow 2.21 as installed here (tensorflow-cpu 2.21.0 wheels) writes "WARNING: All
    log messages before absl::InitializeLog() ..." and an "I0000 ... oneDNN custom operations are on" line to
    the C-level stderr while `import tensorflow` loads its libraries, even with TF_CPP_MIN_LOG_LEVEL=3. So
    the first `import tensorflow` (directly, or through keras) runs with file descriptor 2 sent to a
    temporary file, which is shown only if the import fails."""
    if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") == "0" or "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as the other finders do, and runs its package's code with fd 2 captured (once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and no recursion: the real finders answer from here on
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                with _c_stderr_captured():
                    run(module)

            spec.loader.exec_module = exec_module
        return spec


@contextlib.contextmanager
def _c_stderr_captured():
    """Send file descriptor 2 (what C++ libraries write to) to a temporary file; replay it if the body raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode("utf-8", "replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def fail(message, status: int = 2) -> int:
    """Print `error: message` (one line) to stderr; -> the exit status, for `return fail(...)`."""
    print(f"error: {message}", file=sys.stderr)
    return status


OWN = ("training", "charlm", "bot")  # the project's packages: a missing one of these is a broken checkout


def missing_dependency(e: ModuleNotFoundError) -> str | None:
    """The one line for an import that failed because this Python lacks training's dependencies, else None."""
    name = e.name or ""
    if not name or name.partition(".")[0] in OWN:
        return None
    return (f"this Python ({sys.executable}) lacks training's dependencies (no module {name!r}): ./scripts/test.sh "
            "sets up .venv with them; then run .venv/bin/python -m training ... (or pip install -e '.[train]' here)")


def missing_dependency_in_one_line() -> None:
    """From here on, a ModuleNotFoundError for a dependency ends the command with one line saying which script
    sets up an environment that has it, instead of a traceback (e.g. `python3 -m training` with the system
    Python, which has no h5py or TensorFlow)."""
    hook = sys.excepthook

    def excepthook(kind, value, tb):
        line = missing_dependency(value) if isinstance(value, ModuleNotFoundError) else None
        if line is None:
            hook(kind, value, tb)
        else:
            sys.stderr.write(f"error: {line}\n")

    sys.excepthook = excepthook


def interrupt_in_one_line(what: str) -> None:
    """Until a command installs its own handler, Ctrl-C prints one line and exits 130, wherever it lands
    (even inside `import tensorflow`, whose KeyboardInterrupt would print a long traceback)."""

    def handler(signum, frame):
        sys.stdout.flush()
        sys.stderr.write(f"interrupted {what}\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, handler)
