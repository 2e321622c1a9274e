"""filterd.detect.pii: each PII kind with exact offsets, and the numbers that must stay visible."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filterd.detect.pii import KINDS, PiiDetector
from filterd.errors import ConfigError

DETECTOR = PiiDetector()

FOUND = [
    # (text, kind, start, end): the one span expected, offsets into the text
    ("call me at (415) 555-2671 please", "pii:phone", 11, 25),  # US local, area code in brackets
    ("my cell is +44 20 7946 0958", "pii:phone", 11, 27),  # international, any region
    ("text 202.555.0143 after 5pm", "pii:phone", 5, 17),  # dotted US format
    ("the number for my order is 202-555-0143", "pii:phone", 27, 39),  # "order" not a label here
    ("email me: jane.doe+billing@example.co.uk.", "pii:email", 10, 40),  # final "." left out
    ("write to josé.garcía@correo.es", "pii:email", 9, 30),  # Unicode local part
    ("card 4111 1111 1111 1111 exp 12/27", "pii:card", 5, 24),  # Visa, groups of four
    ("amex 3782-822463-10005", "pii:card", 5, 22),  # Amex, 4-6-5 with dashes
    ("I paid 20 5555555555554444 yesterday", "pii:card", 10, 26),  # glued to another number
    ("order 4111111111111111", "pii:card", 6, 22),  # Luhn-valid Visa wins over the label
    ("IBAN DE89 3704 0044 0532 0130 00 thanks", "pii:iban", 5, 32),  # grouped; word not taken
    ("send to GB82WEST12345698765432", "pii:iban", 8, 30),  # compact
    ("my ssn is 123-45-6789", "pii:ssn", 10, 21),  # dashed SSN
    ("social security number 123456789", "pii:ssn", 23, 32),  # bare 9 digits after context
    ("IMEI: 490154203237518", "pii:imei", 6, 21),  # labelled IMEI
    ("device 35-209900-176148-1 is locked", "pii:imei", 7, 25),  # dashed, known TAC prefix
    ("server at 8.8.8.8 is down", "pii:ip", 10, 17),  # public IPv4
    ("my router 192.168.1.1 resets", "pii:ip", 10, 21),  # private IPv4 (scored lower)
    ("ipv6 2001:db8::ff00:42:8329 blocked", "pii:ip", 5, 27),  # compressed IPv6
    ("NI number AB 12 34 56 C", "pii:national_id", 10, 23),  # UK NINO with spaces
    ("DNI 12345678Z", "pii:national_id", 4, 13),  # Spanish DNI, valid check letter
    ("codice fiscale RCCMNL83S18D969H", "pii:national_id", 15, 31),  # Italian codice fiscale
    ("CPF 111.444.777-35", "pii:national_id", 4, 18),  # Brazilian CPF, formatted
    ("ITIN 912-70-1234", "pii:national_id", 5, 16),  # US ITIN
    ("my account number is 12345678", "pii:account", 21, 29),  # label, "is", number
    ("acct # 1234-5678-9012 please", "pii:account", 7, 21),  # acct # with dashes
    ("customer id: 98765432", "pii:account", 13, 21),  # customer id
    ("I live at 123 Main St, Springfield, IL 62704", "pii:address", 10, 44),  # city, state, ZIP
    ("send it to 42 elm street apt 4", "pii:address", 11, 30),  # lower case after "send it to"
    ("ship to 1600 Pennsylvania Avenue NW", "pii:address", 8, 35),  # trailing directional
]

NOT_PII = [
    "it was $1,234.56 last month",  # price with thousands separator
    "the plan is 49.99 a month",  # price
    "due 2024-03-15",  # ISO date
    "since 03/15/2024",  # US date
    "at 10:30 or 15:45:00",  # times (not IPv6)
    "order 4111111111111112",  # fails Luhn: an order number, not a card
    "tracking 1Z999AA10123456784",  # UPS tracking
    "tracking 9400111899223197428490",  # USPS tracking, 22 digits
    "fedex 123456789012",  # 12-digit tracking
    "order number 2025551234",  # phone-shaped, but labelled as an order
    "up 15% since 2024",  # percentage and year
    "app version 1.2.3",  # version string
    "build 10.0.0.1 crashed",  # four-part version after "build"
    "v1.2.3.4 is out",  # version with a v prefix
    "I was born in 1999",  # year
    "code 12345",  # short number
    "1.2.3.400 is not an address",  # octet out of range
    "it costs 1,234,567 dollars",  # big number with separators
    "call 020 7946 0958",  # a UK local number is not local in the US default region
    "customer for 12 years",  # "customer" without an id word
    "my social life is 123456789 times better",  # "social" counts only right before the number
    "I waited 2 hours on the road",  # lower case, no address context
    "the ssn field says 000-12-3456",  # never-issued area 000
    "ssn 666-12-3456",  # never-issued area 666
    "ssn 123-00-4567",  # group 00
    "my imei is 490154203237519",  # IMEI failing Luhn
    "IBAN DE89 3704 0044 0532 0130 01",  # IBAN failing mod-97
    "reference 4567 8901 2345",  # 12 digits in groups: not a card length
    "on hold 45 minutes, ticket #123456789",  # ticket number
    "no digits here at all, just a nice message about my bill",  # the fast path
]


@pytest.mark.parametrize(("text", "kind", "start", "end"), FOUND)
def test_each_kind_found_with_exact_offsets(text: str, kind: str, start: int, end: int) -> None:
    assert [(s.kind, s.start, s.end) for s in DETECTOR.find(text)] == [(kind, start, end)]


@pytest.mark.parametrize("text", NOT_PII)
def test_numbers_that_are_not_pii(text: str) -> None:
    assert DETECTOR.find(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # phone, e-mail and card in one message, in text order
        (
            "I'm at +1 202 555 0143 or bob@example.com, card 4111-1111-1111-1111",
            [("pii:phone", 7, 22), ("pii:email", 26, 41), ("pii:card", 48, 67)],
        ),
        # SSN, account and IP; the price and the date stay
        (
            "ssn 123-45-6789, account no. 00123456, paid $49.99 on 2024-03-15 from 8.8.4.4",
            [("pii:ssn", 4, 15), ("pii:account", 29, 37), ("pii:ip", 70, 77)],
        ),
        # a card beats the phone-shaped tail inside it; the IMEI next to it stays an IMEI
        (
            "card 5555 5555 5555 4444 and imei 490154203237518",
            [("pii:card", 5, 24), ("pii:imei", 34, 49)],
        ),
        # emoji and non-Latin text before the items do not shift offsets
        (
            "😡😡 مرحبا call +44 20 7946 0958 or mail ñandú@ejemplo.com",
            [("pii:phone", 14, 30), ("pii:email", 39, 56)],
        ),
    ],
)
def test_mixed_messages(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert [(s.kind, s.start, s.end) for s in DETECTOR.find(text)] == expected


def test_scores_and_source() -> None:
    [public] = DETECTOR.find("from 8.8.8.8")
    [private] = DETECTOR.find("from 10.0.0.7")
    assert public.score > private.score
    assert public.source == "pii"


def test_region_reads_local_formats() -> None:
    text = "ring me on 020 7946 0958"
    assert [(s.kind, s.start, s.end) for s in PiiDetector(default_region="gb").find(text)] == [
        ("pii:phone", 11, 24)
    ]


@pytest.mark.parametrize("kinds", [{"email"}, {"pii:email"}])
def test_kinds_enable_a_subset(kinds: set[str]) -> None:
    text = "mail a@b.io or call +1 202 555 0143"
    assert [s.kind for s in PiiDetector(kinds=kinds).find(text)] == ["pii:email"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"default_region": "XX"}, "'default_region' has value 'XX'"),  # not a region
        ({"kinds": {"phone", "dna"}}, "'kinds' has value ['pii:dna']"),  # unknown kind
    ],
)
def test_bad_options_name_key_and_value(options: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        PiiDetector(**options)  # type: ignore[arg-type]


def test_unicode_digits_and_odd_characters_do_not_crash() -> None:
    text = "٤١١١١١١١١١١١١١١١ ４１１１ \u200b\ufeff 𝟒𝟏𝟏𝟏 \x00 \ud7ff ＠ @@ .@. 1.2.3.4.5 :::: 1:2:3"
    for span in DETECTOR.find(text):
        assert 0 <= span.start < span.end <= len(text)


def test_megabyte_input() -> None:
    chunk = "hi, card 4111 1111 1111 1111, call (415) 555-2671, paid $49.99 on 03/15/2024. "
    text = (chunk * (1_000_000 // len(chunk) + 1))[:1_000_000]
    spans = DETECTOR.find(text)
    n = text.count(chunk)
    assert sum(s.kind == "pii:card" for s in spans) >= n
    assert sum(s.kind == "pii:phone" for s in spans) >= n


_FRAGMENTS = st.sampled_from(
    ["4111 1111 1111 1111", "(415) 555-2671", "a@b.co", "123-45-6789", "8.8.8.8", "ssn",
     "DE89 3704 0044 0532 0130 00", "490154203237518", "account #", "12345678", "Main St",
     "$1,234.56", "2024-03-15", "1.2.3", "-", " ", "@", "::", "+44", "\u200b", "😡"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=30).map("".join))
def test_spans_in_bounds_sorted_and_disjoint(text: str) -> None:
    spans = DETECTOR.find(text)
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert s.kind in KINDS
        assert 0.0 < s.score <= 1.0
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end <= b.start
