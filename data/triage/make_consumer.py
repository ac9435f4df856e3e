# ruff: noqa: E501  (the templates are data, one per line)
"""Write routine consumer-style questions: data/triage/consumer_{train,dev,heldout}.jsonl.

    python data/triage/make_consumer.py          # deterministic (seed 28)

Why (issue #28): the gate was trained on messages about someone who is ill (emergencies, urgent
complaints and their hard negatives), not on what people send to a consumer medicines and health
service. On real questions it called about 1 in 35 an emergency: a drug name and a strength
("qvar 40mg what is it for") sat nearest the overdose and seizure messages, and "overdose" in a
pharmacy dispute or "stroke" in a father's history read as red flags. These messages are all
`routine`: no one in them needs care today. Seven kinds, each a list of templates:

- `drug_short`: a drug name and strength and a few words ("vyvanse 10 what is all in this pill");
- `dose_timing`: how much, when, how long, with what;
- `pharmacy_insurance`: a refused fill, a cost, a generic that looks different;
- `relative_past`: a relative's or one's own past event, asked about now (risk, heredity, support);
- `genetics`: carrier results, karyotypes, recurrent miscarriage, inheritance;
- `veterinary`: animal medicines, their doses and whether a human can use them;
- `long_story`: several sentences of background with a scary word in passing, then a plain question.

The slots are filled from lists written here (drugs with their usual strengths, relatives, past
events, animals, veterinary products), and each message gets one writing habit (`STYLES`: lower
case, no punctuation, texting, all caps, typos, a greeting, a subject line...).

The split is by template and by drug: each template, and each drug and veterinary product, is
assigned to train (55%), dev (20%) or heldout (25%) by a hash of its id, and a message is made only
from a template and fills of the same split. Templates marked `H:` paraphrase the questions quoted
in issue #28 and are held out whatever their hash says. So no held-out message shares its template or its
drug with a training or dev message. The drugs of the questions quoted in issue #28 (qvar, ambien,
metformin, vyvanse, vitamin d, lorcet) are held out by name, so the tests that quote them read
drugs the classifier was never trained or tuned on, in phrasings it was never trained or tuned on;
`trisomy` and the indications of veterinary antibiotic powders appear in held-out templates only.

Use: `consumer_train.jsonl` is added to the training split and `consumer_dev.jsonl` to the dev split
(`chatbot.triage.dataset.split`); `consumer_heldout.jsonl` is read only by `bench/bench_safety.py`
(false emergencies per 1,000, with an interval). Reviewed by reading every template and a sample of
every kind's messages; phrasing that could describe an emergency now (took too many, can't breathe,
chest pain now, a child who swallowed something) is deliberately absent, and so are the closers of
the generated dev split (`chatbot.triage.dataset.DEV_CLOSERS`: "is that normal"...), which
`bench/bench_safety.py` adds to dev emergencies to check that a framing does not hide one: trained
only as routine, they would.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent
SEED = 28
SPLITS = (("train", 0.55), ("dev", 0.75), ("heldout", 1.0))

# fmt: off
# --- fills ------------------------------------------------------------------------------------

# name as people type it, strengths, what it is for (in the writer's words)
DRUGS: list[tuple[str, tuple[str, ...], str]] = [
    ("qvar", ("40mg", "80mcg", "40"), "asthma"),
    ("ambien", ("10mg", "5mg", "10"), "sleep"),
    ("metformin", ("500mg", "1000mg", "850 mg", "500"), "diabetes"),
    ("vyvanse", ("10", "30mg", "50 mg"), "adhd"),
    ("vitamin d", ("25", "1000 iu", "50000 iu", "25mcg"), "low vitamin d"),
    ("lorcet", ("7.5", "10/325", "7.5 mg"), "pain"),
    ("lisinopril", ("10mg", "20 mg", "5mg", "40"), "blood pressure"),
    ("atorvastatin", ("20mg", "40 mg", "10mg", "80"), "cholesterol"),
    ("lipitor", ("20mg", "40mg", "10"), "cholesterol"),
    ("crestor", ("5mg", "10 mg", "20"), "cholesterol"),
    ("simvastatin", ("20mg", "40mg"), "cholesterol"),
    ("amlodipine", ("5mg", "10mg", "2.5 mg"), "blood pressure"),
    ("losartan", ("25mg", "50 mg", "100"), "blood pressure"),
    ("metoprolol", ("25mg", "50mg", "25 er"), "blood pressure"),
    ("toprol xl", ("25", "50mg"), "heart rate"),
    ("hydrochlorothiazide", ("12.5mg", "25 mg"), "water retention"),
    ("furosemide", ("20mg", "40 mg"), "fluid"),
    ("lasix", ("20", "40mg"), "swelling in my legs"),
    ("levothyroxine", ("50mcg", "75 mcg", "100mcg", "25"), "thyroid"),
    ("synthroid", ("88mcg", "112 mcg", "50"), "thyroid"),
    ("omeprazole", ("20mg", "40 mg"), "acid reflux"),
    ("prilosec", ("20mg", "20"), "heartburn"),
    ("pantoprazole", ("40mg", "20 mg"), "reflux"),
    ("nexium", ("40mg", "20"), "heartburn"),
    ("famotidine", ("20mg", "40"), "acid"),
    ("gabapentin", ("300mg", "100 mg", "600", "800mg"), "nerve pain"),
    ("lyrica", ("75mg", "150 mg", "50"), "nerve pain"),
    ("sertraline", ("50mg", "100 mg", "25"), "anxiety"),
    ("zoloft", ("50mg", "100", "25 mg"), "depression"),
    ("lexapro", ("10mg", "5 mg", "20"), "anxiety"),
    ("escitalopram", ("10mg", "20 mg"), "depression"),
    ("fluoxetine", ("20mg", "40 mg", "10"), "depression"),
    ("prozac", ("20mg", "10"), "mood"),
    ("citalopram", ("20mg", "10 mg"), "anxiety"),
    ("wellbutrin", ("150 xl", "300mg", "150"), "depression"),
    ("bupropion", ("150mg sr", "300 xl"), "depression"),
    ("trazodone", ("50mg", "100 mg", "50"), "sleep"),
    ("cymbalta", ("30mg", "60 mg"), "depression"),
    ("duloxetine", ("30mg", "60"), "nerve pain"),
    ("effexor", ("75mg", "37.5", "150 xr"), "anxiety"),
    ("buspirone", ("10mg", "15 mg", "5"), "anxiety"),
    ("xanax", ("0.5mg", ".25", "1mg"), "panic attacks"),
    ("alprazolam", ("0.25mg", "0.5 mg"), "anxiety"),
    ("klonopin", ("0.5mg", "1 mg", ".5"), "panic"),
    ("clonazepam", ("0.5mg", "1mg"), "anxiety"),
    ("ativan", ("1mg", "0.5 mg"), "anxiety"),
    ("lorazepam", ("1mg", "0.5"), "anxiety"),
    ("valium", ("5mg", "2 mg", "10"), "muscle spasms"),
    ("diazepam", ("5mg", "2mg"), "anxiety"),
    ("adderall", ("20mg", "10 xr", "30"), "adhd"),
    ("ritalin", ("10mg", "20 la"), "adhd"),
    ("concerta", ("18mg", "36 mg", "54"), "adhd"),
    ("focalin", ("10mg xr", "5"), "adhd"),
    ("strattera", ("40mg", "25"), "adhd"),
    ("tramadol", ("50mg", "50", "100 er"), "back pain"),
    ("norco", ("5/325", "10/325", "7.5"), "pain"),
    ("vicodin", ("5/500", "5/300"), "pain"),
    ("percocet", ("5/325", "10 325"), "pain after surgery"),
    ("oxycodone", ("5mg", "10 mg"), "pain"),
    ("hydrocodone", ("10/325", "5 325"), "pain"),
    ("tylenol 3", ("300/30",), "pain"),
    ("suboxone", ("8mg/2mg", "8/2 film", "2mg"), "opioid dependence"),
    ("naltrexone", ("50mg",), "cravings"),
    ("meloxicam", ("15mg", "7.5 mg", "7.5"), "arthritis"),
    ("mobic", ("15mg", "7.5"), "arthritis"),
    ("naproxen", ("500mg", "250 mg", "220"), "joint pain"),
    ("aleve", ("220mg",), "pain"),
    ("ibuprofen", ("400mg", "600 mg", "800", "200mg"), "pain"),
    ("motrin", ("800mg", "600"), "pain"),
    ("celebrex", ("200mg", "100 mg"), "arthritis"),
    ("diclofenac", ("75mg", "50 mg"), "joint pain"),
    ("cyclobenzaprine", ("10mg", "5 mg"), "muscle spasm"),
    ("flexeril", ("10mg", "5"), "back spasms"),
    ("methocarbamol", ("750mg", "500"), "muscle pain"),
    ("baclofen", ("10mg", "20 mg"), "spasticity"),
    ("prednisone", ("20mg", "10 mg", "5mg", "40"), "inflammation"),
    ("medrol dose pack", ("4mg",), "a flare up"),
    ("methylprednisolone", ("4mg", "16 mg"), "inflammation"),
    ("amoxicillin", ("500mg", "875 mg", "250"), "an ear infection"),
    ("augmentin", ("875/125", "500 mg"), "sinus infection"),
    ("azithromycin", ("250mg", "500 mg", "z pack"), "bronchitis"),
    ("z-pak", ("250mg",), "a chest cold"),
    ("doxycycline", ("100mg", "100 mg"), "acne"),
    ("cephalexin", ("500mg", "250 mg"), "a skin infection"),
    ("keflex", ("500mg", "500"), "an infection"),
    ("ciprofloxacin", ("500mg", "250 mg"), "a uti"),
    ("cipro", ("500", "250mg"), "a bladder infection"),
    ("bactrim ds", ("800/160",), "a uti"),
    ("nitrofurantoin", ("100mg", "100 mg"), "a urine infection"),
    ("macrobid", ("100mg", "100"), "a uti"),
    ("clindamycin", ("300mg", "150 mg"), "a tooth infection"),
    ("metronidazole", ("500mg", "250 mg"), "an infection"),
    ("flagyl", ("500mg", "500"), "bv"),
    ("fluconazole", ("150mg", "150"), "a yeast infection"),
    ("diflucan", ("150mg",), "thrush"),
    ("valacyclovir", ("1g", "500 mg"), "cold sores"),
    ("valtrex", ("1 gram", "500mg"), "shingles"),
    ("tamiflu", ("75mg", "75"), "flu"),
    ("paxlovid", ("300/100",), "covid"),
    ("warfarin", ("5mg", "2.5 mg", "3"), "a clot"),
    ("coumadin", ("5mg", "2"), "afib"),
    ("eliquis", ("5mg", "2.5 mg"), "afib"),
    ("xarelto", ("20mg", "15 mg", "10"), "a blood clot"),
    ("plavix", ("75mg", "75"), "my stents"),
    ("clopidogrel", ("75mg",), "after a stent"),
    ("baby aspirin", ("81mg", "81"), "my heart"),
    ("aspirin", ("81mg", "325 mg"), "prevention"),
    ("entresto", ("24/26", "49/51"), "heart failure"),
    ("digoxin", ("0.125mg", "125mcg"), "heart rhythm"),
    ("spironolactone", ("25mg", "50 mg"), "acne"),
    ("jardiance", ("10mg", "25 mg"), "diabetes"),
    ("januvia", ("100mg", "50"), "diabetes"),
    ("glipizide", ("5mg", "10 mg"), "sugar"),
    ("ozempic", ("0.25mg", "0.5 mg", "1mg"), "diabetes"),
    ("mounjaro", ("2.5mg", "5 mg"), "weight"),
    ("trulicity", ("0.75mg", "1.5 mg"), "diabetes"),
    ("lantus", ("20 units", "100 units/ml"), "diabetes"),
    ("humalog", ("kwikpen", "100u/ml"), "diabetes"),
    ("albuterol", ("90mcg", "2.5mg/3ml"), "asthma"),
    ("ventolin", ("100mcg", "hfa"), "asthma"),
    ("symbicort", ("160/4.5", "80/4.5"), "asthma"),
    ("advair", ("250/50", "100/50"), "copd"),
    ("flovent", ("110mcg", "44 mcg"), "asthma"),
    ("singulair", ("10mg", "5 mg chewable"), "allergies"),
    ("montelukast", ("10mg", "4mg"), "allergies"),
    ("zyrtec", ("10mg", "10"), "allergies"),
    ("cetirizine", ("10mg", "5 mg"), "hay fever"),
    ("claritin", ("10mg",), "allergies"),
    ("allegra", ("180mg", "60"), "allergies"),
    ("benadryl", ("25mg", "50 mg"), "itching"),
    ("hydroxyzine", ("25mg", "10 mg", "50"), "itching"),
    ("flonase", ("50mcg",), "stuffy nose"),
    ("sudafed", ("30mg", "120 mg"), "congestion"),
    ("mucinex", ("600mg", "1200 mg"), "chest congestion"),
    ("tessalon perles", ("100mg", "200"), "cough"),
    ("promethazine", ("25mg", "12.5 mg"), "nausea"),
    ("zofran", ("4mg", "8 mg", "4"), "nausea"),
    ("ondansetron", ("4mg", "8mg odt"), "nausea"),
    ("meclizine", ("25mg", "12.5"), "dizziness"),
    ("imitrex", ("50mg", "100 mg"), "migraines"),
    ("sumatriptan", ("50mg", "100"), "migraine"),
    ("topamax", ("25mg", "50 mg"), "migraine prevention"),
    ("topiramate", ("25mg", "100"), "migraines"),
    ("keppra", ("500mg", "750 mg"), "epilepsy"),
    ("lamotrigine", ("25mg", "100 mg", "200"), "bipolar"),
    ("lamictal", ("100mg", "25"), "mood"),
    ("depakote", ("500mg", "250 er"), "bipolar"),
    ("lithium", ("300mg", "450 er"), "bipolar"),
    ("seroquel", ("25mg", "50 mg", "100"), "sleep"),
    ("quetiapine", ("25mg", "100 mg"), "bipolar"),
    ("abilify", ("5mg", "2 mg", "10"), "depression"),
    ("risperidone", ("1mg", "0.5 mg"), "my son's behaviour"),
    ("melatonin", ("3mg", "5 mg", "10mg"), "sleep"),
    ("zolpidem", ("10mg", "5 mg"), "insomnia"),
    ("finasteride", ("1mg", "5 mg"), "hair loss"),
    ("tamsulosin", ("0.4mg", "0.4"), "prostate"),
    ("flomax", ("0.4mg", ".4"), "prostate"),
    ("sildenafil", ("20mg", "100 mg", "50"), "ed"),
    ("viagra", ("50mg", "100"), "ed"),
    ("cialis", ("5mg", "20 mg"), "ed"),
    ("oxybutynin", ("5mg", "10 xl"), "overactive bladder"),
    ("allopurinol", ("100mg", "300 mg"), "gout"),
    ("colchicine", ("0.6mg", "0.6"), "gout"),
    ("alendronate", ("70mg", "70"), "osteoporosis"),
    ("fosamax", ("70mg",), "bone density"),
    ("estradiol", ("1mg", "0.05 patch", "2mg"), "menopause"),
    ("premarin", ("0.625mg", "0.3"), "hot flashes"),
    ("progesterone", ("100mg", "200 mg"), "hrt"),
    ("provera", ("10mg", "5"), "periods"),
    ("sprintec", ("0.25/35",), "birth control"),
    ("junel fe", ("1/20", "1.5/30"), "birth control"),
    ("yaz", ("3/0.02",), "birth control"),
    ("clomid", ("50mg", "100 mg"), "ovulation"),
    ("letrozole", ("2.5mg", "2.5"), "fertility"),
    ("tamoxifen", ("20mg", "10 mg"), "breast cancer"),
    ("anastrozole", ("1mg",), "after breast cancer"),
    ("methotrexate", ("2.5mg", "15 mg weekly"), "rheumatoid arthritis"),
    ("plaquenil", ("200mg", "400 mg"), "lupus"),
    ("humira", ("40mg", "40 pen"), "crohns"),
    ("enbrel", ("50mg", "50 sureclick"), "psoriasis"),
    ("accutane", ("20mg", "40 mg"), "acne"),
    ("tretinoin", ("0.025%", "0.05 cream"), "acne"),
    ("triamcinolone", ("0.1% cream", "0.1"), "eczema"),
    ("hydrocortisone", ("1% cream", "2.5%"), "a rash"),
    ("clobetasol", ("0.05%",), "psoriasis"),
    ("mupirocin", ("2%",), "a cut"),
    ("nystatin", ("100,000 units",), "thrush"),
    ("potassium chloride", ("20 meq", "10meq"), "low potassium"),
    ("folic acid", ("1mg", "400mcg", "5 mg"), "pregnancy"),
    ("b12", ("1000mcg", "1000 mcg", "500"), "low b12"),
    ("iron", ("65mg", "325 mg", "ferrous sulfate 325"), "anemia"),
    ("ferrous sulfate", ("325mg", "200 mg"), "anaemia"),
    ("magnesium", ("400mg", "250 mg"), "cramps"),
    ("calcium", ("600mg", "500 mg with d"), "bones"),
    ("fish oil", ("1000mg", "1200 mg"), "triglycerides"),
    ("zinc", ("50mg", "25"), "colds"),
    ("biotin", ("5000mcg", "10000 mcg"), "hair"),
    ("coq10", ("100mg", "200"), "statin muscle aches"),
    ("ashwagandha", ("600mg", "300 mg"), "stress"),
    ("turmeric", ("500mg", "1000 mg"), "joints"),
    ("miralax", ("17g", "17 grams"), "constipation"),
    ("colace", ("100mg", "100"), "constipation"),
    ("senna", ("8.6mg", "8.6"), "constipation"),
    ("imodium", ("2mg",), "diarrhea"),
    ("dicyclomine", ("20mg", "10 mg"), "ibs"),
    ("linzess", ("145mcg", "72 mcg"), "ibs"),
    ("nicotine patch", ("21mg", "14 mg", "7mg"), "quitting smoking"),
    ("chantix", ("1mg", "0.5 mg"), "quitting smoking"),
    ("propranolol", ("10mg", "40 mg", "20"), "performance anxiety"),
    ("clonidine", ("0.1mg", "0.2"), "blood pressure"),
    ("hydralazine", ("25mg", "50"), "blood pressure"),
    ("carvedilol", ("6.25mg", "12.5 mg", "25"), "heart"),
    ("diltiazem", ("120mg", "240 er"), "heart rate"),
    ("prednisolone", ("15mg/5ml", "5mg"), "croup"),
    ("amoxicillin suspension", ("250mg/5ml", "400/5"), "my daughter's ear infection"),
    ("childrens motrin", ("100mg/5ml",), "my son's fever"),
    ("childrens tylenol", ("160mg/5ml",), "teething"),
    ("tylenol", ("500mg", "325 mg", "650 er"), "headaches"),
    ("excedrin", ("250/250/65",), "migraines"),
    ("sumycin", ("250mg",), "acne"),
    ("benzonatate", ("100mg", "200 mg"), "cough"),
    ("dayquil", ("liquicaps",), "a cold"),
    ("nyquil", ("30ml", "liquicaps"), "a cold"),
    ("pepcid", ("20mg", "10 mg"), "heartburn"),
    ("tums", ("750mg", "500"), "heartburn"),
    ("phentermine", ("37.5mg", "37.5"), "weight loss"),
    ("contrave", ("8/90",), "weight loss"),
    ("armour thyroid", ("60mg", "90 mg"), "hypothyroidism"),
    ("methimazole", ("5mg", "10 mg"), "overactive thyroid"),
    ("dexamethasone", ("4mg", "6 mg"), "swelling"),
    ("budesonide", ("3mg", "9 mg"), "crohns"),
    ("mesalamine", ("1.2g", "800mg"), "ulcerative colitis"),
    ("xifaxan", ("550mg",), "ibs"),
    ("ranolazine", ("500mg",), "angina"),
    ("isosorbide", ("30mg er", "60 mg"), "angina"),
    ("nitroglycerin", ("0.4mg", "0.4 spray"), "angina"),
    ("donepezil", ("5mg", "10 mg"), "my mother's memory"),
    ("aricept", ("10mg", "5"), "dementia"),
    ("memantine", ("10mg", "5 mg"), "alzheimers"),
    ("sinemet", ("25/100", "25/250"), "parkinsons"),
    ("ropinirole", ("0.25mg", "1 mg"), "restless legs"),
    ("requip", ("0.5mg", "1"), "restless legs"),
]
HELD_OUT_DRUGS = {"qvar", "ambien", "metformin", "vyvanse", "vitamin d", "lorcet"}
"""The drugs of the questions quoted in issue #28: held out by name, whatever their hash says."""

