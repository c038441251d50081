"""One table of user-facing strings per language besides English (which lives in ``interp/i18n.py``)."""
