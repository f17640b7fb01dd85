"""US ZIP codes from the offline dataset of the `zipcodes` package (no network at run time)."""

import re
from dataclasses import dataclass
from functools import lru_cache

import zipcodes

ZIP_PATTERN = re.compile(r"^\d{5}$")


@dataclass(frozen=True)
class ZipInfo:
    zipcode: str
    city: str
    state: str


class InvalidZip(ValueError):
    pass


@lru_cache(maxsize=1)
def _index() -> dict[str, ZipInfo]:
    """Every active ZIP code, built once per process (~0.1 s): `zipcodes.matching` scans the
    whole dataset on each call (~80 ms), which a webhook cannot pay per new ZIP code."""
    index: dict[str, ZipInfo] = {}
    for match in zipcodes.list_all():
        if match.get("active", True) and match["zip_code"] not in index:
            index[match["zip_code"]] = ZipInfo(zipcode=match["zip_code"], city=match["city"], state=match["state"])
    return index


def _lookup(zipcode: str) -> ZipInfo | None:
    return _index().get(zipcode)


def lookup_zip(value: str) -> ZipInfo:
    """The real US ZIP code `value` with its city and state; raises InvalidZip otherwise.

    Accepts ZIP+4 (`10001-1234`) and surrounding spaces, keeping the five-digit ZIP.
    """
    zipcode = (value or "").strip()
    if len(zipcode) == 10 and zipcode[5] == "-" and zipcode[6:].isdigit():
        zipcode = zipcode[:5]
    if not ZIP_PATTERN.match(zipcode):
        raise InvalidZip("Enter a five-digit US ZIP code.")
    info = _lookup(zipcode)
    if info is None:
        raise InvalidZip(f"{zipcode} is not a known US ZIP code.")
    return info
