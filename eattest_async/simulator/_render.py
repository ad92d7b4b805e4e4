"""Rendering the generated data as JSON, in one of two dialects.

``spec``: exactly the v1.1 OpenAPI schemas (``../shared/spec``): an object where the
schema says object, ``YYYY-MM-DD`` where it says ``format: date``, RFC 3339 date-times
with an offset where it says ``date-time``, no ``null`` (no field is nullable: an absent
value is an absent key), ``pageSize`` for the page size, only the declared fields, files
as ``application/octet-stream``.

``captured``: what the real service was captured sending (the docs' ``c-*`` examples and
the v1.3 reference): ``/account`` content as a list, naive datetimes with 2, 3 or 6
fractional digits where the spec says date, nulls, ``size``, the v1.3 list items and
extras (``isMonitored``, ``isComplete``, ``active``...). Documents come in the v1.1 shape
in both dialects unless ``FaultPlan.document_shape = "v1.3"`` (``documentName``,
``evidences``, ``metadata``, ``formdata``), as the EDGE hosts answer.

Data generation (``_data``) knows nothing of either; this module is the only place that
decides how a value is written.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from ._data import DataSet, Process, RequirementDef, Thirdparty, format_datetime
from ._http import messages

Dialect = Literal["spec", "captured"]
DocumentShape = Literal["v1.1", "v1.3"]
DIALECTS: tuple[Dialect, ...] = ("spec", "captured")

__all__ = ["DIALECTS", "Dialect", "DocumentShape", "Renderer"]

_ACCOUNT_CREATED = dt.datetime(2015, 4, 2, 10, 56, 7, 736000)
_SUBSCRIBED = dt.datetime(2019, 4, 29, 13, 20, 2, 102973)


def _drop_none(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


class Renderer:
    """Turns records into the JSON of one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
        self.dialect = dialect
        self.spec = dialect == "spec"
        self.size_key = "pageSize" if self.spec else "size"

    @staticmethod
    def document_shape(override: DocumentShape | None) -> DocumentShape:
        """v1.1 documents unless asked otherwise (``FaultPlan.document_shape``): the spec's,
        and the shape of the product documentation's captured dossier."""
        return "v1.1" if override is None else override

    # -- scalars ------------------------------------------------------------------------

    def date(self, value: dt.datetime | dt.date | None, digits: int = 3) -> str | None:
        """A ``format: date`` field: a date in the spec, a naive datetime as captured."""
        if value is None:
            return None
        if self.spec or not isinstance(value, dt.datetime):
            return (value.date() if isinstance(value, dt.datetime) else value).isoformat()
        return format_datetime(value, digits)

    def datetime(self, value: dt.datetime | None, digits: int = 3) -> str | None:
        """A ``format: date-time`` field: RFC 3339 with an offset in the spec."""
        if value is None:
            return None
        if self.spec:
            return value.isoformat(timespec="milliseconds") + "Z"
        return format_datetime(value, digits)

    def record(self, record: dict[str, Any]) -> dict[str, Any]:
        """No nulls in the spec (nothing is nullable there)."""
        return _drop_none(record) if self.spec else record

    # -- envelopes ------------------------------------------------------------------------

    messages = staticmethod(messages)

    def page(self, content: list[Any], page: int, size: int, total: int) -> dict[str, Any]:
        return {
            "content": content,
            "messages": self.messages(),
            "page": page,
            self.size_key: size,
            "totalElements": total,
        }

    def refusal(self, errors: list[tuple[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": self.messages(errors)}
        if not self.spec:
            body["content"] = None
        return body

    def action(self, content: dict[str, Any], info: str) -> dict[str, Any]:
        """An update/stop/reactivate answer: the v1.1 schema has messages only."""
        body: dict[str, Any] = {"messages": self.messages(info=[info])}
        if not self.spec:
            body["content"] = content
        return body

    # -- account ----------------------------------------------------------------------------

    def account(self, data: DataSet) -> Any:
        account = {
            "id": data.account_id,
            "creation": self.datetime(_ACCOUNT_CREATED),
            "account": f"CPTDO{data.account_id:017X}",
            "name": "Compte Simulateur",
            "company": "Simulateur e-Attestations",
            "maxDossiers": max(10, data.base_dossiers * 2),
            "subscriptionDate": self.datetime(_SUBSCRIBED, 6),
            "subscriptionStatus": None if self.spec else "ACTIVE",  # v1.3 only
            "subscriptions": [
                self.record(
                    {
                        "accountId": data.account_id,
                        "key": "APIEDGE",
                        "endSubscriptionDate": None,
                        "startSubscriptionDate": self.datetime(_SUBSCRIBED, 6),
                        "status": "ACTIVE",
                    }
                )
            ],
        }
        # An object in the spec; a list in real captures and the Postman collection.
        return self.record(account) if self.spec else [account]

    def statistics(self, data: DataSet) -> dict[str, Any]:
        total = data.dossier_count()
        tps = data.thirdparty_count()
        counts = {
            "numberOfThirdparties": tps,
            "numberOfSubscribedThirdparties": tps * 4 // 5,
            "numberOfCompleteThirdparties": tps * 3 // 5,
            "numberOfDossiers": total,
            "numberOfCompleteDossiers": total * 3 // 5,
        }
        content = {**counts, "listIndicatorsStatistics": [{"indicatorCode": "I001", **counts}]}
        if not self.spec:
            content["accountId"] = data.account_id  # v1.3
        return content

    # -- third parties ----------------------------------------------------------------------

    _REPRESENTATION = (  # what the v1.3 list item adds to the identification (captured)
        "siren",
        "siret",
        "tva",
        "name",
        "dateCreation",
        "legalCategoryLabel",
        "legalCategoryCode",
        "acronym",
        "activityLabel",
        "activityCode",
        "ceo",
        "capital",
        "capitalCurrency",
        "turnover",
        "turnoverCurrency",
        "lastBalanceSheetDate",
        "workforce",
        "addressCity",
        "addressPostCode",
        "addressCountryCode",
    )

    def thirdparty_item(self, tp: Thirdparty) -> dict[str, Any]:
        identification = {
            "thirdpartyId": tp.thirdparty_id,
            "companyIdType": tp.company_id_type,
            "companyIdValue": tp.company_id_value,
            "thirdpartyCode": tp.code,
        }
        if self.spec:
            return identification
        details = self._details(tp)
        details["dateCreation"] = details["datecreation"]
        return {**identification, **{k: details[k] for k in self._REPRESENTATION}}

    def _details(self, tp: Thirdparty) -> dict[str, Any]:
        details = tp.details()
        for name in ("subscriptionDate", "stateLastChangeDate", "datecreation"):
            details[name] = self.date(details[name])
        details["lastBalanceSheetDate"] = self.date(details["lastBalanceSheetDate"])
        return details

    def thirdparty(self, tp: Thirdparty, account_id: int) -> dict[str, Any]:
        details = {"accountId": account_id, **self._details(tp)}
        if self.spec:
            return _drop_none(details)
        text = {True: "true", False: "false"}
        details.update(  # the v1.3 additions
            isMonitored=text[tp.monitored],
            isOutOfBusiness=text[tp.out_of_business],
            isRegistered=text[tp.subscription_state],
            isComplete=text[tp.global_state],
            active=not tp.out_of_business,
            isActive=text[not tp.out_of_business],
        )
        return details

    # -- dossiers, documents, files -----------------------------------------------------------

    def dossier(self, data: DataSet, dossier_id: int, shape: DocumentShape) -> dict[str, Any]:
        record = data.dossier_record(dossier_id)
        digits = (2, 3, 6)[dossier_id % 3]
        changed = record["changed"]
        out: dict[str, Any] = {
            "dossierId": dossier_id,
            "accountId": data.account_id,
            "thirdpartyId": record["thirdpartyId"],
            "companyIdType": record["companyIdType"],
            "companyIdValue": record["companyIdValue"],
            "thirdpartyCode": record["thirdpartyCode"],
            "companyCountryCode": record["companyCountryCode"],
            "monitored": record["monitored"],
            "dossierReference": record["dossierReference"],
            "description": record["description"],
            "purchasingCategory": record["purchasingCategory"],
            "startingDate": self.date(record["startingDate"]),
            "expirationDate": self.date(record["expirationDate"]),
            "stoppingDate": self.date(record["stoppingDate"]),
            "stoppingReason": record["stoppingReason"],
            "state": record["state"],
            "stateLastChangeDate": self.date(changed, digits),
            "indicators": [
                self.record(
                    {
                        "indicatorCode": "I001",
                        "state": record["dutyOfCare"],
                        "lastChangeDate": self.date(changed, digits),
                    }
                )
            ],
            "documents": [self.document(d, shape) for d in record["documents"]],
        }
        if self.spec:
            return _drop_none(out)
        out.update(
            siren=record["siren"],
            siret=record["siret"],
            tva=record["tva"],
            isMonitored=str(record["monitored"]).lower(),
            isComplete=str(record["state"]).lower(),
        )
        return out

    def file(self, entry: dict[str, Any], shape: DocumentShape) -> dict[str, Any]:
        record: dict[str, Any] = {
            "uploadDate": self.date(entry["uploaded"], 2),
            "fileUUID": entry["uuid"],
            "fileCreation": self.date(entry["uploaded"], 3),
            "fileSize": entry["size"],
            "expirationDate": self.date(entry["expires"], 3),
        }
        if shape == "v1.3":
            return {
                "id": entry["file_id"],
                **record,
                "metadata": {
                    "verified": "true",
                    "date_certification": entry["uploaded"].strftime("%d/%m/%Y"),
                },
                "formdata": [],
            }
        return {"fileId": entry["file_id"], **record}

    def document(self, document: dict[str, Any], shape: DocumentShape) -> dict[str, Any]:
        requirement: RequirementDef = document["requirement"]
        common = {
            "documentId": document["document_id"],
            "documentCode": requirement.code,
            "requestDate": self.date(document["requested"], 3),
            "present": document["present"],
        }
        if shape == "v1.3":
            return {
                **common,
                "documentName": requirement.name,
                "documentNameEn": requirement.description_en,
                "isPresent": str(document["present"]).lower(),
                "evidences": [self.file(f, shape) for f in document["files"]],
            }
        return {
            **common,
            "name": requirement.name,
            "listFileInformation": [self.file(f, shape) for f in document["files"]],
        }

    # -- requirements ---------------------------------------------------------------------------

    @staticmethod
    def requirement(r: RequirementDef, account_id: int) -> dict[str, Any]:
        return {
            "documentId": r.document_id,
            "accountId": account_id,
            "code": r.code,
            "name": r.name,
            "descriptionCategoryFr": r.category_fr,
            "descriptionCategoryEn": r.category_en,
            "descriptionFr": r.description_fr,
            "descriptionEn": r.description_en,
        }

    def dossier_requirement(
        self, r: RequirementDef, account_id: int, dossier_id: int
    ) -> dict[str, Any]:
        if self.spec:  # the v1.1 answer is the account's Requirement schema
            return self.requirement(r, account_id)
        return {  # as the docs capture it, plus the v1.3 ``nameEn``
            "documentId": r.document_id,
            "accountId": account_id,
            "code": r.code,
            "name": r.name,
            "nameEn": r.description_en,
            "dossierId": dossier_id,
        }

    # -- processes --------------------------------------------------------------------------------

    def process(self, process: Process, now: float) -> dict[str, Any]:
        complete = now >= process.ready_at
        success = complete and not process.errors
        errors = process.errors if complete else []
        out: dict[str, Any] = {
            "processId": process.process_id,
            "complete": complete,
            "success": success,
            "errors": [{"code": e["code"], "message": e["message"]} for e in errors]
            if self.spec
            else [  # v1.3 ErrorMessage: what was asked and why it failed
                {**e, "request": process.body.get("companyIdValue"), "reason": e["message"]}
                for e in errors
            ],
        }
        if self.spec:
            return out
        out.update(
            isComplete=str(complete).lower(),
            isSuccessful=str(success).lower(),
            creation=format_datetime(process.created, 3),
            params={k: v for k, v in process.body.items() if isinstance(v, str)},
            dossierId=process.dossier_id if success else None,
        )
        return out
