"""infra.deploy.botocore_data: botocore's files read once per process, and nothing else shared."""

from __future__ import annotations

import boto3

from infra.deploy.botocore_data import share_botocore_data


def test_sessions_made_after_sharing_read_botocore_files_through_one_loader_and_keep_their_own_settings():
    # Given the sharing on (as tests/conftest.py, the local stack and its moto process turn it on), twice
    share_botocore_data()
    share_botocore_data()

    # When two sessions are made for different regions and credentials
    first = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="a", region_name="us-east-1")
    second = boto3.session.Session(aws_access_key_id="b", aws_secret_access_key="b", region_name="eu-west-1")

    # Then a service model is read once: both sessions load it through the same loader, to the same data
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    assert loader.load_service_model("sqs", "service-2") is loader.load_service_model("sqs", "service-2")
    # And each session keeps its own region and credentials, and its clients theirs
    assert (first.region_name, second.region_name) == ("us-east-1", "eu-west-1")
    assert first.get_credentials().access_key == "a"
    assert second.get_credentials().access_key == "b"
    assert second.client("sqs").meta.region_name == "eu-west-1"
