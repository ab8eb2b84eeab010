"""Request (…In) and response (…Out) models of the HTTP API, kept apart from the plant
model and the MQTT contract so that each can change without breaking the others."""
