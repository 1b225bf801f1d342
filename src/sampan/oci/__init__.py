"""OCI runtime and image structures."""

SPEC_VERSION = "1.2.0"  # the runtime spec this follows (here: no import cost for `state`)
