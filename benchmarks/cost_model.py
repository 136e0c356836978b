"""Cost model: what N donations cost on AWS, from the requests actually made, priced per 1,000 donations.

N donations go through the in-process pipeline (template.yaml deployed into ``moto.mock_aws``, the
real handlers, the Stripe and SendGrid emulators with the same provider latencies as the donor
latency benchmark, so the functions' billed durations include their waits on Stripe and SendGrid).
The Stripe emulator posts its webhook events (the types the webhook function handles) to a local
HTTP front, as Stripe would to API Gateway. After each donation the follow-up messages are
delivered as Lambda's event source mapping would at low traffic (one message per invocation);
``--delivery batched`` drains them at the end in batches of the template's BatchSize instead. One
scheduled reconciler run is measured at the end and priced per month (a fixed cost).

What is counted, and how:

* AWS API requests: every call of every botocore client (hooks in botocore's BUILTIN_HANDLERS, which
  the handlers' fresh ``boto3.session.Session()`` objects pick up), attributed to the function or to
  the event source mapping that made it.
* Lambda: invocations, and GB-seconds = each invocation's measured duration rounded up to 1 ms x the
  template's MemorySize. INIT (cold start) time is billed too: the handler import time measured in
  fresh interpreters (as in cold_start.py) x an assumed share of cold invocations.
* API Gateway REST: one request per POST /donations and per webhook delivery.
* SQS: requests, each 64 KB chunk of a request counted as one; empty receives of the local runner
  are not per-donation costs (Lambda's pollers long-poll; their idle cost is a fixed monthly one).
* DynamoDB on-demand: moto does not report ConsumedCapacity, so units are computed from the item
  as it was just before and just after each call (read from moto's in-process backend, not through
  the API): a write costs ceil(max(old, new size) / 1 KB) WRU, failed conditional writes included;
  each global secondary index costs what DynamoDB charges for it: an index write when the item
  enters or leaves the index or a projected attribute changes, two when an index key changes
  (delete + put), sized by the projection; a read costs ceil(size / 4 KB) RRU, halved when
  eventually consistent (queries: by the bytes returned).
* Provider keys: SSM GetParameter calls made (free), each a KMS Decrypt of the SecureString (Powertools
  caches for 5 minutes per environment).
* CloudWatch Logs: the bytes the handlers write (JSON logs, EMF metric documents) + 26 bytes per
  event, plus estimated Lambda platform lines and API Gateway access log lines.
* X-Ray: one trace per donation (active tracing; the trace id travels with the SQS messages).
* The form's warm-ups (POST /warmup, docs/warm-up.md): ``--warm-up-samples`` of them after the
  donations, metered apart and priced each (API Gateway, Lambda with its INIT share, DynamoDB, SQS,
  logs, X-Ray; WAF's request fee as an optional line), x ``--warm-ups-per-donation`` (10: donors
  who start a form per donation, cost_run.WARM_UPS_PER_DONATION says why) x the month's donations.
* Monthly renewals: ``--renewals`` monthly gifts made first (POST /donations with ``monthly``, set apart),
  then one schedule run on their due day, the renewal queue and the receipts delivered and Stripe's
  events posted to the webhook route, all metered apart and priced per 1,000 renewals; and one more
  schedule run, which finds nothing due, priced x its runs a month as a fixed line.

Layout: ``cost_run`` (the donations through the pipeline), ``cost_metering`` (what is measured on the
way), ``cost_pricing`` (priced lines, prices.toml), ``cost_reporting`` (the tables); this module is
the command line.

    python -m benchmarks.cost_model [--donations 200] [--delivery per-donation|batched] [--parameter SnapStart=true]
                                    [--warm-ups-per-donation 10] [--renewals 20]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from benchmarks.cost_metering import IndexSpec, index_write_units
from benchmarks.cost_pricing import CostModel, Line, load_prices, price
from benchmarks.cost_reporting import report
from benchmarks.cost_run import CostConfig, CostRun, run

__all__ = [
    "CostConfig",
    "CostModel",
    "CostRun",
    "IndexSpec",
    "Line",
    "index_write_units",
    "load_prices",
    "main",
    "price",
    "report",
    "run",
]


def parse_args(argv: Sequence[str] | None) -> CostConfig:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cost_model", description=__doc__.split("\n\n")[0])
    defaults = CostConfig()
    parser.add_argument("--donations", "-n", type=int, default=defaults.donations)
    parser.add_argument("--delivery", choices=["per-donation", "batched"], default=defaults.delivery)
    parser.add_argument("--save-card-share", type=float, default=defaults.save_card_share)
    parser.add_argument("--charge-ms", type=float, default=defaults.charge_ms)
    parser.add_argument("--save-card-ms", type=float, default=defaults.save_card_ms)
    parser.add_argument("--mail-ms", type=float, default=defaults.mail_ms)
    parser.add_argument("--cold-start-share", type=float, default=defaults.cold_start_share)
    parser.add_argument(
        "--init-ms", type=float, default=None, help="INIT time for every function instead of measuring it"
    )
    parser.add_argument("--init-repeats", type=int, default=defaults.init_repeats)
    parser.add_argument(
        "--warm-ups-per-donation",
        type=float,
        default=defaults.warm_ups_per_donation,
        help="form warm-ups (donors who start the form) per donation (docs/warm-up.md says why 10)",
    )
    parser.add_argument("--warm-up-samples", type=int, default=defaults.warm_up_samples)
    parser.add_argument(
        "--renewals",
        type=int,
        default=defaults.renewals,
        help="monthly pledges made, then renewed through the schedule and renew functions (metered apart)",
    )
    parser.add_argument("--prices", type=Path, default=defaults.prices_path)
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="price the fixed lines with this template parameter (e.g. SnapStart=true EnableDashboard=true)",
    )
    args = parser.parse_args(argv)
    if any("=" not in p for p in args.parameter):
        parser.error("--parameter NAME=VALUE")
    if args.donations < 1 or not 0 <= args.save_card_share <= 1 or not 0 <= args.cold_start_share <= 1:
        parser.error("--donations >= 1; shares within [0, 1]")
    if args.warm_ups_per_donation < 0 or args.warm_up_samples < 0 or args.renewals < 0:
        parser.error("--warm-ups-per-donation, --warm-up-samples and --renewals >= 0")
    init = None
    if args.init_ms is not None:
        from benchmarks.cold_start import functions_from_template

        init = dict.fromkeys(functions_from_template(), args.init_ms)
    return CostConfig(
        donations=args.donations,
        delivery=args.delivery,
        save_card_share=args.save_card_share,
        charge_ms=args.charge_ms,
        save_card_ms=args.save_card_ms,
        mail_ms=args.mail_ms,
        cold_start_share=args.cold_start_share,
        init_ms=init,
        init_repeats=args.init_repeats,
        prices_path=args.prices,
        parameters=dict(p.split("=", 1) for p in args.parameter),
        warm_ups_per_donation=args.warm_ups_per_donation,
        warm_up_samples=args.warm_up_samples,
        renewals=args.renewals,
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    config = parse_args(argv)
    model = price(run(config, out), load_prices(config.prices_path))
    report(model, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