FORMS = ("pill", "tablet", "capsule", "liquid", "tab", "caps", "patch", "cream", "inhaler", "injection")
RELATIVES = (
    "my father", "my dad", "my mother", "my mom", "my mum", "my brother", "my sister", "my grandfather",
    "my grandmother", "my uncle", "my aunt", "my husband", "my wife", "my son", "my daughter", "my cousin",
    "my nan", "my grandad", "my father in law", "my mother-in-law", "my late father", "my late mother",
)
# a past event (what it was, when), for a relative or oneself: said in passing, not happening now
PAST_EVENTS = (
    "had a stroke in {year}", "had a heart attack {ago}", "had a seizure {ago}", "had a mini stroke {ago}",
    "had meningitis as a child",
    "had sepsis {ago}", "overdosed {ago} and has been clean since", "had an aneurysm repaired in {year}",
    "was treated for a blood clot in {year}", "had a pulmonary embolism {ago}",
    "had anaphylaxis to penicillin as a child", "went into cardiac arrest {ago} and recovered",
    "had bleeding on the brain in {year}", "had a bad asthma attack {ago}", "had epilepsy as a teenager",
    "was in intensive care with pneumonia in {year}", "had a bowel obstruction {ago}",
    "attempted suicide {ago} and is doing well now", "was diagnosed with heart failure in {year}",
    "had a TIA {ago}", "had open heart surgery in {year}", "had a bleeding ulcer {ago}",
)
PAST_DIED = ("died of a heart attack at {age}", "died of a stroke at {age}", "died of an aneurysm at {age}",
             "passed away from a pulmonary embolism at {age}", "died suddenly in his sleep at {age}")
