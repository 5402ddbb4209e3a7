"""intake: customer emails and web forms to tickets, acknowledgements and a case archive."""

# The one place the version is written: pyproject.toml reads it from here, and
# `intake --version`, /healthz and the CHANGELOG follow it.
__version__ = "0.2.0"
