"""The few phrases every card shares: probability bands, short names, plain citations.

One function turns a probability (point, and optionally an interval) into the
band word and the number shown beside it, so that a word can never disagree
with its number ("possible (96%)") and no template picks its own word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Upper bounds (exclusive) of each band word. The words are the ones clinicians use for pre-test
# probability; the cut-offs are a judgement (docs/adr/0007-card-pages-and-snooze.md): below about 15%
# most clinicians would not act on a single finding, above about 70% they would treat it as the working
# diagnosis.
BANDS: tuple[tuple[float, str], ...] = ((0.15, "low"), (0.70, "intermediate"), (float("inf"), "high"))
# Never more certain than this on a card: the likelihood ratios are not calibrated locally.
DISPLAY_CEILING = 0.95
DISPLAY_FLOOR = 0.01

# Card-wide wording (the renderer adds each once).
NUMBER_NOTE = "Related findings count once; the estimate is not locally calibrated."
DISCLAIMER = "This supports, and does not replace, clinical judgement."

# What a clinician must never read: the knowledge sheet, its section marks, the authors' own
# judgement described as a document, the confidence tags, rule-group ids in code font.
INTERNAL_TEXT = re.compile(
    r"sheet\s*§|knowledge sheet|\bthe sheet\b|\bsheet's\b|knowledge-base authors|shared/knowledge"
    r"|\[brief\]|\[[DRVS]\]|`",
    re.IGNORECASE,
)
JUDGEMENT_LABEL = "Expert judgement (unvalidated)"


@dataclass(frozen=True, slots=True)
class Band:
    word: str
    number: str

    def __str__(self) -> str:
        return f"{self.word} ({self.number})"


def percent(p: float) -> str:
    """A probability as a whole percentage, never beyond the display floor and ceiling."""
    if p > DISPLAY_CEILING:
        return f">{DISPLAY_CEILING * 100:.0f}%"
    if p < DISPLAY_FLOOR:
        return f"<{DISPLAY_FLOOR * 100:.0f}%"
    return f"{p * 100:.0f}%"


def band_word(p: float) -> str:
    return next(word for upper, word in BANDS if p < upper)


def band(point: float, low: float | None = None, high: float | None = None) -> Band:
    """(point, low, high) -> band word and number text, e.g. ``high (82%, 61-95%)``.

    The word follows the point estimate; an interval, when the differential gives one,
    is shown beside it so that a wide one is visible rather than hidden in the word.
    """
    number = percent(point)
    if low is not None and high is not None and percent(low) != percent(high):
        number = f"{number}, {percent(low).strip('<>%')}-{percent(high).lstrip('<>')}"
    return Band(band_word(point), number)


def band_rank(word: str) -> int:
    """Order of band words (a higher band is a material change)."""
    return next(i for i, (_, w) in enumerate(BANDS) if w == word)


def short_name(title: str, short_title: str | None = None, limit: int = 40) -> str:
    """A cause's name for a summary: its declared short title, else its title without the
    parenthesis, else the words of the title that fit ``limit`` (never a cut word)."""
    if short_title:
        return short_title
    name = title.split(" (", 1)[0].strip()
    if len(name) <= limit:
        return name
    words, out = name.split(), ""
    for word in words:
        if len(out) + len(word) + 1 > limit - 1:
            break
        out = f"{out} {word}".strip()
    return f"{out}…"


def fit_summary(text: str, limit: int = 139) -> str:
    """The summary as written when it fits; otherwise whole words up to the limit and an ellipsis.

    Templates are written to fit (tests/cards check every shipped case); this is the last guard so
    that no word is ever cut in half."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:(")
    return f"{cut}…"


def is_internal(citation: str) -> bool:
    """True for a citation a clinician cannot open (the project's own notes)."""
    return bool(INTERNAL_TEXT.search(citation))
