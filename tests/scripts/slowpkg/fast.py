"""Imported by slowpkg: quick."""
X = 1
