"""athenahealth REST (v1): OAuth client, paged sync with a resumable cursor, booking,
normalizer to canonical FHIR R4 and a sandbox that speaks athena's API for tests and demos."""
