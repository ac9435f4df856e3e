"""The emergency gate: rules that recognise a message describing an emergency happening now."""

from __future__ import annotations

# Rules, not a model: they run before retrieval and generation, in microseconds,
# and each decision can be read back. A message is an emergency when it
# describes red-flag symptoms AND reads as happening to someone now; a question
# *about* a topic ("how does CPR work?", "what are the signs of a stroke?") or a
# past, resolved event is not. Recall and precision on a labelled set, part of it
# held out during design, are reported in the README (`bench/bench_safety.py`).
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.safety.wording import EMERGENCY_GUIDANCE, emergency_message
from chatbot.textnorm import skeleton

if TYPE_CHECKING:
    from chatbot.settings import SafetySettings


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


_INFANT = (
    r"\b(newborn|new-born|neonate|((\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
    r"[- ]?(days?|weeks?|wks?)[- ]old)|(baby|infant|she|he) is \d{1,2} ?(days?|weeks?|wks?)|"
    r"([12]|one|two)[- ]?(months?|mo|mths?)([- ]old)?|under (3|three) months)\b"
)
_FEVER = r"(fever|feverish|high temp\w*|hot|burning up|3[89]([.,]\d)?( ?°?c)?|10[0-5]([.,]\d)?( ?°?f)?)"

# lost speech: a stroke sign, unless the person is too breathless to talk (`_breathless_not_stroke`)
_SPEECH_LOST = (
    r"\b(can ?n?o?'?t|cannot|unable to|not able to|is not|isn'?t|not)\s+"
    r"(speak|talk|get (his|her|the) words)"
)

