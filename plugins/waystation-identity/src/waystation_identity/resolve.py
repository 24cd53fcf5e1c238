"""The normalising rules of IdentityResolutionStation (imports the parsing libraries: load lazily).

Every function here returns values that pass the core's lead schema (``waystation.lead``): an
E.164 phone, an e-mail with a dotted domain, a 5-digit ZIP, a 2-letter state, non-blank names.
Whatever cannot be brought to that form is reported as a miss with its reason instead.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import email_validator
import phonenumbers
import probablepeople
import usaddress
from nameparser import HumanName
from phonenumbers import timezone as pn_timezone

from waystation_identity.stations import IdentitySettings

Fields = dict[str, Any]
Misses = dict[str, str]
NameKind = Literal["person", "company", "household"]

# ------------------------------------------------------------------------------------------ states

STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts",
    "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico",
    "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
    "SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
    "VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "DC": "District of Columbia", "PR": "Puerto Rico", "VI": "Virgin Islands", "GU": "Guam",
    "AS": "American Samoa", "MP": "Northern Mariana Islands",
    "AA": "Armed Forces Americas", "AE": "Armed Forces Europe", "AP": "Armed Forces Pacific",
}
_STATE_BY_NAME = {name.upper(): code for code, name in STATES.items()}
_STATE_BY_NAME.update({"WASHINGTON DC": "DC", "WASHINGTON D C": "DC", "D C": "DC",
                       "US VIRGIN ISLANDS": "VI", "U S VIRGIN ISLANDS": "VI"})

_COUNTRIES = {"USA": "US", "UNITED STATES": "US", "UNITED STATES OF AMERICA": "US", "CANADA": "CA",
              "UK": "GB", "UNITED KINGDOM": "GB", "MEXICO": "MX"}

# ------------------------------------------------------------------------------------------ names

#: Words that make a name a business (compared case-insensitively, without dots and commas).
COMPANY_WORDS = frozenset({
    "llc", "llp", "lllp", "pllc", "plc", "inc", "incorporated", "corp", "corporation", "co", "company",
    "cos", "ltd", "limited", "lp", "gmbh", "group", "holdings", "holding", "partners", "partnership",
    "associates", "enterprises", "enterprise", "industries", "services", "solutions", "consulting",
    "consultants", "bank", "bancorp", "trust", "foundation", "fund", "ministries", "university",
    "college", "school", "academy", "hospital", "clinic", "dental", "medical", "pharmacy", "auto",
    "motors", "repair", "plumbing", "electric", "construction", "roofing", "realty", "properties",
    "restaurant", "cafe", "bakery", "store", "shop", "market", "salon", "studio", "agency", "insurance",
    "capital", "ventures", "technologies", "systems", "labs", "media", "marketing", "logistics",
    "trucking", "transport", "farms", "dba",
})

#: probablepeople labels that only a business name gets.
_STRONG_CORP_LABELS = frozenset({
    "CorporationLegalType", "CorporationNameAndCompany", "CorporationNameOrganization",
    "CorporationCommitteeType", "CorporationNameBranchType", "CorporationNameBranchIdentifier",
})
_PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "di", "da", "du", "la", "le",
                        "dos", "das", "bin", "ibn", "al", "ter", "ten", "y"})
_ROMAN = re.compile(r"^(?:i{1,3}|iv|v|vi{1,3}|ix|x)$", re.IGNORECASE)
_HOUSEHOLD_SPLIT = re.compile(r"\s+(?:and|&)\s+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_APOSTROPHES = ("-", "'", "\u2019")


def text(value: Any) -> str | None:
    """An input value as clean text (whitespace collapsed), or None when empty or unusable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if value != value:  # NaN, as a CSV reader may give for an empty cell
            return None
        value = str(int(value)) if value.is_integer() else str(value)
    s = _SPACES.sub(" ", str(value)).strip()
    return s or None


def _one_case(s: str) -> bool:
    words = [w for w in s.split() if w.lower() not in ("and", "&")]
    letters = "".join(words)
    return letters.isupper() or letters.islower()


def _cap_piece(piece: str) -> str:
    low = piece.lower()
    if low.startswith("mc") and len(low) > 2:
        return "Mc" + low[2:].capitalize()
    return low[:1].upper() + low[1:]


