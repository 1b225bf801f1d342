"""Dockerfile builds: the parser, the context, the classic builder and its cache."""
