"""The HTTP API: FHIR R4 endpoints and engine endpoints for clients."""
