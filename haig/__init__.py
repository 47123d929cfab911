"""haig — High-availability Internet Gateway (UDP over multihomed SCTP)."""

__version__ = "0.1.0"
