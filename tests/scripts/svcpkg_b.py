"""Second of the chain."""
import svcpkg_c  # noqa: F401
