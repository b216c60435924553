"""A loopback SMTP relay for the fault tests that writes down every mail it takes.

    python tests/faults/smtp_sink.py --port PORT --log FILE --control DIR

Each mail it accepts appends one line per envelope recipient to ``FILE``, written (O_APPEND,
unbuffered) before the 250 reply goes out::

    <unix time>\t<envelope recipient>\t<Message-ID header>\t<client's TCP port>

It runs in its own process, so its CPU is off the test's GIL and the test can stop it and start
it again on the same port, as a relay outage. SIGTERM is a clean shutdown: it stops listening
and closes every connection between SMTP commands, so each mail it logged was also answered.

``DIR/hold`` asks it to keep one mail's 250 back: the next mail is logged, its recipient and
client port are written to ``DIR/held``, and the reply waits until ``hold`` is removed. That
puts a crash of the sender exactly between "the relay has the mail" and "the sender heard so".
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class Recorder:
    """The aiosmtpd handler: log the mail, maybe hold the reply, accept."""

    def __init__(self, log_fd: int, control: Path) -> None:
        self.log_fd = log_fd
        self.control = control
        self.holding = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Write one line per recipient, then answer 250 (after a hold, when one is asked)."""
        data = envelope.original_content or b""
        found = MESSAGE_ID.search(data.split(b"\r\n\r\n", 1)[0])
        message_id = found.group(1).decode("ascii", "replace") if found else "-"
        port = session.peer[1] if isinstance(session.peer, tuple) else 0
        stamp = f"{time.time():.6f}"
        lines = "".join(f"{stamp}\t{rcpt}\t{message_id}\t{port}\n" for rcpt in envelope.rcpt_tos)
        os.write(self.log_fd, lines.encode("utf-8", "replace"))
        hold = self.control / "hold"
        if not self.holding and hold.exists():
            self.holding = True
            held = self.control / "held"
            held.with_suffix(".tmp").write_text(f"{','.join(envelope.rcpt_tos)}\t{port}\n")
            held.with_suffix(".tmp").replace(held)
            try:
                while hold.exists():
                    await asyncio.sleep(0.01)
            finally:  # also when the sender's connection died meanwhile (the task is cancelled)
                self.holding = False
        return "250 2.0.0 OK logged"


class SinkSMTP(SMTP):
    """aiosmtpd's protocol, remembering its open connections so that a stop can close them."""

    live: set[SinkSMTP] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Track the connection."""
        super().connection_made(transport)
        self.live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        """Forget the connection."""
        self.live.discard(self)
        super().connection_lost(error)


async def serve(port: int, log: Path, control: Path) -> None:
    """Listen on 127.0.0.1:port until SIGTERM or SIGINT."""
    control.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    recorder = Recorder(log_fd, control)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    server = await loop.create_server(
        lambda: SinkSMTP(
            recorder,
            hostname="faults-sink",  # no getfqdn() lookup
            enable_SMTPUTF8=True,
            data_size_limit=10 * 1024 * 1024,
        ),
        "127.0.0.1",
        port,
        reuse_address=True,
    )
    await stopping.wait()
    server.close()
    # close(), not abort(): a 250 already written for a logged mail still reaches its sender.
    for protocol in list(SinkSMTP.live):
        if protocol.transport is not None:
            protocol.transport.close()
    await server.wait_closed()
    os.close(log_fd)


def main() -> None:
    """Parse the options and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args()
    # aiosmtpd logs every command at INFO; the log file is the record.
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.port, args.log, args.control))


if __name__ == "__main__":
    main()
