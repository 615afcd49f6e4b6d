"""The built-in model presets (``harness list models``), announced by the ``models`` entry point."""
