# ruff: noqa: E501  (the phrases are data, one per line)
"""Write the labelled triage messages: data/triage/train.jsonl and data/triage/dev.jsonl.

    python data/triage/make_data.py          # deterministic (seed 16)

Every message is built from three independent parts, all written for medchat:

- a *phrase*: what is happening (or a search-box keyword query), in lay words, for one category and one level
  (emergency now, urgent = see a doctor today, routine), or a hard negative
  (a question about the condition, a past and resolved event, a hypothetical,
  fiction, an anxious "could this be" about something not happening now,
  a chronic stable symptom, a clinician's protocol question);
- a *framing*: how the phrase is put into a message (a plain cry for help, a
  long ramble with one red-flag clause, a routine question with an acute
  symptom tacked on, a bystander, "should I wait till morning?", ...);
- an *author*: a fixed writing habit applied to everything that author writes
  (texting, all caps, misspellings, non-native English, greetings).

Phrases, framings and authors are each assigned to train or dev by a hash of
their id, and a message is kept only when all three fall on the same side, so
no phrase, framing or author of dev was seen in train (split by template and by
author, never by row). The level comes from the phrase, never from the framing.
The test split (data/triage/test.jsonl) is NOT made here: it was written
separately and its messages are never read by whoever tunes the classifier.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent
SEED = 16
DEV_SHARE = 0.35  # of phrases, framings and authors


@dataclass(frozen=True)
class Person:
    S: str  # first mention
    P: str  # pronoun subject
    be: str
    have: str
    s: str  # verb ending: "" (I) or "s" (he/she)
    do: str
    pos: str
    obj: str
    was: str
    g: str = "i"  # i (the writer), m, f

    def fill(self, text: str) -> str:
        return re.sub(r"^[3FM]+:", "", text).format(**self.__dict__)

    def fits(self, phrase: str) -> bool:
        """Phrases marked 3: are about someone else; F: and M: about a woman or a man."""
        marks = re.match(r"^([3FM]+):", phrase)
        m = marks.group(1) if marks else ""
        return not (
            ("3" in m and self.P == "I") or ("F" in m and self.g == "m") or ("M" in m and self.g == "f")
        )


def _i() -> Person:
    return Person("I", "I", "am", "have", "", "do", "my", "me", "was")


def _he(s: str) -> Person:
    return Person(s, "he", "is", "has", "s", "does", "his", "him", "was", "m")


def _she(s: str) -> Person:
    return Person(s, "she", "is", "has", "s", "does", "her", "her", "was", "f")


PEOPLE: dict[str, list[Person]] = {
    "adult": [
        _i(),
        _i(),
        _i(),
        _he("my husband"),
        _she("my wife"),
        _he("my dad"),
        _she("my mum"),
        _she("my mom"),
        _he("my partner"),
        _she("my sister"),
        _he("my brother"),
        _he("my flatmate"),
        _she("my friend"),
        _he("a man at the bus stop"),
        _she("the lady next door"),
        _he("my boss"),
        _he("a guy at the gym"),
        _she("my girlfriend"),
        _he("my boyfriend"),
        _he("my uncle"),
        _she("my aunty"),
        _he("my coworker"),
        _she("a woman in the shop"),
        _he("my roommate"),
        _he("my son (he's 19)"),
        _she("my daughter (23)"),
    ],
    "child": [
        _he("my son"),
        _she("my daughter"),
        _he("my 4 year old"),
        _she("my 6yo"),
        _he("my little boy"),
        _she("our girl, she's 8,"),
        _he("my toddler"),
        _he("my 10 year old son"),
        _she("my little one"),
        _he("the kid I babysit"),
        _she("my niece (5)"),
        _he("my grandson"),
    ],
    "baby": [
        _she("my baby"),
        _he("my newborn"),
        _she("my 6 week old"),
        _he("our 2 month old son"),
        _she("my 5 week old daughter"),
        _he("my baby boy, 7 weeks,"),
        _she("my 3 week old"),
        _he("our little one (10 weeks)"),
    ],
    "elderly": [
        _she("my mum, she's 84,"),
        _he("my grandad"),
        _she("my 90 year old nan"),
        _he("dad (he's 79)"),
        _he("the old man next door"),
        _she("my grandma"),
        _he("my father in law, 81,"),
        _she("a resident at the care home where I work"),
        _she("my elderly mother"),
        _he("my grandpa"),
    ],
    "female": [
        _i(),
        _i(),
        _she("my wife"),
        _she("my girlfriend"),
        _she("my sister"),
        _she("my daughter (she's 24)"),
        _she("my flatmate"),
        _she("my friend"),
        _she("my partner"),
    ],
    "male": [
        _i(),
        _i(),
        _he("my son (he's 14)"),
        _he("my boyfriend"),
        _he("my husband"),
        _he("my brother, 16,"),
        _he("my 12 year old"),
        _he("my teenage son"),
    ],
    "teen": [
        _i(),
        _he("my son (15)"),
        _she("my daughter, 16,"),
        _she("my best friend"),
        _he("my mate"),
        _she("my sister"),
        _he("my brother"),
        _she("a girl in my class"),
    ],
}

# --- phrases --------------------------------------------------------------------------------
# Per category: who it happens to, the condition named as a topic, and phrases by kind.
#   E: emergency happening now           U: urgent (see a doctor today)
#   R: routine, personal and current (chronic stable, mild)
#   PAST: a past event, now resolved     WORRY: a vague or non-current symptom ("could it be")
#   HYPO: a hypothetical clause ("someone ...") for "what if" and fiction framings
# Placeholders: {S} first mention, {P} pronoun, {be}, {have}, {s}, {do}, {pos}, {obj}, {was}.

CATS: dict[str, dict[str, object]] = {
    "stroke": {
        "who": "adult",
        "term": ["a stroke", "a mini stroke", "a TIA"],
        "E": [
            "{S} suddenly can't lift {pos} right arm and {pos} face looks droopy on one side",
            "{S} started talking gibberish 10 minutes ago and one side of {pos} mouth has dropped",
            "{S} {have} gone all lopsided, {pos} smile is crooked and {P} can't get {pos} words out",
            "{S} just lost the vision in one eye like a curtain came down and {pos} left hand feels dead",
            "{S} can't find {pos} words, keeps saying the wrong ones, and {pos} leg gave way, started half an hour ago",
            "{S} {have} the worst headache of {pos} life, came on like being hit with a bat, and {P} {be} throwing up",
            "{S} {be} slurring like drunk but {P} hasn't had a drop and can't hold the cup in {pos} left hand",
            "{S} woke up and one whole side of {pos} body is numb and {P} can't stand up",
        ],
        "U": [
            "{S} {have} had a bit of pins and needles in {pos} fingers on and off for 3 days, no weakness",
            "{S} had 5 minutes of blurry vision yesterday that went away completely, feels fine now",
        ],
        "R": [
            "{S} had a stroke two years ago and {pos} arm is still a bit weak, what exercises help",
            "{S} {be} on clopidogrel after {pos} stroke, can {P} still take paracetamol for a headache",
        ],
        "PAST": [
            "{S} had a mini stroke in March, face drooped for an hour, all tests done and {P} {be} fine now",
            "{S} {was} slurring {pos} words at a wedding last year, turned out to be low sugar and sorted",
        ],
        "WORRY": ["my hand goes tingly sometimes when I sleep on it", "I get dizzy when I stand up fast"],
        "HYPO": ["starts slurring and their face droops", "suddenly can't move one arm"],
    },
    "cardiac_chest_pain": {
        "who": "adult",
        "term": ["a heart attack", "angina", "a cardiac arrest"],
        "E": [
            "{S} {have} got this crushing pain in the middle of {pos} chest going into {pos} jaw and {P} {be} sweating buckets",
            "3:{S} {be} grey and clammy, says it's like an elephant sitting on {pos} chest, started 20 minutes ago",
            "{S} {have} tight chest pain that won't go after resting and {pos} left arm aches and feels heavy",
            "{S} used {pos} GTN spray twice and the pain in {pos} chest is still getting worse",
            "{S} {be} 58 and {have} a squeezing feeling behind the breastbone and feels sick and faint",
            "{S} {have} a horrible pressure in {pos} chest that comes in waves and {P} can barely stand",
            "{S} got chest pain while shovelling snow, now {P} {be} pale, sweaty and short of breath",
            "{S} {have} burning in {pos} chest that isn't like {pos} usual heartburn, with sweating and nausea",
        ],
        "U": [
            "{S} {have} a sore spot on {pos} ribs that hurts when {P} press{s} on it, since falling off {pos} bike yesterday",
            "{S} {have} had palpitations a few times today, no pain, no dizziness, just fluttering",
        ],
        "R": [
            "{S} {have} stable angina and {pos} spray works when {P} walk{s} uphill, is it ok to keep cycling",
            "{S} {be} on a statin and aspirin after {pos} stent, what foods should {P} avoid",
        ],
        "PAST": [
            "{S} had a heart attack in 2019, had a stent, and {P} {be} doing well, can {P} fly abroad",
            "{S} had chest pain last month, went to A&E, ECG and bloods were normal, it was a pulled muscle",
        ],
        "WORRY": [
            "my chest twinges for a second when I yawn",
            "my heart skips a beat now and then when I lie down",
        ],
        "HYPO": ["collapses clutching their chest", "gets chest pain at the gym"],
    },
    "anaphylaxis": {
        "who": "any",
        "term": ["anaphylaxis", "an allergic reaction", "anaphylactic shock"],
        "E": [
            "{S} ate a cashew by mistake and now {pos} lips and tongue are swelling and {P} sound{s} hoarse",
            "{S} got stung by a wasp and {pos} face is puffing up and {P} say{s} {pos} throat feels tight",
            "{S} took the new antibiotic an hour ago and {be} covered in hives, wheezing and feels faint",
            "{S} {have} an epipen but {P} {be} still struggling to swallow after the prawns",
            "after the peanut sauce {S} {be} drooling and can't swallow and {pos} voice has gone funny",
            "{S} {be} allergic to sesame, had a bite of a bagel, now {pos} eyes are swelling shut and {P} keep{s} coughing",
        ],
        "U": [
            "{S} {have} an itchy rash with a few hives after a new washing powder, breathing is fine",
            "{S} got bitten by something at the park and the bite has swollen to the size of a plum, no other symptoms",
        ],
        "R": [
            "{S} {have} hay fever every summer, which antihistamine makes you least sleepy",
            "{S} {have} a nut allergy, how often should {P} replace {pos} adrenaline pen",
        ],
        "PAST": [
            "{S} had anaphylaxis to penicillin as a child, what antibiotics can {P} safely take",
            "{S} reacted to a bee sting two summers ago and needed the epipen, got fully better",
        ],
        "WORRY": ["my lips tingle a bit when I eat raw apples", "I sneeze when I'm around cats"],
        "HYPO": ["eats a peanut and their throat swells", "gets stung and their face swells up"],
    },
    "overdose_poisoning": {
        "who": "any",
        "term": ["an overdose", "paracetamol poisoning", "poisoning"],
        "E": [
            "{S} swallowed a whole strip of {pos} mum's blood pressure tablets about an hour ago",
            "{S} took about 20 paracetamol after a row and now {P} {be} saying sorry",
            "{S} drank some of the blue stuff under the sink, bleach or toilet cleaner, and {be} coughing",
            "{S} chewed a dishwasher pod and {pos} mouth is red and {P} keep{s} crying",
            "{S} found {pos} nan's pill organiser and ate what was in it, we don't know how many",
            "we all have headaches and feel sick and the boiler's been making a funny noise, {S} just fainted",
            "{S} took way too many of {pos} sleeping tablets on purpose and {be} getting really drowsy",
            "{S} swallowed a button battery from the remote, {P} {be} drooling",
        ],
        "U": [
            "{S} took a second dose of ibuprofen 2 hours after the first by mistake, feels fine",
            "{S} got a splash of washing up liquid in {pos} eye, rinsed it, it's a bit red",
        ],
        "R": [
            "how long should {S} wait between doses of paracetamol and ibuprofen",
            "{S} take{s} 6 tablets a day now, is there a pill organiser that helps remember",
        ],
        "PAST": [
            "{S} overdosed when {P} {was} 17 and got treated, {P} {be} 30 now and doing well, does it affect {pos} liver long term",
            "{S} accidentally took a double dose of {pos} thyroid pill last week, nothing happened",
        ],
        "WORRY": [
            "I sometimes forget if I took my tablet and worry I doubled it",
            "I feel a bit sick after my iron pills",
        ],
        "HYPO": ["takes too many tablets", "swallows a button battery"],
    },
    "suicidal": {
        "who": "teen",
        "term": ["suicidal thoughts", "suicide", "self harm"],
        "E": [
            "{S} {have} saved up {pos} pills and {P} {be} planning to take them tonight",
            "3:{S} sent a goodbye message to everyone and isn't answering the phone",
            "i dont see any reason to keep going, ive written letters to my kids and i know how ill do it",
            "3:{S} {be} standing on the edge of the multistorey car park roof and won't come back",
            "honestly everyone would be better off without me and tonight is the night",
            "3:{S} said {P} {be} going to end it and locked {obj}self in the bathroom with a blade",
            "i cant do this anymore, the rope is in the garage and nobody is home",
        ],
        "U": [
            "{S} {have} been feeling really low for weeks and crying every day but {have} no plans to hurt {obj}self",
            "{S} cut {pos} arm a little last night to cope, it's not deep, {P} {be} safe right now but struggling",
        ],
        "R": [
            "{S} {have} been on sertraline for 3 months and {be} feeling better, when can {P} stop",
            "what are some good ways to deal with exam stress",
        ],
        "PAST": [
            "{S} attempted suicide five years ago, {P} {be} in a good place now and want{s} to tell {pos} new partner",
            "{S} self harmed as a teenager, the scars bother {obj}, can laser help",
        ],
        "WORRY": ["I sometimes feel flat on Sunday evenings", "I get sad in winter"],
        "HYPO": ["says they want to end their life", "talks about suicide"],
    },
    "severe_bleeding": {
        "who": "adult",
        "term": ["a haemorrhage", "severe bleeding", "internal bleeding"],
        "E": [
            "{S} cut {pos} wrist on a broken glass and the blood is spurting out, towels are soaked",
            "{S} {be} on warfarin, nose has been pouring blood for 40 minutes and {P} feel{s} faint",
            "{S} {be} throwing up what looks like coffee grounds and dark blood and {be} very pale",
            "{S} sliced {pos} thigh with the chainsaw and it won't stop bleeding even with pressure",
            "{S} {have} black sticky poo and nearly passed out on the toilet",
            "{S} {be} coughing up mouthfuls of bright red blood",
            "F:{S} had {pos} baby yesterday and now {be} soaking a pad every 15 minutes with clots and feels dizzy",
        ],
        "U": [
            "{S} {have} a cut on {pos} finger that's gaping a bit, bleeding stopped with pressure, needs stitches?",
            "{S} noticed a little bright red blood on the toilet paper twice today, no pain",
        ],
        "R": [
            "F:{S} {have} heavy periods every month, what can help",
            "{S} bruise{s} easily on {pos} shins, is that related to {pos} aspirin",
        ],
        "PAST": [
            "{S} had a big nosebleed last week that stopped after 15 minutes, should {P} get it checked",
            "{S} had a bleeding ulcer in 2020, had it treated, can {P} take ibuprofen now",
        ],
        "WORRY": ["my gums bleed a bit when I brush", "I get small nosebleeds in winter"],
        "HYPO": ["is bleeding heavily from a cut", "cuts an artery"],
    },
    "infant_fever": {
        "who": "baby",
        "term": ["fever in babies", "a high temperature in a newborn"],
        "E": [
            "{S} {have} a temperature of 38.4 and {be} not feeding much",
            "{S} feels really hot, thermometer says 38.1, {P} {be} sleepier than usual",
            "{S} {be} burning up and very floppy and won't take the bottle",
            "{S} {have} a fever of 38.6 and a weak high pitched cry",
            "{S} {be} hot to touch, 38 on the forehead thermometer, and grunting when {P} breathe{s}",
        ],
        "U": [
            "{S} {have} a blocked nose and is feeding a bit less than normal, temperature 37.2",
            "{S} {have} had a rash on {pos} cheeks for 2 days, feeding fine, no fever",
        ],
        "R": [
            "{S} {be} due {pos} 8 week jabs, can {P} have paracetamol afterwards",
            "how warm should the room be for {S} to sleep",
        ],
        "PAST": [
            "{S} had a fever at 5 weeks old and spent 2 nights in hospital, all tests clear, {P} {be} 6 months now",
        ],
        "WORRY": ["my baby's hands feel cold sometimes", "my baby sweats a lot when feeding"],
        "HYPO": ["has a high temperature at 4 weeks old"],
    },
    "breathing": {
        "who": "any",
        "term": ["an asthma attack", "breathing difficulty", "croup"],
        "E": [
            "{S} {be} struggling to breathe, {pos} inhaler isn't helping and {P} can only say a few words",
            "3:{S} {be} choking on a sweet and can't cough or make any sound",
            "{S} {have} lips going blue and {be} gasping for air",
            "{S} {be} breathing really fast and the skin between {pos} ribs is sucking in",
            "3:{S} {be} making a high pitched noise when breathing in and drooling",
            "{S} suddenly can't catch {pos} breath at all, even sitting still",
            "{S} {have} asthma and {have} taken 10 puffs of blue inhaler, still wheezing badly and getting tired",
        ],
        "U": [
            "{S} {have} had a chesty cough and a temperature for 4 days and {be} getting more breathless walking upstairs",
            "{S} {have} a barking cough at night, fine in the day, breathing ok at rest",
        ],
        "R": [
            "{S} {have} mild asthma, how often should {P} use {pos} brown inhaler",
            "{S} get{s} a bit breathless running for the bus, {P} {be} quite unfit, any tips",
        ],
        "PAST": [
            "{S} had a bad asthma attack last winter and needed a nebuliser, {P} {be} well controlled now",
        ],
        "WORRY": ["I sometimes yawn to get a full breath", "I wheeze a little when I have a cold"],
        "HYPO": ["is choking and can't breathe", "has a bad asthma attack"],
    },
    "unconscious": {
        "who": "any",
        "term": ["fainting", "losing consciousness", "a collapse"],
        "E": [
            "3:{S} collapsed on the kitchen floor and {be} not responding when I shout",
            "3:{S} won't wake up, {P} {be} breathing weird and snoring loudly",
            "3:{S} passed out and {be} still not coming round after a couple of minutes",
            "3:{S} {be} on the floor, not breathing properly, i dont think {P} {have} a pulse",
            "3:found {S} slumped in the car and {P} only groan{s} when I shake {obj}",
            "3:{S} went down in the street and {be} not moving and {pos} lips look grey",
        ],
        "U": [
            "{S} fainted this morning after standing in a hot queue, came round straight away and feels ok now but a bit shaky",
            "{S} felt lightheaded twice today after {pos} new blood pressure tablet",
        ],
        "R": [
            "{S} get{s} dizzy when standing up too fast, is drinking more water the fix",
            "{S} fainted at a blood test once, how do {P} stop that happening",
        ],
        "PAST": [
            "{S} fainted at church last year, had a heart tracing and it was a simple faint",
        ],
        "WORRY": ["I get lightheaded in hot showers", "I see stars when I stand up quickly"],
        "HYPO": ["collapses and doesn't respond", "faints and won't wake up"],
    },
    "seizure": {
        "who": "any",
        "term": ["a seizure", "epilepsy", "a febrile convulsion"],
        "E": [
            "3:{S} {be} shaking all over and not responding and it's been going on for 6 minutes",
            "3:{S} just had {pos} first ever fit, {pos} eyes rolled back and {P} {be} still confused",
            "3:{S} {have} had three seizures one after the other and hasn't woken up in between",
            "3:{S} {be} jerking on the floor with foam at {pos} mouth, never happened before",
            "3F:{S} {be} 32 weeks pregnant and just had a fit",
        ],
        "U": [
            "{S} {have} epilepsy and had {pos} usual short seizure this morning, recovered like always, but it's the second this week",
            "{S} keep{s} having little twitches in {pos} eyelid for days",
        ],
        "R": [
            "{S} {have} epilepsy controlled on lamotrigine, can {P} learn to drive",
            "can {S} take cold remedies with {pos} epilepsy medication",
        ],
        "PAST": [
            "{S} had a febrile convulsion at 18 months, {P} {be} 4 now, will {P} get epilepsy",
        ],
        "WORRY": ["my leg jerks when I'm falling asleep", "my eyelid twitches when I'm tired"],
        "HYPO": ["has a fit at school", "starts shaking and jerking"],
    },
    "meningitis": {
        "who": "child",
        "term": ["meningitis", "meningococcal disease", "sepsis rash"],
        "E": [
            "{S} {have} a rash of tiny purple spots that don't fade when I press a glass on them and a fever",
            "{S} {have} a high temperature, stiff neck and can't stand the light",
            "{S} {be} very poorly with fever, cold hands and feet and blotchy spots appearing",
            "{S} {have} a headache, vomiting and these purple marks on {pos} legs that are spreading",
        ],
        "U": [
            "{S} {have} a temperature of 38.5 for 2 days, drinking ok, a bit grumpy, no rash",
            "{S} {have} a red rash that fades when I press it, and a mild cold",
        ],
        "R": [
            "which meningitis vaccines does {S} need before university",
            "is the MenB jab safe for {S}",
        ],
        "PAST": [
            "{S} had meningitis as a baby and recovered, should {pos} hearing be checked",
        ],
        "WORRY": ["my neck is stiff after sleeping awkwardly", "my son gets little red dots after coughing"],
        "HYPO": ["gets a rash that doesn't fade"],
    },
    "head_injury": {
        "who": "any",
        "term": ["concussion", "a head injury", "a bleed on the brain"],
        "E": [
            "3:{S} fell off a ladder and hit {pos} head, {P} {have} been sick twice and keeps asking the same questions",
            "{S} banged {pos} head on the ice, was knocked out for a minute, now really drowsy",
            "{S} {be} on blood thinners and fell and hit {pos} head an hour ago, now a bad headache and confused",
            "{S} got hit by a cricket ball on the head and clear fluid is dripping from {pos} nose",
            "{S} headbutted the table, now one pupil looks bigger than the other",
        ],
        "U": [
            "{S} bumped {pos} head on a cupboard door, has a lump, no other symptoms, should it be checked today",
            "{S} took a knock at rugby 2 days ago and still has a mild headache, no vomiting",
        ],
        "R": [
            "how long should {S} wait before playing football after concussion",
            "{S} get{s} tension headaches at work, what helps",
        ],
        "PAST": [
            "{S} had concussion from a car crash last year, CT was fine, still gets tired easily",
        ],
        "WORRY": ["I bumped my head lightly on the car door yesterday", "my head aches after screen time"],
        "HYPO": ["hits their head and vomits"],
    },
    "sepsis": {
        "who": "elderly",
        "term": ["sepsis", "blood poisoning", "septic shock"],
        "E": [
            "{S} {have} a water infection and today {be} suddenly confused, shivering and breathing fast",
            "{S} {be} burning up then freezing cold, mottled knees, and hasn't weed since yesterday",
            "3:{S} {be} not {pos}self at all, very sleepy, and {pos} skin looks blotchy and blue-ish",
            "{S} had an op last week and the wound is red and oozing and now {P} {be} shaking and can't think straight",
            "{S} {be} so weak {P} can't get out of the chair, fever, and {pos} heart is racing",
        ],
        "U": [
            "{S} {have} a chest infection, on antibiotics 2 days, still coughing but eating and alert",
            "{S} {have} burning when weeing and going a lot, no fever",
        ],
        "R": [
            "{S} get{s} water infections often, does cranberry juice help",
            "should {S} have the flu jab and the pneumonia jab",
        ],
        "PAST": [
            "{S} had sepsis last winter and spent a week in ICU, {P} {be} home and much better, how long does fatigue last",
        ],
        "WORRY": ["I shiver sometimes when I'm tired", "I feel run down after a cold"],
        "HYPO": ["gets sepsis from a urine infection"],
    },
    "aortic_vascular": {
        "who": "adult",
        "term": ["an aortic dissection", "an aneurysm", "a AAA"],
        "E": [
            "{S} suddenly got a ripping pain between {pos} shoulder blades that goes through to {pos} chest",
            "{S} {have} a known aneurysm and now {be} getting severe pain in {pos} belly and back and feels faint",
            "{S} {have} tearing pain in {pos} back that came on out of nowhere and {pos} legs feel weak",
            "{S} {have} a cold, white, very painful leg that started an hour ago and {P} can't feel {pos} toes",
            "{S} {have} sudden agony in {pos} back and tummy, {P} {be} grey and sweaty, {P} {have} high blood pressure",
        ],
        "U": [
            "{S} get{s} cramping in {pos} calf when walking that goes when {P} stop{s}, for a few weeks",
            "{S} {have} a small aneurysm on scans, {pos} check-up letter hasn't come, who do we call",
        ],
        "R": [
            "{S} {have} a 4cm AAA being watched, can {P} still lift weights",
            "what blood pressure should {S} aim for with an aneurysm",
        ],
        "PAST": [
            "{S} had {pos} aneurysm repaired in 2021, how often does {P} need scans",
        ],
        "WORRY": ["I can feel my pulse in my tummy when I lie down", "my back aches after gardening"],
        "HYPO": ["has an aortic dissection"],
    },
    "pulmonary_embolism": {
        "who": "adult",
        "term": ["a pulmonary embolism", "a blood clot in the lung", "a PE"],
        "E": [
            "{S} just flew back from Australia and now {be} suddenly breathless with a sharp pain when breathing in",
            "{S} had {pos} knee operation 10 days ago and now {be} coughing blood and gasping",
            "F:{S} {be} on the pill, {pos} calf has been swollen, and now {P} suddenly can't get {pos} breath and {pos} heart is racing",
            "F:{S} {be} 6 weeks after having a baby and suddenly short of breath with chest pain and almost fainted",
        ],
        "U": [
            "{S} {have} one calf that's swollen, warm and sore since the long drive on Sunday, breathing fine",
            "{S} {have} a pulled feeling in {pos} calf after football, no swelling",
        ],
        "R": [
            "how long should {S} stay on apixaban after {pos} clot",
            "do flight socks really help prevent clots",
        ],
        "PAST": [
            "{S} had a PE in 2022, {be} off blood thinners now, is it safe to take the pill again",
        ],
        "WORRY": ["my calf aches after long walks", "I get breathless if I climb lots of stairs"],
        "HYPO": ["gets a clot on a long flight"],
    },
    "ectopic_pregnancy": {
        "who": "female",
        "term": ["an ectopic pregnancy", "a miscarriage"],
        "E": [
            "{S} {be} 7 weeks pregnant, really bad one sided tummy pain, shoulder tip pain and feels faint",
            "{S} missed {pos} period, had a positive test, and now {have} sharp pain low on the left and {be} dizzy",
            "{S} {be} pregnant and bleeding heavily with clots and very bad cramps, going pale",
            "{S} did a positive test last week and now collapsed with stomach pain",
        ],
        "U": [
            "{S} {be} 9 weeks pregnant with light brown spotting and mild period-like cramps",
            "{S} {be} pregnant and {have} been vomiting all day, can't keep water down since this morning",
        ],
        "R": [
            "{S} {be} 12 weeks pregnant, is it safe to have a coffee a day",
            "when should {S} have {pos} first pregnancy scan",
        ],
        "PAST": [
            "{S} had an ectopic pregnancy two years ago, treated with surgery, what are the chances next time",
        ],
        "WORRY": ["I get twinges low in my tummy mid-cycle", "my periods are a bit irregular"],
        "HYPO": ["has an ectopic pregnancy"],
    },
    "testicular_torsion": {
        "who": "male",
        "term": ["testicular torsion", "a twisted testicle"],
        "E": [
            "{S} woke up with sudden terrible pain in one testicle and {be} being sick",
            "{S} {have} a swollen, very painful ball that started an hour ago, it's sitting higher than the other",
            "{S} got kicked in the groin at football, the pain is getting worse not better and {pos} testicle is swelling",
            "{S} {be} 13 and {have} sudden pain in {pos} privates and tummy, crying, can't walk",
        ],
        "U": [
            "{S} found a small painless lump on {pos} testicle in the shower",
            "{S} {have} had a dull ache in {pos} scrotum for a week with some swelling",
        ],
        "R": [
            "how often should {S} check {pos} testicles",
            "{S} {have} a varicocele, does it affect fertility",
        ],
        "PAST": [
            "{S} had a torsion operation as a teenager, can {P} still have kids",
        ],
        "WORRY": ["one of my balls hangs lower than the other", "my groin aches after cycling"],
        "HYPO": ["gets sudden testicle pain"],
    },
    "diabetic": {
        "who": "any",
        "term": ["DKA", "a hypo", "diabetic ketoacidosis"],
        "E": [
            "{S} {be} type 1, been vomiting all night, breathing deep and fast and {pos} breath smells like pear drops",
            "3:{S} {be} diabetic and {pos} sugar is 2.1, {P} {be} sweaty, confused and can't swallow the juice",
            "3:{S} {be} on insulin and {be} drowsy and we can't wake {obj} properly",
            "{S} {have} been really thirsty and weeing loads for a week, now {be} vomiting, tummy pain and very drowsy",
            "3:{S} {have} diabetes and {be} talking nonsense and acting drunk, sugar too low to read",
        ],
        "U": [
            "{S} {have} type 2 and {pos} sugars have been 18 to 20 for two days, feels ok otherwise",
            "{S} {have} a sore on {pos} foot that's gone red and warm, {P} {be} diabetic",
        ],
        "R": [
            "what should {S}'s HbA1c target be with type 2 diabetes",
            "can {S} take metformin with food to stop the upset stomach",
        ],
        "PAST": [
            "{S} was diagnosed in hospital with DKA last year and {be} stable on insulin now, can {P} do a marathon",
        ],
        "WORRY": ["I get shaky if I skip lunch", "I'm always thirsty in summer"],
        "HYPO": ["has a hypo and becomes confused"],
    },
    "child_dehydration": {
        "who": "child",
        "term": ["dehydration in children", "gastroenteritis"],
        "E": [
            "{S} {have} had diarrhoea and vomiting for 2 days, hasn't had a wet nappy since yesterday and {be} very floppy",
            "3:{S} {be} vomiting everything, {pos} eyes look sunken, no tears when crying and {P} {be} hard to wake",
            "{S} {have} bad tummy bug, hasn't weed for 14 hours, cold hands and breathing fast",
            "3:{S} {be} lethargic and grey after a day of sick and runny poo, won't drink at all",
        ],
        "U": [
            "{S} {have} had diarrhoea for 3 days, drinking but fewer wees than normal and tired",
            "{S} {have} been sick 4 times today but {be} keeping small sips of water down and playing",
        ],
        "R": [
            "how much water should {S} drink in hot weather",
            "{S} {have} loose poos after drinking lots of juice, is that normal",
        ],
        "PAST": [
            "{S} was admitted for a drip when {P} had norovirus last year, how do we avoid that again",
        ],
        "WORRY": ["my son's lips get dry in winter", "my daughter doesn't drink much at school"],
        "HYPO": ["gets dehydrated from a stomach bug"],
    },
    "abdominal": {
        "who": "adult",
        "term": ["appendicitis", "a bowel obstruction", "a perforated ulcer"],
        "E": [
            "{S} {have} sudden severe stomach pain, {pos} belly is rigid like a board and {P} can't move",
            "{S} {have} been vomiting green stuff, {pos} tummy is swollen and {P} {have}n't pooed or farted in 2 days",
            "{S} {have} excruciating pain in {pos} tummy and {be} going pale and sweaty and nearly fainted",
        ],
        "U": [
            "{S} {have} had pain low on the right side since last night, worse when walking, slight fever",
            "{S} {have} pain under {pos} right ribs after fatty meals and it's lasted 5 hours today",
        ],
        "R": [
            "{S} {have} IBS and bloating after onions, is a low FODMAP diet worth it",
            "{S} get{s} heartburn after late dinners, what can {P} take",
        ],
        "PAST": [
            "{S} had {pos} appendix out in 2018, the scar still itches sometimes",
        ],
        "WORRY": ["I get a stitch on my right side when running", "my stomach gurgles a lot"],
        "HYPO": ["has appendicitis"],
    },
    "burns_other": {
        "who": "any",
        "term": ["a serious burn", "heatstroke", "hypothermia"],
        "E": [
            "{S} pulled a pan of boiling water onto {obj}self and the skin on {pos} chest is peeling off",
            "{S} got burned in a fire, {pos} face is blackened and {pos} voice is hoarse",
            "3:{S} {have} been in the sun all day, {be} very hot, not sweating and confused",
            "3:{S} fell in the freezing river, {be} shivering violently then stopped, very sleepy and slurring",
            "{S} got an electric shock from the cooker and {pos} heart feels like it's jumping all over",
        ],
        "U": [
            "{S} burned {pos} hand on the oven, a blister the size of a coin, cooled it for 20 minutes",
            "{S} {have} sunburn with blisters on {pos} shoulders and a headache",
        ],
        "R": [
            "what SPF should {S} use on holiday",
            "how can {S} keep cool at night in a heatwave",
        ],
        "PAST": [
            "{S} had a scald as a toddler, the scar is tight, can it be treated",
        ],
        "WORRY": ["I go red in the face when it's hot", "my fingers go white in the cold"],
        "HYPO": ["gets a bad burn from boiling water"],
    },
    "eye": {
        "who": "adult",
        "term": ["acute glaucoma", "a detached retina"],
        "E": [
            "{S} got oven cleaner splashed in {pos} eye and it's burning and {P} can't open it",
            "{S} {have} a sudden very painful red eye with blurred vision, halos around lights and {be} vomiting",
        ],
        "U": [
            "{S} suddenly {have} lots of new floaters and flashes in one eye since this afternoon",
            "{S} {have} a red sticky eye since yesterday, vision fine",
        ],
        "R": [
            "how often should {S} have an eye test",
            "{S} {have} dry eyes from screens, which drops are best",
        ],
        "PAST": [
            "{S} had a detached retina fixed 3 years ago, can {P} fly",
        ],
        "WORRY": ["I see a few floaters against a blue sky", "my eyes water in the wind"],
        "HYPO": ["gets chemicals in their eye"],
    },
}

# --- general routine messages: not tied to an emergency category -----------------------------
GENERAL_ROUTINE = [
    "what is a normal HbA1c for someone without diabetes",
    "can I take ibuprofen with my blood pressure pills",
    "how often should I have a cervical screening test",
    "is it ok to drink alcohol on amoxicillin",
    "what does a high TSH mean on my blood test",
    "my cholesterol is 6.2, should I start a statin",
    "how long does a cold usually last in adults",
    "what foods are high in iron",
    "should my toddler have the flu vaccine nasal spray",
    "what is the difference between type 1 and type 2 diabetes",
    "does vitamin D help with tiredness in winter",
    "how do I stop snoring",
    "what is the best time of day to take levothyroxine",
    "can stress cause hair loss",
    "is it normal to feel tired after the covid booster",
    "what exercises help lower back pain",
    "how much sleep does a teenager need",
    "is eczema contagious",
    "what is a normal resting heart rate",
    "how do I read my lipid panel results",
    "can I give my 2 year old honey",
    "what are the side effects of metformin",
    "is coffee bad for high blood pressure",
    "how do I know if my mole needs checking",
    "does warfarin interact with green vegetables",
    "how long after a tetanus jab can I swim",
    "what is gout and why does it hurt so much",
    "is it safe to run while pregnant",
    "no chest pain, no breathlessness, just a tickly cough for 3 days, any remedy",
    "no fever and eating fine, just a runny nose for a week, when will it stop",
]

# search-box keyword queries: a topic, not a situation
KEYWORDS = [
    "asthma inhaler",
    "inhaler technique",
    "epipen expiry date",
    "blood thinner side effects",
    "insulin pen needles",
    "glucose meter accuracy",
    "nebuliser for kids",
    "defibrillator training",
    "cpr steps",
    "recovery position",
    "first aid kit list",
    "paracetamol dose child",
    "ibuprofen max dose",
    "blood pressure monitor",
    "pulse oximeter normal reading",
    "thermometer for baby",
    "peak flow chart",
    "GTN spray",
    "naloxone kit",
    "burn cream",
    "seizure first aid",
    "heart attack symptoms women",
    "stroke signs FAST",
    "allergy testing",
    "chest infection antibiotics",
    "sepsis signs",
    "overdose helpline",
    "mental health crisis team",
    "concussion recovery",
    "aneurysm screening",
    "blood clot prevention",
    "ectopic pregnancy symptoms",
    "testicular self exam",
    "hypo treatment",
    "oral rehydration salts",
    "appendicitis symptoms",
    "sunburn treatment",
    "eye wash station",
    "nosebleed first aid",
    "meningitis vaccine",
]
for _cat, _spec in CATS.items():
    for _term in _spec["term"]:  # type: ignore[attr-defined]
        _bare = re.sub(r"^(a|an) ", "", _term)
        KEYWORDS += [f"{_bare} symptoms", f"{_bare} treatment", f"{_bare} causes"]

# informational questions in the style of consumer-health FAQ pages (our own wording), about
# conditions including the emergency ones: a topic, not a situation
CONDITIONS = [
    "Heart Attack", "Stroke", "Anaphylaxis", "Sepsis", "Pulmonary Embolism", "Aortic Aneurysm",
    "Aortic Dissection", "Diabetic Ketoacidosis", "Hypoglycemia", "Meningitis", "Epilepsy", "Asthma",
    "Croup", "Ectopic Pregnancy", "Testicular Torsion", "Appendicitis", "Bowel Obstruction", "Concussion",
    "Subarachnoid Hemorrhage", "Cardiac Arrest", "Heat Stroke", "Hypothermia", "Carbon Monoxide Poisoning",
    "Acetaminophen Overdose", "Suicidal Behavior", "Gastrointestinal Bleeding", "Deep Vein Thrombosis",
    "Peripheral Artery Disease", "Glaucoma", "Retinal Detachment", "Dehydration", "Febrile Seizures",
    "Kawasaki Disease", "Angina", "Atrial Fibrillation", "Heart Failure", "Chronic Kidney Disease",
    "Psoriasis", "Gout", "Osteoporosis", "Migraine", "Lupus", "Cystic Fibrosis", "Sickle Cell Disease",
    "Hemophilia", "Leukemia", "Lymphoma", "Tuberculosis", "Hepatitis B", "Parkinson's Disease",
    "Multiple Sclerosis", "Marfan Syndrome", "Pheochromocytoma", "Addison Disease", "Toxic Shock Syndrome",
    "Necrotizing Fasciitis", "Guillain-Barre Syndrome", "Myasthenia Gravis", "Preeclampsia", "Placental Abruption",
]
FAQ_FORMS = [
    "What is (are) {C} ?", "What are the symptoms of {C} ?", "What are the treatments for {C} ?",
    "What causes {C} ?", "How is {C} diagnosed ?", "Is {C} inherited ?", "Who is at risk for {C} ?",
    "How can {C} be prevented ?", "What is the outlook for people with {C} ?",
    "What research is being done on {C} ?", "What should I know about {C} ?",
    "What are the complications of {C} ?", "How common is {C} ?", "Do you have information about {C}",
    "What are the signs of {C} in older adults ?", "What medications are used for {C} ?",
]

# figures of speech: emergency words, no emergency
FIGURATIVE = [
    "this traffic is giving me a heart attack lol",
    "I could kill my brother for eating my birthday cake",
    "my phone died and I nearly had a stroke",
    "dying of laughter at this meme, I can't breathe",
    "drowning in paperwork this week, send help",
    "my heart stopped when I saw the electricity bill",
    "that curry set my mouth on fire, worth it though",
    "I'm so hungry I'm going to pass out, what's a healthy snack",
    "the exam killed me, my brain is fried, any tips for revision sleep",
    "my boss is bleeding us dry with overtime, how do I manage stress",
    "I'm choking on all this dust from the building work, is a mask worth it",
    "watching the match gave me palpitations haha, is that a thing",
    "our team got murdered on Saturday, I'm dead inside lol",
    "this heat is killing me, how much water should I drink",
    "if I have to sit through one more meeting I'll collapse, how do I fix my posture",
    "the horror film made my heart race all night, can adrenaline do that",
    "my wallet is on life support after Christmas",
    "this spreadsheet is giving me a seizure, joking, but is screen flicker a risk for epilepsy",
]

CLINICIAN_ROLES = [
    "an A&E nurse",
    "a paramedic",
    "a GP registrar",
    "a pharmacist",
    "a medical student",
    "a school nurse",
    "a care home manager",
    "a first aid trainer",
    "a triage nurse",
    "a junior doctor",
]

# --- framings ---------------------------------------------------------------------------------
# (id, kinds it takes, template). {X} is the phrase; {Q} a routine question; {T} a term; {H} a
# hypothetical clause; {W} a vague worry; {R} a clinician role.

RAMBLE_OPEN = [
    "so it's been a long day, the kids were at their grandparents and we only just got back from the shops,",
    "sorry this is long, I've been meaning to ask about a few things, first the repeat prescription is late again,",
    "ok so background: we moved house last month and haven't registered with a GP yet, and today",
    "we were at a barbecue in the garden with friends, had a few burgers and a couple of beers, nothing unusual, then",
    "I work nights so I'm usually asleep now but the dog kept barking and when I came downstairs",
    "Hi, first time using this, my English is not perfect. We are on holiday here from Poland and",
    "long story short the car broke down on the motorway, we got a tow home, I was making tea and",
]
RAMBLE_TAIL = [
    "Also while I'm here, can you take omeprazole long term?",
    "anyway the other thing I wanted to ask was about the shingles jab.",
    "I also need to renew my hay fever tablets at some point.",
    "not sure if this is related to the new tablets from the GP.",
    "",
]

FRAMES: list[tuple[str, set[str], str]] = [
    ("plain", {"E", "U", "R"}, "{X}"),
    ("what_do", {"E", "U"}, "{X}. what do I do"),
    ("help", {"E"}, "help!! {X}"),
    ("ambulance_or_wait", {"E", "U"}, "{X}, should I call an ambulance or wait and see?"),
    ("serious", {"E", "U", "R"}, "{X} - is this serious?"),
    ("ramble", {"E", "U"}, "{O} {X}. {Tail}"),
    ("mixed", {"E", "U"}, "{Q}? Also {X} right now, not sure if it matters."),
    ("since", {"E", "U"}, "{X}, started about {N} minutes ago"),
    (
        "till_morning",
        {"E", "U"},
        "sorry to bother you so late, {X}. Can it wait till the GP opens in the morning?",
    ),
    ("right_place", {"E", "U", "R"}, "not sure this is the right place to ask but {X}"),
    ("normal", {"E", "U", "R"}, "{X}?? is that normal"),
    ("far", {"E"}, "{X}. we live an hour from the hospital, can we drive or do we wait for an ambulance"),
    ("again", {"E"}, "this happened before and it was nothing, but {X}"),
    ("pharmacy", {"E", "U", "R"}, "can I just get something from the pharmacy? {X}"),
    ("home_remedy", {"E", "U", "R"}, "{X}. any home remedies?"),
    ("text_quick", {"E"}, "quick pls {X}"),
    ("diagnosis", {"E", "U", "R"}, "{X}. what could it be?"),
    # hard negatives and the topic itself
    ("about_signs", {"T"}, "what are the warning signs of {T}?"),
    ("about_treat", {"T"}, "how is {T} treated in hospital?"),
    ("about_cause", {"T"}, "what causes {T} and who is most at risk?"),
    ("about_recover", {"T"}, "how long does recovery from {T} usually take?"),
    ("about_stats", {"T"}, "how common is {T} in the UK?"),
    ("about_school", {"T"}, "for my biology homework, can you explain what happens in the body during {T}?"),
    ("past_fine", {"PAST"}, "{X}."),
    ("past_question", {"PAST"}, "{X}. Is there anything we should watch for in future?"),
    ("hypo_someone", {"H"}, "what should you do if someone {H}?"),
    ("hypo_ever", {"H"}, "if my husband ever {H}, what should I do? just want to be prepared"),
    ("fiction_story", {"H"}, "I'm writing a story where a character {H}. what would the paramedics do?"),
    (
        "fiction_tv",
        {"H"},
        "in the hospital drama last night a man {H} and they didn't call an ambulance, is that realistic?",
    ),
    (
        "course",
        {"H"},
        "on our first aid course we practised what to do when a person {H}. what's the recovery position for?",
    ),
    ("worry_could", {"W"}, "could {T} start like this? {W}, but nothing right now and it went away"),
    (
        "worry_anxious",
        {"W"},
        "I'm a bit of a worrier. {W}. is that a sign of {T}? I feel completely fine today",
    ),
    (
        "worry_google",
        {"W"},
        "googled my symptoms and now I'm scared: {W}. could it be {T}? not happening now",
    ),
    ("clinician_protocol", {"C"}, "I'm {R}: what is the current protocol for {T}?"),
    ("clinician_teach", {"C"}, "as {R}, how should I teach staff to spot {T}?"),
    ("clinician_dose", {"C"}, "I'm {R}, what's the first-line treatment for {T} in adults?"),
    ("figurative", {"F"}, "{X}"),
    ("general", {"G"}, "{X}"),
    ("general_q", {"G"}, "quick question: {X}?"),
    ("keyword", {"K"}, "{X}"),
    ("keyword_q", {"K"}, "{X}?"),
    ("keyword_info", {"K"}, "info on {X}"),
    ("back_now", {"BACK"}, "{X} last year and got better, but now it's happening again: {Y}"),
]


# --- authors: a fixed writing habit each ------------------------------------------------------
TEXTING = [
    (r"\byou\b", "u"),
    (r"\byour\b", "ur"),
    (r"\bplease\b", "pls"),
    (r"\bI'm\b", "im"),
    (r"\bI am\b", "im"),
    (r"\bdon't\b", "dont"),
    (r"\bcan't\b", "cant"),
    (r"\bwon't\b", "wont"),
    (r"\bbecause\b", "cuz"),
    (r"\btonight\b", "2nite"),
    (r"\bwith\b", "w"),
    (r"\bminutes\b", "mins"),
    (r"\bhospital\b", "hosp"),
    (r"\babout\b", "abt"),
    (r"\bsomething\b", "smth"),
    (r"\bisn't\b", "isnt"),
    (r"\bhasn't\b", "hasnt"),
    (r"\bit's\b", "its"),
    (r"\bhe's\b", "hes"),
    (r"\bshe's\b", "shes"),
    (r"\bthat's\b", "thats"),
]
MISSPELL = {
    "breathe": "breath",
    "breathing": "breathin",
    "chest": "chset",
    "stomach": "stomache",
    "ambulance": "ambulence",
    "unconscious": "unconcious",
    "seizure": "siezure",
    "headache": "headach",
    "temperature": "temprature",
    "vomiting": "vomitting",
    "emergency": "emergancy",
    "swollen": "swolen",
    "really": "realy",
    "suddenly": "suddenley",
    "tongue": "tounge",
    "diarrhoea": "diarrea",
    "pregnant": "pregant",
    "paracetamol": "paracetemol",
    "throat": "throught",
    "testicle": "testical",
    "because": "becuase",
    "minutes": "minuts",
    "pressure": "presure",
    "bleeding": "bleading",
    "confused": "confussed",
    "breathless": "breathles",
    "collapsed": "colapsed",
    "allergic": "alergic",
}
NON_NATIVE = [
    (r"\bI am\b", "I"),
    (r"\bthe ", ""),
    (r"\b[Aa] (?=\w)", ""),
    (r"\bhas\b", "have"),
    (r"\bdoesn't\b", "not"),
    (r"\bcan't\b", "cannot"),
    (r"\bmy (mum|mom|mother)\b", "my mother she"),
]


@dataclass(frozen=True)
class Author:
    id: str
    case: str  # normal | lower | upper
    texting: bool
    misspell: float
    non_native: bool
    greeting: str
    signoff: str
    punct: str  # keep | drop | bang

    def write(self, text: str, rng: random.Random) -> str:
        if self.non_native:
            for pat, rep in NON_NATIVE:
                if rng.random() < 0.6:
                    text = re.sub(pat, rep, text, count=1)
        if self.texting:
            for pat, rep in TEXTING:
                text = re.sub(pat, rep, text, flags=re.IGNORECASE)
        if self.misspell:
            words = text.split(" ")
            text = " ".join(
                MISSPELL.get(w.lower(), w) if rng.random() < self.misspell * 4 else w for w in words
            )
        if self.punct == "drop":
            text = re.sub(r"[.,](?=\s|$)", "", text)
        elif self.punct == "bang":
            text = text.rstrip(".?! ") + rng.choice(["!!", "!!!", "??", "?!"])
        text = f"{self.greeting}{text}{self.signoff}"
        text = " ".join(text.split())
        if self.case == "lower":
            text = text.lower()
        elif self.case == "upper":
            text = text.upper()
        elif text:
            text = text[0].upper() + text[1:]
        return text


def make_authors(rng: random.Random, n: int = 90) -> list[Author]:
    greetings = ["", "", "", "hi, ", "hello doctor, ", "hey ", "good evening, ", "urgent: ", "Dear sir, "]
    signoffs = ["", "", "", " thanks", " x", " thank you in advance", " pls reply", " sorry for bad english"]
    out = []
    for i in range(n):
        non_native = rng.random() < 0.2
        out.append(
            Author(
                id=f"author{i:03d}",
                case=rng.choices(["normal", "lower", "upper"], [0.55, 0.35, 0.10])[0],
                texting=rng.random() < 0.35,
                misspell=rng.choice([0.0, 0.0, 0.05, 0.1, 0.2]),
                non_native=non_native,
                greeting=rng.choice(greetings),
                signoff=rng.choice(signoffs) if not non_native else rng.choice([*signoffs[-2:], ""]),
                punct=rng.choice(["keep", "keep", "drop", "bang"]),
            )
        )
    return out


def side(key: str) -> str:
    """train or dev, by a stable hash of a phrase, framing or author id."""
    h = int(hashlib.sha256(f"triage-split:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "dev" if h < DEV_SHARE else "train"


LEVEL = {"E": "emergency", "U": "urgent", "R": "routine"}


def candidates(rng: random.Random) -> list[dict[str, str]]:
    """Every (phrase, framing) message, before authors; several people and fillers each."""
    rows: list[dict[str, str]] = []

    def add(text: str, level: str, category: str, phrase: str, frame: str) -> None:
        rows.append({"text": text, "level": level, "category": category, "phrase": phrase, "frame": frame})

    def frames(kind: str) -> list[tuple[str, str]]:
        return [(fid, tpl) for fid, kinds, tpl in FRAMES if kind in kinds]

    for cat, spec in CATS.items():
        who = str(spec["who"])
        people = PEOPLE["adult"] + PEOPLE["child"] if who == "any" else PEOPLE[who]
        terms = list(spec["term"])  # type: ignore[call-overload]
        for kind in ("E", "U", "R"):
            for pi, phrase in enumerate(spec.get(kind, [])):  # type: ignore[attr-defined]
                pid = f"{cat}.{kind}{pi}"
                fr = frames(kind)
                for fid, tpl in rng.sample(fr, min(len(fr), 9 if kind == "E" else 6)):
                    pool = [p for p in people if p.fits(phrase)]
                    for person in rng.sample(pool, 2):
                        x = person.fill(phrase)
                        text = tpl.format(
                            X=x,
                            O=rng.choice(RAMBLE_OPEN),
                            Tail=rng.choice(RAMBLE_TAIL),
                            Q=rng.choice(GENERAL_ROUTINE),
                            N=rng.choice([5, 10, 15, 20, 30]),
                        )
                        add(text, LEVEL[kind], cat, pid, fid)
        for pi, phrase in enumerate(spec.get("PAST", [])):  # type: ignore[attr-defined]
            for fid, tpl in frames("PAST"):
                for person in rng.sample([p for p in people if p.fits(phrase)], 3):
                    add(tpl.format(X=person.fill(phrase)), "routine", cat, f"{cat}.PAST{pi}", fid)
        for fid, tpl in frames("T"):
            for ti, term in enumerate(terms):
                add(tpl.format(T=term), "routine", cat, f"{cat}.T{ti}", fid)
        for pi, hypo in enumerate(spec.get("HYPO", [])):  # type: ignore[attr-defined]
            for fid, tpl in frames("H"):
                add(tpl.format(H=hypo), "routine", cat, f"{cat}.H{pi}", fid)
        for pi, worry in enumerate(spec.get("WORRY", [])):  # type: ignore[attr-defined]
            for fid, tpl in frames("W"):
                add(tpl.format(W=worry, T=rng.choice(terms)), "routine", cat, f"{cat}.W{pi}", fid)
        for fid, tpl in frames("C"):
            for ti, term in enumerate(terms):
                add(tpl.format(R=rng.choice(CLINICIAN_ROLES), T=term), "routine", cat, f"{cat}.T{ti}", fid)
        # a past event that is happening again now is an emergency
        for pi, phrase in enumerate(spec.get("E", [])[:3]):  # type: ignore[index]
            person = rng.choice([p for p in people if p.P != "I" and p.fits(phrase)])
            add(
                f"{person.S} had {rng.choice(terms)} last year and got better, but now it's happening "
                f"again: {person.fill(phrase.replace('{S}', '{P}', 1))}",
                "emergency",
                cat,
                f"{cat}.E{pi}",
                "back_now",
            )
    for pi, text in enumerate(FIGURATIVE):
        add(text, "routine", "figurative", f"figurative.{pi}", "figurative")
        add(text, "routine", "figurative", f"figurative.{pi}", "figurative")
    for ci, condition in enumerate(CONDITIONS):
        for fi, form in enumerate(FAQ_FORMS):
            if (ci + fi) % 3 == 0:  # a third of the pairs, spread over forms and conditions
                add(form.format(C=condition), "routine", "faq", f"faq.C{ci}", f"faq_form{fi}")
    for pi, text in enumerate(KEYWORDS):
        for fid, tpl in frames("K"):
            add(tpl.format(X=text), "routine", "keyword", f"keyword.{pi}", fid)
    for pi, text in enumerate(GENERAL_ROUTINE):
        for fid, tpl in frames("G"):
            add(tpl.format(X=text), "routine", "general", f"general.{pi}", fid)
    return rows


def main() -> None:
    rng = random.Random(SEED)
    authors = make_authors(rng)
    by_side = {
        "train": [a for a in authors if side(a.id) == "train"],
        "dev": [a for a in authors if side(a.id) == "dev"],
    }
    out: dict[str, list[dict[str, str]]] = {"train": [], "dev": []}
    seen: set[str] = set()
    for row in candidates(rng):
        s_phrase, s_frame = side(row["phrase"]), side(row["frame"])
        if s_phrase != s_frame:
            continue
        # an author of the same side writes it; every message gets two authors' versions
        for author in rng.sample(by_side[s_phrase], 2):
            text = author.write(row["text"], rng)
            if text.lower() in seen:
                continue
            seen.add(text.lower())
            out[s_phrase].append(
                {
                    "text": text,
                    "level": row["level"],
                    "category": row["category"],
                    "template": f"{row['frame']}/{row['phrase']}",
                    "author": author.id,
                }
            )
    for name, rows in out.items():
        rng.shuffle(rows)
        path = OUT / f"{name}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for i, row in enumerate(rows):
                f.write(json.dumps({"id": f"{name}-{i:05d}", **row}, ensure_ascii=False) + "\n")
        levels = {lv: sum(r["level"] == lv for r in rows) for lv in ("emergency", "urgent", "routine")}
        print(f"{path.name}: {len(rows)} messages {levels}")


if __name__ == "__main__":
    main()
