"""``syncctl init``: a guided first policy.

``questions`` holds every question (id, prompt, one-line help, default, parser), the same for
the terminal and for an answers file; ``flow`` asks them in order (``TerminalAsker`` or
``FileAsker``) and signs in half-way to search the directory (``directory``); ``writer``
turns the answers into a commented policy file.
"""