def cap_name(s: str, *, first_word: bool = True) -> str:
    """Title-case a name written all in capitals or all in lower case (``o'connor`` → ``O'Connor``,
    ``van der berg`` → ``van der Berg``); a mixed-case name is kept as written."""
    if not _one_case(s):
        return s
    out = []
    for i, word in enumerate(s.split()):
        low = word.lower()
        if low in _PARTICLES and (i > 0 or not first_word):
            out.append(low)
        elif _ROMAN.match(low) and i > 0:
            out.append(low.upper())
        else:
            parts = re.split(r"([-'\u2019])", word)
            out.append("".join(p if p in _APOSTROPHES else _cap_piece(p) for p in parts))
    return " ".join(out)


def _has_letter(s: str) -> bool:
    return any(ch.isalpha() for ch in s)


def _bare_words(s: str) -> list[str]:
    return [w.strip(".,;:()").lower() for w in s.split() if w.strip(".,;:()")]


def company_words_in(s: str, extra: Iterable[str] = ()) -> list[str]:
    """The business words in ``s`` (``"Acme Plumbing LLC"`` → ``["plumbing", "llc"]``)."""
    words = COMPANY_WORDS | {w.lower() for w in extra}
    found = [w for w in _bare_words(s) if w.replace(".", "") in words]
    return found


def classify_name(full: str, extra_words: Iterable[str] = ()) -> tuple[NameKind, str]:
    """Person, company or household, and why.

    probablepeople's tagger decides first; its verdict "corporation" is trusted only when it found
    a label a person's name never has (a legal type such as LLC, "& Sons", an organisation word),
    when the name has a business word of :data:`COMPANY_WORDS`, starts with "The", has a
    possessive ("Bob's") or a digit: the tagger calls many names it has not seen (``José Álvarez``,
    ``J. R. R. Tolkien``) corporations. When the tagger cannot tag the string, the same word
    heuristics decide on their own.
    """
    words = company_words_in(full, extra_words)
    if words:
        return "company", f"business word {words[0]!r}"
    try:
        tagged, kind = probablepeople.tag(full)
    except probablepeople.RepeatedLabelError:
        tagged, kind = {}, None
    except Exception:  # the tagger is a third-party model: its failure must not fail the lead
        tagged, kind = {}, None
    tokens = full.split()
    if kind == "Corporation":
        strong = sorted(set(tagged) & _STRONG_CORP_LABELS)
        if strong:
            return "company", f"probablepeople: {strong[0]}"
        if tokens and tokens[0].lower() == "the" and len(tokens) > 1:
            return "company", "starts with 'The'"
        if any(re.search(r"['\u2019]s$", t, re.IGNORECASE) for t in tokens):
            return "company", "possessive ('s)"
        if any(ch.isdigit() for ch in full):
            return "company", "has a digit"
        return "person", "probablepeople said corporation on name words alone"
    if kind == "Household" or _HOUSEHOLD_SPLIT.search(full):
        return "household", "two people"
    return "person", "probablepeople: person" if kind else "no business word"


# ------------------------------------------------------------------------------------------ resolver


