"""Epic (FHIR R4) adapter.

``client.make_client`` syncs availability (Schedule and Slot searches, free and taken slots
alike, so a slot booked elsewhere turns busy), finds and books through the IHE scheduling
operations and cancels; ``auth`` holds SMART Backend Services
(RS384 client assertions, our JWKS); ``normalize.normalize_bytes`` turns stored pages into
canonical records; ``sandbox.create_sandbox`` serves Epic's API shape for tests and demos.
"""
