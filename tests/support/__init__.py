"""What tests and the benchmarks share: the WebSocket client, the fake clock, the flows a chat
goes through, the browser helpers and the stand-in apps.

One home each, so a change to the protocol or to sign-in is made once. Test modules import
from here and never from each other; ``bench/`` imports from here and never from a test module
or a conftest (so a benchmark run does not load pytest's fixtures).
"""