# red-flag descriptions, by category (lay words, common misspellings)
_RED_FLAGS: dict[str, re.Pattern[str]] = {
    "stroke": _rx(
        r"\bface\b.{0,40}\b(droop\w*|drop\w*|fall\w*|fallen|fell|slump\w*|lopsided|uneven|crooked|numb)",
        r"\b(droop\w*|drooping|lopsided|crooked)\b.{0,30}\b(face|mouth|smile)\b",
        r"\bslurr?\w*\b.{0,20}\b(speech|words|talk\w*)\b|\b(speech|words|talk\w*)\b.{0,20}\bslurr?\w*",
        _SPEECH_LOST,
        r"\b(arm|leg|side)\b.{0,30}\b(gone )?(weak|numb|dead|limp|heavy|won'?t move|can'?t (lift|move))",
        r"\b(stro+ke?|stroak|stroek|strok)\b.{0,40}\b(now|right now|having|happening|think|i think)",
        r"\b(having|has|had) a (stro+ke|stroak)\b",
        r"\b(sudden\w*|all of a sudden)\b.{0,30}\b(lost|loss of|can'?t|cannot|can ?not|unable to)\b.{0,15}"
        r"\b(sight|vision|see|follow|understand|speak|talk|walk|move)\b",
        r"\b(lost|losing) (the )?(sight|vision) in\b|\bblack curtain\b",
        r"\b(worst|worse) headache (of|in) (my|his|her) life\b|\bthunderclap\b",
    ),
    "cardiac_chest_pain": _rx(
        r"\bchest\b.{0,40}\b(pain|tight\w*|pressure|crush\w*|heav\w*|squeez\w*|ache|aching|hurts?|burning)",
        r"\b(crush\w*|tight\w*|squeez\w*|heavy|pressure)\b.{0,25}\bchest\b",
        r"\bheart ?attack\b.{0,40}\b(now|having|think|i think|right now|help|pls|please)|"
        r"\b(having|has) a heart ?attack",
        r"\b(elephant|weight|brick)\b.{0,30}\bchest\b|\bchest\b.{0,30}\b(elephant|weight on)",
        r"\bclutch\w* (his|her|my|their|at (his|her|my|their)) chest\b",
        r"\b(dolor (de|en el) pecho|douleur (à la poitrine|thoracique)|brustschmerz\w*|seene mein dard)\b",
        r"\b(sweat\w*|sudando|clammy)\b.{0,60}\b(left arm|arm|brazo|jaw)\b",
    ),
    "anaphylaxis": _rx(
        r"\b(swell\w*|swollen|puff\w* up|blow\w* up)\b.{0,30}\b(lips?|tongue|throat|face|mouth|eyes)",
        r"\b(lips?|tongue|throat|face|mouth)\b.{0,30}\b(swell\w*|swollen|puff\w*|blow\w* up)",
        r"\bthroat\b.{0,20}\b(clos\w*|tight\w*|clos\w* up|shut\w*)",
        r"\b(ana?ph?[iy]la[xc]\w*|anafil\w*|anaphalaxis)\b",
        r"\b(gave|given|used|injected|jabbed|give)\b.{0,25}\b(epi-?pen|adrenaline|auto-?injector)",
        r"\b(epi-?pen|adrenaline pen|auto-?injector)\b.{0,40}\b(right now|now\b|should i use it)",
        r"\ballerg\w*\b.{0,80}\b(hoarse|wheez\w*|can'?t swallow|drool\w*|faint\w*|floppy)",
    ),
    "overdose_poisoning": _rx(
        r"\b(took|taken|swallow\w*|ate|eaten|drank|drunk|had|downed|chewed|necked)\b.{0,40}\b(all|whole|"
        r"entire|bottle|box|packet|pack|strip|handful|loads|lots|bunch|\d{2,})\b.{0,30}\b(pills|tablets|"
        r"capsules|paracetamol|tylenol|acetaminophen|ibuprofen|aspirin|meds|medication)\b",
        r"\b(swallow\w*|ate|eaten|drank|drunk|got into|chewed|licked|sucked)\b.{0,40}\b(bleach|cleaning|"
        r"cleaner|detergent|dishwasher|washing (pod|tablet|liquid)|liquid tabs?|antifreeze|weedkiller|"
        r"pesticide|button batter\w*|batter(y|ies)|white spirit|lamp oil|methadone)\b",
        r"\b(son|daughter|baby|toddler|child|kid|boy|girl|grandson|granddaughter|he|she)\b.{0,40}\b(swallow\w*|"
        r"ate|eaten|got into|chewed)\b.{0,40}\b(pills|tablets|capsules|medicine|meds)\b",
        r"\b(overdos\w*|over ?dose\w*|o\.?d\.?'?d|od'?ed|oded)\b",
        r"\b(been|was|were|got|is|are|think (he|she|i|they)('?s|'?m| am| are)?) poisoned\b",
        r"\b(ate|drank|swallowed|took|drinking|eating) (some |the |rat |weed )?poison\b",
        r"\b(chew\w*|eating|sucking|licking|drinking|swallowing)\b.{0,30}\b(dishwasher|washing|bleach|"
        r"batter(y|ies)|detergent|cleaning|tablet|pills)",
        r"\b(wild mushrooms?|toadstools?|berries|nightshade|foxglove|hemlock)\b.{0,100}\b(vomit\w*|sick|"
        r"sleepy|drows\w*|confus\w*|pupils|diarrh\w*|cramps?)",
        r"\b(carbon monoxide|co alarm|boiler|gas (leak|smell)|generator|"
        r"flame (has )?(gone |turned )?yellow)\b.{0,120}"
        r"\b(headaches?|dizz\w*|sick|confus\w*|drows\w*|faint\w*|collaps\w*)",
        r"\b(headaches?|dizz\w*)\b.{0,120}\b(boiler|carbon monoxide|co alarm|"
        r"flame (has )?(gone |turned )?yellow)",
        r"\b(too many|too much|loads of|a lot of|handful of|\d{2,} )\b.{0,25}\b(pills|tablets|paracetamol|"
        r"tylenol|meds|medication)",
    ),
    "suicidal": _rx(
        r"\b(kill|killing|hurt|hang|end) (my ?self|myself)\b",
        r"\bend(ing)? (my life|it all|it|everything|things|his life|her life|their life)\b",
        r"\b(want|wants|wanted) (it|this|everything) (all )?to (be over|end|stop)\b",
        r"\b(written|wrote|writing) (goodbye )?letters? to\b",
        r"\bnobody would (even )?(notice|care|miss)\b|\bif i (was|were) gone\b",
        r"\b(on|at) the (edge of the )?(bridge|roof|ledge|cliff|tracks|platform edge)\b",
        r"\b(to|and) (not|never) wake up\b|\bi'?ve had enough\b",
        r"\bhow many\b.{0,40}\b(would it take|to die|to kill|to not wake|to never wake)\b",
        r"\b(use|using|got|has|bought|found|kept|hidden)\b.{0,20}\b(the |a |his |her |my )(gun|shotgun|rifle|"
        r"rope|noose)\b",
        r"\bpills\b.{0,20}\b(lined up|counted out|in front of me)\b|\btaking them tonight\b",
        r"\bno point (any ?more|anymore|in anything)\b",
        r"\b(text\w*|messag\w*|said|wrote)\b.{0,25}\bgoodbye\b|\bit'?s tonight\b",
        r"\bsuicid\w*\b.{0,40}\b(i|i'm|im|me|my|feel|thinking|plan|going to)\b",
        r"\b(i|i'm|im|me|my)\b.{0,40}\bsuicid\w*",
        r"\b(want|wanna|going) to die\b",
        r"\bdon'?t want to (live|be alive|be here|wake up|go on)\b",
        r"\bno (point|reason) (in |to )?(living|live|going on|carrying on|being here)\b",
        r"\b(take|taking) my (own )?life\b",
        r"\bbetter off (dead|without me)\b",
        r"\b(goodbye|suicide) (note|letter)s?\b",
        r"\b(saved|saving|stockpil\w*|hoard\w*) up\b.{0,30}\b(pills|tablets|meds)\b",
    ),
    "severe_bleeding": _rx(
        r"bleed\w*\b.{0,40}\b(won'?t stop|wont stop|not stopp\w*|doesn'?t stop|can'?t stop|heav\w*|"
        r"a lot|everywhere|spurt\w*|pour\w*|gush\w*|soak\w*|pump\w*)",
        r"\b(blood)\b.{0,30}\b(everywhere|spurt\w*|pour\w*|gush\w*|won'?t stop|soak\w*|pump\w*)",
        r"\b(lost|losing) a lot of blood\b",
        r"\b(vomit\w*|cough\w*|throw\w* up|puk\w*|spitting)\b.{0,40}\bblood\b",
        r"\b(bled|bleeding) through\b|\b(soaked|soaking) (through )?(\d+|several|two|three) (towels|pads)\b",
        r"\b(black|tarry)\b.{0,20}\b(poo|stool|stools|poop)\b.{0,80}\b(faint\w*|passed out|dizz\w*|blood)",
        r"\b(poo\w*|stools?)\b.{0,20}\b(black|tarry)\b.{0,80}\b(faint\w*|passed out|dizz\w*|blood)",
        r"\b(pregnant|weeks)\b.{0,80}\b(bleed\w*|blood)\b.{0,60}\b(pain|faint\w*|hard)|"
        r"\bsudden severe pain in my bump\b",
    ),
    "infant_fever": _rx(
        rf"{_INFANT}.{{0,80}}\b{_FEVER}(?![\d.])",
        rf"\b{_FEVER}(?![\d.]).{{0,60}}{_INFANT}",
    ),
    "breathing": _rx(
        r"\b(can ?n?o?'?t|cannot|can not|struggl\w* to|hard to|unable to|not able to)\s+(breath\w*|breth\w*)",
        r"\b(gasping|choking|chocking|turning blue|blue lips|"
        r"lips (are |look |going |turned )?(blue|grey|gray))",
        r"\b(not|isn'?t|stopped|stop) breath\w*\b",
        r"\bcan'?t catch (his|her|my|their)? ?breath\b",
        r"\b(sudden\w*|really bad|severe\w*|very|extremely)\b.{0,20}\b(short(ness)? of breath|breathless\w*)",
        r"\bsharp pain when (i |he |she )?breath\w*",
        r"\blips\b.{0,15}\b(have |has )?(gone|turned|turning|going) (blue|grey|gray|purple)",
        r"\b(high[- ]pitched|whistling|crowing) (noise|sound)\b.{0,40}\bbreath|\bstridor\b",
        r"\b(skin|ribs?|chest|tummy)\b.{0,30}\b(sucking|sucks|pulling|caving) in\b|\bnostrils? flaring\b",
        r"\bgrunting\b.{0,30}\bbreath|\bbreathing (really |very )?(fast and shallow|fast|hard) and\b",
        r"\bcan (barely|hardly) (talk|speak|breathe|breath|get words out)\b",
        r"\b(inhaler|puffs)\b.{0,40}\b(no better|not helping|isn'?t helping|doesn'?t help|not working)\b",
    ),
    "unconscious": _rx(
        r"\b(unconscious|unresponsive|not responding|won'?t wake( up)?|can'?t wake (him|her|them)|"
        r"not waking( up)?|no pulse|passed out and|collapsed|colapsed|not moving and)\b",
    ),
    "seizure": _rx(
        r"\b(seiz\w*|fitting|convuls\w*|a fit)\b.{0,60}\b(won'?t stop|not stopp\w*|still|minutes|mins|"
        r"first|never had|for \d+|keeps?|again and again)",
        r"\b(shaking|jerking)\b.{0,40}\b(won'?t stop|can'?t stop|not stopp\w*|unresponsive|minutes)",
        r"\b(seiz\w*|fits)\b.{0,20}\b(in a row|one after (another|the other)|back to back)\b",
        r"\b(shak\w*|jerk\w*|twitch\w*|fitting)\b.{0,60}\b(eyes rolled|foam\w*|won'?t stop|not stopp\w*|"
        r"no dey stop|more than \d+ min\w*|never (done|had) (this|that|one))",
        r"\b(just had|having|had) a (seizure|fit)\b.{0,80}\b(pregnant|first|never)\b|"
        r"\bpregnant\b.{0,80}\b(seizure|fit)\b",
    ),
    "meningitis": _rx(
        r"\brash\b.{0,50}\b(doesn'?t|does not|won'?t|didn'?t|not) (fade|go away|disappear|blanch)",
        r"\b(glass test|tumbler test|non-?blanching|purple rash|purple spots|pinprick rash)\b",
        r"\bstiff neck\b.{0,60}\b(fever|temp\w*|rash|light)|\b(fever|temp\w*)\b.{0,60}\bstiff neck\b",
        r"\b(high temp\w*|fever)\b.{0,60}\bcold hands\b|\bcold hands\b.{0,60}\b(fever|high temp\w*)",
    ),
    "head_injury": _rx(
        r"\b(hit|banged|bumped|knock\w*|injur\w*|fell\b.{0,40}\bon)\b.{0,20}\b(his|her|my|their|the)? ?head\b"
        r".{0,120}\b(sick|vomit\w*|sleepy|drows\w*|confus\w*|out cold|knocked out|unconscious|pupils?|fluid|"
        r"seiz\w*|won'?t wake)",
        r"\bhead\b.{0,40}\b(bleed\w*|blood)\b.{0,60}\bpupils?\b|\bone pupil\b",
    ),
    "sepsis": _rx(
        r"\b(blotchy|mottled|purplish|bluish)\b.{0,30}\b(skin|knees|hands|legs|colour|color)\b",
        r"\b(hasn'?t|not|no)\b.{0,10}\b(had a wee|weed|peed|passed (urine|water))\b.{0,10}\bsince\b",
    ),
    "other_emergency": _rx(
        r"\b(boiling|scalding|hot) (oil|water|fat)\b.{0,80}\b(skin|arm|chest|face|leg|child|daughter|son)\b",
        r"\b(skin)\b.{0,20}\b(peeling|white|charred|black)\b.{0,40}\b(big|large|area|burn\w*)",
        r"\b(worst|terrible|excruciating) pain\b.{0,80}\b(faint\w*|collaps\w*|passed out)",
        r"\bpregnant\b.{0,80}\b(shoulder tip|faint\w*)\b",
        r"\bsudden\w* (severe |terrible )?pain in (one|his|my|a) (testicle|ball)",
        r"\b(hypo|low (blood )?sugar|blood sugar)\b.{0,80}\b(confus\w*|not making sense|can'?t swallow|"
        r"unconscious|getting worse|won'?t wake)|\b(diabetic|type 1)\b.{0,80}\b(confused|not making sense)\b",
    ),
}

