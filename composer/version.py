"""The package version, in a room of its own so low layers (manifest, OTIO) can name it."""

__version__ = "0.1.0"
