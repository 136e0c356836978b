"""Three of moto's costs that grow with the data where DynamoDB's, SQS's and CloudWatch's do not, made flat,
and two that every local stack pays at start (reading its template, making KMS keys).

* Every DynamoDB query (and scan) sorts all of the table's items, comparing ``DynamoType`` objects
  whose every comparison converts both values again (``cast_value``: a ``Decimal`` for a number).
  Sorting by the converted values, each computed once, gives the same order for a fraction of the
  cost: a table's key attributes have one type each (the key schema's), so the values compare alike.
* Every SQS receive asks each message in the queue whether it is visible and not delayed, and each
  answer reads the clock through two naive datetimes. ``time.time()`` is the same number.
* Every CloudWatch GetMetricStatistics copies and filters every datapoint ever put, of every metric.
  The local stack's alarm ticker asks for each alarm's metric twice a second while its queue metrics
  add about a hundred datapoints a second, so an idle stack's moto grew busier by the minute. The
  datapoints are also kept per metric (namespace and name), and a GetMetricStatistics looks at its
  metric's only.

Profiled on the 1,000-donor statements test: three quarters of its time went to these two. As with
:mod:`infra.deploy.moto_atomic`, the patch applies in the process moto runs in (the local stack's
moto server, or any process using ``mock_aws``), once.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace
from typing import Any


def make_moto_costs_flat() -> None:
    """Idempotent: replaces moto's DynamoDB item sorts and its SQS clock, once per process."""
    from moto.dynamodb.models.table import Table
    from moto.sqs import models as sqs_models

    if getattr(Table.all_items, "_flat", False):
        return

    def all_items(self: Table) -> list[Any]:
        """moto's Table.all_items: every item, by hash key then range key."""
        items: list[Any] = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        if self.range_key_attr:
            return sorted(items, key=lambda item: (item.hash_key.cast_value, item.range_key.cast_value))
        return sorted(items, key=lambda item: item.hash_key.cast_value)

    def sorted_items(
        self: Table, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Any]
    ) -> list[Any]:
        """moto's Table.sorted_items (an index query's order), with each key value converted once."""
        attributes = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
        items.sort(key=lambda item: tuple(item.attrs[name].cast_value for name in attributes))
        return items

    original_unix_time_millis = sqs_models.unix_time_millis  # type: ignore[attr-defined]

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else float(original_unix_time_millis(dt))

    all_items._flat = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.sorted_items = sorted_items  # type: ignore[method-assign]
    sqs_models.unix_time_millis = unix_time_millis  # type: ignore[attr-defined]
    _index_metric_data_by_metric()
    _read_json_templates_as_json()
    _make_kms_key_pairs_when_used()


def _read_json_templates_as_json() -> None:
    """moto's CloudFormation modules call ``yaml.load`` on every template: theirs reads JSON first."""
    from moto.cloudformation import models, responses

    yaml: Any = getattr(models, "yaml")  # noqa: B009 (PyYAML, as moto imported it; untyped)

    def load(stream: Any, Loader: Any) -> Any:
        if isinstance(stream, str) and stream.lstrip().startswith("{"):
            try:
                return json.loads(stream)
            except ValueError:
                pass  # YAML's flow style can start with "{" too
        return yaml.load(stream, Loader=Loader)

    json_first = SimpleNamespace(**{name: getattr(yaml, name) for name in dir(yaml) if not name.startswith("__")})
    json_first.load = load
    models.yaml = responses.yaml = json_first  # type: ignore[attr-defined]


def _index_metric_data_by_metric() -> None:
    """GetMetricStatistics reads ``get_all_metrics()``, then keeps its metric's datapoints: here, while it
    runs, ``get_all_metrics()`` gives that metric's only (moto's server is threaded: per thread)."""
    from moto.cloudwatch.models import CloudWatchBackend

    put_metric_data = CloudWatchBackend.put_metric_data
    get_metric_statistics = CloudWatchBackend.get_metric_statistics
    get_all_metrics = CloudWatchBackend.get_all_metrics
    asked = threading.local()
    indexing = threading.Lock()

    def index_of(backend: CloudWatchBackend) -> dict[tuple[str, str], list[Any]]:
        if "_datapoints_by_metric" not in backend.__dict__:  # a new backend (or one moto has reset)
            index: dict[tuple[str, str], list[Any]] = {}
            for datum in backend.metric_data:
                index.setdefault((datum.namespace, datum.name), []).append(datum)
            backend.__dict__["_datapoints_by_metric"] = index
        return backend.__dict__["_datapoints_by_metric"]  # type: ignore[no-any-return]

    def indexed_put(self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        with indexing:  # what this put appends is what it indexes
            index, known = index_of(self), len(self.metric_data)
            put_metric_data(self, namespace, metric_data)
            for datum in self.metric_data[known:]:
                index.setdefault((datum.namespace, datum.name), []).append(datum)

    def statistics_of_one_metric(
        self: CloudWatchBackend, namespace: str, metric_name: str, *args: Any, **kwargs: Any
    ) -> Any:
        asked.metric = (namespace, metric_name)
        try:
            return get_metric_statistics(self, namespace, metric_name, *args, **kwargs)
        finally:
            asked.metric = None

    def all_or_the_asked_metrics(self: CloudWatchBackend) -> list[Any]:
        metric = getattr(asked, "metric", None)
        if metric is None:
            return get_all_metrics(self)
        with indexing:
            own = list(index_of(self).get(metric, ()))
        return own + self.aws_metric_data

    CloudWatchBackend.put_metric_data = indexed_put  # type: ignore[method-assign]
    CloudWatchBackend.get_metric_statistics = statistics_of_one_metric  # type: ignore[method-assign]
    CloudWatchBackend.get_all_metrics = all_or_the_asked_metrics  # type: ignore[method-assign]


def _make_kms_key_pairs_when_used() -> None:
    """moto makes an RSA key pair for every KMS key it creates, symmetric ones too (about 0.1 s of CPU each:
    the template's keys and each table's default key, at every deploy). Here the pair is made when a Sign,
    Verify or GetPublicKey first asks for it; what those answer is unchanged."""
    from moto.kms import models

    generate_private_key: Any = getattr(models, "generate_private_key")  # noqa: B009 (not in moto's __all__)

    class KeyPairWhenUsed:
        def __init__(self, key_spec: str) -> None:
            self._key_spec = key_spec
            self._pair: Any = None
            self._making = threading.Lock()

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_"):  # our own attributes (not set yet while copy or pickle rebuild one)
                raise AttributeError(name)
            with self._making:  # one pair per key, however many requests ask at once
                if self._pair is None:
                    self._pair = generate_private_key(self._key_spec)
            return getattr(self._pair, name)

    setattr(models, "generate_private_key", KeyPairWhenUsed)  # noqa: B010 (as above)
