"""Imported by slowpkg.nested: quick."""
Y = 2
