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