"""Only where the question is about the writer's own risk ({pastany})."""
AGO = ("last year", "two years ago", "in 2019", "a few years back", "years ago",
       "10 years ago", "back in 2015", "in the 90s", "when I was a kid", "three years ago")
YEARS = ("2012", "2016", "2018", "2019", "2020", "2021", "2008", "1999")
AGES = ("52", "60", "47", "71", "65", "58", "49")
CONDITIONS = (
    "type 2 diabetes", "high blood pressure", "hypothyroidism", "asthma", "afib", "high cholesterol",
    "rheumatoid arthritis", "psoriasis", "gerd", "anxiety", "depression", "migraines", "copd",
    "epilepsy", "osteoporosis", "gout", "ibs", "fibromyalgia", "sleep apnea", "bipolar disorder",
)
ANIMALS = ("dog", "cat", "horse", "puppy", "kitten", "goat", "rabbit", "chickens", "cattle", "lab", "beagle",
           "german shepherd", "pony", "sheep", "parrot", "ferret", "pig", "calves")
# veterinary products: name as typed, what it is
VET_DRUGS: list[tuple[str, str]] = [
    ("baytril", "antibiotic"), ("clavamox", "antibiotic"), ("simplicef", "antibiotic"),
    ("oxytetracycline powder", "antibiotic powder"), ("terramycin soluble powder", "antibiotic powder"),
    ("neomycin soluble powder", "antibiotic powder"), ("sulfadimethoxine", "antibiotic"),
    ("albon", "antibiotic"), ("fish mox", "aquarium antibiotic"), ("penicillin g procaine", "injectable antibiotic"),
    ("apoquel", "allergy tablet"), ("cytopoint", "allergy shot"), ("rimadyl", "anti inflammatory"),
    ("carprofen", "pain relief"), ("metacam", "pain medicine"), ("meloxidyl", "anti inflammatory"),
    ("galliprant", "arthritis medicine"), ("bute", "pain paste"), ("banamine", "pain injection"),
    ("heartgard", "heartworm chew"), ("nexgard", "flea and tick chew"), ("bravecto", "flea tablet"),
    ("simparica", "flea chew"), ("revolution", "flea drops"), ("frontline", "flea treatment"),
    ("ivermectin paste", "wormer"), ("safe-guard", "dewormer"), ("panacur", "dewormer"),
    ("drontal", "wormer"), ("proin", "incontinence medicine"), ("vetmedin", "heart medicine"),
    ("cerenia", "anti nausea tablet"), ("trazodone for dogs", "calming medicine"),
    ("gabapentin for cats", "pain and calming"), ("methimazole gel", "thyroid gel"),
    ("prednisolone for cats", "steroid"), ("enrofloxacin", "antibiotic"),
    ("doxycycline for dogs", "antibiotic"), ("amoxi-drops", "antibiotic drops"),
    ("duramycin-10", "tetracycline powder"), ("sulmet", "sulfa drinking water treatment"),
    ("corid", "coccidiosis powder"),
]