class Resolver:
    """Normalises one lead's identity fields (see :meth:`resolve`)."""

    def __init__(self, settings: IdentitySettings) -> None:
        self.settings = settings

    def resolve(self, data: Mapping[str, Any]) -> tuple[Fields, Misses]:
        """Every field it can provide, and for each it cannot, the reason."""
        fields: Fields = {}
        misses: Misses = {}
        self._names(data, fields, misses)
        self._address(data, fields, misses)
        self._phone(data, fields, misses)
        self._email(data, fields, misses)
        self._lead_key(fields, misses)
        return fields, misses

    # -- names ------------------------------------------------------------------------------

    def _names(self, data: Mapping[str, Any], fields: Fields, misses: Misses) -> None:
        first, last = text(data.get("first_name")), text(data.get("last_name"))
        middle, suffix = text(data.get("middle_name")), text(data.get("suffix"))
        full = text(data.get("name")) or text(data.get("full_name"))
        company = text(data.get("company"))
        extra = self.settings.company_words
        if first and not last and (full or " " in first):
            full, first = full or first, None  # a whole name typed into first_name
        if first or last:
            joined = " ".join(p for p in (first, middle, last) if p)
            if company_words_in(joined, extra):
                self._company(joined, fields, misses)
                return
            fields["is_company"] = False
            self._put_name(fields, misses, first, middle, last, suffix, source=joined)
        elif full:
            kind, why = classify_name(full, extra)
            if kind == "company":
                self._company(full, fields, misses, why)
                return
            if kind == "household":
                full = _first_of_household(full)
            try:
                human = HumanName(full)
                if _one_case(full):
                    human.capitalize(force=True)
            except Exception as exc:  # a third-party parser: a reasoned miss, not a crash
                for f in ("first_name", "last_name"):
                    misses[f] = f"could not parse the name {full!r} ({type(exc).__name__})"
                return
            fields["is_company"] = False
            self._put_name(fields, misses, human.first or None, human.middle or None,
                           human.last or None, human.suffix or None, source=full)
        elif company:
            self._company(company, fields, misses, "only a company in the input")
            return
        else:
            for f in ("first_name", "last_name", "is_company"):
                misses[f] = "no name in the input"
        if company and not fields.get("company"):
            fields["company"] = cap_name(company) if _one_case(company) else company

    def _company(self, name: str, fields: Fields, misses: Misses, why: str = "business word") -> None:
        fields["is_company"] = True
        fields["company"] = name
        misses["first_name"] = misses["last_name"] = f"the name {name!r} is a business ({why})"

    @staticmethod
    def _put_name(fields: Fields, misses: Misses, first: str | None, middle: str | None, last: str | None,
                  suffix: str | None, *, source: str) -> None:
        parts = {"first_name": first, "middle_name": middle, "last_name": last, "suffix": suffix}
        for key, value in parts.items():
            if value is None:
                if key in ("first_name", "last_name"):
                    misses[key] = f"the name {source!r} has no {key.replace('_', ' ')}"
                continue
            value = value.strip(" ,")
            if not value or not _has_letter(value):
                misses[key] = f"{value or source!r} is not a {key.replace('_', ' ')}"
                continue
            fields[key] = cap_name(value, first_word=key != "last_name") if key != "suffix" \
                else _cap_suffix(value)

    # -- address ----------------------------------------------------------------------------

    def _address(self, data: Mapping[str, Any], fields: Fields, misses: Misses) -> None:
        street, city = text(data.get("street")), text(data.get("city"))
        state = text(data.get("state"))
        zipcode = text(data.get("zipcode")) or text(data.get("zip"))
        line = text(data.get("address"))
        if line is None and street and "," in street and not (city or state or zipcode):
            line, street = street, None
        parsed: dict[str, str] = {}
        if line:
            try:
                parsed = parse_address(line)
            except ValueError as exc:
                for f in ("street", "city", "state", "zipcode"):
                    misses[f] = f"could not read the address {line!r}: {exc}"
        street = street or parsed.get("street")
        city = city or parsed.get("city")
        state = state or parsed.get("state")
        zipcode = zipcode or parsed.get("zipcode")
        for key, value in (("street", street), ("city", city)):
            if value and _has_letter(value):
                fields[key] = normalize_street(value) if key == "street" else (
                    cap_name(value) if _one_case(value) else value)
                misses.pop(key, None)
            elif value:
                misses[key] = f"not a {key}: {value!r}"
            else:
                misses.setdefault(key, f"no {key} in the input")
        if state:
            code = normalize_state(state)
            if code:
                fields["state"] = code
                misses.pop("state", None)
            else:
                misses["state"] = f"not a US state: {state!r}"
        else:
            misses.setdefault("state", "no state in the input")
        raw_zip = data.get("zipcode") if data.get("zipcode") not in (None, "") else data.get("zip")
        if zipcode:
            z = normalize_zip(raw_zip if raw_zip not in (None, "") else zipcode)
            if z:
                fields["zipcode"] = z
                misses.pop("zipcode", None)
            else:
                misses["zipcode"] = f"not a ZIP code: {zipcode!r}"
        else:
            misses.setdefault("zipcode", "no ZIP code in the input")

    # -- phone ------------------------------------------------------------------------------

    def _region(self, data: Mapping[str, Any]) -> str:
        if self.settings.use_country_field:
            country = (text(data.get("country")) or "").upper().replace(".", "")
            if len(country) == 2 and country.isalpha():
                return country
            if country in _COUNTRIES:
                return _COUNTRIES[country]
        return self.settings.default_region

    def _phone(self, data: Mapping[str, Any], fields: Fields, misses: Misses) -> None:
        raw = text(data.get("phone"))
        if raw is None:
            misses["phone"] = "no phone in the input"
            return
        result = normalize_phone(raw, self._region(data))
        if isinstance(result, str):
            fields["phone_valid"] = False
            misses["phone"] = result
            return
        fields.update(result)
        fields["phone_valid"] = True
        if "phone_timezone" not in result:
            misses["phone_timezone"] = "the number has no single time zone (non-geographic or toll-free)"

    # -- e-mail -----------------------------------------------------------------------------

    def _email(self, data: Mapping[str, Any], fields: Fields, misses: Misses) -> None:
        raw = text(data.get("email"))
        if raw is None:
            misses["email"] = "no e-mail in the input"
            return
        result = normalize_email(raw)
        if result.startswith("not "):
            fields["email_valid"] = False
            misses["email"] = result
        else:
            fields["email"] = result
            fields["email_valid"] = True

    # -- lead key ---------------------------------------------------------------------------

    @staticmethod
    def _lead_key(fields: Fields, misses: Misses) -> None:
        key = lead_key(fields)
        if key is None:
            misses["lead_key"] = "needs a name with a ZIP code, phone or e-mail, or a phone or e-mail alone"
        else:
            fields["lead_key"] = key


