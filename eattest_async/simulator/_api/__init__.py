"""The handlers of the simulated API, one module per resource; importing this package
registers every route in ``_http.ROUTES``."""

from . import account, admin, documents, dossiers, processes, requirements, thirdparties

__all__ = [
    "account",
    "admin",
    "documents",
    "dossiers",
    "processes",
    "requirements",
    "thirdparties",
]
