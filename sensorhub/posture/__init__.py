"""Posture engine: posture classes, slouch alerts, movement breaks, the cat/camel coach, statistics."""
