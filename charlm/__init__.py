"""charlm: the numpy + h5py core shared by training and the bot (no TensorFlow here)."""

from .bundle import Bundle, find_bundles, load_bundle, write_bundle
from .charset import Charset, CharsetError
from .errors import BundleError
from .generate import Request, Result, generate
from .novelty import NoveltyIndex
from .runtime import Runtime
from .sampling import Settings

__all__ = [
    "Bundle", "BundleError", "Charset", "CharsetError", "NoveltyIndex", "Request", "Result", "Runtime",
    "Settings", "find_bundles", "generate", "load_bundle", "write_bundle",
]
