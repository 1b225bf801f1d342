"""sampan's own container monitor, forked warm: the helper (server) and the monitor."""
