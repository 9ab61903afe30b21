"""A package of known nested imports for tests/imports.rs; slowpkg.sleepy sleeps at import."""
import slowpkg.fast
import slowpkg.sleepy
import slowpkg.nested

try:
    import slowpkg.missing  # noqa: F401  (does not exist: an import that is not found)
except ImportError:
    pass
