"""One thin class per resource; each method is one call into the client's core."""

from .account import AccountResource
from .documents import DocumentsResource
from .dossiers import DossiersResource
from .files import FilesResource
from .processes import ProcessesResource
from .requirements import RequirementsResource
from .thirdparties import ThirdpartiesResource

__all__ = [
    "AccountResource",
    "DocumentsResource",
    "DossiersResource",
    "FilesResource",
    "ProcessesResource",
    "RequirementsResource",
    "ThirdpartiesResource",
]
