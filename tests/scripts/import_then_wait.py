"""Imports slowpkg after a line on stdin, then waits for another line before exiting."""
import sys

print("ready", flush=True)
sys.stdin.readline()
import slowpkg  # noqa: E402,F401

sys.stdin.readline()
