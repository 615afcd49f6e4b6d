"""The built-in judges, each announced by its own entry point (see ``harness.judge``)."""
