"""Deterministic, realistic data generated on demand from a seed.

Nothing is built ahead: third party ``j`` and dossier ``i`` are pure functions of
``(seed, j)`` and ``(seed, i)``; identifiers are invertible (a SIREN, SIRET, VAT number or
third-party code leads straight back to ``j``), so filters never scan a million records.
Mutations (creation, update, stop, deletion, drift) live in a small overlay on top.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from .._validation import fr_vat_key, luhn_check_digit

DOSSIER_ID_BASE = 800_000
THIRDPARTY_ID_BASE = 10_000

# SIREN bodies cover 10,000,000..98,999,999 so that prefixes 990-999 never occur: the
# simulator reserves them for scripted creation outcomes (see RESERVED_SIREN_PREFIXES).
_SIREN_SPAN = 89_000_000
_SIREN_STEP = 73_939_133  # coprime with the span, so j -> body is a bijection
_SIREN_STEP_INV = pow(_SIREN_STEP, -1, _SIREN_SPAN)

RESERVED_SIREN_PREFIXES = {
    "999": ("E102", "The establishment does not exist"),
    "998": ("E103", "The establishment is closed"),
    "997": ("E101", "Error when qualifying the establishment"),
    "996": ("E104", "Too many third parties for this criteria"),
}

_PREFIXES = (
    "Société",
    "Groupe",
    "Ateliers",
    "Établissements",
    "Compagnie",
    "Cabinet",
    "Maison",
    "Laboratoires",
    "Transports",
    "Entreprise",
)
_NAMES = (
    "Dupont",
    "Martin",
    "Bernard",
    "Lefèvre",
    "Moreau",
    "Laurent",
    "Garnier",
    "Rousseau",
    "Fontaine",
    "Chevalier",
    "Girard",
    "Bonnet",
    "Mercier",
    "Blanc",
    "Guérin",
    "Faure",
    "Roux",
    "Vincent",
    "Lambert",
    "Dubois",
    "Perrin",
    "Morel",
    "Gauthier",
    "Clément",
)
_TRADES = (
    ("6201Z", "Programmation informatique", "Informatique"),
    ("4120A", "Construction de maisons individuelles", "Bâtiment"),
    ("8121Z", "Nettoyage courant des bâtiments", "Nettoyage"),
    ("4941A", "Transports routiers de fret interurbains", "Logistique"),
    ("7022Z", "Conseil pour les affaires et autres conseils de gestion", "Conseil"),
    ("4321A", "Travaux d'installation électrique dans tous locaux", "Électricité"),
    ("8010Z", "Activités de sécurité privée", "Sécurité"),
    ("5610A", "Restauration traditionnelle", "Restauration"),
    ("4332A", "Travaux de menuiserie bois et PVC", "Menuiserie"),
    ("5829C", "Edition de logiciels applicatifs", "Logiciels"),
)
_FORMS = (
    ("5710", "Société par actions simplifiée", "SAS"),
    ("5499", "Société à responsabilité limitée (sans autre indication)", "SARL"),
    ("5599", "SA à conseil d'administration (s.a.i.)", "SA"),
    ("5498", "SARL unipersonnelle", "EURL"),
    ("5720", "Société par actions simplifiée à associé unique", "SASU"),
)
_CITIES = (
    ("PARIS", "75008"),
    ("PARIS", "75011"),
    ("LYON", "69003"),
    ("MARSEILLE", "13008"),
    ("TOULOUSE", "31000"),
    ("NANTES", "44000"),
    ("LILLE", "59000"),
    ("BORDEAUX", "33000"),
    ("STRASBOURG", "67000"),
    ("RENNES", "35000"),
    ("MASSY", "91300"),
    ("NICE", "06000"),
    ("GRENOBLE", "38000"),
    ("DIJON", "21000"),
    ("MONTPELLIER", "34000"),
)
_STREETS = (
    "rue de la Paix",
    "avenue Jean Jaurès",
    "boulevard Voltaire",
    "rue Victor Hugo",
    "rue du Général de Gaulle",
    "place de la République",
    "chemin des Femmes",
    "rue Pasteur",
    "avenue de la Gare",
    "rue des Écoles",
)
_FIRST = (
    "Jean",
    "Marie",
    "Pierre",
    "Sophie",
    "Nicolas",
    "Isabelle",
    "Julien",
    "Camille",
    "Thomas",
    "Claire",
    "Antoine",
    "Émilie",
)
_FOREIGN = (
    ("BE", "BE0{:09d}"),
    ("DE", "DE{:09d}"),
    ("LU", "LU{:08d}"),
    ("ES", "ESB{:08d}"),
    ("IT", "IT{:011d}"),
)


# Third parties that the documentation and the official Postman collection look up.
DOCUMENTED_THIRDPARTIES = (
    ("E-ATTESTATIONS.COM", "50382936800045", "123", "MASSY", "91300"),
    ("JAM CONSEIL", "38071669600063", None, "PARIS", "75008"),
)


@attrs.frozen
class RequirementDef:
    document_id: int
    code: str
    name: str
    category_fr: str
    category_en: str
    description_fr: str
    description_en: str
    active: bool = True


REQUIREMENTS: tuple[RequirementDef, ...] = (
    RequirementDef(
        1,
        "ATT_VIGI",
        "Attestation de vigilance URSSAF",
        "REGULARITE SOCIALE",
        "Social regularity",
        "Attestation de vigilance URSSAF",
        "URSSAF certificate of vigilance",
    ),
    RequirementDef(
        2,
        "JUSTIF_IMM",
        "Justificatif d'immatriculation",
        "REGULARITE JURIDIQUE",
        "Legal regularity",
        "Extrait Kbis ou justificatif d'immatriculation",
        "Certificate of incorporation",
    ),
    RequirementDef(
        5,
        "LST_SAL_ETR",
        "Autorisationsdetravail",
        "REGULARITE SOCIALE",
        "Social regularity",
        "Liste nominative des salariés étrangers soumis à autorisation de travail",
        "List of names of posted workers subjected to work permit",
    ),
    RequirementDef(
        7,
        "ATT_FISC",
        "Attestation de régularité fiscale",
        "REGULARITE FISCALE",
        "Tax regularity",
        "Attestation de régularité fiscale",
        "Tax compliance certificate",
    ),
    RequirementDef(
        9,
        "ASS_RCP",
        "Attestation d'assurance RC professionnelle",
        "ASSURANCES",
        "Insurance",
        "Attestation d'assurance responsabilité civile professionnelle",
        "Professional liability insurance certificate",
    ),
    RequirementDef(
        11,
        "ASLNC",
        "Attestation sur l'honneur non cotisant",
        "REGULARITE SOCIALE",
        "Social regularity",
        "Attestation sur l'honneur non cotisant",
        "Sworn statement of non-contribution",
    ),
    RequirementDef(
        13,
        "CATC",
        "Certificat AGEFIPH",
        "REGULARITE SOCIALE",
        "Social regularity",
        "Conformité emploi des travailleurs handicapés",
        "Disabled workers employment compliance",
    ),
    RequirementDef(
        15,
        "RIB",
        "Relevé d'identité bancaire",
        "DOCUMENTS FINANCIERS",
        "Financial documents",
        "Relevé d'identité bancaire",
        "Bank details",
    ),
    RequirementDef(
        17,
        "ISO9001",
        "Certificat ISO 9001",
        "CERTIFICATIONS",
        "Certifications",
        "Certificat ISO 9001",
        "ISO 9001 certificate",
    ),
    RequirementDef(
        494,
        "NIT0RSS",
        "NOTE-INSTRUCTIONS-TECHNIQUES-003-2012-Renseignements-surfaces-sinistrees",
        "DOCUMENTS CONTRACTUELS",
        "Contractual documents",
        "NOTE INSTRUCTIONS TECHNIQUES 003-2012 Renseignements surfaces sinistrées",
        "NOTE INSTRUCTIONS TECHNIQUES 003-2012 Renseignements surfaces sinistrées",
        active=False,
    ),
)
REQUIREMENTS_BY_CODE = {r.code: r for r in REQUIREMENTS}
# The documents of the duty of care ("obligation de vigilance"), what indicator I001 covers.
DUTY_OF_CARE = ("ATT_VIGI", "JUSTIF_IMM", "LST_SAL_ETR")
_OTHER_DOCS = tuple(r for r in REQUIREMENTS if r.active and r.code not in DUTY_OF_CARE)

_EPOCH = dt.datetime(2018, 1, 1, 8, 0, 0)


_MASK = (1 << 64) - 1


def _h(seed: int, *parts: object) -> int:
    """A stable 64-bit hash (not Python's salted hash()), for rarely computed values."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int(struct.unpack("<Q", digest)[0])


def _mix(seed: int, index: int, salt: int) -> int:
    """splitmix64 of (seed, index, salt): cheap enough to run a million times per filter."""
    x = (index * 0x9E3779B97F4A7C15 + seed * 0xD1B54A32D192ED03 + salt * 0x8CB92BA72F3D8DD7) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _stamp(seed: int, key: int, salt: int = 7, days_span: int = 2400) -> dt.datetime:
    value = _mix(seed, key, salt)
    return _EPOCH + dt.timedelta(
        days=value % days_span,
        seconds=(value >> 16) % 86_400,
        microseconds=(value >> 40) % 1_000_000,
    )


def _ascii(text: str) -> str:
    """Accents folded away (é -> e), as mail systems want."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _as_date(value: object) -> dt.date | None:
    """Dates kept by mutations arrive as ISO text (from request bodies) or dates."""
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10]) if value else None


def format_datetime(stamp: dt.datetime, digits: int) -> str:
    """Naive ISO datetime with 2, 3 or 6 fractional digits, as the real service varies."""
    return stamp.isoformat(timespec="microseconds")[: 20 + digits]


_PDF_SIZES: dict[tuple[int, str], int] = {}


def pdf_size(file_id: int, title: str) -> int:
    """len(pdf_bytes(...)) without building it: only the number of digits of the id matters."""
    key = (len(str(file_id)), title)
    size = _PDF_SIZES.get(key)
    if size is None:
        size = _PDF_SIZES[key] = len(pdf_bytes(file_id, title))
    return size


def pdf_bytes(file_id: int, title: str) -> bytes:
    """A small but well-formed one-page PDF naming the file."""
    text = f"e-Attestations simulator - {title} - file {file_id}".encode("latin-1", "replace")
    stream = b"BT /F1 12 Tf 40 800 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


@attrs.define
class Thirdparty:
    index: int
    thirdparty_id: int
    code: str
    company_id_type: str
    company_id_value: str
    country: str
    siren: str | None
    siret: str | None
    tva: str
    name: str
    monitored: bool
    global_state: bool
    subscription_state: bool
    out_of_business: bool
    seed: int

    def details(self) -> dict[str, Any]:
        """Every detail of the third party under its wire name, values as Python objects."""
        h = _mix(self.seed, self.index, 17)
        naf, naf_label, _ = _TRADES[h % len(_TRADES)]
        legal_code, legal_label, _ = _FORMS[(h >> 4) % len(_FORMS)]
        city, post_code = _CITIES[(h >> 8) % len(_CITIES)]
        street = f"{1 + (h >> 12) % 180} {_STREETS[(h >> 20) % len(_STREETS)].upper()}"
        first = _FIRST[(h >> 24) % len(_FIRST)]
        last = _NAMES[(h >> 28) % len(_NAMES)]
        created = _stamp(self.seed, self.index, salt=11, days_span=9000) - dt.timedelta(days=9000)
        return {
            "thirdpartyId": self.thirdparty_id,
            "companyIdType": self.company_id_type,
            "companyIdValue": self.company_id_value,
            "thirdpartyCode": self.code,
            "monitored": self.monitored,
            "name": self.name,
            "addressStreet": street if self.country == "FR" else None,
            "addressCity": city if self.country == "FR" else None,
            "addressPostCode": post_code if self.country == "FR" else None,
            "addressCountryCode": self.country,
            "subscriptionState": self.subscription_state,
            "subscriptionDate": created.date() if self.subscription_state else None,
            "subscriptionKey": f"SUB{h % 10**8:08d}" if self.subscription_state else None,
            "outOfBusiness": self.out_of_business,
            "stateLastChangeDate": _stamp(self.seed, self.index, salt=13).date(),
            "thirdpartyGlobalState": self.global_state,
            "acronym": None,
            "activityCode": naf,
            "activityLabel": naf_label,
            "capital": [1000, 5000, 10000, 37000, 100000, 3642000][(h >> 32) % 6],
            "capitalCurrency": "EUR",
            "ceo": f"{last.upper()} {first}",
            "datecreation": created.date(),
            "lastBalanceSheetDate": dt.date(2017 + (h >> 36) % 7, 12, 31),
            "legalCategoryCode": legal_code,
            "legalCategoryLabel": legal_label,
            "siren": self.siren,
            "siret": self.siret,
            "turnover": float((h >> 40) % 50_000_000),
            "turnoverCurrency": "EUR",
            "tva": self.tva,
            "workforce": int((h >> 44) % 500),
            "thirdpartyUsers": [
                {
                    "firstname": first,
                    "lastname": last,
                    "email": _ascii(f"{first}.{last}@{self.code}.example.com".lower()),
                    "phone": f"+33 1 {h % 100:02d} {(h >> 8) % 100:02d} {(h >> 16) % 100:02d} "
                    f"{(h >> 24) % 100:02d}",
                }
            ],
        }


@attrs.define
class Process:
    process_id: str
    created: dt.datetime
    ready_at: float
    body: dict[str, Any]
    errors: list[dict[str, str]]
    dossier_id: int | None = None


class DataSet:
    """Third parties and dossiers of one simulated account."""

    def __init__(self, *, seed: int, dossiers: int, thirdparties: int | None, account_id: int):
        if dossiers < 0:
            raise ValueError("dossiers must be >= 0")
        self.seed = seed
        self.account_id = account_id
        self.base_dossiers = dossiers
        self.base_thirdparties = (
            thirdparties if thirdparties is not None else max(1, (dossiers * 4) // 5)
        )
        if self.base_thirdparties < 1:
            raise ValueError("thirdparties must be >= 1")
        self._siren_offset = _h(seed, "siren") % _SIREN_SPAN
        self.version = 0
        self._deleted: set[int] = set()
        self._inserted: dict[int, dict[str, Any]] = {}  # dossier id -> full record
        self._insert_keys: dict[int, float] = {}  # dossier id -> sort position
        self._overrides: dict[int, dict[str, Any]] = {}
        self._extra_thirdparties: list[Thirdparty] = []
        self._thirdparty_cache: dict[int, Thirdparty] = {}
        for documented in DOCUMENTED_THIRDPARTIES:  # the docs' own examples can be found too
            self._add_documented(*documented)
        self._next_dossier_id = DOSSIER_ID_BASE + dossiers
        self._order_cache: tuple[int, Sequence[int]] | None = None
        self._filter_cache: dict[tuple[Any, ...], tuple[int, Sequence[int]]] = {}
        self.processes: dict[str, Process] = {}
        self._next_process = 4_200_000

    # -- third parties ---------------------------------------------------------------

    def _siren_of(self, j: int) -> str:
        body = 10_000_000 + (self._siren_offset + j * _SIREN_STEP) % _SIREN_SPAN
        return f"{body:08d}" + luhn_check_digit(f"{body:08d}")

    def _index_of_siren(self, siren: str) -> int | None:
        if len(siren) != 9 or not siren.isdigit():
            return None
        body = int(siren[:8]) - 10_000_000
        if not 0 <= body < _SIREN_SPAN:
            return None
        j = ((body - self._siren_offset) * _SIREN_STEP_INV) % _SIREN_SPAN
        if j < self.base_thirdparties and self._siren_of(j) == siren:
            return j
        return None

    def thirdparty_count(self) -> int:
        return self.base_thirdparties + len(self._extra_thirdparties)

    def thirdparty(self, j: int) -> Thirdparty:
        if j >= self.base_thirdparties:
            return self._extra_thirdparties[j - self.base_thirdparties]
        cached = self._thirdparty_cache.get(j)
        if cached is None:
            if len(self._thirdparty_cache) >= 50_000:  # bounded: a million need no memory
                self._thirdparty_cache.clear()
            cached = self._thirdparty_cache[j] = self._make_thirdparty(j)
        return cached

    def _make_thirdparty(self, j: int) -> Thirdparty:
        h = _mix(self.seed, j, 19)
        foreign = h % 20 == 0
        siren = self._siren_of(j)
        _, _, trade = _TRADES[(h >> 8) % len(_TRADES)]
        _, _, form = _FORMS[(h >> 12) % len(_FORMS)]
        prefix, family = _PREFIXES[(h >> 16) % len(_PREFIXES)], _NAMES[(h >> 20) % len(_NAMES)]
        name = f"{prefix} {family} {trade} {form}"
        if foreign:
            country, pattern = _FOREIGN[(h >> 24) % len(_FOREIGN)]
            tva = pattern.format((h >> 28) % 10**8)
            siret = None
            siren_value = None
            id_type, id_value = "CIT002", tva
        else:
            country = "FR"
            nic = f"{1 + (h >> 24) % 60:04d}"
            siret = siren + nic + luhn_check_digit(siren + nic)
            siren_value = siren
            tva = "FR" + fr_vat_key(siren) + siren
            id_type, id_value = "CIT001", siret
        return Thirdparty(
            index=j,
            thirdparty_id=THIRDPARTY_ID_BASE + j,
            code=f"TP-{j:07d}",
            company_id_type=id_type,
            company_id_value=id_value,
            country=country,
            siren=siren_value,
            siret=siret,
            tva=tva,
            name=name,
            monitored=(h >> 32) % 10 != 0,
            global_state=(h >> 36) % 10 < 6,
            subscription_state=(h >> 40) % 10 < 8,
            out_of_business=(h >> 44) % 50 == 0,
            seed=self.seed,
        )

    def thirdparty_by_id(self, thirdparty_id: int) -> Thirdparty | None:
        j = thirdparty_id - THIRDPARTY_ID_BASE
        return self.thirdparty(j) if 0 <= j < self.thirdparty_count() else None

    def find_thirdparty(
        self,
        *,
        siren: str | None = None,
        siret: str | None = None,
        tva: str | None = None,
        code: str | None = None,
    ) -> Thirdparty | None:
        """The third party carrying an identifier, found by inversion rather than search."""
        for extra in self._extra_thirdparties:
            if (
                (siren and extra.siren == siren)
                or (siret and extra.siret == siret)
                or (tva and extra.tva == tva)
                or (code and extra.code == code)
            ):
                return extra
        j: int | None = None
        if siret:
            j = self._index_of_siren(siret[:9])
        elif siren:
            j = self._index_of_siren(siren)
        elif tva:
            if tva.startswith("FR"):
                j = self._index_of_siren(tva[4:])
            else:  # foreign VAT numbers are not derived from an index: a scan finds them
                return next((tp for tp in self._iter_thirdparties() if tp.tva == tva), None)
        elif code and code.startswith("TP-") and code[3:].isdigit():
            j = int(code[3:])
        if j is None or not 0 <= j < self.base_thirdparties:
            return None
        tp = self.thirdparty(j)
        if (
            (siret and tp.siret != siret)
            or (tva and tp.tva != tva)
            or (code and tp.code != code)
            or (siren and tp.siren != siren)
        ):
            return None
        return tp

    def _iter_thirdparties(self) -> Iterable[Thirdparty]:
        return (self.thirdparty(j) for j in range(self.thirdparty_count()))

    def add_thirdparty(
        self, company_id_type: str, company_id_value: str, code: str | None
    ) -> Thirdparty:
        j = self.thirdparty_count()
        siren = (
            company_id_value[:9]
            if company_id_type == "CIT001"
            else (company_id_value[4:] if company_id_value.startswith("FR") else None)
        )
        tp = Thirdparty(
            index=j,
            thirdparty_id=THIRDPARTY_ID_BASE + j,
            code=code or f"TP-{j:07d}",
            company_id_type=company_id_type,
            company_id_value=company_id_value,
            country=company_id_value[:2] if company_id_type == "CIT002" else "FR",
            siren=siren,
            siret=company_id_value if company_id_type == "CIT001" else None,
            tva=company_id_value
            if company_id_type == "CIT002"
            else "FR" + fr_vat_key(siren or "0") + (siren or ""),
            name=f"Nouveau tiers {company_id_value}",
            monitored=True,
            global_state=False,
            subscription_state=False,
            out_of_business=False,
            seed=self.seed,
        )
        self._extra_thirdparties.append(tp)
        self._bump()
        return tp

    def _add_documented(
        self, name: str, siret: str, code: str | None, city: str, post_code: str
    ) -> None:
        j = self.thirdparty_count()
        self._extra_thirdparties.append(
            Thirdparty(
                index=j,
                thirdparty_id=THIRDPARTY_ID_BASE + j,
                code=code or f"TP-{j:07d}",
                company_id_type="CIT001",
                company_id_value=siret,
                country="FR",
                siren=siret[:9],
                siret=siret,
                tva="FR" + fr_vat_key(siret[:9]) + siret[:9],
                name=name,
                monitored=True,
                global_state=True,
                subscription_state=True,
                out_of_business=False,
                seed=self.seed,
            )
        )

    def thirdparty_ids(
        self, predicate: Callable[[Thirdparty], bool] | None, key: tuple[Any, ...]
    ) -> Sequence[int]:
        """Indices of the third parties matching, cached per data version."""
        if predicate is None:
            return range(self.thirdparty_count())
        return self._cached(
            ("tp", *key),
            lambda: array("q", (tp.index for tp in self._iter_thirdparties() if predicate(tp))),
        )

    # -- dossiers --------------------------------------------------------------------

    def _bump(self) -> None:
        self.version += 1
        self._order_cache = None
        self._filter_cache.clear()

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Sequence[int]]) -> Sequence[int]:
        hit = self._filter_cache.get(key)
        if hit is not None and hit[0] == self.version:
            return hit[1]
        value = build()
        if len(self._filter_cache) > 32:
            self._filter_cache.clear()
        self._filter_cache[key] = (self.version, value)
        return value

    def dossier_count(self) -> int:
        return len(self.order())

    def order(self) -> Sequence[int]:
        """Live dossier ids in listing order."""
        if self._order_cache is not None and self._order_cache[0] == self.version:
            return self._order_cache[1]
        base_range = range(DOSSIER_ID_BASE, DOSSIER_ID_BASE + self.base_dossiers)
        base: Sequence[int]
        if self._deleted:
            base = array("q", (x for x in base_range if x not in self._deleted))
        else:
            base = base_range
        live_inserts = sorted(
            (self._insert_keys[d], d) for d in self._inserted if d not in self._deleted
        )
        result: Sequence[int]
        if live_inserts:
            merged = array("q")
            start = 0
            for key, dossier_id in live_inserts:
                position = bisect_left(base, key, lo=start)
                merged.extend(base[start:position])
                merged.append(dossier_id)
                start = position
            merged.extend(base[start:])
            result = merged
        else:
            result = base
        self._order_cache = (self.version, result)
        return result

    def exists(self, dossier_id: int) -> bool:
        if dossier_id in self._deleted:
            return False
        return dossier_id in self._inserted or (
            DOSSIER_ID_BASE <= dossier_id < DOSSIER_ID_BASE + self.base_dossiers
        )

    def field(self, dossier_id: int, name: str) -> Any:
        """One filterable field of a dossier, computed alone (filters run over a million)."""
        record = self._inserted.get(dossier_id)
        if record is not None:
            return record[name]
        override = self._overrides.get(dossier_id)
        if override is not None and name in override:
            return override[name]
        i = dossier_id - DOSSIER_ID_BASE
        if name == "tp":
            return i % self.base_thirdparties
        if name == "monitored":
            return _mix(self.seed, i, 1) % 100 < 85
        if name == "dossierReference":
            return f"DOS-{i:07d}"
        if name == "changed":
            return _stamp(self.seed, i)
        return self._base_fields(dossier_id)[name]

    def _base_fields(self, dossier_id: int) -> dict[str, Any]:
        """Every field of a dossier (overrides applied)."""
        if dossier_id in self._inserted:
            return self._inserted[dossier_id]
        i = dossier_id - DOSSIER_ID_BASE
        h = _mix(self.seed, i, 2)
        changed = _stamp(self.seed, i)
        monitored = _mix(self.seed, i, 1) % 100 < 85
        fields: dict[str, Any] = {
            "tp": i % self.base_thirdparties,
            "monitored": monitored,
            "dossierReference": f"DOS-{i:07d}",
            "changed": changed,
            "purchasingCategory": ("IT", "BTP", "Services", "Transport", "")[(h >> 16) % 5],
            "description": f"Suivi fournisseur {i}",
            "stoppingReason": "NA",
            "stoppingDate": None,
            "expirationDate": None,
            "requiredDocuments": None,
        }
        if not monitored:
            fields["stoppingReason"] = ("OUTOFBUSINESS", "EXPIRATION", "STOPREQUEST", "UNKNOWN")[
                (h >> 20) % 4
            ]
            fields["stoppingDate"] = (changed + dt.timedelta(days=3)).date().isoformat()
        override = self._overrides.get(dossier_id)
        if override:
            fields.update(override)
        return fields

    def dossier_ids(
        self,
        predicate: Callable[[int], bool] | None,
        key: tuple[Any, ...],
        candidates: Sequence[int] | None = None,
    ) -> Sequence[int]:
        """Live ids matching a predicate over the cheap fields, in listing order."""
        if predicate is None and candidates is None:
            return self.order()

        def build() -> Sequence[int]:
            pool: Iterable[int]
            if candidates is not None:
                extra = set(self._overrides) | set(self._inserted)
                pool = sorted(
                    {c for c in candidates if self.exists(c)}
                    | {e for e in extra if self.exists(e)},
                    key=self._sort_key,
                )
            else:
                pool = self.order()
            return array("q", (d for d in pool if predicate is None or predicate(d)))

        return self._cached(("d", *key), build)

    def _sort_key(self, dossier_id: int) -> float:
        return self._insert_keys.get(dossier_id, float(dossier_id))

    def dossiers_of_thirdparty(self, j: int) -> Sequence[int]:
        if j >= self.base_thirdparties:
            return []
        return range(
            DOSSIER_ID_BASE + j, DOSSIER_ID_BASE + self.base_dossiers, self.base_thirdparties
        )

    def dossier_reference_candidates(self, reference: str) -> Sequence[int]:
        if reference.startswith("DOS-") and reference[4:].isdigit():
            i = int(reference[4:])
            if i < self.base_dossiers:
                return [DOSSIER_ID_BASE + i]
        return []

    def _documents(self, dossier_id: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        h = _mix(self.seed, dossier_id, 23)
        codes: list[str]
        if fields.get("requiredDocuments") is not None:
            codes = list(fields["requiredDocuments"])
        else:
            # The duty-of-care trio (what indicator I001 covers) and up to 3 others.
            extra = h % 4
            start = (h >> 4) % len(_OTHER_DOCS)
            codes = [
                *DUTY_OF_CARE,
                *(_OTHER_DOCS[(start + k) % len(_OTHER_DOCS)].code for k in range(extra)),
            ]
        requested = fields["changed"] - dt.timedelta(days=30)
        documents = []
        for k, code in enumerate(codes):
            requirement = REQUIREMENTS_BY_CODE[code]
            document_id = dossier_id * 10 + k
            present = (h >> (8 + k * 3)) % 8 < 6
            files = []
            if present:
                file_id = document_id * 10 + 1
                uploaded = requested + dt.timedelta(days=1 + (h >> (12 + k)) % 20, seconds=k * 37)
                files.append(
                    {
                        "file_id": file_id,
                        "uploaded": uploaded,
                        "uuid": hashlib.sha1(
                            f"{self.seed}:{file_id}".encode(), usedforsecurity=False
                        ).hexdigest(),
                        "size": pdf_size(file_id, requirement.name),
                        "expires": (uploaded + dt.timedelta(days=180)).replace(
                            hour=23, minute=59, second=59, microsecond=999000
                        ),
                    }
                )
            documents.append(
                {
                    "document_id": document_id,
                    "requirement": requirement,
                    "requested": requested,
                    "present": present,
                    "files": files,
                }
            )
        return documents

    def document(self, dossier_id: int, document_id: int) -> dict[str, Any] | None:
        if document_id // 10 != dossier_id or not self.exists(dossier_id):
            return None
        documents = self._documents(dossier_id, self._base_fields(dossier_id))
        k = document_id % 10
        return documents[k] if k < len(documents) else None

    def dossier_record(self, dossier_id: int) -> dict[str, Any]:
        """Every field of a dossier, values as Python objects (rendered by ``_render``)."""
        fields = self._base_fields(dossier_id)
        tp = self.thirdparty(fields["tp"])
        documents = self._documents(dossier_id, fields)
        # I001 holds when every duty-of-care document is there; the dossier when all are.
        duty = [d["present"] for d in documents if d["requirement"].code in DUTY_OF_CARE]
        changed = fields["changed"]
        expiration = fields["expirationDate"]
        stopping = fields["stoppingDate"]
        return {
            "thirdpartyId": tp.thirdparty_id,
            "companyIdType": tp.company_id_type,
            "companyIdValue": tp.company_id_value,
            "thirdpartyCode": tp.code,
            "companyCountryCode": tp.country,
            "siren": tp.siren,
            "siret": tp.siret,
            "tva": tp.tva,
            "monitored": fields["monitored"],
            "dossierReference": fields["dossierReference"],
            "description": fields["description"],
            "purchasingCategory": fields["purchasingCategory"],
            "startingDate": (changed - dt.timedelta(days=30)).date(),
            "expirationDate": _as_date(expiration),
            "stoppingDate": _as_date(stopping),
            "stoppingReason": fields["stoppingReason"],
            "state": all(d["present"] for d in documents),
            "dutyOfCare": bool(duty) and all(duty),
            "changed": changed,
            "documents": documents,
        }

    # -- mutations -------------------------------------------------------------------

    def update_dossier(self, dossier_id: int, changes: dict[str, Any]) -> None:
        if dossier_id in self._inserted:
            self._inserted[dossier_id].update(changes)
        else:
            self._overrides.setdefault(dossier_id, {}).update(changes)
        self._bump()

    def delete_dossiers(self, dossier_ids: Iterable[int]) -> int:
        removed = 0
        for dossier_id in dossier_ids:
            if self.exists(dossier_id):
                self._deleted.add(dossier_id)
                removed += 1
        if removed:
            self._bump()
        return removed

    def insert_dossier(
        self, *, thirdparty: Thirdparty, fields: dict[str, Any], position: float | None = None
    ) -> int:
        """A new dossier; ``position`` puts it among the existing ones (default: at the end)."""
        dossier_id = self._next_dossier_id
        self._next_dossier_id += 1
        record: dict[str, Any] = {
            "tp": thirdparty.index,
            "monitored": True,
            "dossierReference": "",
            "changed": dt.datetime.now().replace(microsecond=123456),
            "purchasingCategory": "",
            "description": "",
            "stoppingReason": "NA",
            "stoppingDate": None,
            "expirationDate": None,
            "requiredDocuments": None,
        }
        record.update(fields)
        self._inserted[dossier_id] = record
        self._insert_keys[dossier_id] = float(dossier_id) if position is None else position
        self._bump()
        return dossier_id

    def new_process_id(self) -> str:
        self._next_process += 1
        return str(self._next_process)
