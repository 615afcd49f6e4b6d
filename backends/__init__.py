"""The built-in generation backends, each announced by its own entry point (see ``harness.backend``)."""
