"""Package list for setuptools: every ``medviewer*`` package plus the shipped resources.

Everything else about the project is in pyproject.toml. This file exists because the
read-only files in the top-level ``resources/`` folder (built-in models, demo data and
their licences, icons) must be installed inside the package, as
``medviewer/resources/``, so that ``pip install .`` and a wheel carry them; pyproject's
``packages.find`` cannot add a package that lives outside ``medviewer/``.
``medviewer.core.paths.resources_dir()`` finds the folder in either place.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["medviewer", "medviewer.*"]), "medviewer.resources"],
    package_dir={"medviewer.resources": "resources"},
    package_data={"medviewer.resources": ["**/*"]},
    exclude_package_data={"medviewer.resources": ["**/__pycache__/*", "**/*.pyc", "**/.*"]},
)
