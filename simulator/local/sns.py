"""SNS → Lambda, locally: a function subscribed to a topic (SAM's SNS event) gets the topic's messages.

moto would invoke a subscribed function through Docker, so the deploy leaves such subscriptions out
(infra.deploy, ``StackResources.sns_sources``). Here an SQS queue is subscribed to the topic in their
place, and :meth:`SnsDelivery.deliver` turns what arrived into the event SNS invokes Lambda with
(simulator.local.events.sns_event), one message per invocation as SNS does. Like SNS's asynchronous
invocation, a failed invocation is retried twice, then dropped (and logged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from infra.deploy.post_create import SnsSourceSpec
from simulator.local.events import sns_event

log = logging.getLogger("donations.local.sns")
ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries


class SnsDelivery:
    def __init__(self, sqs: Any, sns: Any, source: SnsSourceSpec, invoke: Callable[[dict[str, Any]], Any]) -> None:
        self._sqs = sqs
        self.source = source
        self._invoke = invoke
        name = f"{source.function_arn.rsplit(':', 1)[-1]}-sns-{source.logical_id}"[-80:]
        self._queue_url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])["Attributes"]
        subscribed = sns.subscribe(
            TopicArn=source.topic_arn, Protocol="sqs", Endpoint=arn["QueueArn"], ReturnSubscriptionArn=True
        )
        self._subscription_arn = str(subscribed["SubscriptionArn"])

    def deliver(self, limit: int = 100) -> list[Any]:
        """Invoke the function once per message the topic got since the last call; their results."""
        results: list[Any] = []
        for _ in range(limit // 10 + 1):
            batch = self._sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                break
            for message in batch:
                results.append(self._invoke_with_retries(json.loads(message["Body"])))
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return results

    def _invoke_with_retries(self, envelope: dict[str, Any]) -> Any:
        event = sns_event(envelope, self._subscription_arn)
        for attempt in range(1, ASYNC_ATTEMPTS + 1):
            try:
                return self._invoke(event)
            except Exception:
                log.exception("%s: invocation %d of %d failed", self.source.function_arn, attempt, ASYNC_ATTEMPTS)
        return None
