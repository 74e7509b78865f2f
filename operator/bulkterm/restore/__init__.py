"""Bringing back what a run terminated (``bulkterm restore``): plan, journal, carry out."""
