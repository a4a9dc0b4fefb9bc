"""Big Interview mock interviews inside a Django site: SSO, webhooks, synced progress."""

__version__ = "0.1.0"
