"""nightshift: nightly batch analytics — load, check, model, publish privacy-safe reports."""

__version__ = "0.1.0"
