"""sampan: Docker's command line against sampand (or any Docker Engine API daemon).

Commands are imported only when named, and the HTTP client is a small one of our own:
`run`, `start`, `exec` and `ps` start in a few milliseconds beyond the interpreter.
"""
