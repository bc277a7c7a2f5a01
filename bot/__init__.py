"""clerk: the clerk of a recurring group (distribution ``clerkbot``, command ``clerk``)."""

__version__ = "0.1.0"
