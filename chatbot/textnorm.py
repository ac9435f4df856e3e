"""One normalisation for text a person types, applied once before anything reads it.

Invisible and look-alike characters let a message slip past rule-based matchers
while reading the same to a person: "k\\u200dill", "ｓｔｒｏｋｅ", "strоke" with a
Cyrillic "о". `normalise` is what the chain, the gate, retrieval and the stores
see: Unicode NFKC (fullwidth and styled letters become plain ones), format and
other invisible characters dropped (zero-width spaces and joiners, soft hyphens,
bidi marks, variation selectors), control characters other than tab and newline
dropped, and look-alike letters folded to Latin inside words that mix scripts
(a word written wholly in Cyrillic or Greek is left as it is: it is a language,
not a trick).

`skeleton` goes further, for matchers only (the emergency gate, the injection
filter): every look-alike letter is folded whatever the word, combining marks
are removed and typographic quotes and dashes become ASCII ones, so the rules,
written in plain ASCII, see what a reader sees.
"""

from __future__ import annotations

import re
import unicodedata

# Default-ignorable characters that are not in category Cf (which is dropped whole).
_IGNORABLE = frozenset(
    [
        *(0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, 0x2800),
        *range(0x180B, 0x1810),  # Mongolian variation selectors
        *range(0xFE00, 0xFE10),  # variation selectors
        *range(0xE0100, 0xE01F0),  # variation selectors supplement
    ]
)
_KEEP_CONTROLS = frozenset("\t\n\r")

# Letters that read as Latin ones (our own table: Cyrillic, Greek, small capitals and other Latin
# look-alikes NFKC leaves alone). Only letters that pass for the Latin one in common fonts.
_LOOKALIKES = {
    # Cyrillic lower case
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ү": "y", "ց": "g", "օ": "o", "ս": "u",
    # Cyrillic upper case
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W",
    "Ӏ": "I",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H",
    "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin small capitals and other look-alikes
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ı": "i", "ȷ": "j", "ɑ": "a", "ɩ": "i",
}  # fmt: skip
_FOLD = str.maketrans(_LOOKALIKES)
_QUOTES = str.maketrans(
    {
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "ʼ": "'", "ʹ": "'", "′": "'", "´": "'",
        "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
        "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
    }
)  # fmt: skip
_WORD = re.compile(r"\w+")
_ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _visible(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat == "Cf" or ord(ch) in _IGNORABLE:
        return False
    return not (cat == "Cc" and ch not in _KEEP_CONTROLS)


def _fold_mixed(match: re.Match[str]) -> str:
    word = match.group(0)
    if word.isascii():
        return word
    folded = word.translate(_FOLD)
    if folded == word:
        return word
    # fold only where the word mixes Latin letters with look-alikes (a trick), or is all look-alikes
    # that spell an ASCII word next to Latin text; a word wholly in Cyrillic or Greek stays
    has_latin = any("a" <= c.lower() <= "z" for c in word)
    return folded if has_latin else word


def normalise(text: str) -> str:
    """NFKC, invisible and control characters dropped, look-alikes folded in mixed-script words."""
    if text.isascii():  # the common case, fast: only control characters can be there
        return _ASCII_CONTROLS.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if _visible(c))
    return _WORD.sub(_fold_mixed, text)


def skeleton(text: str) -> str:
    """What a matcher should see: `normalise`, then every look-alike folded, marks and quotes plain."""
    text = normalise(text)
    if text.isascii():
        return text
    text = text.translate(_FOLD).translate(_QUOTES)
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)
