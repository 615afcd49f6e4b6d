"""The harness's own lm-eval task YAMLs (read by ``harness.capability`` through lm-eval's TaskManager).

A package only so that installing the project ships ``utils.py`` beside the YAMLs: lm-eval loads
it by file path for the YAMLs' ``!function utils.*`` entries, it is never imported from here.
"""
