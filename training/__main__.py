"""`python -m training` is `python -m training.train`."""

import sys

from .cli import interrupt_in_one_line, quiet_tensorflow

quiet_tensorflow()
interrupt_in_one_line("before training started; nothing was saved")

from .train import main  # noqa: E402

sys.exit(main())
