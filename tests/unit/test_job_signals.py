"""The instances' signals: what a message says, who acts on it, what is ignored, and that a failed
send never fails the cancel or the submit that sends it (the lease renewal and the claim loop
remain)."""

from __future__ import annotations

import pytest

from wipsvc.jobs.signals import JobSignals, OnMessage, OnReconnect


class Channel:
    """Delivers what any instance sends to every instance listening, the sender included, as
    Redis pub/sub and PostgreSQL NOTIFY do."""

    def __init__(self, *, broken: bool = False) -> None:
        self.broken = broken
        self.sent: list[str] = []
        self.listeners: list[OnMessage] = []

    def transport(self) -> ChannelTransport:
        return ChannelTransport(self)

    def deliver(self, payload: str) -> None:
        for listener in self.listeners:
            listener(payload)


class ChannelTransport:
    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def send(self, payload: str) -> None:
        if self._channel.broken:
            raise ConnectionError("the channel is down")
        self._channel.sent.append(payload)
        self._channel.deliver(payload)

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        self._channel.listeners.append(on_message)

    async def stop(self) -> None:
        pass


class Told:
    def __init__(self) -> None:
        self.cancels: list[str] = []
        self.queued = 0

    def on_queued(self) -> None:
        self.queued += 1


async def _instance(channel: Channel) -> tuple[JobSignals, Told]:
    signals, told = JobSignals(channel.transport(), "test"), Told()
    await signals.start(on_cancel=told.cancels.append, on_queued=told.on_queued, on_reconnect=lambda: None)
    return signals, told


async def test_the_other_instances_act_on_a_signal_and_the_sender_does_not() -> None:
    channel = Channel()
    (a, told_a), (_, told_b), (_, told_c) = [await _instance(channel) for _ in range(3)]
    await a.send_cancel("3f2a-job")
    await a.send_queued()
    assert len(channel.sent) == 2
    for told in (told_b, told_c):
        assert told.cancels == ["3f2a-job"] and told.queued == 1
    assert told_a.cancels == [] and told_a.queued == 0  # it cancelled or claimed locally already


@pytest.mark.parametrize(
    "payload",
    [
        "cancel",
        "cancel someone",
        "cancel someone " + "x" * 65,
        "queued",
        "queued someone 3f2a-job",
        "queued-ish someone",
        "",
        "stop all now",
    ],
)
async def test_malformed_or_unknown_messages_are_ignored(payload: str) -> None:
    channel = Channel()
    _, told = await _instance(channel)
    channel.deliver(payload)
    assert told.cancels == [] and told.queued == 0


async def test_a_failed_send_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    channel = Channel(broken=True)
    signals, _ = await _instance(channel)
    _, told = await _instance(channel)
    await signals.send_cancel("job-1")
    await signals.send_queued()
    assert told.cancels == [] and told.queued == 0
    assert "could not signal the other instances (cancel" in caplog.text
