"""Preference labelling: people compare two answers to one question and say which is better.

One package for the whole feature, so that a change to it has one place to go:

- `service`: one labelling round without widgets (serve a pair, stream or prepare it, skip, vote);
- `variants`: the named answer variants compared (read from `variants.yaml`), run on the shared chain;
- `best_of`: a variant that writes N answers and serves the one a reward model scores best;
- `questions`: the one reader of question files for the labelling queue;
- `store/`: the judgments database (SQLAlchemy models, ordered migrations, the store itself);
- `worker`: the background thread that keeps queued pairs generated ahead of the annotators;
- `export`: judgments out as training data (DPO/KTO/reward, with the prompts the models saw);
- `leaderboard`: Bradley-Terry ranks, agreement and bootstrap intervals from the judgments.

`chatbot.ui` only renders these (the Compare and Results tabs); `chatbot.cli.export` and
`chatbot.cli.prefs` are the command lines.
"""
