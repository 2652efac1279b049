"""The embedded (Tantivy) backend's former import path, kept for callers: the code is the package
`modelport.index.embedded`."""

from modelport.index.embedded import *  # noqa: F403
from modelport.index.embedded import __all__  # noqa: F401