# --- templates ----------------------------------------------------------------------------------
# {drug} {s} (its strength) {form} {cond} (what it is for) {drug2} {s2} (another drug of the same split)
# {rel} {past} {cond2} {animal} {vdrug} {vkind} {n} {hours} {time} {age} {year}

TEMPLATES: dict[str, list[str]] = {
    "drug_short": [
        "H:{drug} {s} what is it for",
        "what is {drug} {s} used for",
        "{drug} {s} whats in this",
        "H:what is all in {drug} {s}",
        "{drug} {s} {form} what is it",
        "what is {drug} {s}",
        "{drug} {s} side effects",
        "side effects of {drug}",
        "what does {drug} do",
        "is {drug} a controlled substance",
        "is {drug} a narcotic",
        "{drug} {s} generic name",
        "what is the generic for {drug}",
        "{drug} vs {drug2}",
        "difference between {drug} and {drug2}",
        "is {drug} the same as {drug2}",
        "can {drug} be crushed",
        "does {drug} have sulfa in it",
        "is {drug} gluten free",
        "does {drug} {s} contain lactose",
        "what drug class is {drug}",
        "{drug} and alcohol",
        "{drug} and grapefruit?",
        "can i drink coffee with {drug}",
        "is {drug} safe while breastfeeding",
        "{drug} in pregnancy safe?",
        "does {drug} cause weight gain",
        "does {drug} cause hair loss",
        "can {drug} make you tired",
        "{drug} {s} how long does it last",
        "how long does {drug} stay in your system",
        "{drug} {s} interactions",
        "can you take {drug} with {drug2}",
        "{drug} and {drug2} together ok?",
        "what is the shelf life of {drug}",
        "is expired {drug} still good",
        "{drug} {s} {form} color changed",
        "white oval pill {drug} {s} imprint",
        "how do i store {drug}",
        "does {drug} need to be refrigerated",
        "{drug} {s} brand name",
        "what is {drug} prescribed for besides {cond}",
        "{drug} for {cond}?",
        "is {drug} an antibiotic",
        "is {drug} a steroid",
        "is {drug} an opioid",
        "is {drug} a blood thinner",
        "{drug} withdrawal symptoms how long",
        "how to wean off {drug} {s}",
        "H:{drug} {s} liquid whats in it",
        "ingredients in {drug} {s}",
        "what is the active ingredient in {drug}",
        "does {drug} show up on a drug test",
        "{drug} {s} {form}?? what for",
        "my doctor gave me {drug} {s}, what is it for",
        "found {drug} {s} in my sons room what is it",
        "what are {drug} {s} {form}s",
        "{drug} {s} mg what does it treat",
        "how does {drug} work",
        "{drug} mechanism of action simple terms",
        "whats the strongest dose of {drug}",
        "is there a natural alternative to {drug}",
        "{drug} reviews for {cond}",
        "can {drug} cause constipation",
        "does {drug} raise blood sugar",
        "{drug} {s} and vitamins",
        "can i take {drug} with ibuprofen",
        "can i take tylenol with {drug}",
        "{drug} and birth control interaction",
        "is {drug} addictive",
        "{drug} {s} {form} pink round",
        "is {drug} {s} a high dose",
        "{drug} uses",
        "{drug} {s} for what",
        "what kind of medicine is {drug} {s}",
        "tell me about {drug}",
        "info on {drug} {s} please",
        "{drug}??",
        "{drug} {s} is it strong",
        "why would a doctor prescribe {drug} {s}",
        "is {drug} safe for the kidneys",
        "{drug} liver damage?",
        "does {drug} interact with {drug2}",
        "{drug} {s} 30 count price",
        "what is {drug} {s} {form} prescribed for",
        "{drug} {s} what's it for and is it safe",
        "wat is {drug} 4",
        "{drug} {s} pill with {n} on it",
        "is {drug} {s} strong? it seems like a lot",
        "{drug} ok to take while on {drug2}?",
        "my {rel2} takes {drug}, what is it for",
        "what are the long term effects of {drug}",
        "does {drug} lose strength after the expiry date",
        "can {drug} cause dry mouth",
        "{drug} {s} vs {s2}, what's the difference",
        "is {drug} a painkiller",
        "can i buy {drug} {s} online safely",
        "{drug} how it works in the body",
        "whats the half life of {drug}",
        "{drug} {form} smells weird is it ok",
        "can you get high on {drug}",
        "what is {drug} {s} in the uk called",
        "does {drug} make your pee change colour",
        "how do you pronounce {drug}",
    ],
    "dose_timing": [
        "H:how long before bed should i take {drug}",
        "H:i take {drug} every night, how long before bed am i supposed to take it",
        "H:{drug} {s}, how to take a day",
        "how many times a day do i take {drug} {s}",
        "{drug} {s} morning or night?",
        "is it better to take {drug} in the morning or at night",
        "can i take {drug} at night instead of the morning",
        "how many hours apart should i take {drug}",
        "how many {drug} {s} can i take in a day",
        "what is the maximum daily dose of {drug}",
        "max dose of {drug} per day",
        "i forgot my {drug} this morning, should i take it now or wait until tomorrow",
        "missed a dose of {drug} {s} yesterday what do i do",
        "should {drug} be taken with food or on an empty stomach",
        "can i take {drug} on an empty stomach",
        "how long does it take for {drug} to start working",
        "how long after taking {drug} can i eat",
        "can i split {drug} {s} tablets in half",
        "my doctor said take {drug} {s} twice a day, does that mean every 12 hours",
        "how long should i wait between {drug} and {drug2}",
        "can i take {drug} and {drug2} at the same time of day",
        "is {n} {s} of {drug} a normal dose",
        "dose of {drug} for a {age} year old",
        "what is the usual starting dose of {drug}",
        "i was told to go up to {drug} {s2} from {s}, is that a big jump",
        "how long do i need to stay on {drug} for {cond}",
        "can i stop {drug} once i feel better",
        "when is the best time of day to take {drug} for {cond}",
        "how soon after my {drug} can i have a glass of wine",
        "{drug} {s} every {hours} hours is that right?",
        "prescription says {drug} {s} {n} times daily, can i take them all at once",
        "can i take my {drug} early if i'm travelling across time zones",
        "taking {drug} for {cond}, how long until i notice a difference",
        "vitamin timing: should {drug} be taken apart from my {drug2}",
        "what happens if i take {drug} a few hours late",
        "how much {drug} liquid is {s}",
        "how many ml is a dose of {drug} {s}",
        "is it ok to take {drug} every other day instead of daily",
        "can {drug} be taken as needed or does it have to be every day",
        "my {drug} {s} dose was doubled, should i take two of my old pills",
        "do i take {drug} before or after breakfast",
        "how late in the day can i take {drug}",
        "how long does one dose of {drug} {s} last",
        "{drug} {s} once a week, what day is best",
        "can i take {drug} right before bed or will it keep me up",
        "{drug} {s} twice a day or once",
        "how many hours between doses of {drug}",
        "best time to take {drug} and {drug2}",
        "can i take {drug} {s} with milk",
        "dosage for {drug} {s} for {cond}",
        "how much {drug} should i take for {cond}",
        "if i take {drug} at 8am when can i take the next one",
        "{drug} {s} how long to wait before driving",
        "how long after {drug} can i take {drug2}",
        "how many days in a row can i take {drug}",
        "can i take 2 {drug} {s} at once instead of 1 {s2}",
        "whats the dose of {drug} for a child of {w} lbs",
        "{drug} {s} take with water or juice",
        "is it better to take {drug} all at once or split it up",
        "if i miss my {drug} for 2 days do i double up",
        "how long does {drug} {s} take to wear off",
        "can i take {drug} every day long term",
        "my doctor increased my {drug} to {s}, when do i take the extra pill",
        "do i need to take {drug} at exactly the same time every day",
        "how long should i wait to drive after starting {drug}",
        "{drug} dosing for kidney problems",
    ],
    "pharmacy_insurance": [
        "H:pharmacy refused to fill my {drug} {s} stating overdose, doctor wrote for {n} a day, what is the maximum daily dosage?",
        "the pharmacist won't fill my {drug} because it's too early, i'm only 3 days early",
        "pharmacy says my {drug} {s} prescription is an overdose amount, who is right",
        "pharmacist refused my {drug} script saying the dose was too high, is {n} a day too much",
        "pharmacy said {drug} and {drug2} together was a dangerous interaction and wouldn't fill it. is it really?",
        "insurance won't cover {drug}, is there a cheaper alternative for {cond}",
        "my insurance denied prior authorization for {drug} {s}, what are my options",
        "why is {drug} so expensive without insurance",
        "coupon for {drug} {s}?",
        "my pharmacy switched my {drug} to a different generic and the pill looks different, is it the same",
        "got my {drug} refill and the {form}s are a different color than last month",
        "pharmacy gave me {drug} {s2} instead of {s}, can i just take more of them",
        "can i get {drug} over the counter or do i need a prescription",
        "my doctor retired, can the pharmacy refill my {drug} {s} without a new script",
        "the pharmacy is out of {drug} {s}, can i take {drug2} instead until they get it",
        "mail order sent me a 90 day supply of {drug}, is it ok it came warm",
        "is it legal to bring {drug} {s} on a plane to another country",
        "my medicare plan dropped {drug} from the formulary, what now",
        "my pharmacist says {drug} can't be taken with my {drug2}, but my doctor prescribed both",
        "the pharmacy label says {drug} {s} but the bottle from the doctor said {s2}, which is correct",
        "insurance only covers 30 {drug} a month but i take {n} a day",
        "pharmacy tech said the {drug} dose on my script was an overdose and called my doctor, should i be worried",
        "can a pharmacy refuse to fill {drug} because of the dose",
        "what is the cheapest pharmacy for {drug} {s}",
        "my {drug} was recalled, what should i do with the pills i have",
        "the pharmacy only gave me half my {drug}, they said they'd owe me the rest",
        "is generic {drug} as good as the brand",
        "my copay for {drug} went up to $200, are there assistance programs",
        "can i use goodrx for {drug} {s} if i have insurance",
        "the pharmacist said my {drug} and {drug2} both raise the risk of bleeding, is that a reason not to take them",
        "cvs won't fill my {drug} because the doctor didn't sign it",
        "walgreens says {drug} {s} is on backorder, what's a substitute",
        "can my wife pick up my {drug} prescription for me",
        "lost my {drug} on vacation, how do i get an emergency refill",
        "my insurance requires step therapy before {drug}, what does that mean",
        "pharmacy filled {drug} {s} but the label says take {n} daily and my doctor said once, which is right",
        "the pharmacy flagged my {drug} dose as too high and won't release it until my doctor calls back",
        "insurance wants me to try {drug2} before they pay for {drug} {s}",
        "pharmacy keeps shorting my {drug} count, what can i do",
        "my prescription for {drug} {s} expired, can the pharmacist extend it",
        "is it ok to use a {drug} prescription from another state",
        "pharmacist said i can't get {drug} and {drug2} filled the same day, why",
        "my new insurance card hasn't come and the pharmacy won't run my {drug}",
        "why did my pharmacy change my {drug} manufacturer without telling me",
        "the pharmacy refused my {drug} refill saying the dose was unsafe, doctor says it's fine",
        "how much does {drug} {s} cost with medicaid",
        "doctor sent {drug} to the wrong pharmacy, how do i transfer it",
        "my pharmacy said {drug} is a controlled med so i need id, is that standard",
        "can i return unopened {drug} to the pharmacy",
    ],
    "relative_past": [
        "{rel} {pastany}, is it hereditary",
        "{rel} {pastany}. should i be screened for anything",
        "{rel} {pastany}, does that increase my risk",
        "{rel} {past}. is it safe for them to take {drug} now",
        "{rel} {past} and is now on {drug} {s}, is that usual after that",
        "{rel} {past}; can they still drive",
        "{rel} {past}, can they fly on a plane this summer",
        "{rel} {past}. what questions should we ask at the follow up appointment",
        "{rel} {past}, they are fine now but what are the chances it happens again",
        "{rel} {pastany}. is it genetic? should my kids be tested",
        "{rel} {pastany} and the doctors never told us why, what usually causes that",
        "{rel} {past}, how can i support their recovery",
        "{rel} {past}. can they get the flu shot",
        "{rel} {past}, now they are on {drug} for life?",
        "{rel} {past}. is there anything in the diet that helps prevent it",
        "my doctor asked about family history. {rel} {pastany}, does that matter for me",
        "i {past2}, is it safe for me to start exercising again",
        "i {past2} and i'm now on {drug} {s}, is it ok to drink alcohol",
        "i {past2}. can i get life insurance",
        "i {past2}, is it ok to take {drug} for {cond}",
        "i {past2} and want to get pregnant, what are the risks",
        "i {past2}. how often should i have check ups now",
        "years ago i {past2}. does it still show up on my records",
        "{rel} {pastany} and i've been anxious about my own health since, is that common",
        "writing a family health history form: {rel} {pastany}, which box is that",
        "{rel} {past} and now has trouble sleeping, can they take melatonin",
        "since {rel} {past} i have been their carer, are there support groups",
        "{rel} {past}, should the rest of the family take a baby aspirin",
        "{rel} {past} and is on a lot of medicines now, how do we keep track of them",
        "{rel} {pastany}; at what age should i start getting my heart checked",
        "{rel} {pastany}, does that mean i should avoid {drug}",
        "{rel} {past}. what lifestyle changes help after that",
        "{rel} {past} and wants to travel abroad, what should we pack",
        "i {past2}, do i need to tell the dentist",
        "i {past2}. can i donate blood",
        "i {past2}, will it affect my job as a pilot",
        "i {past2} and now my insurance premiums went up, is that allowed",
        "{rel} {past}. is it ok for them to have a glass of wine",
    ],
    "genetics": [
        "H:trisomy {k} found in the placenta after my {nth} miscarriage, could this be maternal or paternal?",
        "H:we've had {num} miscarriages and the testing showed trisomy {k}, is it from the mother or the father",
        "karyotype came back 46 XX with a balanced translocation, what does that mean for having kids",
        "my husband and i are both carriers of cystic fibrosis, what are the chances our baby has it",
        "i tested positive for brca1, should my daughter be tested and at what age",
        "brca2 runs in my family, does it pass through the father's side too",
        "is huntington's inherited from the father or the mother",
        "my genetic test says i am heterozygous for factor v leiden, can i take birth control pills",
        "mthfr c677t heterozygous, do i need special folic acid before pregnancy",
        "what does a variant of uncertain significance mean on my genetic report",
        "23andme says i carry one apoe4 copy, how worried should i be about alzheimers",
        "my nipt came back high risk for trisomy 18, how accurate is that test",
        "is down syndrome more likely with an older father",
        "my brother has hemophilia, could my sons have it",
        "what are the odds of passing on sickle cell trait if my partner doesn't have it",
        "can a carrier of fragile x have symptoms",
        "genetic counselling before ivf, what do they test for",
        "i have lynch syndrome, when should my children start colonoscopies",
        "my son has a microdeletion on chromosome {k}, is it likely inherited from one of us",
        "{num} early miscarriages in a row, should we get chromosome testing",
        "is polycystic kidney disease dominant or recessive",
        "can two brown eyed parents have a blue eyed baby, asking for a genetics class",
        "my daughter was diagnosed with turner syndrome, will she be able to have children",
        "H:what is mosaic trisomy {k}",
        "is colour blindness passed down from the mother",
        "hemochromatosis runs in my family, should i get the gene test",
        "my partner has a balanced translocation and we had {num} losses, what are our options",
        "is marfan syndrome always inherited",
        "could a recessive disease skip a generation in my family",
        "genetic testing showed i'm a carrier for tay-sachs, what does my husband need to do",
        "i'm adopted, is genetic testing worth it to learn my family history",
        "our first baby had spina bifida, what is the chance it happens again",
        "can you inherit high cholesterol from your father",
        "is autism genetic, my nephew has it",
        "the genetic counselor mentioned a 25% recurrence risk, what does that mean",
        "is type 1 diabetes passed on from parents",
        "what does it mean to be a carrier of an x-linked disease",
        "my husband has a family history of muscular dystrophy, should we test before pregnancy",
        "can genetic testing tell if my baby will have autism",
        "what is the difference between a karyotype and a microarray",
        "my son has a 22q11 deletion, is it likely i have it too",
        "how accurate is a home dna health test",
        "is celiac disease genetic, my mom has it",
        "we are first cousins, what are the risks for our children",
        "i have one copy of the hfe gene, do i need treatment",
    ],
    "veterinary": [
        "{vdrug} what is it used for in {animal}s",
        "what is {vdrug} for",
        "can i give my {animal} {drug}",
        "is {vdrug} the same as the human {vkind}",
        "can humans take {vdrug}",
        "{vdrug} dose for a {w} lb {animal}",
        "how much {vdrug} do i give my {animal}",
        "{vdrug} side effects in {animal}s",
        "H:what are the indications for {vdrug} {vkind}",
        "H:{vdrug} {vkind}, what infections does it treat in {animal}s",
        "how do i mix {vdrug} into the drinking water for my {animal}",
        "my vet prescribed {vdrug} for my {animal}, what does it do",
        "can {vdrug} be given with food",
        "is it safe to give my {animal} {vdrug} and {vdrug2} together",
        "my {animal} is on {vdrug}, how long until it works",
        "{vdrug} expired last month, is it still ok for my {animal}",
        "can i use my dog's {vdrug} for my cat",
        "withdrawal time for {vdrug} in {animal}s before meat or milk",
        "where can i buy {vdrug} without a vet prescription",
        "is {vdrug} safe for a pregnant {animal}",
        "the farm store sells {vdrug} {vkind}, can it be used for people",
        "what's in {vdrug}",
        "{vdrug} vs {vdrug2} for my {animal}",
        "how long does {vdrug} last for a {animal}",
        "can i give my {animal} human {drug} {s}",
        "{vdrug} for {animal}s how often",
        "is {vdrug} toxic to cats",
        "{vdrug} {vkind} mixing instructions",
        "does {vdrug} need a prescription",
        "{vdrug} {vkind} for {animal}s, what is the dose and what is it for",
        "can i use {vdrug} on my {animal} if its not prescribed for her",
        "my {animal} hates {vdrug}, can i hide it in food",
        "{vdrug} shortage, what can i use instead for my {animal}",
        "is {vdrug} safe for older {animal}s",
        "how should {vdrug} be stored",
        "does {vdrug} work for {animal}s with allergies",
        "my vet said {vdrug} {vkind}, is there a generic",
        "can i get {vdrug} at a human pharmacy",
        "the dose on my {animal}'s {vdrug} label is confusing, what does sid mean",
    ],
    "long_story": [
        "Hi, {rel} {past}. Since then he's been on {drug} {s} and {drug2}. He asked me to find out whether he can take an over the counter sleep aid with those. Thanks",
        "I was diagnosed with {cond} {ago} and have been on {drug} {s} ever since. My new doctor wants to add {drug2}. I read online that the combination can raise the risk of a stroke in rare cases. Is that true, and how rare?",
        "Background: i'm {age}, i have {cond}, and {rel} {past}. I feel fine and my numbers are good. My question is about {drug}: is it ok to take it long term or should i have breaks?",
        "So my doctor put me on {drug} {s} for {cond} and the leaflet mentions seizures, bleeding and chest pain as rare side effects, which scared me a bit. I haven't had any of those. How common are they really?",
        "Long story short, {rel} {past} and ever since then our family is very careful about medicines. I have been prescribed {drug} {s} for {cond}. Is there anything in it that we should watch out for given the family history?",
        "I work as a cashier and stand all day. I take {drug} for {cond} and {drug2} {s2}. A coworker said one of them can cause an overdose if you also drink energy drinks, which sounds crazy to me. Is there any truth to it?",
        "My question is about storage. We had a power cut and the fridge was off for 8 hours, my {drug} was in there. Is it still ok to use or does it need to be thrown away?",
        "Hello. I'm {age} and healthy apart from {cond}. {rel} {past}. My GP suggested a statin just in case, but I'm not keen on taking pills for life. What does the evidence say about statins for someone like me?",
        "I've been reading about {drug} because my doctor mentioned it. The website said suicidal thoughts are a possible side effect in young people. I'm {age} and not depressed, it's for {cond}. Does that warning apply to me?",
        "Quick one. I'm on {drug} {s} and going on holiday to Spain for two weeks. How many should I pack and can I carry them in hand luggage? The trip is next month.",
        "For context: {rel} {past}, so I'm the one who sorts out the medicines at home now. He takes {drug} {s} in the morning and {drug2} at night. Can these be put in the same weekly pill box, or should they be kept apart?",
        "I had covid last month, all better now. During it the doctor stopped my {drug} for a week. Should I restart at the same dose of {s} or work back up slowly?",
        "I'm writing a school project about my grandfather who {past3}. What medicines do people usually take afterwards to prevent another one?",
        "my mom is {age} and takes like 10 meds, {drug}, {drug2}, and a bunch of vitamins. her pharmacist said some could interact and cause bleeding but didn't say which. how do we find out which ones",
        "Hi there, I've been taking {drug} {s} for about 6 months for {cond}. Everything's fine, no problems, but I was wondering whether it's ok to switch to the generic version to save money. Any difference?",
        "after reading the news about a man who had a heart attack at the gym i got curious. i'm {age} and take {drug} for {cond}. is it safe for me to do heavy weight lifting?",
        "We're planning a pregnancy next year. I take {drug} {s} for {cond} and my husband {past2b}. Should either of us change anything before we try?",
        "I volunteer at a food bank and someone donated sealed boxes of {drug}. It expired {ago}. Are expired medicines dangerous or just less effective?",
        "my teenage son has {cond} and takes {drug}. his friend told him it could make him overdose if he plays sports in the heat. that can't be right can it? he is totally fine, just worried",
        "Back in the day {rel} {past}. Now I'm {age} and my doctor wants me to start {drug}. Is there a link between my family history and this medicine, or is it just routine?",
        "I'm a caregiver for my dad who {past3} and has {cond}. His cardiologist increased his {drug} to {s}. What side effects should we look out for over the next few weeks?",
        "Just had my annual review, all fine. The nurse mentioned that my {drug} can rarely cause a severe allergic reaction, but I've taken it for years with no problem. Does the risk go away over time?",
        "I've got a question about {drug2}. I take it with {drug} {s}. I read that one shouldn't stop {drug2} suddenly because of seizure risk. I want to come off it slowly with my doctor's help; what does a typical taper look like?",
        "My wife and I are foster carers and the children's medicines come with long instruction sheets. One child takes {drug} {s} for {cond}. How should we record doses so we never give one twice?",
        "Since my gran collapsed at home last winter she lives with us. She's fine now and on {drug} {s}. Can she have a glass of sherry at Christmas with it?",
        "My son had a bad reaction to peanuts when he was 3 and we always carry an epipen. He's 9 now. How often should the epipen be replaced, and does {drug} affect it?",
        "My husband passed out from a low sugar once, years ago, and since then he checks every morning. Is {drug} {s} likely to cause low sugars?",
        "I used to self harm as a teenager but I've been well for over 10 years. My new doctor wants to start {drug} for {cond}, and I'm worried about the warning on the box. Should I mention my history?",
        "I'm a nursing home volunteer, not medical. Residents sometimes talk about their strokes and heart attacks from years ago. One lady asked me whether her {drug} {s} is a blood thinner. Is it?",
        "My mum is 80 and lives alone. She had a fall {ago} but she's fine. She takes {drug} {s} and {drug2} and keeps forgetting whether she's taken them. Are there pill dispensers that remind her?",
        "We just moved from the US to the UK and my {drug} isn't sold under the same name here. I've got 2 weeks left. How do I find the UK equivalent and do I need to register with a GP first?",
        "I'm an EMT student and we learned about overdoses and strokes this week. Unrelated, but I take {drug} {s} for {cond}. Does it show up on the hospital drug screens we learned about?",
        "My dad was in the ICU with sepsis {ago}. He recovered and now his doctor put him on {drug} {s}. We keep reading scary things online. Is {drug} usually safe for older people?",
        "i've been on {drug} for years and honestly it's been great for my {cond}. my sister says it caused her a stroke but she also smoked. can a medicine like this really do that",
        "OK so long story. My daughter is starting college and takes {drug} {s}. She asked whether she can drink at parties on it. I'm not thrilled, but I'd rather she knows the facts. What happens if you mix alcohol with it?",
        "This might be silly. I watched a documentary about people who overdose on painkillers and it got me thinking about the tylenol I take for headaches, 2 tablets a few times a month. Is that a safe amount?",
    ],
}

