"""Wording the product must always show, kept in one place: the user-facing sentences of safety."""

from __future__ import annotations

DISCLAIMER = (
    "This is general information from the cited sources, not medical advice; "
    "ask a doctor or pharmacist about your own situation, "
    "and call your local emergency number in an emergency."
)

INSUFFICIENT_EVIDENCE = (
    "I can't answer that from the indexed sources: none of them is relevant enough to rely on."
)
"""The one abstention answer, returned without calling the model when retrieval is weak."""


# What to do while help comes, by emergency category (the categories of `chatbot.safety.emergency`);
# `{crisis_line}` is filled in from the settings.
EMERGENCY_GUIDANCE: dict[str, str] = {
    "stroke": "These can be signs of a stroke. Note the time the symptoms started. Do not give food, "
    "drink or medicines. If the person is drowsy, lay them on their side.",
    "cardiac_chest_pain": "Chest pain like this can be a heart attack. Sit down and rest while you wait; "
    "loosen tight clothing. Unless you are allergic or have been told not to, chewing one 300 mg aspirin "
    "can help; tell the call handler.",
    "anaphylaxis": "This can be anaphylaxis, a severe allergic reaction. Use an adrenaline auto-injector "
    "(EpiPen) now if there is one, into the outer thigh; a second dose can be given after 5 minutes if there "
    "is no improvement. Lie down with legs raised, or sit up if breathing is hard. Do not stand up suddenly.",
    "overdose_poisoning": "If gas or fumes may be the cause (a boiler, heater, fire or engine), get "
    "everyone into fresh air and do not go back in. If something was swallowed, do not make the person "
    "sick. Keep the packet, bottle or container to show the "
    "paramedics. If they become drowsy, lay them on their side. In the UK you can also call NHS 111; in the "
    "US, Poison Control is 1-800-222-1222, but call emergency services first if they are unwell.",
    "suicidal": "You deserve help right now. If you are in danger of acting on these thoughts, call "
    "emergency services or go to an emergency department. You can also reach {crisis_line}. If you can, "
    "stay with someone you trust and put medicines or other means out of reach.",
    "severe_bleeding": "Press firmly on the wound with a clean cloth or your hand and keep pressing; do not "
    "lift to look. If it soaks through, add more on top. Lie the person down and raise the injured part if "
    "possible.",
    "infant_fever": "A fever (38°C or more) in a baby under 3 months old needs to be seen urgently by a "
    "doctor, today. Do not wait to see if it settles.",
    "breathing": "Severe difficulty breathing is an emergency. Sit the person upright and loosen tight "
    "clothing. If they are choking, encourage coughing, then give up to 5 back blows between the shoulder "
    "blades.",
    "unconscious": "If they are not breathing normally, start CPR: push hard and fast in the centre of the "
    "chest, about 2 pushes a second; the call handler will guide you. If they are breathing, lay them on "
    "their side.",
    "seizure": "Protect them from injury; do not hold them down or put anything in their mouth. Time the "
    "seizure. When it stops, lay them on their side. A seizure over 5 minutes, or a first seizure, needs "
    "an ambulance.",
    "head_injury": "After a head injury, vomiting, drowsiness, confusion, a fit, fluid from the nose or "
    "ears, or unequal pupils need emergency care. Keep the person still and do not give them anything to "
    "eat or drink.",
    "sepsis": "Mottled or blotchy skin, fast breathing, new confusion or not passing urine can be sepsis, "
    "which needs treatment in hospital immediately.",
    "other_emergency": "Keep the person warm and still, do not give food or drink, and keep this message "
    "thread to show the paramedics. For a burn, cool it under cool running water for 20 minutes and "
    "cover it loosely with cling film.",
    "meningitis": "A rash that does not fade under a pressed glass, with fever or a stiff neck, can be "
    "meningitis or sepsis and needs treatment immediately.",
}


def emergency_message(guidance: str, emergency_number: str, crisis_line: str) -> str:
    """The answer to a message the emergency gate stops: call now, what to do while waiting."""
    return (
        f"This may be an emergency. Call {emergency_number} (your local emergency number) now.\n\n"
        f"While you wait: {guidance.format(crisis_line=crisis_line)}\n\n"
        "medchat cannot assess emergencies; the emergency services can."
    )


# put above the sources' own sentences when a checked answer kept none of the model's
EXTRACTIVE_LEAD = "Your sources say:\n\n"
# the end of an answer cut short by Stop or by the length limit
STOPPED_NOTE = "(Stopped: this answer is incomplete. Check the sources below.)"
CUT_NOTE = "(This answer reached its length limit and may be incomplete. Check the sources below.)"
