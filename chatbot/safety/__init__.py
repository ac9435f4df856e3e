"""Safety, split by concern.

- `emergency`: the emergency gate, rules that stop a message describing an emergency before
  retrieval and the model (the trained triage classifier in `chatbot.triage` builds on them);
- `injection`: retrieved text is data, so instruction-like sentences are replaced (used by `prompts`);
- `wording`: the sentences the product must always show (disclaimer, abstention, emergency advice).
"""
