"""`python -m training` is `python -m training.train`."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .train import main  # noqa: E402

sys.exit(main())
