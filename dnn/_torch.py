"""Importing PyTorch with the project's error when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from core.errors import ConfigError

INSTALL_HINT = "torch is not installed: run make dnn-setup"


def require() -> ModuleType:
    """The ``torch`` module, or a one-line error telling how to install it."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None


def require_captum() -> ModuleType:
    try:
        return importlib.import_module("captum.attr")
    except ImportError:
        raise ConfigError("captum is not installed: run make dnn-setup") from None
