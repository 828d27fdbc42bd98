"""Value checks shared by specs and settings: quantities, durations, names, labels.

These follow the Kubernetes grammars so a spec that validates here is accepted by an API
server too. They are written out (a few regular expressions) instead of importing
``kubernetes.utils``, because that import costs about a second and the spec models load
in the kernel.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Longest workload name. Kubernetes objects derive names such as ``<name>-<index>`` (an
#: Indexed Job's pod hostname) or ``<name>-scheduler`` from it, and those must stay within
#: 63 characters.
MAX_NAME = 40


def parse_quantity(text: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity (``"500m"``, ``"4Gi"``, ``"1e3"``) into a number.

    Raises:
        ValueError: with the grammar in the message when ``text`` is not a quantity.
    """
    raw = str(text).strip()
    match = _QUANTITY.match(raw)
    if not match:
        raise ValueError(
            f"{text!r} is not a quantity; write a number with an optional unit such as "
            "500m, 2, 512Mi, 4Gi or 1G"
        )
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"{text!r} is not a quantity") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def parse_bytes(text: str | int | float) -> int:
    """Parse a memory quantity into whole bytes; it must be positive."""
    value = parse_quantity(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be more than zero bytes, e.g. 512Mi or 4Gi")
    if value < 1024 * 1024:
        raise ValueError(
            f"{text!r} is under 1Mi; memory is counted in bytes, so write 512Mi or 4Gi, not {text}"
        )
    return math.ceil(value)


def parse_cpu(text: str | int | float) -> Decimal:
    """Parse a CPU quantity (cores, or millicores with ``m``); at least 1m."""
    value = parse_quantity(text)
    if value < Decimal("0.001"):
        raise ValueError(f"{text!r} is less than 1m (one thousandth of a core); ask for e.g. 500m or 2")
    return value


def format_bytes(size: int) -> str:
    """The largest binary unit that keeps ``size`` whole or readable (``4Gi``)."""
    for unit in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        scale = _BINARY[unit]
        if size >= scale:
            number = size / scale
            return f"{number:.0f}{unit}" if number == int(number) else f"{number:.1f}{unit}"
    return str(size)


def parse_duration(text: str | int | float) -> float:
    """Parse seconds from a number or text such as ``"90"``, ``"30s"``, ``"5m"``, ``"1h30m"``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().replace(" ", "")
        try:
            seconds = float(raw)
        except ValueError:
            parts = _DURATION_PART.findall(raw)
            if not parts or "".join(n + u for n, u in parts) != raw:
                raise ValueError(
                    f"{text!r} is not a duration; write seconds (90) or units like 30s, 5m, 1h30m"
                ) from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{text!r} must be a positive duration such as 30s or 2h")
    return seconds


def check_name(name: str, *, what: str = "name", limit: int = MAX_NAME) -> str:
    """Check an RFC 1123 label of at most ``limit`` characters and return it."""
    if len(name) > limit:
        raise ValueError(
            f"{what} {name!r} is {len(name)} characters; at most {limit} are allowed "
            "so that derived Kubernetes names fit in 63"
        )
    if not DNS_LABEL.match(name):
        raise ValueError(
            f"{what} {name!r} must be lower-case letters, digits and '-', "
            "starting and ending with a letter or digit (RFC 1123), e.g. 'my-job-1'"
        )
    return name


def check_label(key: str, value: str) -> None:
    """Check a Kubernetes label key and value (syntax and length)."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"label key {key!r} has an invalid prefix; use a DNS name like example.com/team")
    if len(name) > 63 or not LABEL_NAME.match(name):
        raise ValueError(
            f"label key {key!r} must be at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise ValueError(
            f"label value {value!r} for {key!r} must be at most 63 letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit"
        )


# the schedules a Kubernetes CronJob accepts: five fields (names allowed) or a macro
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_CRON_NAMES = frozenset((*_MONTHS, "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))


def check_cron(expression: str) -> str:
    """Check a cron schedule as a Kubernetes CronJob reads it and return it, trimmed.

    Five fields (minute hour day-of-month month day-of-week; ``*``, ``,``, ``-``, ``/``,
    ``?`` and month or day names) or a macro such as ``@daily``; ranges are checked by
    croniter. croniter's extensions that Kubernetes refuses (seconds, ``L``, ``W``, ``#``,
    ``CRON_TZ=``) are refused here too.
    """
    text = " ".join(expression.split())
    if text in _CRON_MACROS:
        return text
    fields = text.split(" ")
    usage = "write five fields (minute hour day month weekday), e.g. '0 3 * * *', or @daily"
    if len(fields) != 5:
        raise ValueError(f"schedule {expression!r} has {len(fields)} fields; {usage}")
    for value in fields:
        names = re.findall(r"[A-Za-z]+", value)
        if not _CRON_FIELD.match(value) or any(n.upper() not in _CRON_NAMES for n in names):
            raise ValueError(f"schedule {expression!r}: {value!r} is not a cron field; {usage}")
    from croniter import croniter

    if not croniter.is_valid(text):
        raise ValueError(f"schedule {expression!r} has a value out of range; {usage}")
    return text


def check_location(location: str) -> str:
    """Check a run-directory location: a path, or a URL of a filesystem fsspec knows.

    Whether the protocol's package (s3fs, gcsfs…) is installed matters only where the run
    writes: the local backend checks it before launching, a pod needs it in its image.

    Raises:
        ValueError: an unknown protocol, or ``memory://`` (it lives in one process; a run
            writes from another).
    """
    protocol, sep, rest = location.partition("://")
    if not sep:
        if not location.strip():
            raise ValueError("the output location is empty; give a path or a URL such as s3://bucket/runs")
        return location
    if not protocol or not rest.strip("/"):
        raise ValueError(f"output {location!r} needs a protocol and a path, e.g. s3://bucket/runs")
    if protocol == "memory":
        raise ValueError(
            f"output {location!r}: memory:// lives inside one process and a run writes from another; "
            "use a path or a shared store such as s3://"
        )
    import fsspec

    if protocol not in fsspec.available_protocols():
        raise ValueError(
            f"output {location!r}: fsspec knows no {protocol}:// filesystem; "
            "use a path or a URL such as file://, s3://, gs://"
        )
    return location
