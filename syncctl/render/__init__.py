"""Renderers of a plan document (``syncctl.plan.planfile.plan_to_dict``): text, json, markdown.

Each reads the same dict, so a saved plan file and a live plan render identically.
"""
