"""Celery tasks of the webhooks: deliver one event, retrying with exponential backoff; a sweep for lost retries."""

from celery import shared_task

from . import webhooks


@shared_task(acks_late=True, ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt; on failure the next attempt is scheduled after ``backoff_seconds`` (idempotent: a delivered or
    exhausted delivery is left alone, so running it twice sends at most once more)."""
    result = webhooks.attempt(delivery_id)
    if result is False:
        from adminportal.models import WebhookDelivery

        delivery = WebhookDelivery.objects.only("attempts").get(pk=delivery_id)
        deliver_webhook.apply_async((delivery_id,), countdown=webhooks.backoff_seconds(delivery.attempts))


@shared_task(ignore_result=True)
def sweep_webhook_retries() -> int:
    """Re-queue retries that are due but whose task was lost (a worker restart, a broker outage)."""
    due = webhooks.due_deliveries()
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)
