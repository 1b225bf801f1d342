"""The runtime-spec ``features`` document: what this build of sampan-runtime supports."""

from __future__ import annotations

from ..oci import SPEC_VERSION
from ..oci.spec import NAMESPACE_TYPES
from .rootfs import _FLAGS, PROPAGATION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def features() -> dict[str, Any]:
    from ..kernel import caps, seccomp

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted(set(_FLAGS) | set(PROPAGATION) | {"tmpcopyup"}),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": caps.names(caps.all_mask()),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {
                "enabled": True,
                "actions": list(seccomp.ACTIONS),
                "operators": list(seccomp.OPERATORS),
                "archs": list(seccomp.ARCHES),
                "knownFlags": list(seccomp.FLAGS),
                "supportedFlags": list(seccomp.FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false"},
    }
