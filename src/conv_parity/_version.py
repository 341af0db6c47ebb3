"""The release of conv-parity (a record: the package's facade, the engine, the workers and the
reports read it from here, so none of them imports the facade)."""

__version__ = "0.1.0"
