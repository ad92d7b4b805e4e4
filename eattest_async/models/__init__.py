"""Frozen attrs classes for what the API returns and accepts. No I/O happens here."""

from .account import Account, AccountStatistics, IndicatorStatistics, Subscription
from .common import Items, Message, Messages, Page
from .dossiers import Document, Dossier, DossierUpdate, FileInfo, FormField, Indicator, NewDossier
from .processes import DossierProcess, ProcessStatus
from .requirements import Requirement
from .scans import Checkpoint, Watermark
from .thirdparties import Principal, Thirdparty, ThirdpartyDetails, ThirdpartyUser

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
    "Items",
    "Message",
    "Messages",
    "NewDossier",
    "Page",
    "Principal",
    "ProcessStatus",
    "Requirement",
    "Subscription",
    "Thirdparty",
    "ThirdpartyDetails",
    "ThirdpartyUser",
    "Watermark",
]
