"""Lexical normalisation shared by the checks: tokens, numbers and names, compared loosely."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+|\d+(?:[.,]\d+)*")
# Not after a letter or digit: `CA19-9` and the range `21-29` hold no negative number.
_NUMBER = re.compile(r"(?<![A-Za-z\d])[-+]?\$?\d[\d,]*(?:\.\d+)?%?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")

STOPWORDS = frozenset(
    """
a about above after again all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers him his how i if in into is it its itself just me more most my no
nor not now of off on once only or other our ours out over own same she should so some such than
that the their theirs them then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your yours yes please
thanks thank hi hello dear regards sorry let know help need get got us
cannot can't won't don't doesn't didn't isn't aren't wasn't weren't never
""".split()
)
# Negations are stop words too: polarity is compared on its own (`verification.grounding`), and a
# claim that drops a "cannot" still speaks of the same thing.


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def content_tokens(text: str) -> set[str]:
    return {
        t
        for t in (w.lower().strip("'-") for w in _WORD.findall(text))
        if len(t) > 2 and t not in STOPWORDS and not t[0].isdigit()
    }


def numbers(text: str) -> set[str]:
    """Numbers normalised so that '$1,200.00', '1200' and '1200.0' compare equal."""
    out = set()
    for raw in _NUMBER.findall(text):
        s = raw.replace(",", "").replace("$", "").replace("%", "").lstrip("+")
        try:
            value = float(s)
        except ValueError:
            continue
        out.add(f"{value:g}")
    return out


def normalise(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip().lower()


# Opposites that flip a claim while leaving its words almost unchanged.
ANTONYMS = {
    "increased": "decreased",
    "decreased": "increased",
    "higher": "lower",
    "lower": "higher",
    "more": "less",
    "less": "more",
    "larger": "smaller",
    "smaller": "larger",
    "positive": "negative",
    "negative": "positive",
    "improved": "worsened",
    "before": "after",
    "after": "before",
    "significant": "insignificant",
    "older": "younger",
    "younger": "older",
    "first": "last",
    "largest": "smallest",
    "smallest": "largest",
    "north": "south",
    "increase": "decrease",
    "decrease": "increase",
    "better": "worse",
    "worse": "better",
    "maximum": "minimum",
    "minimum": "maximum",
    "early": "late",
    "late": "early",
}

_WORD_NUMBERS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
    "thousand": 1000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
    "dozen": 12,
    "score": 20,
}
# Words that imply a number without writing it: "half as many" is a division by 2.
_IMPLIED_NUMBERS = {
    "half": (2, 0.5),
    "halves": (2, 0.5),
    "twice": (2,),
    "double": (2,),
    "doubles": (2,),
    "triple": (3,),
    "triples": (3,),
    "tripled": (3,),
    "doubled": (2,),
    "halved": (2, 0.5),
    "quadrupled": (4,),
    "quadruples": (4,),
    "thrice": (3,),
    "quadruple": (4,),
    "third": (3,),
    "thirds": (3,),
    "quarter": (4, 0.25, 25),
    "quarters": (4, 0.25, 25),
    "fourth": (4,),
    "fifth": (5,),
    "percent": (100,),
    "percentage": (100,),
    "pair": (2,),
    "pairs": (2,),
    "dozens": (12,),
    "both": (2,),
    "each": (1,),
    "per": (1,),
    "hundreds": (100,),
    "thousands": (1000,),
    "sixth": (6,),
    "sixths": (6,),
    "seventh": (7,),
    "sevenths": (7,),
    "eighth": (8,),
    "eighths": (8,),
    "ninth": (9,),
    "ninths": (9,),
    "tenth": (10,),
    "tenths": (10,),
    "fourths": (4,),
    "fifths": (5,),
    "weekday": (5,),
    "weekdays": (5,),
    "weekend": (2,),
    "weekends": (2,),
    "dime": (10,),
    "dimes": (10,),
    "nickel": (5,),
    "nickels": (5,),
    "penny": (1,),
    "pennies": (1,),
    "decade": (10,),
    "decades": (10,),
    "century": (100,),
    "fortnight": (14,),
    "hour": (60,),
    "hours": (60,),
    "minute": (60,),
    "minutes": (60,),
    "feet": (12,),
    "foot": (12,),
    "yard": (3, 36),
    "yards": (3, 36),
    "pound": (16,),
    "pounds": (16,),
    "gallon": (4, 128),
    "gallons": (4, 128),
    "quart": (4,),
    "quarts": (4,),
    "mile": (5280,),
    "miles": (5280,),
    "week": (7,),
    "weeks": (7,),
    "month": (12, 30),
    "months": (12, 30),
    "year": (12, 365, 52),
    "years": (12, 365, 52),
    "leap": (366,),
}
_MONTHS = {
    m: i
    for i, m in enumerate(
        "january february march april may june july august september october november december".split(), 1
    )
}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_DMY = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\.?,?\s+(\d{{4}})\b", re.I)
_DATE_MDY = re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
_DATE_MY = re.compile(rf"\b({_MONTH_RE})\.?,?\s+(\d{{4}})\b", re.I)
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NAME_SPAN = re.compile(r"(?<![\w'\-])[A-Z][\w'\-]*(?:\s+(?:of|de|von|van|the|and|da|di|del|la|le)?\s*[A-Z][\w'\-]*)*")
_SUFFIXES = ("ations", "ation", "ments", "ment", "ingly", "ings", "ing", "edly", "ies", "ied", "ed", "es", "ly", "s")


def parse_number(raw: str) -> float | None:
    """'$1,200.50' -> 1200.5, '45%' -> 45.0, '-3' -> -3.0; None if it is not a number."""
    s = raw.strip().replace(",", "").replace("$", "").replace("%", "").replace("€", "").replace("£", "")
    s = s.replace("−", "-").lstrip("+")
    try:
        value = float(s)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def number_values(text: str) -> list[float]:
    """Every number written in digits, in order of appearance."""
    out = []
    for raw in _NUMBER.findall(text):
        value = parse_number(raw)
        if value is not None:
            out.append(value)
    return out


def implied_numbers(text: str) -> set[float]:
    """Numbers spelled as words ('three', 'a dozen', 'half'), which a worked solution may use."""
    found: set[float] = set()
    for word in re.findall(r"[a-z]+", text.lower().replace("-", " ")):
        if word in _WORD_NUMBERS:
            found.add(float(_WORD_NUMBERS[word]))
        found.update(float(v) for v in _IMPLIED_NUMBERS.get(word, ()))
    return found


def same_number(a: float, b: float, rel: float = 1e-6) -> bool:
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), 1e-9)


def dates(text: str) -> set[str]:
    """Dates normalised to ISO ('July 16, 1966', '16 July 1966', '1966-07-16' -> '1966-07-16');
    a month with a year and no day becomes '1966-07'."""
    out: set[str] = set()
    spans: list[tuple[int, int]] = []
    for m in _DATE_DMY.finditer(text):
        out.add(f"{m[3]}-{_MONTHS[m[2].lower()]:02d}-{int(m[1]):02d}")
        spans.append(m.span())
    for m in _DATE_MDY.finditer(text):
        out.add(f"{m[3]}-{_MONTHS[m[1].lower()]:02d}-{int(m[2]):02d}")
        spans.append(m.span())
    for m in _DATE_ISO.finditer(text):
        out.add(f"{m[1]}-{m[2]}-{m[3]}")
    for m in _DATE_MY.finditer(text):
        if not any(a <= m.start() < b for a, b in spans):
            out.add(f"{m[2]}-{_MONTHS[m[1].lower()]:02d}")
    return out


def stem(word: str) -> str:
    """A crude suffix stripper: enough for 'increased'/'increase' to meet, nothing cleverer."""
    w = word.lower()
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            return w[: -len(suffix)]
    return w


def stems(text: str) -> set[str]:
    return {stem(t) for t in content_tokens(text)}


def name_spans(text: str) -> list[str]:
    """Runs of capitalised words that do not merely start a sentence ('Ed Wood', 'North Carolina')."""
    found: list[str] = []
    for sent in sentences(text):
        for m in _NAME_SPAN.finditer(sent):
            span = m.group(0).strip()
            words = span.split()
            if m.start() == 0 or sent[: m.start()].rstrip().endswith((":", '"', "(")):
                # A sentence-initial capital says nothing, unless the run goes on ('New York is').
                if len(words) < 2:
                    continue
            if all(w.lower() in STOPWORDS for w in words):
                continue
            found.append(span)
    return found
