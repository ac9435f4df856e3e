"""What to do meanwhile, for the emergency categories the rules do not name, and the urgent advice."""

from __future__ import annotations

GUIDANCE: dict[str, str] = {
    "aortic_vascular": "Sudden tearing pain in the chest, back or belly, or a cold, pale, painful limb, "
    "can be a torn or blocked artery. Lie down and keep still; do not eat or drink. Tell the call "
    "handler about any known aneurysm or high blood pressure.",
    "pulmonary_embolism": "Sudden breathlessness or sharp chest pain after surgery, a long journey, "
    "pregnancy or a swollen calf can be a clot in the lung. Sit upright, keep still and do not walk around.",
    "ectopic_pregnancy": "Pain on one side of the belly, shoulder-tip pain, bleeding or faintness early in a "
    "pregnancy can be an ectopic pregnancy. Lie down with your legs raised if you feel faint; do not eat or "
    "drink.",
    "testicular_torsion": "Sudden severe pain in a testicle can be a twisted testicle, which must be "
    "operated on within hours to save it. Go to an emergency department now; do not eat or drink "
    "(surgery may be needed).",
    "diabetic": "If the person is awake and can swallow, give a sugary drink or glucose tablets for a low "
    "blood sugar; never put food or drink in the mouth of someone drowsy or unconscious; lay them on their "
    "side. Vomiting, deep fast breathing or drowsiness with high sugars can be ketoacidosis.",
    "child_dehydration": "A child who is floppy, hard to wake, has no wet nappy or wee for 12 hours, or "
    "sunken eyes needs emergency care. Keep offering small sips of fluid on the way.",
    "abdominal": "Severe or rigid belly pain, or vomiting green fluid with a swollen belly, needs emergency "
    "care. Do not eat or drink anything, and do not take painkillers until a doctor has seen you.",
    "burns_other": "For a burn, cool it under cool running water for 20 minutes and cover it loosely with "
    "cling film. For overheating, move to the shade and cool the skin with water; for a very cold person, "
    "get them out of the wet and wrap them in dry blankets.",
    "eye": "For a chemical in the eye, rinse it with clean running water for at least 20 minutes, "
    "holding the eyelids open. Do not rub the eye.",
}
"""Keyed by the triage categories the rules in `chatbot.safety.emergency` do not have."""

FALLBACK = (
    "Stay with the person, keep them still and comfortable, and do not give food or drink. If they stop "
    "breathing normally, start CPR; the call handler will guide you."
)

URGENT_ADVICE = (
    "This sounds like something a doctor should see today: contact your GP or an urgent care service "
    "(NHS 111 in the UK) today rather than waiting. If it gets worse, or new symptoms appear, call "
    "{number} (your local emergency number)."
)

NOT_ENGLISH = (
    "This message does not look like English ({language}). medchat's emergency check reads English only. "
    "If this is an emergency, call {number} (your local emergency number) now."
)

GENERAL_SIGNS = (
    "chest pain or pressure, trouble breathing, a face drooping or an arm going weak, fainting or "
    "collapse, bleeding that will not stop, swelling of the lips or throat, a fit, or thoughts of harming "
    "yourself"
)

WATCH_FOR: dict[str, str] = {
    "stroke": "a face drooping on one side, an arm or leg going weak or numb, slurred or lost speech, or "
    "sudden loss of vision",
    "cardiac_chest_pain": "chest pain or pressure that spreads to the arm, jaw or back, or comes with "
    "sweating, sickness or breathlessness",
    "anaphylaxis": "swelling of the lips, tongue or throat, wheezing, trouble breathing or swallowing, or "
    "feeling faint after a possible allergen",
    "overdose_poisoning": "more of a medicine taken than prescribed, or a child who may have swallowed "
    "medicines or chemicals; drowsiness, confusion, vomiting, or slow or noisy breathing",
    "suicidal": "thoughts of ending your life or harming yourself, or a plan to (you can also reach "
    "{crisis_line})",
    "severe_bleeding": "bleeding that will not stop with firm pressure, vomiting blood or something like "
    "coffee grounds, or black, tarry stools",
    "infant_fever": "a temperature of 38°C or more in a baby under 3 months, or a baby who is floppy, hard "
    "to wake or not feeding",
    "breathing": "breathing so hard that speaking is difficult, blue or grey lips, or a reliever inhaler "
    "that is not helping",
    "unconscious": "someone who cannot be woken, collapses, or is not breathing normally",
    "seizure": "a fit lasting more than 5 minutes, fits one after another, or a first ever fit",
    "head_injury": "after a blow to the head: vomiting, drowsiness, confusion, a fit, or clear fluid from "
    "the nose or ears",
    "sepsis": "mottled or blotchy skin, new confusion, very fast breathing, shivering with a high "
    "temperature, or no urine for a day",
    "meningitis": "a rash that does not fade under a pressed glass, a stiff neck, or a dislike of bright "
    "light, with a fever",
    "other_emergency": "sudden severe pain, a large or deep burn, or a person with diabetes who is confused "
    "or drowsy",
    "aortic_vascular": "sudden tearing pain in the chest, back or belly, or a cold, pale, painful leg or arm",
    "pulmonary_embolism": "sudden breathlessness or sharp chest pain, above all after surgery, a long "
    "journey or with a swollen calf",
    "ectopic_pregnancy": "early in a pregnancy: pain on one side of the belly, shoulder-tip pain, bleeding, "
    "or feeling faint",
    "testicular_torsion": "sudden severe pain or swelling in a testicle",
    "diabetic": "a low sugar that does not come up, drowsiness or confusion, or vomiting and deep, fast "
    "breathing with high sugars",
    "child_dehydration": "a child who is floppy, hard to wake, has sunken eyes, or no wet nappy or wee for "
    "12 hours",
    "abdominal": "severe or rigid belly pain, or vomiting green fluid with a swollen belly",
    "burns_other": "a burn larger than the person's hand or on the face, hands or genitals, or a very hot "
    "or very cold person who is confused",
    "eye": "a chemical in the eye, sudden loss of vision, or a painful red eye with blurred sight",
}
"""What to watch for, by emergency category: named in the banner of a graded answer (issue #28), where
the classifier could not rule an emergency out but was not confident of one. Only a category with
evidence in the message is named (`evidence.py`); otherwise `GENERAL_SIGNS`."""

GRADED_ADVICE = (
    "medchat's emergency check could not rule out something serious in this message, so the answer below "
    "comes with this warning. Watch for {signs}. If any of these happen, call {number} (your local "
    "emergency number) now. If you are unsure or worried, contact your GP or an urgent care service (NHS "
    "111 in the UK) today."
)
"""The banner above a graded answer: the answer is still given (a guess never hides it)."""
