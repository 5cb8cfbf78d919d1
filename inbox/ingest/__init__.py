"""Inbound ingestion: raw items are stored before they are acknowledged, then parsed by a Celery task into
messages of the right communication (DESIGN.md: Recognition and linking, Non-negotiables).

``raw`` stores and enqueues, ``recognize`` finds the patient, ``email`` / ``sms`` / ``status`` are the one service
per kind of item, ``pipeline`` dispatches a raw item to its service and records failures, ``smtp`` is the SMTP
receiver's handler.
"""
