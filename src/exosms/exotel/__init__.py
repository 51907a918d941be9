"""Exotel's wire formats, one module per contract."""
