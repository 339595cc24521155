"""The sample files, installed as the package data of ``devstack.examples``.

Nothing here is imported for its code: ``devstack.samples`` finds these files through
``importlib.resources`` (see ``pyproject.toml``, ``[tool.setuptools.package-dir]``).
"""
