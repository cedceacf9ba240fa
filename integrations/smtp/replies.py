"""SMTP replies and errors as outcome details: which are worth retrying and what they say.

RFC 5321 4.2.1: a 4xx reply is a transient failure, a 5xx one permanent. RFC 4954 6: 454 is a
temporary login failure; 535 (wrong credentials), 534 and 538 are not. A relay's certificate
that does not verify, or a missing STARTTLS, is a configuration error: retrying cannot fix it.
"""

from __future__ import annotations

import smtplib
import ssl

CLOSING = 421  # "service not available, closing transmission channel"
REPLY_LIMIT = 300


class Refused(Exception):
    """The server answered a step of the transaction with an error reply."""

    def __init__(self, step: str, code: int, text: bytes | str) -> None:
        super().__init__(step, code)
        self.step = step
        self.code = code
        self.text = reply_text(text)


def reply_text(reply: bytes | str) -> str:
    """A server's reply text on one line, cut at :data:`REPLY_LIMIT` characters."""
    shown = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    shown = " ".join(shown.split())
    return shown[:REPLY_LIMIT] + ("..." if len(shown) > REPLY_LIMIT else "")


# what OpenSSL says when the first bytes back are not TLS (an SMTP greeting): `security: ssl`
# on a port that speaks plain SMTP, a configuration error no retry can fix
_PLAIN_TEXT_REPLIES = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"})


def describe_connect_error(
    exc: BaseException, at: str, where: str = "providers.email"
) -> tuple[bool, str]:
    """``(permanent, detail)`` for a failure to connect to ``at``, secure or log in. A 5xx
    login refusal (535, 534, 538), a missing STARTTLS, an untrusted certificate and 5xx replies
    are permanent; the rest (the server down, any 4xx reply, to the login too) is worth
    retrying."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        detail = f"login to {at} refused: {exc.smtp_code} {reply_text(exc.smtp_error)}"
        if 400 <= exc.smtp_code < 500:  # 454 temporary failure, 421 closing, 432, 451...
            return False, detail
        return (
            True,
            f"{detail}; check the user name and password ({where}.username_env, password_env)",
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return True, f"{at}: {exc}; check {where}.security and the account"
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = f"{at} refused the connection: {exc.smtp_code} {reply_text(exc.smtp_error)}"
        return not 400 <= exc.smtp_code < 500, detail
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or exc
        return True, (
            f"the TLS certificate of {at} is not trusted ({reason}); "
            f"for a private CA set {where}.ca_file"
        )
    if isinstance(exc, ssl.SSLError):
        if exc.reason in _PLAIN_TEXT_REPLIES:  # TLS spoken to a server that speaks plain SMTP
            return True, (
                f"TLS with {at} failed: {exc.reason}: the server answers in plain text; check "
                f"{where}.security and port (ssl is implicit TLS, usually port 465; starttls, "
                "usually 587, begins in plain text)"
            )
        return False, f"TLS with {at} failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return False, f"cannot reach {at}: timed out"
    if isinstance(exc, OSError):
        return False, f"cannot reach {at}: {exc.strerror or exc}"
    return False, f"cannot use {at}: {type(exc).__name__}: {exc}"
