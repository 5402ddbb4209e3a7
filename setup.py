"""The one thing pyproject.toml cannot say: the code packages, found as usual, plus the
repository's templates/ and config/ folders installed as the packages intake_templates and
intake_defaults (mapped in pyproject.toml's [tool.setuptools.package-dir]; see intake/resources.py).
Everything else about the build is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["intake", "intake.*", "classify", "classify.*", "archive", "archive.*"]),
        "intake_templates",
        "intake_defaults",
    ]
)
