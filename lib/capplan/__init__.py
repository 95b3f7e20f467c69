"""capplan: capacity-planning notebooks for web services on PostgreSQL and Redis.

The public surface is small; everything else is reached through its module
(``capplan.models.usl``, ``capplan.collect``, ...).  Nothing happens at import time.
"""

from capplan.errors import (CapplanError, ConfigError, DataContractError, FitError,
                            InsufficientData, OutputError, ParseError, RunError, SourceUnavailable,
                            StoreError)
from capplan.core.frame import make_frame, validate_frame

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "CapplanError",
    "ConfigError",
    "DataContractError",
    "FitError",
    "InsufficientData",
    "OutputError",
    "ParseError",
    "RunError",
    "SourceUnavailable",
    "StoreError",
    "make_frame",
    "validate_frame",
]
