"""The runtime's channel to its init (runtime/channel.py)."""

from __future__ import annotations

import pytest

from sampan.runtime.channel import Channel, ChannelClosed, SetupError


def test_an_error_sent_by_a_peer_that_left_a_message_unread_is_reported() -> None:
    """An init that fails before it reads "placed" exits with that message unread: the
    kernel then reports ECONNRESET once, ahead of the init's "error", which must still
    reach the user (`exec: "x": executable file not found`), not "Connection reset"."""
    runtime, init = Channel.pair()
    runtime.send("placed")
    init.send("error", message='exec: "x": executable file not found in $PATH')
    init.close()
    with pytest.raises(SetupError, match="executable file not found"):
        runtime.expect("ready")
    with pytest.raises(ChannelClosed):
        runtime.expect("ready")
    runtime.close()


def test_a_message_to_a_peer_that_is_gone_reports_why_it_went() -> None:
    """Sending to an init that has exited fails with EPIPE: the user gets the init's own
    error if it sent one, else that it exited, never "Broken pipe"."""
    runtime, init = Channel.pair()
    init.send("error", message="mounting proc on /proc: Permission denied")
    init.close()
    with pytest.raises(SetupError, match="mounting proc"):
        runtime.send("created", mounts=[])
    runtime.close()
    runtime, init = Channel.pair()
    init.close()
    with pytest.raises(ChannelClosed):
        runtime.send("created", mounts=[])
    runtime.close()
