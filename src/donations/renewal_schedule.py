"""The renewal schedule: one message per due pledge and period on the renewal queue.

Its own module so the schedule function's INIT loads no Stripe SDK (donations.renewals charges, this
only queues; tests/infra/test_import_closure.py holds it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from donations.observability import MetricUnit, logger, metrics
from donations.pledges import PledgeStore, due_days

# SendMessageBatch takes at most 10 entries.
_SEND_BATCH = 10


def schedule_renewals(pledges: PledgeStore, sqs: Any, queue_url: str, now: datetime) -> int:
    """One message per due pledge, period and try on the renewal queue; the number sent.

    Reads the due index's partitions from the look-back window to ``now``'s day (queries, no scan). A
    pledge queued for its period by a recent run is left alone (``PledgeStore.mark_queued``), so a slow
    drain or an outage does not pile up a message per run; after REQUEUE_AFTER it is sent again (a
    duplicate, which the consumer takes in its stride). A send that fails raises, so the run is reported;
    the pledges it marked are sent again after REQUEUE_AFTER.
    """
    due = [(pledge_id, day) for day in due_days(now.date()) for pledge_id in pledges.due_on(day)]
    marked = [pledges.mark_queued(pledge_id, day, now) for pledge_id, day in due]
    messages = [message for message in marked if message is not None]
    for start in range(0, len(messages), _SEND_BATCH):
        entries = [
            {
                "Id": str(index),
                "MessageBody": message.model_dump_json(),
                "MessageAttributes": {
                    "type": {"DataType": "String", "StringValue": "renew"},
                    "pledge_id": {"DataType": "String", "StringValue": message.pledge_id},
                    "period": {"DataType": "String", "StringValue": message.period},
                    "renewal_try": {"DataType": "String", "StringValue": str(message.renewal_try)},
                },
            }
            for index, message in enumerate(messages[start : start + _SEND_BATCH])
        ]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed", [])
        if failed:
            raise RuntimeError(f"{len(failed)} renewal message(s) not sent: {failed[0].get('Code')}")
    if messages:  # a custom metric is billed for every hour it has data: not for the hourly runs with none due
        metrics.add_metric(name="RenewalsScheduled", unit=MetricUnit.Count, value=len(messages))
    # A finished run is counted from Lambda's own Invocations - Errors (RenewalRunNotFinishedAlarm): a
    # custom metric sent by every hourly run would cost $0.30 a month.
    logger.info("Renewals scheduled", extra={"renewals": len(messages)})
    return len(messages)