# When a message matches several categories, the most time-critical names it.
_PRIORITY = (
    "unconscious",
    "breathing",
    "anaphylaxis",
    "cardiac_chest_pain",
    "stroke",
    "severe_bleeding",
    "head_injury",
    "seizure",
    "sepsis",
    "suicidal",
    "overdose_poisoning",
    "meningitis",
    "infant_fever",
    "other_emergency",
)
assert set(_PRIORITY) == set(_RED_FLAGS)

# Signs that the message is about someone, now.
_PERSONAL = _rx(
    r"\b(i|i'm|im|i've|ive|me|my|mine|we|we're|our|us)\b",
    r"\b(he|she|they|he's|she's|his|her|him|them)\b",
    r"\b(my|our) (son|daughter|baby|child|kid|husband|wife|partner|mum|mom|dad|father|mother|friend|"
    r"brother|sister|grandma|grandpa|grandmother|grandfather|flatmate|roommate|colleague|neighbour|neighbor)",
    r"\b(now|right now|just|suddenly|tonight|this morning|at the moment|currently|help|please|quick|hurry|"
    r"what do i do|what should i do)\b",
)
# A question about a topic in general, not a situation.
_ABOUT = _rx(
    r"^\s*(what|how|why|when|which|who|explain|describe|define|list|tell me about|can you explain|"
    r"is it true|what's|whats)\b(?!.{0,30}\b(do i|should i|do we|should we|to do)\b)",
    r"\b(in general|for my (exam|essay|course|class|studies|nursing|assignment)|as a (student|nurse|doctor|"
    r"paramedic|teacher)|i'?m (a|an) (student|nurse|doctor|medic|paramedic|teacher|first aider)|"
    r"studying|revision|lecture|textbook|in a novel|in my (novel|story|book)|fictional|hypothetical\w*)\b",
    r"\b(statistics|rate|rates|prevalence|history of|definition|mechanism|guidelines?)\b",
)
# Past, resolved events.
_PAST = _rx(
    r"\b(last (year|month|week)|years? ago|months? ago|weeks? ago|when i was|in the past|used to|once had|"
    r"it turned out|turned out to be|was diagnosed|recovered|fully recovered|back in (19|20)\d\d|"
    r"in (19|20)\d\d|before \d+ (years|months)|\d+ (years|months) (back|before))\b",
)
_STILL = _rx(r"\b(right now|again|tonight|at the moment|currently|it'?s back|came back|back again)\b")
# It is over: resolved, ruled out, discharged.
_RESOLVED = _rx(
    r"\b(ruled out|sent (him|her|me|them) home|discharged|all clear|came back (clear|normal)|"
    r"(much |a lot )?better place now|(is|am|i'?m|she'?s|he'?s) (good|fine|ok|okay|well) now|"
    r"now (she|he|i) (is|am) (good|fine|ok|okay|well))\b",
)
# Figures of speech that borrow emergency words.
_FIGURATIVE = _rx(
    r"\bcould (kill|murder) (my ?self|him|her|them)\b",
    r"\b(makes?|making|made) me want to die\b",
    r"\b(lol|lmao|haha+|rofl)\b",
    r"\bgiving me a heart attack\b|\bdying (to|of) (know|laughter|embarrassment)\b",
)
# Training, fiction, professional or legal questions: not a situation to act on.
_FICTION = _rx(
    r"\b(drill|scenario|trainees?|training (session|course)|first aid course|crime novel|"
    r"my (novel|story|book|screenplay)|writing a (novel|story|book|scene)|fiction\w*|hypothetical\w*|"
    r"legally|liabilit\w*)\b",
    r"\b(if|when) (someone|somebody|a person|a patient|a passenger)\b",
    r"\b(role-?play\w*|training|refresh\w* my first aid|first aid (course|refresher|class)|just in case|"
    r"(want|wanted|like) to be prepared|writing an? (essay|paper|article|assignment|dissertation|report))\b",
    r"\bif my (child|son|daughter|baby|kid|husband|wife|partner|mum|mom|dad)\b.{0,20}\bever\b",
)
_ROLE = _rx(
    r"\bi'?m (a|an) (nurse|doctor|gp|medic|paramedic|pharmacist|student|medical student|nursing student|"
    r"teacher|first aider|emt)\b",
    r"\b(nursing|medical|med|pharmacy|paramedic) student\b|\bstudent nurse\b",
)
# Findings that point away from the emergency reading of a category.
_BENIGN: dict[str, re.Pattern[str]] = {
    "cardiac_chest_pain": _rx(
        r"\b(hurts|sore|tender|painful) (when|if) (i |you )?(press|push|touch)",
        r"\bafter (heavy |some )?(lifting|bench|gym|workout|weights|coughing)",
    ),
}
# "no fever", "without swelling": negated findings are not findings (up to the next punctuation).
_NEGATED = re.compile(
    r"\b(no|without|denies|never had any|(not|isn'?t|aren'?t|wasn'?t) (struggling|having (any )?(trouble|"
    r"difficulty)|sick|vomiting|drowsy|sleepy|confused))\b[^.,;!?]{0,40}",
    re.IGNORECASE,
)
# Strong, unambiguous statements: an emergency whatever the framing.
_ALWAYS = _rx(
    r"\b(i (want|wanna|am going|'m going|plan) to (kill myself|die|end (it|my life)))\b",
    r"\b(i('ve| have)? (just )?(taken|took|swallowed) (an? )?(overdose|all my|the whole|\d{2,}))",
    r"\b(not breathing|no pulse|won'?t wake up|unresponsive and)\b",
)


