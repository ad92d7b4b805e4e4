"""Frozen attrs classes for what the API returns and accepts. No I/O happens here."""

from .account import Account, AccountStatistics, IndicatorStatistics, Subscription
from .common import Message, Messages, Page
from .dossiers import Document, Dossier, DossierUpdate, FileInfo, FormField, Indicator, NewDossier
from .processes import DossierProcess, ProcessStatus
from .requirements import Requirement
from .scans import Checkpoint, Watermark
from .thirdparties import Thirdparty, ThirdpartyDetails, ThirdpartyUser

__all__ = [
    "Account",
    "AccountStatistics",
    "Checkpoint",
    "Document",
    "Dossier",
    "DossierProcess",
    "DossierUpdate",
    "FileInfo",
    "FormField",
    "Indicator",
    "IndicatorStatistics",
    "Message",
    "Messages",
    "NewDossier",
    "Page",
    "ProcessStatus",
    "Requirement",
    "Subscription",
    "Thirdparty",
    "ThirdpartyDetails",
    "ThirdpartyUser",
    "Watermark",
]