def _first_of_household(full: str) -> str:
    """``John and Mary Smith`` → ``John Smith``; ``John Smith and Mary Jones`` → ``John Smith``."""
    parts = _HOUSEHOLD_SPLIT.split(full, maxsplit=1)
    head, tail = parts[0], (parts[1] if len(parts) > 1 else "")
    if not tail:
        return head
    if len(head.split()) == 1 and len(tail.split()) >= 2:
        return f"{head} {tail.split()[-1]}"
    return head


def _cap_suffix(s: str) -> str:
    low = s.lower().strip(".")
    if _ROMAN.match(low):
        return low.upper()
    return s if not _one_case(s) else s[:1].upper() + s[1:].lower()


# ------------------------------------------------------------------------------------------ parts

_STREET_LABELS = ("AddressNumberPrefix", "AddressNumber", "AddressNumberSuffix", "StreetNamePreModifier",
                  "StreetNamePreDirectional", "StreetNamePreType", "StreetName", "StreetNamePostType",
                  "StreetNamePostDirectional", "SubaddressType", "SubaddressIdentifier", "BuildingName",
                  "OccupancyType", "OccupancyIdentifier", "USPSBoxType", "USPSBoxID",
                  "USPSBoxGroupType", "USPSBoxGroupID")


def parse_address(line: str) -> dict[str, str]:
    """A one-line US address as ``street``, ``city``, ``state``, ``zipcode`` (those it has).

    Raises ValueError when usaddress cannot tag it or finds no address in it.
    """
    try:
        tagged, kind = usaddress.tag(line)
    except usaddress.RepeatedLabelError as exc:
        raise ValueError(f"ambiguous parts ({exc.parsed_string!r} has a part twice)") from None
    except Exception as exc:  # a third-party model: its failure is a reasoned miss, not a crash
        raise ValueError(f"usaddress failed ({type(exc).__name__})") from None
    if kind == "Ambiguous" or not any(k in tagged for k in ("AddressNumber", "USPSBoxID", "PlaceName",
                                                             "ZipCode", "StreetName")):
        raise ValueError("no street, city or ZIP code found")
    out: dict[str, str] = {}
    street = " ".join(tagged[k] for k in tagged if k in _STREET_LABELS).strip(" ,")
    if street:
        out["street"] = street
    for key, label in (("city", "PlaceName"), ("state", "StateName"), ("zipcode", "ZipCode")):
        if tagged.get(label):
            out[key] = tagged[label].strip(" ,")
    return out


_DIRECTIONS = frozenset({"N", "S", "E", "W", "NE", "NW", "SE", "SW"})
_ORDINAL = re.compile(r"^\d+(?:st|nd|rd|th)$", re.IGNORECASE)


def normalize_street(street: str) -> str:
    """Whitespace collapsed; an all-capitals or all-lower-case street title-cased with directions
    (``NW``), ordinals (``2nd``), unit numbers (``4B``) and ``PO Box`` written the usual way."""
    street = street.strip(" ,")
    if not _one_case(street):
        return street
    out = []
    for word in street.split():
        core = word.strip(".,#")
        if core.upper() in _DIRECTIONS or core.upper() == "PO":
            out.append(word.upper())
        elif _ORDINAL.match(core):
            out.append(word.lower())
        elif any(ch.isdigit() for ch in core):
            out.append(word.upper())
        else:
            out.append(word[:1].upper() + word[1:].lower())
    return " ".join(out)


def normalize_state(state: str) -> str | None:
    """A state or territory as its USPS code, from the code or the full name (``new york`` → ``NY``)."""
    s = re.sub(r"[.\s]+", " ", state).strip().upper()
    if s.replace(" ", "") in STATES and len(s.replace(" ", "")) == 2:
        return s.replace(" ", "")
    return _STATE_BY_NAME.get(s)


