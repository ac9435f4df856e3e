"""`python -m chatbot.cli`: the same as the `medchat` command."""

from chatbot.cli import main

main()
