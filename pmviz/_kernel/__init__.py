"""Kernel interface: ctypes bindings and /proc readers. Private: raw integers and arrays only."""