def normalize_zip(value: Any) -> str | None:
    """A US ZIP code as 5 digits, leading zeros kept or restored.

    Accepts ``02139``, ``02139-4307``, ``021394307`` and the numbers a spreadsheet makes of them
    (``2139`` → ``02139``: 3 or 4 digits are padded, as no ZIP code is written with fewer digits).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        if value != value or not value.is_integer():
            return None
        value = str(int(value))
    s = str(value).strip()
    m = re.fullmatch(r"(\d{3,5})(?:[-\s]?(\d{4}))?", s)
    if m:
        if m.group(2) is None and len(m.group(1)) <= 5:
            return m.group(1).zfill(5)
        if len(m.group(1)) == 5:
            return m.group(1)
    if re.fullmatch(r"\d{8,9}", s):  # ZIP+4 without the dash (a leading zero possibly lost)
        return s.zfill(9)[:5]
    return None


def normalize_phone(raw: str, region: str) -> dict[str, Any] | str:
    """``phone`` (E.164), ``phone_region`` and, when the number has one, ``phone_timezone`` (or
    ``phone_timezones`` when its area code spans a few zones) and ``phone_state`` (US: the state of
    its area code); or the reason it is not a usable number."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        return f"not a phone number: {raw!r} ({_parse_error(exc)})"
    if not phonenumbers.is_valid_number(number):
        why = phonenumbers.is_possible_number_with_reason(number)
        reason = {
            phonenumbers.ValidationResult.TOO_SHORT: "too short",
            phonenumbers.ValidationResult.TOO_LONG: "too long",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "invalid country code",
            phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
        }.get(why, "no such number range")
        return f"not a valid number: {raw!r} ({reason} for region {region})"
    out = {"phone": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)}
    region_code = phonenumbers.region_code_for_number(number)
    if region_code and region_code != "001":
        out["phone_region"] = region_code
    zones = [z for z in pn_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    if len(zones) == 1:
        out["phone_timezone"] = zones[0]
    elif 1 < len(zones) <= MAX_ZONES:
        out["phone_timezones"] = zones
    if region_code == "US":
        state = phone_state(number)
        if state:
            out["phone_state"] = state
    return out


#: More candidate zones than this means "anywhere" (a toll-free or non-geographic number): none kept.
MAX_ZONES = 4


def phone_state(number: phonenumbers.PhoneNumber) -> str | None:
    """The US state of a number's area code (phonenumbers' offline geocoder: ``Florida``,
    ``New York, NY``), as its USPS code; ``None`` when the area code names no single state."""
    from phonenumbers import geocoder

    desc = geocoder.description_for_number(number, "en")
    if not desc:
        return None
    tail = desc.rsplit(",", 1)[-1].strip()
    return normalize_state(tail) if tail else None


def _parse_error(exc: phonenumbers.NumberParseException) -> str:
    return {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "invalid country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "no phone number in it",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }.get(exc.error_type, str(exc))


def normalize_email(raw: str) -> str:
    """The address normalised (Unicode NFC, domain and local part lower-cased), or the reason
    (starting with ``not ``) it is not one. Deliverability is not checked: no DNS, offline."""
    try:
        result = email_validator.validate_email(raw, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return f"not an e-mail address: {raw!r} ({exc})"
    return str(result.normalized).lower()


def fold(s: str) -> str:
    """Accents stripped, case folded, only letters and digits kept (``José O'Neil`` → ``joseoneil``)."""
    decomposed = unicodedata.normalize("NFKD", s)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch) and ch.isalnum()).casefold()


def lead_key(fields: Mapping[str, Any]) -> str | None:
    """A stable fingerprint of who the lead is: 32 hex digits (BLAKE2b-128).

    Built from the normalised name (first + last, or the company) with the first of ZIP code,
    phone, e-mail the lead has; with no name, from the phone or the e-mail alone. So the same
    person written ``JOSE ALVAREZ`` and ``José Álvarez`` with the same ZIP gets the same key.
    """
    if fields.get("is_company"):
        name = fold(str(fields.get("company") or ""))
    else:
        name = "|".join(fold(str(fields.get(k) or "")) for k in ("first_name", "last_name")).strip("|")
    anchor = None
    for key in ("zipcode", "phone", "email") if name else ("phone", "email"):
        if fields.get(key):
            anchor = f"{key}:{fields[key]}"
            break
    if anchor is None:
        return None
    return hashlib.blake2b(f"v1\x1f{name}\x1f{anchor}".encode(), digest_size=16).hexdigest()
