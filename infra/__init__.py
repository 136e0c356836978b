"""What runs the product without AWS: one folder per job, none of it shipped to Lambda.

* ``deploy/``: template.yaml translated (SAM -> CloudFormation) and created in moto, offline;
* ``emulators/``: Stripe and SendGrid, spoken to by the real SDKs over HTTP;
* ``local/``: the local stack (``make run``) and the in-process pipeline the tests drive.
"""
