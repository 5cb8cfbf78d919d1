"""The Inbox API (``/api/v1/``): everything the Inbox page does, for integrations, through the same selectors and
services as the page; plus API tokens and signed outbound webhooks."""
