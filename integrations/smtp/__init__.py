"""Email over SMTP: :class:`SmtpEmail` sends each delivery through a relay
(``provider: smtp``); :func:`smtp_provider` builds it from ``providers.email``."""

from __future__ import annotations

from integrations.smtp.registry import smtp_provider
from integrations.smtp.sender import SmtpEmail, SmtpServer

__all__ = ["SmtpEmail", "SmtpServer", "smtp_provider"]
