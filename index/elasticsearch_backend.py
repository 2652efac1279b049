"""The Elasticsearch backend's former import path, kept for callers: the code is the package
`modelport.index.elasticsearch`."""

from modelport.index.elasticsearch import *  # noqa: F403
from modelport.index.elasticsearch import __all__  # noqa: F401
