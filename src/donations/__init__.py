"""Core of the donation pipeline: domain models, settings, stores and provider adapters.

Handlers in ``functions/`` stay thin and call into this package, which ships to Lambda as a layer.
"""
