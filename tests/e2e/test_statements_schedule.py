"""The January statements run on the shared local stack, as EventBridge would fire it at a given time
(POST /_local/statements/run-schedule): the route, the schedule-renewals function and the core run."""

from __future__ import annotations

import pytest
import requests

from simulator.local.process import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_statements_schedule_runs_as_of_a_given_time_and_refuses_one_without_a_zone(local_stack: RunningStack):
    url = f"{local_stack.api}/_local/statements/run-schedule"
    # When it runs as of January 2001 (the year 2000: nobody gave on this stack then)
    answer = requests.post(url, json={"at": "2001-01-15T06:00:00Z"}, timeout=120)

    # Then the run looked at that year, found no donor, queued nothing, and is finished
    assert answer.status_code == 200, answer.text
    ran = answer.json()
    assert (ran["at"], ran["statements_year"], ran["statements_donors"]) == ("2001-01-15T06:00:00+00:00", 2000, 0)
    assert (ran["statements_queued"], ran["statements_finished"]) == (0, True)

    # And a run asked for without a time, or with one that has no zone, is refused and runs nothing
    for body in ({}, {"at": "2001-01-15T06:00:00"}, {"at": "mid-january"}):
        refused = requests.post(url, json=body, timeout=30)
        assert refused.status_code == 400 and "time" in refused.json()["message"]