# how a relative's event reads in the first person or in a third-person clause
PAST_SELF = (
    "had a stroke in {year}", "had a heart attack {ago}", "had a seizure {ago}", "had a mini stroke {ago}",
    "had sepsis {ago}", "had a pulmonary embolism {ago}", "had meningitis as a child",
    "had anaphylaxis to bee stings as a kid", "overdosed {ago} and have been sober since",
    "had a blood clot in my leg in {year}", "was hospitalised with a bleeding ulcer {ago}",
    "had a bad concussion playing rugby {ago}", "had surgery for a brain aneurysm in {year}",
    "had febrile seizures as a toddler", "had a collapsed lung {ago}",
)
PAST_THIRD = (
    "had a stroke in {year}", "had a heart attack {ago}", "had two heart attacks in the 90s",
    "had a seizure {ago}", "had bypass surgery in {year}", "had a blood clot in his lungs {ago}",
)
PAST_HUSBAND = (
    "had a seizure {ago}", "had meningitis as a child", "had a heart attack at 40",
    "had epilepsy as a teenager", "overdosed {ago} and has been clean since",
)

# --- writing habits ---------------------------------------------------------------------------

TYPOS = {
    "what": "wat", "with": "wiht", "take": "tak", "tablet": "tabet", "pharmacy": "pharmcy",
    "prescription": "perscription", "should": "shoud", "because": "becuase", "doctor": "docter",
    "medicine": "medecine", "interaction": "interation", "maximum": "maximun", "daily": "dialy",
    "the": "teh", "is": "iz", "side effects": "side affects", "dosage": "dossage", "before": "befor",
    "morning": "mornin", "insurance": "insurence", "genetic": "genetik", "pregnant": "pregant",
}
TEXTING = {"you": "u", "are": "r", "please": "pls", "thanks": "thx", "what is": "whats", "because": "cuz",
           "for": "4", "to": "2", "before": "b4", "okay": "ok", "i am": "im"}
