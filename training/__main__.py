"""`python -m training` is `python -m training.train`; `command` is also the `proverbs-train` command
(pyproject.toml)."""

import sys

from .cli import fail, interrupt_in_one_line, missing_dependency, quiet_tensorflow


def command() -> int:
    quiet_tensorflow()
    interrupt_in_one_line("before training started; nothing was saved")
    try:
        from .train import main
    except ModuleNotFoundError as e:  # this Python lacks training's dependencies: say where to get them
        line = missing_dependency(e)
        if line is None:
            raise
        return fail(line, 1)
    return main()


if __name__ == "__main__":
    sys.exit(command())
