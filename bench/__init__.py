"""Measuring scripts (issue 6): generation speed, training-step speed, a GPU check. Not part of the package."""