OPENERS = ("Hi, ", "Hello, ", "hello ", "Hi there. ", "Good morning, ", "Question: ", "Hi doctor, ",
           "hey ", "Dear pharmacist, ", "Quick question - ", "Hello I have a question. ")
CLOSERS = (" Thank you.", " thanks", " Thanks in advance!", " thx", " Any advice appreciated.",
           " Regards", " please advise", " Thank you for your help.", "??", " ty")


SUBJECTS = {
    "drug_short": ("medication question", "my prescription"),
    "dose_timing": ("dosage", "when to take"),
    "pharmacy_insurance": ("pharmacy problem", "insurance"),
    "relative_past": ("family history", "question about my dad", "question"),
    "genetics": ("genetics question", "genetic testing", "miscarriages"),
    "veterinary": ("pet medicine", "vet question"),
    "long_story": ("question", "medication advice", "help understanding"),
}

# fmt: on


def _typos(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for i, w in enumerate(words):
        key = w.lower().strip(",.?!")
        if key in TYPOS and rng.random() < 0.6:
            words[i] = w.lower().replace(key, TYPOS[key])
        elif len(w) > 6 and w.isalpha() and rng.random() < 0.08:  # one letter dropped
            j = rng.randrange(1, len(w) - 1)
            words[i] = w[:j] + w[j + 1 :]
    return " ".join(words)


def _texting(text: str, rng: random.Random) -> str:
    out = text.lower()
    for full, short in TEXTING.items():
        out = re.sub(rf"\b{full}\b", short, out)
    return out.replace("?", rng.choice(("?", "??", "")))


def style(text: str, name: str, rng: random.Random, subject: str) -> str:
    """One writing habit (the `STYLES` names) applied to a whole message."""
    if name == "plain":
        return text[0].upper() + text[1:]
    if name == "lower":
        return text.lower()
    if name == "nopunct":
        return re.sub(r"[?.,;!]", "", text.lower())
    if name == "caps":
        return text.upper()
    if name == "typos":
        return _typos(text, rng)
    if name == "texting":
        return _texting(text, rng)
    if name == "greeting":
        return rng.choice(OPENERS) + text + rng.choice(CLOSERS)
    if name == "subject":  # a form's subject line and message run together
        return f"{subject} - {text}" if rng.random() < 0.5 else f"Subject: {subject}. Message: {text}"
    if name == "ellipsis":
        return text.replace(", ", "... ", 1).replace(". ", "... ", 1)
    if name == "closer":
        return text + rng.choice(CLOSERS)
    raise ValueError(name)


# fmt: off
STYLES = ("plain", "plain", "lower", "lower", "nopunct", "caps", "typos", "texting", "greeting", "greeting",
          "subject", "ellipsis", "closer")
# fmt: on


# --- the split -----------------------------------------------------------------------------------


def side(key: str) -> str:
    """train, dev or heldout, by a hash of `key` (a template's or a drug's id)."""
    x = int(hashlib.sha256(f"{SEED}:{key}".encode()).hexdigest()[:8], 16) / 2**32
    return next(name for name, upto in SPLITS if x < upto)


def drug_side(name: str) -> str:
    return "heldout" if name in HELD_OUT_DRUGS else side(f"drug:{name}")


def render(template: str, kind: str, split: str, rng: random.Random) -> tuple[str, str]:
    """The template with its slots filled from the fills of `split`, and the drug it names ("" when
    none): the subject line of the `subject` style."""
    drugs = [d for d in DRUGS if drug_side(d[0]) == split]
    vets = [v for v in VET_DRUGS if side(f"vet:{v[0]}") == split] or VET_DRUGS[:1]
    (drug, strengths, cond), (drug2, strengths2, _) = rng.sample(drugs, 2)
    (vdrug, vkind), (vdrug2, _) = rng.sample(vets, 2) if len(vets) > 1 else (vets[0], vets[0])
    ago, year, age = rng.choice(AGO), rng.choice(YEARS), rng.choice(AGES)

    def past(pool: tuple[str, ...]) -> str:
        return rng.choice(pool).format(ago=rng.choice(AGO), year=rng.choice(YEARS), age=rng.choice(AGES))

    s = rng.choice(strengths)
    fills = {
        "drug": drug,
        "s": s,
        "s2": rng.choice([x for x in strengths if x != s] or list(strengths2)),
        "form": rng.choice(FORMS),
        "cond": cond if kind != "long_story" or rng.random() < 0.5 else rng.choice(CONDITIONS),
        "drug2": drug2,
        "rel": rng.choice(RELATIVES),
        "past": past(PAST_EVENTS),
        "pastany": past(PAST_EVENTS + PAST_DIED),
        "past2": past(PAST_SELF),
        "past2b": past(PAST_HUSBAND),
        "past3": past(PAST_THIRD),
        "rel2": rng.choice(RELATIVES).removeprefix("my "),
        "animal": rng.choice(ANIMALS),
        "vdrug": vdrug,
        "vdrug2": vdrug2,
        "vkind": vkind,
        "n": rng.choice(("2", "3", "4", "two", "three", "6")),
        "num": rng.choice(("two", "three", "four", "3", "4", "five")),
        "nth": rng.choice(("second", "third", "fourth", "3rd", "4th")),
        "k": rng.choice(("7", "13", "16", "18", "21", "22", "15", "9")),
        "hours": rng.choice(("4", "6", "8", "12")),
        "w": rng.choice(("10", "25", "40", "60", "80", "8", "1000")),
        "ago": ago,
        "year": year,
        "age": rng.choice(("34", "45", "52", "61", "67", "29", "73", age)),
    }
    text = template.format(**fills)
    subject = vdrug if "{vdrug" in template else drug if "{drug" in template else rng.choice(SUBJECTS[kind])
    return " ".join(text.split()), subject


def messages(split: str, per_template: int, rng: random.Random) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for kind, templates in TEMPLATES.items():
        for n, template in enumerate(templates):
            tid = f"consumer/{kind}.{n}"
            forced = template.startswith("H:")  # paraphrases a question quoted in issue #28
            template = template.removeprefix("H:")
            if ("heldout" if forced else side(tid)) != split:
                continue
            made = 0
            for _ in range(per_template * 4):
                if made == per_template:
                    break
                text, subject = render(template, kind, split, rng)
                how = rng.choice(STYLES)
                text = style(text, how, rng, subject)
                if text.lower() in seen:
                    continue
                seen.add(text.lower())
                made += 1
                rows.append(
                    {"text": text, "level": "routine", "category": kind, "template": tid, "style": how}
                )
    rng.shuffle(rows)
    for i, row in enumerate(rows):
        row["id"] = f"consumer-{split}-{i:05d}"
    return rows


PER_TEMPLATE = {"train": 9, "dev": 9, "heldout": 12}


def main() -> None:
    rng = random.Random(SEED)
    for split in ("train", "dev", "heldout"):
        rows = messages(split, PER_TEMPLATE[split], rng)
        path = OUT / f"consumer_{split}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        kinds: dict[str, int] = {}
        for row in rows:
            kinds[row["category"]] = kinds.get(row["category"], 0) + 1
        templates = len({r["template"] for r in rows})
        print(f"{path.name}: {len(rows)} messages from {templates} templates {kinds}")


if __name__ == "__main__":
    main()
