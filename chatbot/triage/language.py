"""Is a message in English? A cheap check, so that messages the English-only gate cannot read
never pass silently: they get the emergency-number line whatever the answer.

No model: the share of letters outside the Latin script, and common function words of English
against those of the languages medchat users most often write in with Latin letters.
"""

from __future__ import annotations

import re
import unicodedata

_ENGLISH = set(
    """a about after again all also am an and any are as at back be been before being but by can
    can't cant could did do does doesn't dont don't down for from get got had has have he her him his how
    i i'm im if in into is isn't it it's its just like me more my no not now of off on one or our out
    over please pls she should since so some still than that the their them then there they this to too
    u up ur very was we were what when where which who why will with won't would you your yes""".split()
)
_OTHER = {
    "Spanish": "el la los las que de del y en es un una por con para mi tiene está esta muy dolor pecho "
    "ayuda hijo hija no puede respirar qué cómo mañana",
    "French": "le la les des est et un une je il elle mon ma mes pas très avec pour dans qui que sur "
    "douleur poitrine aide fils fille peut respirer",
    "German": "der die das und ist nicht ich er sie mein meine mit ein eine auf für sehr hat kann "
    "schmerzen brust hilfe sohn tochter atmen",
    "Portuguese": "o a os as que de do da e em um uma não com para meu minha está muito dor peito "
    "ajuda filho filha respirar",
    "Italian": "il lo la gli le che di e è un una non con per mio mia molto dolore petto aiuto figlio "
    "figlia respirare",
    "Dutch": "de het een en is niet ik hij zij mijn met voor van op heel pijn borst hulp zoon dochter",
    "Polish": "i w na nie jest się to że mój moja bardzo ból klatce pomocy syn córka oddychać mam",
    "Turkish": "ve bir bu çok ben benim için ile değil ağrı göğüs yardım oğlum kızım nefes",
    "Indonesian": "dan yang di ini itu saya anak tidak dengan untuk sakit dada tolong bisa napas",
    "Romanized Hindi": "mera meri mere hai hain nahi kya aur bahut dard seene mein ko se ho raha rahi",
}
_FOREIGN = {lang: set(words.split()) for lang, words in _OTHER.items()}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)


def non_english(text: str) -> str | None:
    """The language or script a message seems to be written in when it is not English, else None."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    scripts: dict[str, int] = {}
    for c in letters:
        name = unicodedata.name(c, "")
        script = name.split(" ")[0] if name else "UNKNOWN"
        scripts[script] = scripts.get(script, 0) + 1
    latin = scripts.get("LATIN", 0)
    if latin < 0.5 * len(letters):
        other = max((s for s in scripts if s != "LATIN"), key=lambda s: scripts[s])
        return {"CJK": "Chinese", "HIRAGANA": "Japanese", "KATAKANA": "Japanese", "HANGUL": "Korean"}.get(
            other, other.title()
        ) + (" script" if other not in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL") else "")
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 3:
        return None
    english = sum(w in _ENGLISH for w in words)
    best, hits = max(
        ((lang, sum(w in vocab for w in words)) for lang, vocab in _FOREIGN.items()), key=lambda t: t[1]
    )
    if hits >= 2 and hits > 2 * english and english / len(words) < 0.2:
        return best
    return None
