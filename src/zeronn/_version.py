"""The package version, in one place: ``zeronn.__version__``, pyproject.toml (read at build
time) and the version written into model and ONNX files all come from here."""

__version__ = "0.2.0.dev0"
