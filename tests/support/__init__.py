"""Helpers the test packages share: test modules import these, never each other.

``processes`` (`visiongate serve`, the CLI, free ports), ``chat`` (request bodies, SDK calls,
streams), ``media`` (images, videos, a media HTTP server), ``triton_client`` (the vlm model
over gRPC, Triton's counters), ``schemas`` (tools and JSON Schemas), ``services`` (the test
PostgreSQL and Redis), ``database`` (keys, SQL statements), ``limits`` (limiters),
``redis_servers`` (Redis processes of a test's own), ``stack`` (the HTTP limit tests'
stacks), ``app`` and ``backend`` (the app in-process on a scripted backend), ``models``,
``usage`` (usage records at chosen times, the usage tests' organisations).
Fixtures stay in the conftest files, which import from here.
"""
