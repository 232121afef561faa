"""Real-browser test harness: a throw-away JupyterLab server and a headless Debian chromium.

See ``/work/shared/docs/browser_testing.md`` for the traps these helpers avoid (kernel
readiness, the news toast, viewport-only screenshots, hidden notebook panels).
"""
