"""Mailchimp for the email channel: members kept in an audience, messages sent through
Mailchimp Transactional or Customer Journey steps, carts and orders fed to an e-commerce store,
newsletters sent as regular campaigns. See ``docs/channels.md``."""

from integrations.mailchimp.audience import Audience, subscriber_hash
from integrations.mailchimp.commerce import Line, MailchimpCommerce
from integrations.mailchimp.email import MailchimpEmail
from integrations.mailchimp.newsletter import send_newsletter
from integrations.mailchimp.registry import mailchimp_commerce, mailchimp_provider
from integrations.mailchimp.settings import MailchimpSettings
from integrations.mailchimp.transport import Failure, MailchimpError, Transport

__all__ = [
    "Audience",
    "Failure",
    "Line",
    "MailchimpCommerce",
    "MailchimpEmail",
    "MailchimpError",
    "MailchimpSettings",
    "Transport",
    "mailchimp_commerce",
    "mailchimp_provider",
    "send_newsletter",
    "subscriber_hash",
]