@dataclass(frozen=True)
class EmergencyVerdict:
    category: str
    message: str


_AIRWAY = _rx(r"\b(asthma\w*|wheez\w*|inhaler|puffer|nebuli[sz]er|breath\w*|choking)\b")


def _breathless_not_stroke(category: str, findings: str) -> str:
    """ "ASTHMA ATTACK CANT TALK" matches the stroke rule's lost speech; with an airway word and no other
    stroke sign it is too breathless to talk, and gets the breathing guidance. Only the category
    changes: whether the rules fire, and the classifier's inputs, stay as they were."""
    if category != "stroke" or not _AIRWAY.search(findings):
        return category
    without_speech = re.sub(_SPEECH_LOST, " ", findings, flags=re.IGNORECASE)
    return category if _RED_FLAGS["stroke"].search(without_speech) else "breathing"


class EmergencyGate:
    """Recognises messages that describe an emergency happening now."""

    def __init__(self, settings: SafetySettings | None = None) -> None:
        from chatbot.settings import SafetySettings

        self.settings = settings or SafetySettings()

    def classify(self, text: str) -> str | None:
        """The emergency category the message describes, or None."""
        if not self.settings.emergency_gate:
            return None
        # invisible and look-alike characters must not hide a red flag ("k\u200dill", "strоke")
        flat = " ".join(skeleton(text).split())
        if _FICTION.search(flat):
            return None
        if _ALWAYS.search(flat):
            return next((cat for cat in _PRIORITY if _RED_FLAGS[cat].search(flat)), "unconscious")
        findings = _NEGATED.sub(" ", flat)
        hits = [
            cat
            for cat in _PRIORITY
            if _RED_FLAGS[cat].search(findings) and not (cat in _BENIGN and _BENIGN[cat].search(flat))
        ]
        if not hits or _ROLE.search(flat):
            return None
        if _FIGURATIVE.search(flat) or _RESOLVED.search(flat):
            return None
        if _PAST.search(flat) and not _STILL.search(flat):
            return None
        personal = bool(_PERSONAL.search(flat))
        about = bool(_ABOUT.search(flat))
        if about and not personal:
            return None
        return _breathless_not_stroke(hits[0], findings) if personal or not about else None

    def check(self, text: str) -> EmergencyVerdict | None:
        category = self.classify(text)
        if category is None:
            return None
        return EmergencyVerdict(category, self.message(category))

    def message(self, category: str) -> str:
        s = self.settings
        return emergency_message(EMERGENCY_GUIDANCE[category], s.emergency_number, s.crisis_line)


assert set(EMERGENCY_GUIDANCE) == set(_RED_FLAGS)  # every category has its guidance
