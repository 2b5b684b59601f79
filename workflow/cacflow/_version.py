"""The package version, in one place: pyproject.toml reads it (setuptools ``attr``), and
provenance and ``cacflow --version`` import it without ``importlib.metadata`` (which costs
~0.1 s at every command start)."""

__version__ = "0.1.0"
