"""Epic (FHIR R4) adapter.

``client.make_client`` syncs free availability (Schedule and Slot searches), finds and books
through the IHE scheduling operations and cancels; ``auth`` holds SMART Backend Services
(RS384 client assertions, our JWKS); ``normalize.normalize_bytes`` turns stored pages into
canonical records; ``sandbox.create_sandbox`` serves Epic's API shape for tests and demos.
"""
