"""The one place that imports Apprise, so its import-time quirks are handled once.

Apprise 2.2's PGP helper imports the stdlib ``imghdr`` module, which warns with a
DeprecationWarning on Python 3.11 (removed in 3.13); under ``-W error`` that would abort plugin
loading. Importing it here, silenced, leaves it cached for Apprise.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import imghdr  # noqa: F401

import apprise
from apprise import Apprise, AppriseAsset, AppriseAttachment, AppriseConfig
from apprise.attachment.memory import AttachMemory
from apprise.common import NotifyFormat, NotifyType
from apprise.conversion import convert_between
from apprise.plugins.base import NotifyBase

__all__ = [
    "Apprise",
    "AppriseAsset",
    "AppriseAttachment",
    "AppriseConfig",
    "AttachMemory",
    "NotifyBase",
    "NotifyFormat",
    "NotifyType",
    "apprise",
    "convert_between",
]
