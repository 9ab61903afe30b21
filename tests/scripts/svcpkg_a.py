"""First of a chain of three modules that steady_service.py re-imports."""
import svcpkg_b  # noqa: F401
