"""The data medchat ships: installed as the package `chatbot.bundled` (see pyproject.toml).

Read it with `chatbot.settings.bundled(name)`, which works the same in a checkout and in an
installed wheel; never through a path relative to the repository.
"""
