"""Personal data in a customer message -> ``pii:<type>`` spans over the original text.

One recognizer per kind, each a small function ``(text, region) -> (start, end, score)``,
listed in :data:`RECOGNIZERS` in priority order. Where a well-kept library knows the format
(``phonenumbers`` for phones, ``python-stdnum`` for Luhn, IBAN, IMEI, SSN and national IDs), it
does the validation; regexes only propose candidates. Overlapping hits are resolved once, the
higher-priority kind winning (a Luhn-valid card beats the phone number hiding inside it).

The design goal is *few false hits*: prices, dates, times, versions, percentages, order and
tracking numbers must pass untouched, because agents need them. Numbers whose only evidence is
their length (bare 9-digit SSNs, account numbers) need a context word before them.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Collection, Iterator

import phonenumbers
from stdnum import iban as std_iban
from stdnum import imei as std_imei
from stdnum import luhn
from stdnum.br import cpf
from stdnum.cn import ric
from stdnum.es import dni, nie
from stdnum.it import codicefiscale
from stdnum.us import itin, ssn

from filterd.errors import ConfigError
from filterd.types import Span

__all__ = ["KINDS", "RECOGNIZERS", "PiiDetector"]

SOURCE = "pii"

Hit = tuple[int, int, float]  # start, end, score
Recognizer = Callable[[str, str], Iterator[Hit]]

_A = re.ASCII
_I = re.ASCII | re.IGNORECASE

# Words that label a number as *not* personal data; a phone-shaped order number stays visible.
# Only a label right before the number counts: "the number for my order is 202-555-0143" is a
# phone, and redacting an order number by mistake costs less than leaking a phone number.
_NON_PII_LABEL = re.compile(
    r"\b(?:order|tracking|track|invoice|ticket|case|ref|reference|confirmation|conf|po|receipt|"
    r"transaction|txn|rma|shipment|parcel|package|sku|model|part|serial|item|booking)"
    r"\s*(?:number|num|no\.?|nr|id|code)?\s*[:#=]?\s*#?\s*$",
    _I,
)


def _preceded_by(text: str, start: int, pattern: re.Pattern[str], window: int = 40) -> bool:
    """Whether ``pattern`` (anchored with ``$``) matches just before ``start``."""
    return pattern.search(text, max(0, start - window), start) is not None


# --- phone -------------------------------------------------------------------------------------


def find_phones(text: str, region: str) -> Iterator[Hit]:
    """Phone numbers, international (+44 ...) or local to ``region``, that are VALID numbers."""
    found: list[tuple[int, int]] = []
    for hit in _matched_phones(text, region):
        found.append((hit[0], hit[1]))
        yield hit
    yield from _phones_in_chains(text, region, found)


def _matched_phones(text: str, region: str) -> Iterator[Hit]:
    # The matcher gives up after max_tries candidates (65535 by default), which would let phone
    # numbers through unredacted in a long text; there is at most one candidate per character.
    matcher = phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID, max_tries=max(65535, len(text))
    )
    seen: set[int] = set()
    for m in matcher:
        if _preceded_by(text, m.start, _NON_PII_LABEL):
            continue
        seen.add(m.start)
        yield m.start, m.end, 0.9 if m.raw_string.startswith("+") else 0.85
    if "+" not in text:
        return
    # Written in full international form ("+44 7700 900123") a number is unambiguous even
    # when it is not an assigned one (reserved, new or drama ranges): redact it anyway.
    loose = phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.POSSIBLE, max_tries=max(65535, len(text))
    )
    for m in loose:
        if m.start in seen or not m.raw_string.startswith("+"):
            continue
        if sum(c.isdigit() for c in m.raw_string) < 9:
            continue
        yield m.start, m.end, 0.8


# Space-separated digit groups ("+1 415 555 0132 24/7", "paid 20 415 555 0132"). The matcher
# reads such a run as one candidate; when the whole run is no phone number it finds nothing,
# and the phone inside it went unredacted. Sub-runs of whole groups are tried instead.
_PHONE_GROUP = r"[+(]*\d[\d().\-]*"
_PHONE_CHAIN = re.compile(rf"(?<![\w+.\-]){_PHONE_GROUP}(?: {_PHONE_GROUP})+", _A)
_PHONE_GROUP_RE = re.compile(_PHONE_GROUP, _A)
_MAX_PHONE_GROUPS = 6  # "+33 6 12 34 56 78"
_PHONE_DIGITS = range(7, 16)  # E.164 numbers have at most 15 digits
# Parses per text in the sub-run search (~70 us each). A chat message has a handful of
# digit runs; this only bounds a hostile text of thousands of digit groups.
_PHONE_PARSE_BUDGET = 256


def _phones_in_chains(text: str, region: str, found: list[tuple[int, int]]) -> Iterator[Hit]:
    """Phones inside runs of digit groups the matcher read as one (invalid) candidate:
    greedy from the left, the longest sub-run of whole groups that parses as a valid
    number wins, skipping anything already found."""
    budget = [_PHONE_PARSE_BUDGET]
    for chain in _PHONE_CHAIN.finditer(text):
        if _preceded_by(text, chain.start(), _NON_PII_LABEL):
            continue
        groups = [g.span() for g in _PHONE_GROUP_RE.finditer(text, chain.start(), chain.end())]
        i = 0
        while i < len(groups) and budget[0] > 0:
            hit = _longest_phone_from(text, region, groups, i, found, budget)
            if hit is None:
                i += 1
                continue
            found.append((hit[0], hit[1]))
            yield hit
            while i < len(groups) and groups[i][0] < hit[1]:
                i += 1


def _longest_phone_from(text: str, region: str, groups: list[tuple[int, int]], i: int,
                        found: list[tuple[int, int]], budget: list[int]) -> Hit | None:
    start = groups[i][0]
    ends = []
    for _, end in groups[i : i + _MAX_PHONE_GROUPS]:
        while text[end - 1] in ".-(":  # "call 415 555 0132." ends at the digit
            end -= 1
        if sum(c.isdigit() for c in text[start:end]) in _PHONE_DIGITS:
            ends.append(end)
    for end in reversed(ends):
        if budget[0] <= 0:
            return None
        if any(a < end and start < b for a, b in found):
            continue
        budget[0] -= 1
        try:
            number = phonenumbers.parse(text[start:end], region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return start, end, 0.85
    return None


# --- e-mail ------------------------------------------------------------------------------------

# The lookbehind pins candidates to token starts, keeping the scan linear on long word runs.
_EMAIL = re.compile(r"(?<![\w.%+-])[\w%+-][\w.%+-]*@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")


def find_emails(text: str, region: str) -> Iterator[Hit]:
    """E-mail addresses (Unicode letters allowed; the top-level domain is letters only)."""
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end(), 0.95


# --- digit chains: cards and IMEIs -------------------------------------------------------------

# Runs of digits joined by single spaces or dashes ("4111 1111-1111 1111"), not part of a
# decimal ("49.99", "1,234") or a word ("1Z999AA1...").
_DIGIT_CHAIN = re.compile(r"(?<![\w.,$€£¥])\d+(?:[ -]\d+)*(?![\w€£¥%]|[.,]\d)", _A)
_DIGIT_RUN = re.compile(r"\d+", _A)


def _chain_candidates(text: str, lengths: range) -> Iterator[tuple[int, int, str]]:
    """Each contiguous sub-chain of digit groups whose digit count is in ``lengths``.

    A chain may glue a card to a neighbouring number ("paid 20 4111 1111 1111 1111"), so every
    sub-range of whole groups is a candidate, longest first for each starting group.
    """
    for chain in _DIGIT_CHAIN.finditer(text):
        groups = [
            (g.start(), g.end()) for g in _DIGIT_RUN.finditer(text, chain.start(), chain.end())
        ]
        for i in range(len(groups)):
            subs: list[tuple[int, int, str]] = []
            digits = ""
            for j in range(i, len(groups)):
                digits += text[groups[j][0] : groups[j][1]]
                if len(digits) >= lengths.stop:
                    break
                if len(digits) in lengths:
                    subs.append((groups[i][0], groups[j][1], digits))
            yield from reversed(subs)


# (brand, IIN prefix, allowed lengths): public issuer ranges; a Luhn-valid number outside them is
# more likely an internal reference than a card.
_CARD_IINS: tuple[tuple[str, re.Pattern[str], frozenset[int]], ...] = tuple(
    (brand, re.compile(prefix, _A), frozenset(lengths))
    for brand, prefix, lengths in (
        ("visa", r"4", (13, 16, 19)),
        ("mastercard", r"5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720", (16,)),
        ("amex", r"3[47]", (15,)),
        ("discover", r"6011|64[4-9]|65", range(16, 20)),
        ("diners", r"30[0-5]|3095|36|3[89]", range(14, 20)),
        ("jcb", r"35(?:2[89]|[3-8]\d)", range(16, 20)),
        ("unionpay", r"62", range(16, 20)),
        ("maestro", r"5018|5020|5038|5893|6304|6759|676[1-3]", range(13, 20)),
        ("mir", r"220[0-4]", range(16, 20)),
    )
)


def _is_card(digits: str) -> bool:
    known = any(p.match(digits) and len(digits) in ls for _, p, ls in _CARD_IINS)
    return known and luhn.is_valid(digits)


def find_cards(text: str, region: str) -> Iterator[Hit]:
    """Payment card numbers: 13-19 digits, known issuer prefix and length, Luhn valid."""
    taken = -1
    for start, end, digits in _chain_candidates(text, range(13, 20)):
        if start >= taken and _is_card(digits):
            taken = end
            yield start, end, 0.95


# IMEI reporting-body prefixes (GSMA): a random Luhn-valid 15-digit number rarely has one.
_IMEI_RBI = re.compile(r"01|10|3[035]|4[459]|5[0-4]|86|9[189]")
_IMEI_CONTEXT = re.compile(r"\b(?:imei|serial|device id|esn)\b[^\d\n]{0,20}$", _I)


def find_imeis(text: str, region: str) -> Iterator[Hit]:
    """15-digit IMEIs, Luhn valid, with a known reporting-body prefix or an "IMEI" label."""
    taken = -1
    for start, end, digits in _chain_candidates(text, range(15, 16)):
        if start < taken or not std_imei.is_valid(digits):
            continue
        if _preceded_by(text, start, _IMEI_CONTEXT):
            score = 0.95
        elif _IMEI_RBI.match(digits) and not _preceded_by(text, start, _NON_PII_LABEL):
            score = 0.75
        else:
            continue
        taken = end
        yield start, end, score


# --- IBAN --------------------------------------------------------------------------------------

# Greedy candidate (it may swallow following words); shrunk to the longest valid prefix below.
_IBAN = re.compile(r"(?<![^\W_])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}", _I)


def find_ibans(text: str, region: str) -> Iterator[Hit]:
    """IBANs, compact or in groups, checked by country length, format and mod-97.

    The search resumes right after each IBAN found (or after a candidate's first letter),
    not after the greedy candidate: that one may have swallowed the start of the next IBAN,
    which would then go unredacted.
    """
    pos = 0
    while (m := _IBAN.search(text, pos)) is not None:
        pos = m.start() + 1
        ends = [
            i for i in range(m.end(), m.start() + 14, -1) if i == len(text) or not text[i].isalnum()
        ]
        for end in ends:
            if std_iban.is_valid(text[m.start() : end]):
                yield m.start(), end, 0.95
                pos = end
                break


# --- US SSN ------------------------------------------------------------------------------------

_SSN_FORMATTED = re.compile(r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-]|[.,]\d)", _A)
_SSN_BARE = re.compile(r"(?<![\w-])\d{9}(?![\w-]|[.,]\d)", _A)
# "social" alone ("my social is ...") only right before the number: "social life is 123..." is not.
_SSN_CONTEXT = re.compile(
    r"\b(?:(?:ssn|ss#|ss no|social security)\b[^\d\n]{0,20}|social\s*(?:is|was|:|#)?\s*)$", _I
)


def find_ssns(text: str, region: str) -> Iterator[Hit]:
    """US SSNs: ddd-dd-dddd anywhere; bare 9 digits only after "SSN"/"social security".

    stdnum rejects the never-issued ranges (000, 666, 9xx, group 00, serial 0000) and the
    famous published numbers.
    """
    for m in _SSN_FORMATTED.finditer(text):
        if ssn.is_valid(m.group().replace(" ", "-")):
            context = _preceded_by(text, m.start(), _SSN_CONTEXT)
            yield m.start(), m.end(), 0.95 if context else (0.85 if m.group(1) == "-" else 0.7)
    for m in _SSN_BARE.finditer(text):
        if ssn.is_valid(m.group()) and _preceded_by(text, m.start(), _SSN_CONTEXT):
            yield m.start(), m.end(), 0.9


# --- IP addresses ------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)", _A)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\w)",
    _I,
)
_VERSION_CONTEXT = re.compile(
    r"\b(?:v|ver|version|build|release|firmware|fw|ios|android|update)\.?\s*$", _I
)


def find_ips(text: str, region: str) -> Iterator[Hit]:
    """IPv4 and IPv6 addresses; private and loopback ones score lower (they identify less)."""
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            raw = m.group()
            if not any(c.isdigit() for c in raw) or _preceded_by(text, m.start(), _VERSION_CONTEXT):
                continue
            try:
                addr = ipaddress.ip_address(raw)
            except ValueError:
                continue  # 1.2.3.400, leading zeros, 10:30:45 and friends
            yield m.start(), m.end(), 0.85 if addr.is_global else 0.6


# --- national IDs ------------------------------------------------------------------------------

_Validator = Callable[[str], bool]


def _nino_ok(_: str) -> bool:
    return True  # the HMRC letter rules in the regex are the whole check


# (candidate regex, validator, score, why it is distinctive). Formats that random numbers fill
# easily (NL BSN, IN Aadhaar, CA SIN, FR NIR, bare DE IDs) are left out on purpose.
_NATIONAL_IDS: tuple[tuple[re.Pattern[str], _Validator, float, str], ...] = (
    (re.compile(r"(?<![^\W_])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![^\W_])", _I),
     _nino_ok, 0.8, "UK National Insurance number (stdnum has no module for it)"),
    (re.compile(r"(?<![\w-])\d{8}-?[A-Z](?![^\W_])", _I),
     dni.is_valid, 0.75, "Spanish DNI: 8 digits and a check letter"),
    (re.compile(r"(?<![^\W_])[XYZ]-?\d{7}-?[A-Z](?![^\W_])", _I),
     nie.is_valid, 0.8, "Spanish NIE: X/Y/Z, 7 digits, check letter"),
    (re.compile(r"(?<![^\W_])[A-Z]{6}[\dLMNP-V]{2}[A-EHLMPR-T][\dLMNP-V]{2}[A-Z][\dLMNP-V]{3}"
                r"[A-Z](?![^\W_])", _I),
     codicefiscale.is_valid, 0.9, "Italian codice fiscale: birth date and check letter"),
    (re.compile(r"(?<![\w.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\w-])", _A),
     cpf.is_valid, 0.9, "Brazilian CPF, formatted only (two check digits)"),
    (re.compile(r"(?<![\w-])9\d{2}-\d{2}-\d{4}(?![\w-])", _A),
     itin.is_valid, 0.85, "US ITIN, formatted (9xx, the area SSNs never use)"),
    (re.compile(r"(?<![\w-])\d{17}[\dX](?![^\W_])", _I),
     ric.is_valid, 0.85, "Chinese resident ID: region code, birth date, check digit"),
)  # fmt: skip


def find_national_ids(text: str, region: str) -> Iterator[Hit]:
    """National identity and tax numbers in formats with a check digit or strict structure."""
    for pattern, is_valid, score, _why in _NATIONAL_IDS:
        for m in pattern.finditer(text):
            if is_valid(m.group()):
                yield m.start(), m.end(), score


# --- account numbers ---------------------------------------------------------------------------

# "account number is 12345678", "acct # 1234-5678", "customer id: 9876543". "customer" alone is
# too common ("customer for 12 years"), so it needs an id word after it.
_ACCOUNT = re.compile(
    r"\b(?:(?:account|acct|a/c)\.?(?:\s*(?:number|num|no\.?|nr|#|id))?"
    r"|(?:customer|member(?:ship)?|client|subscriber|policy|loyalty|billing)(?:\s+account)?"
    r"\s*(?:number|num|no\.?|nr|#|id|code))"
    r"\s*(?:is|was|:|#|=|-)?\s*[:#]?\s*"
    r"(\d(?:[ -]?\d){5,15})(?![\w-]|[.,]\d)",
    _I,
)


def find_accounts(text: str, region: str) -> Iterator[Hit]:
    """6-16 digit account, customer or member numbers, only right after such a label.

    The digit pattern is greedy and may run on into the next number ("account number
    12345678 4111 1111 1111 1111"); a card there wins the overlap and would take the whole
    account hit with it. So every prefix that ends between digit groups (6+ digits) is a
    candidate too, and overlap resolution keeps the longest that fits.
    """
    for m in _ACCOUNT.finditer(text):
        start, end = m.span(1)
        yield start, end, 0.85
        digits = 0
        for i in range(start, end):
            if text[i].isdigit():
                digits += 1
            elif digits >= 6:  # a separator between groups: the number may end here
                yield start, i, 0.85


# --- US street addresses -----------------------------------------------------------------------

_SUFFIX = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|"
    r"place|pl|terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl)\b\.?"
)
_UNIT = r"(?:,?\s+(?i:apt|apartment|unit|suite|ste|#)\.?\s*#?[0-9a-z]{1,5}\b)?"
_CITY_STATE_ZIP = (
    r"(?:,\s*[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}(?:,?\s+[A-Z]{2})?(?:\s+\d{5}(?:-\d{4})?)?)?"
)
# Street names must be Capitalised (or ordinals) so "2 hours on the road" is not an address.
_ADDRESS = re.compile(
    r"(?<![\w$.,#-])\d{1,6}[A-Z]?(?:\s+(?:[A-Z][a-z]+|\d+(?:st|nd|rd|th)|[NSEW]\.?)){1,4}\s+"
    + _SUFFIX
    + r"(?:\s+(?:[NS][EW]?|[EW])\b)?"  # 1600 Pennsylvania Avenue NW
    + _UNIT
    + _CITY_STATE_ZIP,
    re.ASCII,
)
# Lower-case addresses only after words that announce one.
_ADDRESS_LOWER = re.compile(
    r"(?i:\b(?:live at|living at|address is|address:|ship(?:ped)? (?:it )?to|deliver(?:ed)? "
    r"(?:it )?to|send (?:it )?to|located at|moved to)\s+)"
    r"(\d{1,6}[a-z]?(?:\s+(?:[a-z]+|\d+(?:st|nd|rd|th))){1,4}\s+" + _SUFFIX + _UNIT + ")",
    re.ASCII,
)


def find_addresses(text: str, region: str) -> Iterator[Hit]:
    """US-style street addresses: number, Capitalised street name, suffix (St, Ave, Rd ...)."""
    for m in _ADDRESS.finditer(text):
        yield m.start(), m.end(), 0.7
    for m in _ADDRESS_LOWER.finditer(text):
        yield m.start(1), m.end(1), 0.8


# --- the detector ------------------------------------------------------------------------------

# Priority order: on overlap, the kind listed first wins.
RECOGNIZERS: dict[str, Recognizer] = {
    "pii:card": find_cards,
    "pii:iban": find_ibans,
    "pii:ssn": find_ssns,
    "pii:national_id": find_national_ids,
    "pii:imei": find_imeis,
    "pii:account": find_accounts,
    "pii:email": find_emails,
    "pii:ip": find_ips,
    "pii:phone": find_phones,
    "pii:address": find_addresses,
}
KINDS: tuple[str, ...] = tuple(RECOGNIZERS)
_PRIORITY = {kind: rank for rank, kind in enumerate(KINDS)}

_HAS_DIGIT = re.compile(r"\d")
# The shortest VALID national numbers (Niue, Saint Helena) have four digits; fewer is no phone.
_FOUR_DIGITS = re.compile(r"(?:\d\D*){4}")


class PiiDetector:
    """Find personal data in a message; construct once, call :meth:`find` per message.

    ``default_region`` (ISO 3166 alpha-2) is where local phone formats are read;
    ``kinds`` enables a subset, as ``"phone"`` or ``"pii:phone"``; ``None`` means all.
    """

    def __init__(self, default_region: str = "US", kinds: Collection[str] | None = None) -> None:
        region = default_region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                f"PiiDetector 'default_region' has value {default_region!r}. "
                "Not a phone region; use an ISO 3166 alpha-2 code such as 'US' or 'GB'."
            )
        self.default_region = region
        wanted = set(KINDS) if kinds is None else {k if ":" in k else f"pii:{k}" for k in kinds}
        unknown = wanted - set(KINDS)
        if unknown:
            raise ConfigError(
                f"PiiDetector 'kinds' has value {sorted(unknown)!r}. "
                f"Not a PII kind; choose from {', '.join(KINDS)}."
            )
        self.kinds: tuple[str, ...] = tuple(k for k in KINDS if k in wanted)

    def find(self, text: str) -> list[Span]:
        """Spans of personal data in ``text``, sorted by start, never overlapping."""
        has_at = "@" in text
        if not has_at and _HAS_DIGIT.search(text) is None:
            return []  # the common chat message: nothing any recognizer could match
        four_digits = _FOUR_DIGITS.search(text) is not None
        spans: list[Span] = []
        for kind in self.kinds:
            if kind == "pii:email" and not has_at:
                continue
            if kind == "pii:phone" and not four_digits:
                continue
            for start, end, score in RECOGNIZERS[kind](text, self.default_region):
                spans.append(Span(start, end, kind, score, SOURCE))
        return _resolve(spans)


def _resolve(spans: list[Span]) -> list[Span]:
    """Drop overlaps: the higher-priority kind wins, then the longer span, then the earlier."""
    spans.sort(key=lambda s: (_PRIORITY[s.kind], -(s.end - s.start), s.start))
    starts: list[int] = []
    kept: list[Span] = []  # sorted by start, parallel to ``starts``
    for span in spans:
        i = bisect.bisect_right(starts, span.start)
        if i > 0 and kept[i - 1].end > span.start:
            continue
        if i < len(kept) and kept[i].start < span.end:
            continue
        starts.insert(i, span.start)
        kept.insert(i, span)
    return kept
