"""Quantities, durations, names and labels, following the Kubernetes grammars."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from workbench.units import (
    MAX_NAME,
    check_label,
    check_name,
    format_bytes,
    parse_bytes,
    parse_cpu,
    parse_duration,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("4Gi", Decimal(4 * 2**30)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1e-3", Decimal("0.001")),
        ("1.5G", Decimal(1_500_000_000)),
        ("1.5Ki", Decimal(1536)),
        ("512Mi", Decimal(512 * 2**20)),
        ("2Ti", Decimal(2 * 2**40)),
        ("1Pi", Decimal(2**50)),
        ("1Ei", Decimal(2**60)),
        ("3k", Decimal(3000)),
        ("2M", Decimal(2_000_000)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("100n", Decimal("1e-7")),
        ("250u", Decimal("0.00025")),
        ("2", Decimal(2)),
        ("0.25", Decimal("0.25")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+1", Decimal(1)),
        ("-1", Decimal(-1)),
        (" 2Gi ", Decimal(2 * 2**30)),
        (3, Decimal(3)),
        (1.5, Decimal("1.5")),
    ],
)
def test_parse_quantity(text: Any, value: Decimal) -> None:
    result = parse_quantity(text)
    assert isinstance(result, Decimal)
    assert result == value


@pytest.mark.parametrize(
    "text", ["4 gigs", "1 Gi", "Gi", "", "1ki", "1K", "1GB", "1.2.3", "two", "1e", "0x10"]
)
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity") as info:
        parse_quantity(text)
    message = str(info.value)
    assert repr(text) in message
    assert "500m, 2, 512Mi, 4Gi or 1G" in message


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 512 * 2**20),
        ("1Mi", 2**20),
        ("1.5Mi", 1572864),
        ("1G", 10**9),
        (2**20, 2**20),
    ],
)
def test_parse_bytes(text: Any, size: int) -> None:
    result = parse_bytes(text)
    assert type(result) is int
    assert result == size


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("4", ["'4' is under 1Mi", "512Mi or 4Gi"]),
        ("1000Ki", ["'1000Ki' is under 1Mi"]),
        ("0", ["'0' must be more than zero bytes"]),
        ("-1Gi", ["'-1Gi' must be more than zero bytes", "512Mi or 4Gi"]),
        ("4 gigs", ["'4 gigs' is not a quantity"]),
    ],
)
def test_parse_bytes_rejects(text: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_bytes(text)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("500m", Decimal("0.5")),
        ("1m", Decimal("0.001")),
        ("2", Decimal(2)),
        (4, Decimal(4)),
        ("0.1", Decimal("0.1")),
    ],
)
def test_parse_cpu(text: Any, cores: Decimal) -> None:
    assert parse_cpu(text) == cores


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0", ["'0' is less than 1m", "500m or 2"]),
        (0, ["0 is less than 1m"]),
        ("-1", ["'-1' is less than 1m"]),
        ("100u", ["'100u' is less than 1m"]),
        ("two", ["'two' is not a quantity"]),
    ],
)
def test_parse_cpu_rejects(text: Any, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        parse_cpu(text)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        (90, 90.0),
        (1.5, 1.5),
        ("2.5", 2.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1.5h", 5400.0),
        ("1m30s", 90.0),
        (" 45s ", 45.0),
    ],
)
def test_parse_duration(text: Any, seconds: float) -> None:
    result = parse_duration(text)
    assert isinstance(result, float)
    assert result == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "30x", "", "h", "1h30", "30 seconds", "-1h", True])
def test_parse_duration_rejects_words(text: Any) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert f"{text!r} is not a duration" in message
    assert "30s, 5m, 1h30m" in message


@pytest.mark.parametrize("text", [0, -5, "0", "-5", "0s", -0.5])
def test_parse_duration_rejects_non_positive(text: Any) -> None:
    with pytest.raises(ValueError, match="must be a positive duration such as 30s or 2h") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text", ["nan", "NaN", float("nan"), "inf", float("inf")])
def test_parse_duration_rejects_non_finite(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("name", ["a", "my-job-1", "0abc", "a" * MAX_NAME, "x9"])
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("MyJob", ["name 'MyJob'", "lower-case", "RFC 1123", "my-job-1"]),
        ("my_job", ["'my_job'", "lower-case"]),
        ("-job", ["'-job'", "starting and ending"]),
        ("job-", ["'job-'", "starting and ending"]),
        ("", ["''", "lower-case"]),
        ("a.b", ["'a.b'", "lower-case"]),
        ("a" * (MAX_NAME + 1), [f"is {MAX_NAME + 1} characters", f"at most {MAX_NAME}", "fit in 63"]),
    ],
)
def test_check_name_rejects(name: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        check_name(name)
    for word in words:
        assert word in str(info.value)


def test_check_name_what_and_limit() -> None:
    assert check_name("a" * 63, what="job", limit=63) == "a" * 63
    with pytest.raises(ValueError, match=r"^job 'aaaaa' is 5 characters; at most 4 are allowed"):
        check_name("aaaaa", what="job", limit=4)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("team", "ml"),
        ("team", ""),
        ("app.kubernetes.io/name", "workbench"),
        ("example.com/Team_1", "Value.1-x"),
        ("k" * 63, "v" * 63),
    ],
)
def test_check_label_accepts(key: str, value: str) -> None:
    assert check_label(key, value) is None


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("Example.com/team", "a", ["label key 'Example.com/team' has an invalid prefix", "example.com/team"]),
        ("a/b/c", "x", ["'a/b/c' has an invalid prefix"]),
        ("te am", "x", ["label key 'te am' must be at most 63"]),
        ("k" * 64, "x", ["must be at most 63", "starting and ending with a letter or digit"]),
        ("team-", "x", ["label key 'team-'"]),
        ("team", "v" * 64, ["label value 'vvvv", "for 'team'", "at most 63"]),
        ("team", "a b", ["label value 'a b' for 'team'"]),
        ("team", "-ml", ["label value '-ml'"]),
    ],
)
def test_check_label_rejects(key: str, value: str, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        check_label(key, value)
    for word in words:
        assert word in str(info.value)


def test_check_label_rejects_empty_prefix() -> None:
    with pytest.raises(ValueError):
        check_label("/team", "ml")


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0"),
        (1023, "1023"),
        (1024, "1Ki"),
        (1536, "1.5Ki"),
        (512 * 2**20, "512Mi"),
        (4 * 2**30, "4Gi"),
        (int(1.5 * 2**30), "1.5Gi"),
        (2**40, "1Ti"),
        (3 * 2**50, "3Pi"),
        (2**60, "1Ei"),
    ],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize("text", ["4Gi", "512Mi", "1Ti", "3Mi"])
def test_format_bytes_inverts_parse_bytes(text: str) -> None:
    assert format_bytes(parse_bytes(text)) == text
