"""pyhello: answers HTTP with who it is and what it has stored."""
__version__ = "0.1.0"
