"""Tests for the embedded Redis/SMTP services and the throw-away PostgreSQL cluster."""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import psycopg
import pytest
import redis

from nurture.dev.embedded import (
    CapturedMessage,
    EmbeddedRedis,
    SmtpCapture,
    find_redis_server,
    free_port,
)
from tests.conftest import require
from tests.support.postgres import PostgresCluster, available


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def _multipart(subject: str = "Hello ✓") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Nurture <campaigns@example.org>"
    message["To"] = "ada@example.com"
    message["Subject"] = subject
    message.set_content("Plain body\n.leading dot line\n")
    message.add_alternative("<p>HTML body</p>", subtype="html")
    message.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream",
                           filename="data.bin")  # fmt: skip
    return message


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[SmtpCapture]:
    """A running SmtpCapture storing into a Maildir under tmp_path."""
    with SmtpCapture(tmp_path / "mailbox") as server:
        yield server


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_find_redis_server_returns_an_executable() -> None:
    assert os.access(find_redis_server(), os.X_OK)


def test_embedded_redis_serves_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        assert url == server.url == f"redis://127.0.0.1:{server.port}/0"
        assert server.running
        with redis.Redis.from_url(url) as client:
            assert client.set("greeting", "bonjour")
            assert client.get("greeting") == b"bonjour"
    finally:
        server.stop()
    assert not server.running
    assert _refuses(server.port)
    server.stop()  # idempotent


def test_embedded_redis_context_manager(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server, redis.Redis.from_url(server.url) as client:
        assert client.ping()
    assert _refuses(server.port)


def test_smtp_capture_receives_multipart_message(capture: SmtpCapture) -> None:
    assert capture.url == f"smtp://127.0.0.1:{capture.port}"
    sent = _multipart()
    with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
        client.send_message(sent, to_addrs=["ada@example.com", "bcc@example.com"])

    [received] = capture.wait_for(1, timeout=10)
    assert isinstance(received, CapturedMessage)
    assert received.mail_from == "campaigns@example.org"
    assert received.rcpt_tos == ["ada@example.com", "bcc@example.com"]
    assert received.received_at.tzinfo is not None
    assert b"\r\n" in received.data  # raw wire bytes, CRLF kept
    assert b"\r\n.leading dot line" in received.data  # dot-stuffing undone

    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert parsed["Subject"] == "Hello ✓"
    assert parsed.is_multipart()
    plain = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert plain is not None and "Plain body" in plain.get_content()
    assert html is not None and "<p>HTML body</p>" in html.get_content()
    [attachment] = parsed.iter_attachments()
    assert attachment.get_content() == b"\x00\x01binary"
    assert received.as_email()["To"] == "ada@example.com"

    assert capture.maildir is not None
    box = mailbox.Maildir(capture.maildir, create=False)
    [key] = box.keys()
    stored = box.get_bytes(key)
    box.close()
    assert stored.endswith(received.data)
    stored_message = email.message_from_bytes(stored, policy=email.policy.default)
    assert stored_message["Subject"] == "Hello ✓"
    assert stored_message["X-Nurture-Envelope-From"] == "campaigns@example.org"
    assert stored_message["X-Nurture-Envelope-To"] == "ada@example.com, bcc@example.com"

    capture.clear()
    assert capture.messages == []


def test_wait_for_times_out_with_count(capture: SmtpCapture) -> None:
    with pytest.raises(TimeoutError, match="0 arrived"):
        capture.wait_for(1, timeout=0.2)


def test_fail_next_rejects_once_then_accepts(capture: SmtpCapture) -> None:
    capture.fail_next("421 4.3.0 try again later")
    message = _multipart("retry me")
    # smtplib drops the connection after a 421, so each attempt needs its own session.
    with pytest.raises(smtplib.SMTPDataError) as failure:
        with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
            client.send_message(message)
    assert isinstance(failure.value, smtplib.SMTPResponseException)
    assert failure.value.smtp_code == 421
    assert capture.messages == []

    with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
        client.send_message(message)
    [received] = capture.wait_for(1, timeout=10)
    assert received.as_email()["Subject"] == "retry me"


def test_fail_next_validates_reply(capture: SmtpCapture) -> None:
    with pytest.raises(ValueError):
        capture.fail_next("250 fine")


def test_smtp_capture_stop_closes_port() -> None:
    server = SmtpCapture()
    server.start()
    port = server.port
    server.stop()
    server.stop()  # idempotent
    assert _refuses(port)


def test_postgres_cluster_roundtrip() -> None:
    require(available(), "PostgreSQL server binaries (pg_config --bindir, /usr/lib/postgresql)")

    cluster = PostgresCluster()
    url = cluster.start()
    directory, port = cluster.directory, cluster.port
    try:
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/nurture"
        assert directory.is_dir()
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.execute("show fsync").fetchone() == ("off",)

        other = cluster.create_database("nurture_other")
        assert other.endswith("/nurture_other")
        with psycopg.connect(other.replace("postgresql+psycopg://", "postgresql://")) as conn:
            assert conn.execute("select current_database()").fetchone() == ("nurture_other",)
    finally:
        cluster.stop()
    assert not directory.exists()
    assert _refuses(port)
    cluster.stop()  # idempotent
