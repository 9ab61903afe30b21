"""Imported by slowpkg: imports a module of its own."""
import slowpkg.nested.leaf
